package server

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/internal/wire"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/httpjson"
	"github.com/veilchat/veil/session"
)

// Config configures a [Handler]. [Store] and at least one way to authenticate
// ([Auth.Keys] or [Auth.StreamSecret]) are required; every other zero field is
// the safe default.
type Config struct {
	Store Store
	Auth  Auth
	// Logger receives one line per request (route, status, duration, user)
	// and never a token, card or grant. Nil discards.
	Logger *slog.Logger
	// Now is the clock. Nil means [time.Now].
	Now func() time.Time
	// MaxBodyBytes caps request bodies. Zero means 8 MiB, enough for 1,000
	// post-quantum grants.
	MaxBodyBytes int64
	// MaxMembersPerCall caps grants and users per request. Zero means 1,000.
	MaxMembersPerCall int
	// RateLimit and RateBurst bound each user's (and each unauthenticated
	// client address's) request rate. Zero means 100 per second, burst 200.
	RateLimit rate.Limit
	RateBurst int
	// IdempotencyTTL is how long an Idempotency-Key is remembered; a reuse
	// after that is refused rather than executed again. Zero means 24h.
	IdempotencyTTL time.Duration
	// Metrics is where the Prometheus metrics are registered and what
	// /metrics serves. Nil means a new registry of the handler's own.
	Metrics *prometheus.Registry
}

// Handler serves the key service's /v1 API, /healthz and /metrics. It is an
// [http.Handler] to mount in an existing server, safe for concurrent use and
// stateless apart from its rate limiters, so replicas scale out over one
// PostgreSQL store.
type Handler struct {
	cfg      Config
	mux      *http.ServeMux
	log      *slog.Logger
	now      func() time.Time
	limiters *limiters
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewHandler checks cfg and returns the [Handler].
func NewHandler(cfg Config) (*Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("keyservice: Config.Store is required")
	}
	if len(cfg.Auth.Keys) == 0 && cfg.Auth.StreamSecret.IsZero() {
		return nil, errors.New("keyservice: Config.Auth needs Keys or StreamSecret")
	}
	for _, k := range cfg.Auth.Keys {
		if !k.HS256.IsZero() && k.HS256.Len() < 32 {
			return nil, errors.New("keyservice: HS256 keys must be at least 32 bytes")
		}
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger, now: cfg.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.cfg.MaxBodyBytes <= 0 {
		h.cfg.MaxBodyBytes = 8 << 20
	}
	if h.cfg.MaxMembersPerCall <= 0 {
		h.cfg.MaxMembersPerCall = 1000
	}
	if h.cfg.RateLimit == 0 {
		h.cfg.RateLimit, h.cfg.RateBurst = 100, 200
	}
	if h.cfg.RateBurst <= 0 {
		h.cfg.RateBurst = max(1, int(h.cfg.RateLimit))
	}
	if h.cfg.IdempotencyTTL <= 0 {
		h.cfg.IdempotencyTTL = 24 * time.Hour
	}
	if h.cfg.Metrics == nil {
		h.cfg.Metrics = prometheus.NewRegistry()
	}
	h.limiters = newLimiters(h.cfg.RateLimit, h.cfg.RateBurst, h.now)
	h.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "veil_keyservice_requests_total", Help: "Requests by route and status code.",
	}, []string{"route", "code"})
	h.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "veil_keyservice_request_duration_seconds", Help: "Request latency by route.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14),
	}, []string{"route"})
	if err := h.cfg.Metrics.Register(h.requests); err != nil {
		return nil, fmt.Errorf("keyservice: registering metrics: %w", err)
	}
	if err := h.cfg.Metrics.Register(h.latency); err != nil {
		return nil, fmt.Errorf("keyservice: registering metrics: %w", err)
	}

	h.handle("PUT /v1/users/{user}/cards", h.publishCard)
	h.handle("GET /v1/users/{user}/cards", h.cardHistory)
	h.handle("POST /v1/cards/lookup", h.lookupCards)
	h.handle("POST /v1/sessions", h.createSession)
	h.handle("GET /v1/sessions", h.lookupSession)
	h.handle("GET /v1/sessions/{id}", h.getSession)
	h.handle("DELETE /v1/sessions/{id}", h.deleteSession)
	h.handle("GET /v1/sessions/{id}/grants", h.myGrants)
	h.handle("POST /v1/sessions/{id}/members", h.extend)
	h.handle("POST /v1/sessions/{id}/rotate", h.rotate)
	h.handle("PUT /v1/sessions/{id}/admins/{user}", h.setAdmin)
	h.mux.HandleFunc("GET /healthz", h.healthz)
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(h.cfg.Metrics, promhttp.HandlerOpts{}))
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, keyservice.CodeNotFound, "no such route")
	})
	return h, nil
}

