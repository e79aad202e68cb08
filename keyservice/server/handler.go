package server

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/httpjson"
	"github.com/veilchat/veil/internal/httpserve"
	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/internal/wire"
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
	// MaxBodyBytes caps request bodies. Zero means 8 MiB, enough for a
	// genesis of 1,000 members with their post-quantum grants.
	MaxBodyBytes int64
	// MaxMembersPerCall caps the grants and users of one request, and the
	// items of one page of an answer (log records, grants). Zero means
	// 1,000. A record that needs more grants than this (a new epoch for a
	// larger roster) is refused.
	MaxMembersPerCall int
	// RateLimit and RateBurst bound each user's (and each unauthenticated
	// client address's) request rate. Zero means 100 per second, burst 200.
	RateLimit rate.Limit
	RateBurst int
	// StateCacheBytes bounds the memory of the verified membership-log
	// states the handler keeps, estimated, least recently used out. Zero
	// means 64 MiB. A state not cached is rebuilt by replaying its stored
	// log, which verifies a signature per record: a cache too small for
	// the sessions in use costs CPU, never correctness, since every write
	// checks the stored head in its transaction.
	StateCacheBytes int64
	// MaxSessionsPerUser bounds the sessions one user may create (sign the
	// genesis of). Zero means 10,000; negative, no limit. Deleting a session
	// does not give it back: the count is of creations.
	MaxSessionsPerUser int64
	// MaxBytesPerUser bounds the bytes one user may make the service store:
	// the records it signed (genesis and changes) plus the grants it
	// uploaded with them; cards are not counted. Zero means 64 MiB;
	// negative, no limit. Bytes count what is stored: deleting a session
	// frees what its records and grants were charged. A write past either
	// quota is refused with 403 quota_exceeded and stores nothing; see
	// [Quota].
	MaxBytesPerUser int64
	// Metrics is where the Prometheus metrics are registered and what
	// /metrics serves. Nil means a new registry of the handler's own,
	// which also holds the Go runtime's and the process's collectors (a
	// registry given here gets only the handler's metrics: it may hold
	// those collectors already).
	Metrics *prometheus.Registry
	// OmitMetricsRoute leaves /metrics out of the handler's routes, for a
	// server that serves [Handler.MetricsHandler] on another listener.
	OmitMetricsRoute bool

	// TrustedProxies are the networks of the reverse proxies (load
	// balancers) in front of the service. A request from one of them is
	// taken to come from the address its X-Forwarded-For names, the
	// nearest one not itself trusted; every other request from its peer
	// address. Nil trusts none: behind a proxy, every client then counts
	// as the proxy's address for the per-address limits below and the
	// rate limit of unauthenticated requests.
	TrustedProxies []netip.Prefix
	// MaxInFlightPerClient caps the requests one client address (an IPv4
	// address, an IPv6 /64) may have in flight; more are refused with 429
	// rate_limited. Zero means 64; negative, no cap. /healthz, /readyz and
	// /metrics are exempt.
	MaxInFlightPerClient int
	// MinBodyRate is the rate, in bytes per second, below which a request
	// body is dropped (408 request_timeout, and the connection closed)
	// once BodyRateGrace has passed since the request began, so that
	// uploads trickled a byte at a time cannot hold connections and their
	// buffers. Zero means 1,024 bytes per second after 10 seconds;
	// negative MinBodyRate, no minimum.
	MinBodyRate   int64
	BodyRateGrace time.Duration
	// MaxBodyMemory bounds the bytes of request bodies held at once, as
	// they arrive (a body trickled in holds what it sent, not what its
	// Content-Length promised), until their requests are answered: a
	// request whose body would pass it is answered 503 unavailable with
	// Retry-After. It is what bounds the memory of many large uploads at
	// once, whatever their number of connections or addresses. One client
	// address (an IPv4 address, an IPv6 /64) may hold an eighth of it, or
	// one body of MaxBodyBytes if that is more, so that a client that
	// sends most of several bodies and stalls does not refuse everyone
	// else's until the server's read timeout. Zero means 256 MiB;
	// negative, no bound. It must not be less than MaxBodyBytes.
	MaxBodyMemory int64
}

// Handler serves the key service's /v1 API, /healthz, /readyz and
// /metrics. It is an [http.Handler] to mount in an existing server, safe
// for concurrent use. Apart from its rate limiters and its counts of
// requests and bodies in flight it holds only a cache of verified log
// states that it checks against the store's head on every write, so
// replicas scale out over one PostgreSQL store.
type Handler struct {
	cfg      Config
	front    *httpserve.Frontend
	log      *slog.Logger
	now      func() time.Time
	limiters *httpserve.Limiters
	states   *stateCache
	replays  *prometheus.CounterVec
}

// NewHandler checks cfg and returns the [Handler].
func NewHandler(cfg Config) (*Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("keyservice: Config.Store is required")
	}
	if len(cfg.Auth.Keys) == 0 && cfg.Auth.StreamSecret.IsZero() {
		return nil, errors.New("keyservice: Config.Auth needs Keys or StreamSecret")
	}
	if err := checkKeys(cfg.Auth.Keys); err != nil {
		return nil, err
	}
	for _, k := range cfg.Auth.Keys {
		// Stream would sign backend tokens, writes and the service role
		// included: its secret would be read-only in name only.
		if !k.HS256.IsZero() && !cfg.Auth.StreamSecret.IsZero() && subtle.ConstantTimeCompare(k.HS256.Reveal(), cfg.Auth.StreamSecret.Reveal()) == 1 {
			return nil, errors.New("keyservice: an HS256 key is the Stream secret; tokens Stream signs would write: issue backend tokens with another key")
		}
	}
	cfg.Store = judgedStore{cfg.Store} // a failing database answers 503
	h := &Handler{cfg: cfg, log: cfg.Logger, now: cfg.Now}
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
	if h.cfg.StateCacheBytes <= 0 {
		h.cfg.StateCacheBytes = 64 << 20
	}
	if h.cfg.MaxSessionsPerUser == 0 {
		h.cfg.MaxSessionsPerUser = 10_000
	}
	if h.cfg.MaxBytesPerUser == 0 {
		h.cfg.MaxBytesPerUser = 64 << 20
	}
	if h.cfg.Metrics == nil {
		h.cfg.Metrics = prometheus.NewRegistry()
		if err := httpserve.RegisterRuntime(h.cfg.Metrics); err != nil {
			return nil, fmt.Errorf("keyservice: registering metrics: %w", err)
		}
	}
	if h.cfg.MaxInFlightPerClient == 0 {
		h.cfg.MaxInFlightPerClient = 64
	}
	if h.cfg.MinBodyRate == 0 {
		h.cfg.MinBodyRate = 1024
	}
	if h.cfg.BodyRateGrace <= 0 {
		h.cfg.BodyRateGrace = 10 * time.Second
	}
	if h.cfg.MaxBodyMemory == 0 {
		h.cfg.MaxBodyMemory = 256 << 20
	}
	if h.cfg.MaxBodyMemory > 0 && h.cfg.MaxBodyMemory < h.cfg.MaxBodyBytes {
		return nil, errors.New("keyservice: Config.MaxBodyMemory is less than MaxBodyBytes: no body of the maximum size could be received")
	}
	h.limiters = httpserve.NewLimiters(h.cfg.RateLimit, h.cfg.RateBurst, h.now)
	h.states = newStateCache(h.cfg.StateCacheBytes)
	front, err := httpserve.New(httpserve.Config{
		Route:     h.slashUserRoute,
		Namespace: "veil_keyservice", Metrics: h.cfg.Metrics, Logger: h.log, TrustedProxies: h.cfg.TrustedProxies,
		MaxInFlightPerClient: h.cfg.MaxInFlightPerClient, MinBodyRate: h.cfg.MinBodyRate, BodyRateGrace: h.cfg.BodyRateGrace,
		BodyMemory: h.cfg.MaxBodyMemory, BodyMemoryPerClient: httpserve.ClientShare(h.cfg.MaxBodyMemory, h.cfg.MaxBodyBytes),
	})
	if err != nil {
		return nil, fmt.Errorf("keyservice: %w", err)
	}
	h.front = front
	h.replays = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "veil_keyservice_log_replays_total",
		Help: "Membership logs replayed for want of a cached state at their head: from the genesis (full) or from an older cached state (incremental).",
	}, []string{"kind"})
	if err := h.cfg.Metrics.Register(h.replays); err != nil {
		return nil, fmt.Errorf("keyservice: registering metrics: %w", err)
	}
	h.replays.WithLabelValues("full")
	h.replays.WithLabelValues("incremental")

	h.handle("PUT /v1/users/{user}/cards", h.publishCard)
	h.handle("GET /v1/users/{user}/cards", h.cardHistory)
	h.handle("POST /v1/cards/lookup", h.lookupCards)
	h.handle("POST /v1/sessions", h.createSession)
	h.handle("GET /v1/sessions", h.lookupSession)
	h.handle("DELETE /v1/sessions/{id}", h.deleteSession)
	h.handle("POST /v1/sessions/{id}/log", h.appendRecord)
	h.handle("GET /v1/sessions/{id}/log", h.readLog)
	h.handle("GET /v1/sessions/{id}/head", h.head)
	h.handle("GET /v1/sessions/{id}/grants", h.myGrants)
	h.front.HandleProbe("GET /healthz", http.HandlerFunc(httpserve.Live))
	h.front.HandleProbe("GET /readyz", httpserve.Ready(h.cfg.Store))
	if !h.cfg.OmitMetricsRoute {
		h.front.HandleProbe("GET /metrics", h.MetricsHandler())
	}
	return h, nil
}