// ServeHTTP implements [http.Handler].
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// apiFunc handles one authenticated API request. It returns the status and
// the response value, or an error (an [*keyservice.APIError], or a store error that
// storeError maps).
type apiFunc func(r *http.Request, p Principal, body []byte) (int, any, error)

// handle registers an authenticated, rate-limited, logged and measured
// route. The body is read (bounded) before fn runs.
func (h *Handler) handle(pattern string, fn apiFunc) {
	route := pattern
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := h.now()
		rec := &httpjson.StatusRecorder{ResponseWriter: w}
		p, err := h.serve(rec, r, fn)
		code := rec.Status
		h.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		h.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
		attrs := []any{"route", route, "status", code, "duration", time.Since(start)}
		if p.UserID != "" {
			attrs = append(attrs, "user", p.UserID)
		} else if p.Service {
			attrs = append(attrs, "user", "(service)")
		}
		if err != nil && code >= 500 {
			attrs = append(attrs, "error", err.Error())
			h.log.Error("request failed", attrs...)
			return
		}
		h.log.Info("request", attrs...)
	})
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, fn apiFunc) (Principal, error) {
	p, err := h.cfg.Auth.authenticate(r.Header.Get("Authorization"), h.now)
	if err != nil {
		if !h.limiters.allow("ip:" + clientIP(r)) {
			writeError(w, http.StatusTooManyRequests, keyservice.CodeRateLimited, "too many requests")
			return Principal{}, nil
		}
		writeError(w, http.StatusUnauthorized, keyservice.CodeUnauthenticated, err.Error())
		return Principal{}, nil
	}
	key := "user:" + p.UserID
	if p.Service {
		key = "service"
	}
	if !h.limiters.allow(key) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, keyservice.CodeRateLimited, "too many requests")
		return p, nil
	}
	body, err := httpjson.ReadBody(w, r, h.cfg.MaxBodyBytes)
	if err != nil {
		ae := h.apiError(err)
		writeError(w, ae.Status, ae.Code, ae.Message)
		return p, nil
	}
	status, out, err := fn(r, p, body)
	if err != nil {
		ae := h.apiError(err)
		writeError(w, ae.Status, ae.Code, ae.Message)
		return p, err
	}
	writeJSON(w, status, out)
	return p, nil
}

// apiError maps an error to its API form; unknown errors are internal and
// their text is not sent.
func (h *Handler) apiError(err error) *keyservice.APIError {
	var ae *keyservice.APIError
	var he *httpjson.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &he):
		return &keyservice.APIError{Status: he.Status, Code: he.Code, Message: he.Message}
	case errors.Is(err, keyservice.ErrForbidden):
		return &keyservice.APIError{Status: http.StatusForbidden, Code: keyservice.CodeForbidden, Message: "not allowed"}
	case errors.Is(err, keyservice.ErrConflict):
		return &keyservice.APIError{Status: http.StatusConflict, Code: keyservice.CodeConflict, Message: "the session or directory changed; reload and retry"}
	case errors.Is(err, keyservice.ErrNotFound):
		return &keyservice.APIError{Status: http.StatusNotFound, Code: keyservice.CodeUnknownSession, Message: "no such session"}
	case errors.Is(err, ErrTooManyEpochs):
		return &keyservice.APIError{Status: http.StatusBadRequest, Code: keyservice.CodeInvalidRequest, Message: "too many epochs"}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &keyservice.APIError{Status: http.StatusServiceUnavailable, Code: keyservice.CodeUnavailable, Message: "request cancelled"}
	}
	return &keyservice.APIError{Status: http.StatusInternalServerError, Code: keyservice.CodeInternal, Message: "internal error"}
}