// ServeHTTP implements [http.Handler].
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.front.ServeHTTP(w, r) }

// MetricsHandler returns the handler of /metrics: the Prometheus text of
// [Config.Metrics], to serve on a listener of its own with
// [Config.OmitMetricsRoute].
func (h *Handler) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(h.cfg.Metrics, promhttp.HandlerOpts{})
}

// apiFunc handles one authenticated API request. It returns the status and
// the response value, or an error (an *answer, an [*keyservice.APIError],
// or a store error that apiError maps).
type apiFunc func(r *http.Request, p Principal, body []byte) (int, any, error)

// handle registers an authenticated, rate-limited route. The body is
// read (bounded) before fn runs; the Frontend logs and measures.
func (h *Handler) handle(pattern string, fn apiFunc) {
	// Every route that is not a GET writes, but the card lookup.
	write := !strings.HasPrefix(pattern, "GET ") && pattern != "POST /v1/cards/lookup"
	h.front.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.serve(w, r, fn, write)
	}))
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, fn apiFunc, write bool) {
	ctx := r.Context()
	p, err := h.cfg.Auth.authenticate(r.Header.Get("Authorization"), h.now)
	if err != nil {
		if !h.limiters.Allow("ip:" + httpserve.ClientKey(httpserve.Client(ctx))) {
			writeError(w, errorf(http.StatusTooManyRequests, keyservice.CodeRateLimited, "too many requests"))
			return
		}
		httpserve.SetRefusal(ctx, authReason(err))
		writeError(w, errorf(http.StatusUnauthorized, keyservice.CodeUnauthenticated, "%s", err.Error()))
		return
	}
	switch {
	case p.Service:
		httpserve.SetUser(ctx, "(service)")
	default:
		httpserve.SetUser(ctx, p.UserID)
	}
	if write && p.ViaStream {
		// Stream knows its own secret and can sign a token for any user:
		// such a token never writes (cards, sessions, records, deletes).
		a := errorf(http.StatusForbidden, keyservice.CodeStreamToken,
			"a token signed with the Stream API secret may only read; writes need a token the app backend issues")
		httpserve.SetRefusal(ctx, a.detail.Message)
		writeError(w, a)
		return
	}
	key := "user:" + p.UserID
	if p.Service {
		key = "service"
	}
	if !h.limiters.Allow(key) {
		w.Header().Set("Retry-After", "1")
		writeError(w, errorf(http.StatusTooManyRequests, keyservice.CodeRateLimited, "too many requests"))
		return
	}
	body, err := httpjson.ReadBody(w, r, h.cfg.MaxBodyBytes)
	if err != nil {
		writeError(w, h.apiError(err))
		return
	}
	status, out, err := fn(r, p, body)
	if err != nil {
		a := h.apiError(err)
		switch {
		case a.status >= 500:
			httpserve.SetError(ctx, err)
		case a.status == http.StatusForbidden:
			httpserve.SetRefusal(ctx, a.detail.Message)
		}
		writeError(w, a)
		return
	}
	writeJSON(w, status, out)
}