func bad(code, format string, args ...any) *keyservice.APIError {
	return &keyservice.APIError{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
}

func forbidden(msg string) *keyservice.APIError {
	return &keyservice.APIError{Status: http.StatusForbidden, Code: keyservice.CodeForbidden, Message: msg}
}

func decode(body []byte, v any) error { return httpjson.Decode(body, v) }

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

func writeError(w http.ResponseWriter, status int, code, msg string) {
	httpjson.WriteError(w, status, code, msg)
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limiters holds one token bucket per principal (a user, the service, or
// the address of an unauthenticated client). It forgets buckets idle for
// limiterIdle and never holds more than maxLimiters: when full, a new key
// evicts the least recently used one. Every call does a bounded amount of
// work under the one mutex, however many keys an attacker invents (new
// client addresses cost nothing over IPv6). An evicted principal starts
// again with a full bucket; that lets a flood of new addresses relax the
// limit of others, but never stalls the service or grows its memory.
type limiters struct {
	mu    sync.Mutex
	limit rate.Limit
	burst int
	now   func() time.Time
	m     map[string]*list.Element // values are *limiterEntry
	lru   list.List                // front: most recently used
}

type limiterEntry struct {
	key  string
	l    *rate.Limiter
	seen time.Time
}

const (
	// maxLimiters caps the buckets held at once.
	maxLimiters = 100_000
	// limiterIdle is how long an unused bucket is kept.
	limiterIdle = time.Minute
	// limiterSweep is how many idle buckets one call forgets at most: more
	// than the one key a call may add, so idle buckets drain, and few
	// enough that no call pays for a backlog.
	limiterSweep = 8
)

// newLimiters returns limiters that refill by now's clock (the Handler's
// Config.Now).
func newLimiters(l rate.Limit, burst int, now func() time.Time) *limiters {
	return &limiters{limit: l, burst: burst, now: now, m: map[string]*list.Element{}}
}

// allow reports whether key may make a request now, and takes a token if
// so. It runs in constant time.
func (ls *limiters) allow(key string) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	now := ls.now()
	for range limiterSweep {
		oldest := ls.lru.Back()
		if oldest == nil || now.Sub(oldest.Value.(*limiterEntry).seen) <= limiterIdle {
			break
		}
		ls.forget(oldest)
	}
	el, ok := ls.m[key]
	if ok {
		ls.lru.MoveToFront(el)
	} else {
		if ls.lru.Len() >= maxLimiters {
			ls.forget(ls.lru.Back())
		}
		el = ls.lru.PushFront(&limiterEntry{key: key, l: rate.NewLimiter(ls.limit, ls.burst)})
		ls.m[key] = el
	}
	e := el.Value.(*limiterEntry)
	e.seen = now
	return e.l.AllowN(now, 1)
}

func (ls *limiters) forget(el *list.Element) {
	delete(ls.m, ls.lru.Remove(el).(*limiterEntry).key)
}

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := h.cfg.Store.Ping(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, keyservice.CodeUnavailable, "store unreachable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// ---- directory ----

func (h *Handler) publishCard(r *http.Request, p Principal, body []byte) (int, any, error) {
	user := r.PathValue("user")
	if p.UserID != user {
		return 0, nil, forbidden("only a user may publish their own card")
	}
	var req wire.PublishCardRequest
	if err := decode(body, &req); err != nil {
		return 0, nil, err
	}
	card, err := identity.ParseCard(req.Card)
	if err != nil {
		return 0, nil, bad(keyservice.CodeInvalidCard, "the card does not parse or its self-signature is invalid")
	}
	if card.UserID() != user {
		return 0, nil, bad(keyservice.CodeInvalidCard, "the card names another user")
	}
	ctx := r.Context()
	history, err := h.cfg.Store.CardHistory(ctx, user)
	if err != nil && !errors.Is(err, keyservice.ErrNotFound) {
		return 0, nil, err
	}
	if n := len(history); n > 0 {
		latest, err := identity.ParseCard(history[n-1])
		if err != nil {
			return 0, nil, fmt.Errorf("stored card of %q does not parse: %w", user, err)
		}
		if latest.Equal(card) {
			return http.StatusOK, struct{}{}, nil // idempotent republish
		}
		if !card.IsSuccessorOf(latest) {
			return 0, nil, bad(keyservice.CodeInvalidCard, "the card is not signed by the user's latest generation %d", latest.Generation())
		}
	} else if card.Generation() != 0 {
		return 0, nil, bad(keyservice.CodeInvalidCard, "a user's first card must be generation 0")
	}
	if err := h.cfg.Store.InsertCard(ctx, user, card.Generation(), card.Marshal()); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, struct{}{}, nil
}

func (h *Handler) cardHistory(r *http.Request, p Principal, body []byte) (int, any, error) {
	user := r.PathValue("user")
	if !validUserID(user) {
		return 0, nil, bad(keyservice.CodeInvalidRequest, "invalid user ID")
	}
	cards, err := h.cfg.Store.CardHistory(r.Context(), user)
	if errors.Is(err, keyservice.ErrNotFound) {
		return 0, nil, &keyservice.APIError{Status: http.StatusNotFound, Code: keyservice.CodeUnknownUser, Message: "the user has no card"}
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, wire.CardsResponse{Cards: cards}, nil
}

func (h *Handler) lookupCards(r *http.Request, p Principal, body []byte) (int, any, error) {
	var req wire.LookupRequest
	if err := decode(body, &req); err != nil {
		return 0, nil, err
	}
	if len(req.UserIDs) == 0 {
		return 0, nil, bad(keyservice.CodeInvalidRequest, "user_ids is empty")
	}
	if len(req.UserIDs) > h.cfg.MaxMembersPerCall {
		return 0, nil, bad(keyservice.CodeTooManyMembers, "at most %d users per call", h.cfg.MaxMembersPerCall)
	}
	if !all(req.UserIDs, validUserID) {
		return 0, nil, bad(keyservice.CodeInvalidRequest, "user_ids holds an invalid user ID")
	}
	cards, err := h.cfg.Store.LatestCards(r.Context(), req.UserIDs)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, wire.LookupResponse{Cards: cards}, nil
}

// ---- sessions ----

func parseSessionID(s string) (session.ID, error) {
	id, err := session.ParseID(s)
	if err != nil || id.IsZero() {
		return session.ID{}, bad(keyservice.CodeInvalidRequest, "session IDs are 32 lower-case hex digits")
	}
	return id, nil
}

// Every user ID, channel CID and Idempotency-Key a request carries is
// checked at the boundary, before any store sees it: PostgreSQL refuses NUL
// bytes and invalid UTF-8 in TEXT columns, and a store error would be a
// 500 where the caller deserves a 400.

// validUserID reports whether s is a user ID a card can carry (identity's
// rule, PROTOCOL.md §4.2): 1 to identity.MaxUserIDLen bytes of UTF-8
// without a control character U+0000–U+001F or U+007F.
func validUserID(s string) bool { return identity.CheckUserID(s) == nil }

// validChannelCID reports whether s is a channel CID the session package
// accepts (1 to session.MaxChannelCIDLen bytes of UTF-8) that a store can
// keep: without NUL.
func validChannelCID(s string) bool { return validText(s, session.MaxChannelCIDLen, false) }

// maxIdempotencyKeyLen bounds the Idempotency-Key header, in bytes.
const maxIdempotencyKeyLen = 255

// validIdempotencyKey reports whether s may be stored as an Idempotency-Key:
// the same character rule as user IDs, up to maxIdempotencyKeyLen bytes.
func validIdempotencyKey(s string) bool { return validText(s, maxIdempotencyKeyLen, true) }

// validText reports whether s is 1 to maxLen bytes of valid UTF-8 without
// NUL and, if noControls, without any other C0 control character or DEL.
func validText(s string, maxLen int, noControls bool) bool {
	if s == "" || len(s) > maxLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == 0 || noControls && (r < 0x20 || r == 0x7f) {
			return false
		}
	}
	return true
}

// all reports whether ok holds for every element of ss.
func all(ss []string, ok func(string) bool) bool {
	for _, s := range ss {
		if !ok(s) {
			return false
		}
	}
	return true
}

// checkGrants validates a grant list: bounded, one per grantee, all for
// epoch, well-formed age files of bounded size, every grantee with a card.
func (h *Handler) checkGrants(ctx context.Context, grants []wire.Grant, epoch uint32) ([]session.GrantRecord, error) {
	if len(grants) == 0 {
		return nil, bad(keyservice.CodeInvalidGrants, "no grants")
	}
	if len(grants) > h.cfg.MaxMembersPerCall {
		return nil, bad(keyservice.CodeTooManyMembers, "at most %d grants per call", h.cfg.MaxMembersPerCall)
	}
	out := make([]session.GrantRecord, 0, len(grants))
	seen := make(map[string]bool, len(grants))
	users := make([]string, 0, len(grants))
	for _, g := range grants {
		switch {
		case !validUserID(g.Grantee):
			return nil, bad(keyservice.CodeInvalidGrants, "a grant has an invalid grantee")
		case seen[g.Grantee]:
			return nil, bad(keyservice.CodeInvalidGrants, "two grants for %q", g.Grantee)
		case g.Epoch != epoch:
			return nil, bad(keyservice.CodeInvalidGrants, "grant for %q is for epoch %d, expected %d", g.Grantee, g.Epoch, epoch)
		case len(g.Grant) > session.MaxGrantSize || !bytes.HasPrefix(g.Grant, []byte("age-encryption.org/v1\n")):
			return nil, bad(keyservice.CodeInvalidGrants, "grant for %q is not an age file of at most %d bytes", g.Grantee, session.MaxGrantSize)
		}
		seen[g.Grantee] = true
		users = append(users, g.Grantee)
		out = append(out, session.GrantRecord{Grantee: g.Grantee, Epoch: g.Epoch, Grant: g.Grant})
	}
	cards, err := h.cfg.Store.LatestCards(ctx, users)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if _, ok := cards[u]; !ok {
			return nil, bad(keyservice.CodeInvalidGrants, "grantee %q has no published card", u)
		}
	}
	return out, nil
}

func (h *Handler) createSession(r *http.Request, p Principal, body []byte) (int, any, error) {
	if p.Service {
		return 0, nil, forbidden("sessions are created by their members")
	}
	idemKey := r.Header.Get("Idempotency-Key")
	if idemKey != "" && !validIdempotencyKey(idemKey) {
		return 0, nil, bad(keyservice.CodeInvalidRequest, "Idempotency-Key must be 1 to %d bytes of UTF-8 without control characters", maxIdempotencyKeyLen)
	}
	sum := sha256.Sum256(body)
	ctx := r.Context()
	if idemKey != "" {
		rec, err := h.cfg.Store.Idempotency(ctx, p.UserID, idemKey)
		switch {
		case err == nil:
			if subtle.ConstantTimeCompare(rec.RequestHash, sum[:]) != 1 {
				return 0, nil, &keyservice.APIError{Status: http.StatusUnprocessableEntity, Code: keyservice.CodeIdempotencyReuse, Message: "Idempotency-Key already used for another request"}
			}
			if h.now().Sub(rec.CreatedAt) > h.cfg.IdempotencyTTL {
				return 0, nil, &keyservice.APIError{Status: http.StatusUnprocessableEntity, Code: keyservice.CodeIdempotencyReuse, Message: "Idempotency-Key expired; use a new key"}
			}
			return rec.Status, json.RawMessage(rec.Response), nil
		case !errors.Is(err, keyservice.ErrNotFound):
			return 0, nil, err
		}
	}
	var req wire.CreateSessionRequest
	if err := decode(body, &req); err != nil {
		return 0, nil, err
	}
	id, err := parseSessionID(req.ID)
	if err != nil {
		return 0, nil, err
	}
	if !validChannelCID(req.ChannelCID) {
		return 0, nil, bad(keyservice.CodeInvalidRequest, "invalid channel_cid")
	}
	grants, err := h.checkGrants(ctx, req.Grants, 0)
	if err != nil {
		return 0, nil, err
	}
	if !slices.ContainsFunc(grants, func(g session.GrantRecord) bool { return g.Grantee == p.UserID }) {
		return 0, nil, bad(keyservice.CodeInvalidGrants, "the creator must grant itself")
	}
	got, created, err := h.cfg.Store.CreateSession(ctx, SessionRecord{ID: id, ChannelCID: req.ChannelCID, CreatedBy: p.UserID, CreatedAt: h.now()}, grants)
	if err != nil {
		return 0, nil, err
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	resp := wire.CreateSessionResponse{ID: got.String(), Created: created}
	if idemKey != "" {
		b, _ := json.Marshal(resp)
		err := h.cfg.Store.PutIdempotency(ctx, IdempotencyRecord{UserID: p.UserID, Key: idemKey, RequestHash: sum[:], Status: status, Response: b, CreatedAt: h.now()})
		if err != nil && !errors.Is(err, keyservice.ErrConflict) {
			return 0, nil, err
		}
	}
	return status, resp, nil
}

func (h *Handler) lookupSession(r *http.Request, p Principal, body []byte) (int, any, error) {
	cid := r.URL.Query().Get("channel_cid")
	if !validChannelCID(cid) {
		return 0, nil, bad(keyservice.CodeInvalidRequest, "a valid channel_cid query parameter is required")
	}
	id, err := h.cfg.Store.SessionByChannel(r.Context(), cid)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, wire.LookupSessionResponse{ID: id.String()}, nil
}

// member loads a session and checks that p may read it (a member, or the
// service).
func (h *Handler) member(ctx context.Context, p Principal, id session.ID) (SessionRecord, []session.Member, error) {
	rec, members, err := h.cfg.Store.Session(ctx, id)
	if err != nil {
		return SessionRecord{}, nil, err
	}
	if !p.Service && !slices.ContainsFunc(members, func(m session.Member) bool { return m.UserID == p.UserID }) {
		return SessionRecord{}, nil, forbidden("not a member of this session")
	}
	return rec, members, nil
}

// admin loads a session and checks that p is one of its admins. Handlers
// that compare a request with the session's state call it first, so that
// what they answer a non-admin says nothing about the members.
func (h *Handler) admin(ctx context.Context, p Principal, id session.ID) (SessionRecord, []session.Member, error) {
	if p.Service {
		return SessionRecord{}, nil, forbidden("not an admin of this session")
	}
	rec, members, err := h.cfg.Store.Session(ctx, id)
	if err != nil {
		return SessionRecord{}, nil, err
	}
	i := slices.IndexFunc(members, func(m session.Member) bool { return m.UserID == p.UserID })
	if i < 0 {
		return SessionRecord{}, nil, forbidden("not a member of this session")
	}
	if !members[i].Admin {
		return SessionRecord{}, nil, forbidden("not an admin of this session")
	}
	return rec, members, nil
}

// pageLimit reads ?limit= (1 to MaxMembersPerCall, default the maximum).
func (h *Handler) pageLimit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return h.cfg.MaxMembersPerCall, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > h.cfg.MaxMembersPerCall {
		return 0, bad(keyservice.CodeInvalidRequest, "limit must be 1 to %d", h.cfg.MaxMembersPerCall)
	}
	return n, nil
}

func (h *Handler) getSession(r *http.Request, p Principal, body []byte) (int, any, error) {
	id, err := parseSessionID(r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	limit, err := h.pageLimit(r)
	if err != nil {
		return 0, nil, err
	}
	rec, members, err := h.member(r.Context(), p, id)
	if err != nil {
		return 0, nil, err
	}
	// Members come sorted by user ID; a page is the next limit after the
	// cursor.
	after := r.URL.Query().Get("after")
	start, _ := slices.BinarySearchFunc(members, after, func(m session.Member, u string) int { return strings.Compare(m.UserID, u) })
	if start < len(members) && members[start].UserID == after && after != "" {
		start++
	}
	page := members[start:min(start+limit, len(members))]
	resp := wire.SessionResponse{ID: rec.ID.String(), ChannelCID: rec.ChannelCID, Epoch: rec.Epoch, Members: make([]wire.Member, len(page))}
	for i, m := range page {
		resp.Members[i] = wire.Member{UserID: m.UserID, Admin: m.Admin, Since: m.Since}
	}
	if start+limit < len(members) {
		resp.Next = page[len(page)-1].UserID
	}
	return http.StatusOK, resp, nil
}

func (h *Handler) myGrants(r *http.Request, p Principal, body []byte) (int, any, error) {
	if p.Service {
		return 0, nil, forbidden("grants are read by their grantee")
	}
	id, err := parseSessionID(r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	if _, _, err := h.member(r.Context(), p, id); err != nil {
		return 0, nil, err
	}
	limit, err := h.pageLimit(r)
	if err != nil {
		return 0, nil, err
	}
	grants, err := h.cfg.Store.Grants(r.Context(), id, p.UserID)
	if err != nil {
		return 0, nil, err
	}
	// Grants come in ascending epochs; a page is the next limit after the
	// cursor.
	if v := r.URL.Query().Get("after_epoch"); v != "" {
		after, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0, nil, bad(keyservice.CodeInvalidRequest, "after_epoch must be an epoch number")
		}
		// The first grant past the cursor, compared in 64 bits: after+1
		// in 32 would wrap the last epoch's cursor to 0 and restart the
		// pages.
		grants = grants[sort.Search(len(grants), func(i int) bool { return uint64(grants[i].Epoch) > after }):]
	}
	resp := wire.GrantsResponse{Grants: make([]wire.Grant, 0, min(limit, len(grants)))}
	for _, g := range grants[:min(limit, len(grants))] {
		resp.Grants = append(resp.Grants, wire.Grant{Grantee: g.Grantee, Epoch: g.Epoch, Grant: g.Grant})
	}
	if len(grants) > limit {
		next := grants[limit-1].Epoch
		resp.Next = &next
	}
	return http.StatusOK, resp, nil
}

func (h *Handler) extend(r *http.Request, p Principal, body []byte) (int, any, error) {
	if p.Service {
		return 0, nil, forbidden("members are added by members")
	}
	id, err := parseSessionID(r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	var req wire.ExtendRequest
	if err := decode(body, &req); err != nil {
		return 0, nil, err
	}
	ctx := r.Context()
	// Rights first, as the store checks them: a non-member learns nothing
	// from how its grants would have been judged.
	if _, _, err := h.member(ctx, p, id); err != nil {
		return 0, nil, err
	}
	grants, err := h.checkGrants(ctx, req.Grants, req.Epoch)
	if err != nil {
		return 0, nil, err
	}
	if err := h.cfg.Store.Extend(ctx, id, p.UserID, req.Epoch, grants); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

func (h *Handler) rotate(r *http.Request, p Principal, body []byte) (int, any, error) {
	if p.Service {
		return 0, nil, forbidden("rotation needs new grants from an admin member")
	}
	id, err := parseSessionID(r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	var req wire.RotateRequest
	if err := decode(body, &req); err != nil {
		return 0, nil, err
	}
	if len(req.Remove) > h.cfg.MaxMembersPerCall {
		return 0, nil, bad(keyservice.CodeTooManyMembers, "at most %d users per call", h.cfg.MaxMembersPerCall)
	}
	if !all(req.Remove, validUserID) {
		return 0, nil, bad(keyservice.CodeInvalidRequest, "remove holds an invalid user ID")
	}
	// >=, not ==: from_epoch is the caller's number, and from 2³²-1 the
	// next epoch would wrap to 0.
	if req.FromEpoch >= session.MaxEpochs-1 {
		return 0, nil, bad(keyservice.CodeInvalidRequest, "too many epochs")
	}
	ctx := r.Context()
	// Rights before any comparison with the membership: the answers below
	// name members, which only the session's admins may learn this way.
	_, members, err := h.admin(ctx, p, id)
	if err != nil {
		return 0, nil, err
	}
	grants, err := h.checkGrants(ctx, req.Grants, req.FromEpoch+1)
	if err != nil {
		return 0, nil, err
	}
	granted := make(map[string]bool, len(grants))
	for _, g := range grants {
		if slices.Contains(req.Remove, g.Grantee) {
			return 0, nil, bad(keyservice.CodeInvalidGrants, "grant for removed member %q", g.Grantee)
		}
		granted[g.Grantee] = true
	}
	for _, m := range members {
		if !slices.Contains(req.Remove, m.UserID) && !granted[m.UserID] {
			return 0, nil, bad(keyservice.CodeInvalidGrants, "remaining member %q has no grant for the new epoch", m.UserID)
		}
	}
	if err := h.cfg.Store.Rotate(ctx, id, p.UserID, req.FromEpoch, req.Remove, grants); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

func (h *Handler) setAdmin(r *http.Request, p Principal, body []byte) (int, any, error) {
	if p.Service {
		return 0, nil, forbidden("admins are named by admins")
	}
	id, err := parseSessionID(r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	user := r.PathValue("user")
	if !validUserID(user) {
		return 0, nil, bad(keyservice.CodeInvalidRequest, "invalid user ID")
	}
	var req wire.AdminRequest
	if err := decode(body, &req); err != nil {
		return 0, nil, err
	}
	ctx := r.Context()
	err = h.cfg.Store.SetAdmin(ctx, id, p.UserID, user, req.Admin)
	if errors.Is(err, keyservice.ErrNotFound) {
		// The store says ErrNotFound both for a session that does not
		// exist and, after checking the caller's rights, for a user who
		// is not a member; only the second is unknown_user.
		if _, _, err := h.cfg.Store.Session(ctx, id); err != nil {
			return 0, nil, err
		}
		return 0, nil, &keyservice.APIError{Status: http.StatusNotFound, Code: keyservice.CodeUnknownUser, Message: "not a member of this session"}
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

func (h *Handler) deleteSession(r *http.Request, p Principal, body []byte) (int, any, error) {
	id, err := parseSessionID(r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	caller := p.UserID
	if p.Service {
		caller = ""
	}
	if err := h.cfg.Store.DeleteSession(r.Context(), id, caller); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}