// answer is an error answer: its status and what its body says.
type answer struct {
	status int
	detail wire.ErrorDetail
}

func (a *answer) Error() string {
	return fmt.Sprintf("keyservice: %s (%d): %s", a.detail.Code, a.status, a.detail.Message)
}

func errorf(status int, code, format string, args ...any) *answer {
	return &answer{status: status, detail: wire.ErrorDetail{Code: code, Message: fmt.Sprintf(format, args...)}}
}

// apiError maps an error to its answer; unknown errors are internal and
// their text is not sent.
func (h *Handler) apiError(err error) *answer {
	var (
		a  *answer
		ae *keyservice.APIError
		he *httpjson.Error
		se *session.SessionExistsError
	)
	switch {
	case errors.As(err, &a):
		return a
	case errors.As(err, &ae):
		return errorf(ae.Status, ae.Code, "%s", ae.Message)
	case errors.As(err, &he):
		return errorf(he.Status, he.Code, "%s", he.Message)
	case errors.As(err, &se):
		a := errorf(http.StatusConflict, keyservice.CodeSessionExists, "the channel has another session")
		a.detail.SessionID = se.ID.String()
		return a
	case errors.Is(err, keyservice.ErrQuotaExceeded):
		return errorf(http.StatusForbidden, keyservice.CodeQuotaExceeded, "the write would exceed the caller's quota of sessions or bytes")
	case errors.Is(err, keyservice.ErrForbidden):
		return errorf(http.StatusForbidden, keyservice.CodeForbidden, "not allowed")
	case errors.Is(err, keyservice.ErrConflict):
		return errorf(http.StatusConflict, keyservice.CodeConflict, "the session or directory changed; reload and retry")
	case errors.Is(err, keyservice.ErrNotFound):
		return errorf(http.StatusNotFound, keyservice.CodeUnknownSession, "no such session")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusServiceUnavailable, keyservice.CodeUnavailable, "request cancelled")
	case errors.Is(err, keyservice.ErrUnavailable):
		return errorf(http.StatusServiceUnavailable, keyservice.CodeUnavailable, "the store is unavailable; retry later")
	}
	return errorf(http.StatusInternalServerError, keyservice.CodeInternal, "internal error")
}

// quota is the quota a write by user counts against.
func (h *Handler) quota(user string) Quota {
	return Quota{User: user, MaxSessions: h.cfg.MaxSessionsPerUser, MaxBytes: h.cfg.MaxBytesPerUser}
}

func bad(code, format string, args ...any) *answer {
	return errorf(http.StatusBadRequest, code, format, args...)
}

func forbidden(msg string) *answer {
	return errorf(http.StatusForbidden, keyservice.CodeForbidden, "%s", msg)
}

func decode(body []byte, v any) error { return httpjson.Decode(body, v) }

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

func writeError(w http.ResponseWriter, a *answer) {
	httpjson.Write(w, a.status, wire.ErrorBody{Error: a.detail})
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
		return 0, nil, errorf(http.StatusNotFound, keyservice.CodeUnknownUser, "the user has no card")
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

// Every user ID and channel CID a request carries is checked at the
// boundary, before any store sees it: PostgreSQL refuses NUL bytes and
// invalid UTF-8 in TEXT columns, and a store error would be a 500 where the
// caller deserves a 400. (Those inside log records are the log's: Parse
// refuses what a store cannot keep.)

// validUserID reports whether s is a user ID a card can carry (identity's
// rule, PROTOCOL.md §4.2): 1 to identity.MaxUserIDLen bytes of UTF-8
// without a control character U+0000–U+001F or U+007F.
func validUserID(s string) bool { return identity.CheckUserID(s) == nil }

// all reports whether ok holds for every element of ss.
func all(ss []string, ok func(string) bool) bool {
	for _, s := range ss {
		if !ok(s) {
			return false
		}
	}
	return true
}

// grantRecords checks the shape of a request's grants — bounded in number,
// each for a valid user ID, not empty and at most session.MaxGrantSize
// bytes — and returns them with what memberlog.Accept checks of them. Who
// gets which grant is the log's business (Accept).
func (h *Handler) grantRecords(grants []wire.Grant) ([]session.GrantRecord, []memberlog.GrantTarget, error) {
	if len(grants) > h.cfg.MaxMembersPerCall {
		return nil, nil, bad(keyservice.CodeTooManyMembers, "at most %d grants per call", h.cfg.MaxMembersPerCall)
	}
	out := make([]session.GrantRecord, len(grants))
	targets := make([]memberlog.GrantTarget, len(grants))
	for i, g := range grants {
		if !validUserID(g.Grantee) {
			return nil, nil, bad(keyservice.CodeInvalidGrants, "a grant has an invalid grantee")
		}
		if len(g.Grant) == 0 || len(g.Grant) > session.MaxGrantSize {
			return nil, nil, bad(keyservice.CodeInvalidGrants, "grant for %q is empty or over %d bytes", g.Grantee, session.MaxGrantSize)
		}
		out[i] = session.GrantRecord{Grantee: g.Grantee, Epoch: g.Epoch, Grant: g.Grant}
		targets[i] = memberlog.GrantTarget{Grantee: g.Grantee, Epoch: g.Epoch}
	}
	return out, targets, nil
}

// cardSource returns the memberlog card source of the handler's own
// directory: a user's cards from the anchor's generation up to gen, in
// order. Cards were verified when they were published; the log checks
// them again against its anchors. Histories are read once per source.
func (h *Handler) cardSource(ctx context.Context) memberlog.CardSource {
	histories := map[string][]*identity.Card{}
	return func(user string, anchor memberlog.Anchor, gen uint32) ([]*identity.Card, error) {
		hist, ok := histories[user]
		if !ok {
			raw, err := h.cfg.Store.CardHistory(ctx, user)
			if errors.Is(err, keyservice.ErrNotFound) {
				return nil, fmt.Errorf("%w: %q has no card", session.ErrUnknownUser, user)
			}
			if err != nil {
				return nil, err
			}
			for _, b := range raw {
				c, err := identity.ParseCard(b)
				if err != nil {
					return nil, fmt.Errorf("keyservice: a stored card of %q does not parse: %v", user, err)
				}
				hist = append(hist, c)
			}
			histories[user] = hist
		}
		if gen < anchor.Generation || int64(gen) >= int64(len(hist)) {
			return nil, fmt.Errorf("%w: no card of generation %d for %q", session.ErrUnknownUser, gen, user)
		}
		return hist[anchor.Generation : gen+1], nil
	}
}

// logError maps memberlog.Accept's verdicts onto the API's codes, as
// session.MemoryService maps them onto the session package's sentinels.
// head is the head the record was checked against (nil for a genesis).
func logError(err error, head *memberlog.State) error {
	switch {
	case errors.Is(err, memberlog.ErrNotNext):
		return conflict(session.Head{Seq: head.Seq(), Hash: head.Head()})
	case errors.Is(err, memberlog.ErrNotSigner):
		return forbidden("the record is not signed by the caller")
	case errors.Is(err, memberlog.ErrGrantsMismatch):
		return bad(keyservice.CodeInvalidGrants, "the grants are not exactly the ones the record needs: one per member for a new epoch, one per added user otherwise")
	case errors.Is(err, memberlog.ErrInvalid):
		return bad(keyservice.CodeInvalidLog, "%s", err.Error())
	case errors.Is(err, session.ErrUnknownUser):
		return errorf(http.StatusNotFound, keyservice.CodeUnknownUser, "the signer has no published card of the generation it signed with")
	}
	return err
}

// conflict is the answer to a record that does not follow head.
func conflict(head session.Head) *answer {
	a := errorf(http.StatusConflict, keyservice.CodeConflict, "the record does not follow the log's head %d; reload the log and retry", head.Seq)
	a.detail.Head = &wire.Head{Seq: head.Seq, Hash: head.Hash[:]}
	return a
}

// rosterOf returns st's roster as a Store keeps it.
func rosterOf(st *memberlog.State) []session.Member {
	ms := st.Members()
	out := make([]session.Member, len(ms))
	for i, m := range ms {
		out[i] = session.Member{UserID: m.UserID, Admin: m.Role == memberlog.RoleAdmin}
	}
	return out
}

func headOf(st *memberlog.State) session.Head { return session.Head{Seq: st.Seq(), Hash: st.Head()} }

// state returns session id's verified log state at the store's current
// head (or a later one): the cached state if it is at that head, else one
// brought there by replaying the stored records after the cached state, or
// all of them. The store's head decides, never the cache: another replica
// may have appended since.
func (h *Handler) state(ctx context.Context, id session.ID) (*memberlog.State, error) {
	rec, err := h.cfg.Store.Session(ctx, id)
	if err != nil {
		return nil, err
	}
	held := h.states.get(id)
	if held != nil && headOf(held) == rec.Head {
		return held, nil
	}
	if held != nil && held.Seq() < rec.Head.Seq {
		// The chain itself checks that the stored records follow the
		// cached head; if they do not (the session was deleted and made
		// again since), replay it all.
		if st, err := h.replay(ctx, id, held); err == nil {
			h.replays.WithLabelValues("incremental").Inc()
			return st, nil
		} else if ctx.Err() != nil {
			return nil, err
		}
	}
	h.replays.WithLabelValues("full").Inc()
	return h.replay(ctx, id, nil)
}

// replay verifies the stored records of session id after held (all of them
// when held is nil), caches the state they lead to and returns it.
func (h *Handler) replay(ctx context.Context, id session.ID, held *memberlog.State) (*memberlog.State, error) {
	var from uint32
	if held != nil {
		from = held.Seq() + 1
	}
	records, _, err := h.cfg.Store.Log(ctx, id, "", from, math.MaxInt, math.MaxInt)
	if err != nil {
		return nil, err
	}
	cards := h.cardSource(ctx)
	st := held
	for _, raw := range records {
		if st == nil {
			st, err = memberlog.Verify(raw, [memberlog.IDSize]byte(id), cards)
		} else {
			st, err = st.Apply(raw, cards)
		}
		if errors.Is(err, memberlog.ErrInvalid) || errors.Is(err, session.ErrUnknownUser) {
			// Not the caller's fault: never answered as invalid_log.
			return nil, fmt.Errorf("keyservice: the stored log of session %s does not verify: %v", id, err)
		}
		if err != nil {
			return nil, err
		}
	}
	if st == nil {
		return nil, keyservice.ErrNotFound // deleted since its head was read
	}
	h.states.put(id, st)
	return st, nil
}

// sentAgain reports whether r (nil if it did not parse) is a change
// record that the stored log of session id has at its sequence number, at
// most headSeq, sent again by its signer or, when member is set, by a
// member of the log at its head (one re-publishing it after a restore,
// with another member who re-published it first).
func (h *Handler) sentAgain(ctx context.Context, id session.ID, headSeq uint32, caller string, member bool, r *memberlog.Record) (bool, error) {
	if r == nil || r.Change == nil || (r.Change.Actor != caller && !member) || r.Change.Seq == 0 || r.Change.Seq > headSeq {
		return false, nil
	}
	stored, _, err := h.cfg.Store.Log(ctx, id, "", r.Change.Seq, 1, 1)
	if err != nil {
		return false, err
	}
	return len(stored) == 1 && bytes.Equal(stored[0], r.Raw), nil
}

func (h *Handler) createSession(r *http.Request, p Principal, body []byte) (int, any, error) {
	if p.Service {
		return 0, nil, forbidden("sessions are created by their members")
	}
	var req wire.CreateSessionRequest
	if err := decode(body, &req); err != nil {
		return 0, nil, err
	}
	// Rights first, as session.MemoryService checks them: only the
	// genesis's creator may store it, even again. Its creator is known
	// once it parses.
	g, err := memberlog.Parse(req.Genesis)
	if err != nil {
		return 0, nil, logError(err, nil)
	}
	if g.Genesis == nil {
		return 0, nil, bad(keyservice.CodeInvalidLog, "a change record where a genesis is due")
	}
	if g.Genesis.Creator != p.UserID {
		return 0, nil, forbidden("the genesis is not the caller's")
	}
	grants, targets, err := h.grantRecords(req.Grants)
	if err != nil {
		return 0, nil, err
	}
	ctx := r.Context()
	id := session.ID(memberlog.SessionIDOf(req.Genesis))
	resp := wire.CreateSessionResponse{ID: id.String()}
	// The same genesis sent again by its creator is answered as the first
	// time, before it is verified again; another genesis with this ID,
	// which only a broken hash gives, is a conflict.
	stored, _, err := h.cfg.Store.Log(ctx, id, "", 0, 1, 1)
	switch {
	case err == nil && len(stored) == 1 && bytes.Equal(stored[0], req.Genesis):
		return http.StatusOK, resp, nil
	case err == nil:
		return 0, nil, keyservice.ErrConflict
	case !errors.Is(err, keyservice.ErrNotFound):
		return 0, nil, err
	}
	st, err := memberlog.Accept(nil, req.Genesis, p.UserID, h.cardSource(ctx), targets)
	if err != nil {
		return 0, nil, logError(err, nil)
	}
	created, err := h.cfg.Store.CreateSession(ctx, NewSession{
		ID: id, ChannelCID: st.ChannelCID(), Genesis: req.Genesis, Hash: st.Head(), Roster: rosterOf(st), Grants: grants,
		Quota: h.quota(p.UserID),
	})
	if err != nil {
		return 0, nil, err
	}
	h.states.put(id, st)
	if !created {
		return http.StatusOK, resp, nil
	}
	h.auditChange(r, id, nil, st, p.UserID, p.UserID)
	return http.StatusCreated, resp, nil
}

func (h *Handler) appendRecord(r *http.Request, p Principal, body []byte) (int, any, error) {
	if p.Service {
		return 0, nil, forbidden("records are signed by members")
	}
	id, err := parseSessionID(r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	var req wire.AppendRequest
	if err := decode(body, &req); err != nil {
		return 0, nil, err
	}
	ctx := r.Context()
	st, err := h.state(ctx, id)
	if err != nil {
		return 0, nil, err
	}
	// Rights first, in session.MemoryService's order. A stored record sent
	// again by its signer (or by a member) is answered as the first time,
	// even when it took the signer out of the session (a retried leave).
	// Anything else needs a member of the state the record is checked
	// against (whose head the store checks again when it stores the
	// record) — or, for a record signed by someone else, a user the record
	// makes a member. The request's content (the record's validity, the
	// grants) is judged after, and only for a caller with those rights.
	rec, perr := memberlog.Parse(req.Record)
	_, isMember := st.Member(p.UserID)
	if again, err := h.sentAgain(ctx, id, st.Seq(), p.UserID, isMember, rec); err != nil {
		return 0, nil, err
	} else if again {
		return http.StatusOK, struct{}{}, nil
	}
	// A record signed by another member is one being published again:
	// after the service was restored from an older backup, members who
	// verified records it lost send them back, and it takes them as it
	// took them the first time — the signature, the chain and the log's
	// rules decide, not who delivers the record — with the grants the
	// sender wraps again. The record's signer stays the one it counts
	// against.
	republished := perr == nil && rec.Change != nil && rec.Change.Actor != p.UserID
	if !isMember && !republished {
		return 0, nil, forbidden("not a member of this session")
	}
	if perr != nil {
		return 0, nil, logError(perr, st)
	}
	signer := p.UserID
	if republished {
		signer = rec.Change.Actor
	}
	grants, targets, gerr := h.grantRecords(req.Grants)
	var after *memberlog.State
	if gerr == nil {
		after, err = memberlog.Accept(st, req.Record, signer, h.cardSource(ctx), targets)
	}
	if !isMember {
		// Publishing a record again needs a caller the record makes a
		// member; anything else is an outsider's, answered as one
		// without a word on its content.
		if gerr != nil || err != nil {
			return 0, nil, forbidden("not a member of this session")
		}
		if _, ok := after.Member(p.UserID); !ok {
			return 0, nil, forbidden("not a member of this session")
		}
	}
	if gerr != nil {
		return 0, nil, gerr
	}
	if err != nil {
		return 0, nil, logError(err, st)
	}
	err = h.cfg.Store.Append(ctx, id, Append{Prev: headOf(st), Record: req.Record, Hash: after.Head(),
		Roster: rosterOf(after), Readers: after.Readers(), Grants: grants, Quota: h.quota(signer)})
	if errors.Is(err, keyservice.ErrConflict) {
		// Another record came first: perhaps this one, sent twice at once.
		now, err := h.cfg.Store.Session(ctx, id)
		if err != nil {
			return 0, nil, err
		}
		if again, err := h.sentAgain(ctx, id, now.Head.Seq, p.UserID, isMember, rec); err != nil {
			return 0, nil, err
		} else if again {
			return http.StatusOK, struct{}{}, nil
		}
		return 0, nil, conflict(now.Head)
	}
	if err != nil {
		return 0, nil, err
	}
	h.states.put(id, after)
	h.auditChange(r, id, st, after, signer, p.UserID)
	return http.StatusOK, struct{}{}, nil
}

// maxLogPageBytes bounds the records of one page of a log: a page ends
// with the record that reaches it (a genesis may be up to 4 MiB).
const maxLogPageBytes = 4 << 20

func (h *Handler) readLog(r *http.Request, p Principal, body []byte) (int, any, error) {
	id, err := parseSessionID(r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	var from uint32
	if v := r.URL.Query().Get("from"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0, nil, bad(keyservice.CodeInvalidRequest, "from must be a sequence number")
		}
		from = uint32(n)
	}
	limit, err := h.pageLimit(r)
	if err != nil {
		return 0, nil, err
	}
	records, head, err := h.cfg.Store.Log(r.Context(), id, reader(p), from, limit, maxLogPageBytes)
	if err != nil {
		return 0, nil, err
	}
	resp := wire.LogResponse{Records: records}
	if resp.Records == nil {
		resp.Records = [][]byte{}
	}
	// In 64 bits: the last record's successor may be 2³².
	if next := uint64(from) + uint64(len(records)); len(records) > 0 && next <= uint64(head.Seq) {
		n := uint32(next)
		resp.Next = &n
	}
	return http.StatusOK, resp, nil
}

func (h *Handler) head(r *http.Request, p Principal, body []byte) (int, any, error) {
	id, err := parseSessionID(r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	head, err := h.cfg.Store.Head(r.Context(), id, reader(p))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, wire.Head{Seq: head.Seq, Hash: head.Hash[:]}, nil
}

// reader is who reads a session's log as a Store checks it: the caller,
// or "" for the service, which reads every session.
func reader(p Principal) string {
	if p.Service {
		return ""
	}
	return p.UserID
}

func (h *Handler) lookupSession(r *http.Request, p Principal, body []byte) (int, any, error) {
	cid := r.URL.Query().Get("channel_cid")
	if !memberlog.ValidChannelCID(cid) {
		return 0, nil, bad(keyservice.CodeInvalidRequest, "a valid channel_cid query parameter is required")
	}
	id, err := h.cfg.Store.SessionByChannel(r.Context(), cid)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, wire.LookupSessionResponse{ID: id.String()}, nil
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

func (h *Handler) myGrants(r *http.Request, p Principal, body []byte) (int, any, error) {
	if p.Service {
		return 0, nil, forbidden("grants are read by their grantee")
	}
	id, err := parseSessionID(r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	limit, err := h.pageLimit(r)
	if err != nil {
		return 0, nil, err
	}
	var after uint64
	hasAfter := false
	if v := r.URL.Query().Get("after_epoch"); v != "" {
		if after, err = strconv.ParseUint(v, 10, 32); err != nil {
			return 0, nil, bad(keyservice.CodeInvalidRequest, "after_epoch must be an epoch number")
		}
		hasAfter = true
	}
	grants, err := h.cfg.Store.Grants(r.Context(), id, p.UserID)
	if err != nil {
		return 0, nil, err
	}
	// Grants come in ascending epochs; a page is the next limit after the
	// cursor.
	if hasAfter {
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

func (h *Handler) deleteSession(r *http.Request, p Principal, body []byte) (int, any, error) {
	id, err := parseSessionID(r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	if err := h.cfg.Store.DeleteSession(r.Context(), id, reader(p)); err != nil {
		return 0, nil, err
	}
	h.log.InfoContext(r.Context(), "session deleted", "session", id.String(), "by", principalName(p))
	return http.StatusOK, struct{}{}, nil
}
