package ssks

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/httpjson"
	"github.com/veilchat/veil/internal/httpserve"
	"github.com/veilchat/veil/twoman"
	"github.com/veilchat/veil/twoman/internal/wire"
)

// Config configures a [Handler]. [Store], AppKeys, HashKey and [Sender] are
// required; every other zero field is the safe default.
type Config struct {
	Store Store
	// AppKeys are the SSKS API keys of the app backends allowed to start
	// challenges (Authorization: Bearer <key>). Each is at least 32
	// printable ASCII characters (hex or base64 of random bytes).
	AppKeys []Secret
	// HashKey (32 bytes) keys the hashes of codes, factor values and
	// password-backup lookup secrets, so that a copy of the database alone
	// cannot test codes or passphrases or recover addresses, and derives
	// the salt served for users without a password backup. Keep it outside
	// the database; a new key orphans every stored factor and password
	// backup, and cannot be rotated in ([CheckHashKey] says why, and
	// checks at start-up that the key is the database's).
	HashKey Secret
	// Sender delivers the codes. If it has a method Check() error
	// (SMTPSender and WebhookSender do), NewHandler calls it and refuses a
	// configuration it reports.
	Sender Sender
	// CodeDigits is the length of codes, 8 to 12. Zero means 8.
	CodeDigits int
	// CodeTTL is how long a code is valid. Zero means 10 minutes.
	CodeTTL time.Duration
	// MaxAttempts is the number of wrong codes after which a session is
	// dead. Zero means 5.
	MaxAttempts int
	// MaxChallengesPerHour bounds the challenges started per factor and per
	// user in any hour. Zero means 5.
	MaxChallengesPerHour int
	// MaxBlobSize caps a stored encrypted identity. Zero means 256 KiB.
	MaxBlobSize int
	// InsecureUnverifiedSignup lets a user with no stored identity save one
	// without answering a code (must_authenticate false), as Seald's SSKS
	// does. The factor is then whatever the app backend claimed, unverified:
	// a malicious backend could register its own address and later recover
	// the identity alone. By default every session requires the code.
	InsecureUnverifiedSignup bool
	// PasswordMaxFailures is the number of wrong passphrases after which a
	// password backup locks, for 15 minutes doubling with each further
	// failure (capped at a day). Zero means 5.
	PasswordMaxFailures int
	// Logger receives one line per request, never a code, factor value or
	// blob. Nil discards.
	Logger *slog.Logger

	// MaxBodyBytes caps request bodies. Zero means twice MaxBlobSize plus
	// 4 KiB: a blob in base64 with the fields around it.
	MaxBodyBytes int64
	// RateLimit and RateBurst bound the request rate of each client
	// address on the endpoints devices call (everything but
	// /v1/challenges, which the app backend calls with its API key: there
	// only requests with a missing or wrong key count against their
	// address), and of each user those requests name: by user_id on the
	// password endpoints, by challenge session (a user has at most
	// MaxChallengesPerHour of them) on the identity endpoints. Zero means
	// 10 per second, burst 20.
	RateLimit rate.Limit
	RateBurst int
	// Metrics is where the Prometheus metrics are registered and what
	// /metrics serves. Nil means a new registry of the handler's own,
	// which also holds the Go runtime's and the process's collectors.
	Metrics *prometheus.Registry
	// OmitMetricsRoute leaves /metrics out of the handler's routes, for a
	// server that serves [Handler.MetricsHandler] on another listener.
	OmitMetricsRoute bool
	// TrustedProxies are the networks of the reverse proxies in front of
	// the service, whose X-Forwarded-For names the client address; nil
	// trusts none (see keyservice/server's Config.TrustedProxies).
	TrustedProxies []netip.Prefix
	// MaxInFlightPerClient caps the requests one client address (an IPv4
	// address, an IPv6 /64) may have in flight; more are refused with 429
	// rate_limited. Zero means 64; negative, no cap.
	MaxInFlightPerClient int
	// MinBodyRate is the rate, in bytes per second, below which a request
	// body is dropped (408 request_timeout) once BodyRateGrace has passed
	// since the request began. Zero means 1,024 bytes per second after 10
	// seconds; negative MinBodyRate, no minimum.
	MinBodyRate   int64
	BodyRateGrace time.Duration
	// MaxBodyMemory bounds the bytes of request bodies held at once, as
	// they arrive, until their requests are answered: a request whose
	// body would pass it is answered 503 unavailable with Retry-After.
	// One client address may hold an eighth of it, or one body of
	// MaxBodyBytes if that is more (see keyservice/server's
	// Config.MaxBodyMemory). Zero means 256 MiB; negative, no bound. It
	// must not be less than MaxBodyBytes.
	MaxBodyMemory int64
	// Now is the clock; nil means [time.Now]. Rand is the source of codes and
	// session IDs; nil means crypto/rand.
	Now  func() time.Time
	Rand io.Reader
}

// Handler serves the Secure Key Storage Service's /v1 API, /healthz,
// /readyz and /metrics: it
// keeps users' encrypted identities and releases one only to whoever
// answers a one-time code sent to the user's registered email or phone. It
// is an [http.Handler] to mount in an existing server, safe for concurrent
// use and stateless (replicas share a PostgreSQL store).
type Handler struct {
	cfg      Config
	front    *httpserve.Frontend
	log      *slog.Logger
	limiters *httpserve.Limiters
	// defaultParams is twoman.DefaultPasswordParams as a client sends
	// them, served for users without a password backup.
	defaultParams []byte
}

// NewHandler checks cfg and returns the [Handler].
func NewHandler(cfg Config) (*Handler, error) {
	if cfg.Store == nil || cfg.Sender == nil {
		return nil, errors.New("twoman: Config needs Store and Sender")
	}
	if c, ok := cfg.Sender.(interface{ Check() error }); ok {
		if err := c.Check(); err != nil {
			return nil, err
		}
	}
	if cfg.HashKey.Len() != 32 {
		return nil, errors.New("twoman: Config.HashKey must be 32 bytes")
	}
	if len(cfg.AppKeys) == 0 {
		return nil, errors.New("twoman: Config.AppKeys is empty")
	}
	for _, k := range cfg.AppKeys {
		if !wire.ValidAppKey(k.Reveal()) {
			return nil, errors.New("twoman: app keys must be at least 32 printable ASCII characters")
		}
	}
	if cfg.CodeDigits == 0 {
		cfg.CodeDigits = 8
	}
	if cfg.CodeDigits < 8 || cfg.CodeDigits > 12 {
		return nil, errors.New("twoman: CodeDigits must be 8 to 12")
	}
	if cfg.CodeTTL <= 0 {
		cfg.CodeTTL = 10 * time.Minute
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.MaxChallengesPerHour <= 0 {
		cfg.MaxChallengesPerHour = 5
	}
	if cfg.MaxBlobSize <= 0 {
		cfg.MaxBlobSize = 256 << 10
	}
	if cfg.PasswordMaxFailures <= 0 {
		cfg.PasswordMaxFailures = 5
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = int64(cfg.MaxBlobSize)*2 + 4096
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit, cfg.RateBurst = 10, 20
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = max(1, int(cfg.RateLimit))
	}
	if cfg.MaxInFlightPerClient == 0 {
		cfg.MaxInFlightPerClient = 64
	}
	if cfg.MinBodyRate == 0 {
		cfg.MinBodyRate = 1024
	}
	if cfg.BodyRateGrace <= 0 {
		cfg.BodyRateGrace = 10 * time.Second
	}
	if cfg.MaxBodyMemory == 0 {
		cfg.MaxBodyMemory = 256 << 20
	}
	if cfg.MaxBodyMemory > 0 && cfg.MaxBodyMemory < cfg.MaxBodyBytes {
		return nil, errors.New("twoman: Config.MaxBodyMemory is less than MaxBodyBytes: no body of the maximum size could be received")
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
		if err := httpserve.RegisterRuntime(cfg.Metrics); err != nil {
			return nil, fmt.Errorf("twoman: registering metrics: %w", err)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	dp, err := json.Marshal(twoman.DefaultPasswordParams)
	if err != nil {
		return nil, err
	}
	cfg.Store = judgedStore{cfg.Store} // a failing database answers 503
	s := &Handler{cfg: cfg, log: cfg.Logger, defaultParams: dp}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.limiters = httpserve.NewLimiters(cfg.RateLimit, cfg.RateBurst, cfg.Now)
	if s.front, err = httpserve.New(httpserve.Config{
		Namespace: "veil_ssks", Metrics: cfg.Metrics, Logger: s.log, TrustedProxies: cfg.TrustedProxies,
		MaxInFlightPerClient: cfg.MaxInFlightPerClient, MinBodyRate: cfg.MinBodyRate, BodyRateGrace: cfg.BodyRateGrace,
		BodyMemory: cfg.MaxBodyMemory, BodyMemoryPerClient: httpserve.ClientShare(cfg.MaxBodyMemory, cfg.MaxBodyBytes),
	}); err != nil {
		return nil, fmt.Errorf("twoman: %w", err)
	}
	s.route("POST /v1/challenges", s.startChallenge, backendRoute)
	s.route("POST /v1/identity/push", s.push, clientRoute)
	s.route("POST /v1/identity/retrieve", s.retrieve, clientRoute)
	s.route("POST /v1/identity/factor", s.changeFactor, clientRoute)
	s.route("POST /v1/identity/delete", s.deleteIdentity, clientRoute)
	s.route("POST /v1/password/params", s.passwordParams, clientRoute)
	s.route("POST /v1/password/store", s.passwordStore, clientRoute)
	s.route("POST /v1/password/retrieve", s.passwordRetrieve, clientRoute)
	s.front.HandleProbe("GET /healthz", http.HandlerFunc(httpserve.Live))
	s.front.HandleProbe("GET /readyz", httpserve.Ready(cfg.Store))
	if !cfg.OmitMetricsRoute {
		s.front.HandleProbe("GET /metrics", s.MetricsHandler())
	}
	return s, nil
}

// ServeHTTP implements [http.Handler].
func (s *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.front.ServeHTTP(w, r) }

// MetricsHandler returns the handler of /metrics: the Prometheus text of
// [Config.Metrics], to serve on a listener of its own with
// [Config.OmitMetricsRoute].
func (s *Handler) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{})
}

// Who calls a route: the app backend (with its API key) or devices.
const (
	backendRoute = false
	clientRoute  = true
)

func (s *Handler) route(pattern string, fn func(r *http.Request, body []byte) (int, any, error), client bool) {
	s.front.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if client && !s.limiters.Allow("ip:"+httpserve.ClientKey(httpserve.Client(ctx))) {
			w.Header().Set("Retry-After", "1")
			httpjson.WriteError(w, http.StatusTooManyRequests, twoman.CodeRateLimited, "too many requests from this address")
			return
		}
		status, out, err := 0, any(nil), error(nil)
		body, err := httpjson.ReadBody(w, r, s.cfg.MaxBodyBytes)
		if err == nil {
			status, out, err = fn(r, body)
		}
		if err != nil {
			var he *httpjson.Error
			if !errors.As(err, &he) {
				httpserve.SetError(ctx, err)
				he = httpjson.Errorf(http.StatusInternalServerError, twoman.CodeInternal, "internal error")
				// As the key service does: a store that did not answer in
				// time is unavailable, and the client may retry.
				if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
					he = httpjson.Errorf(http.StatusServiceUnavailable, twoman.CodeUnavailable, "request cancelled")
				}
				if errors.Is(err, twoman.ErrUnavailable) {
					he = httpjson.Errorf(http.StatusServiceUnavailable, twoman.CodeUnavailable, "the store is unavailable; retry later")
				}
			}
			if he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden {
				httpserve.SetRefusal(ctx, he.Message)
			}
			httpjson.WriteError(w, he.Status, he.Code, he.Message)
			return
		}
		httpjson.Write(w, status, out)
	}))
}

// limitUser takes a token from the bucket of a user (or of a challenge
// session: key is "user:…" or "session:…"), and returns the 429 to
// answer if there is none.
func (s *Handler) limitUser(key string) error {
	if !s.limiters.Allow(key) {
		return httpjson.Errorf(http.StatusTooManyRequests, twoman.CodeRateLimited, "too many requests for this user; retry later")
	}
	return nil
}

func bad(code, format string, args ...any) error {
	return httpjson.Errorf(http.StatusBadRequest, code, format, args...)
}

// ---- backend-facing ----

func (s *Handler) appAuthorized(r *http.Request) bool {
	got := r.Header.Get("Authorization")
	ok := 0
	for _, k := range s.cfg.AppKeys {
		ok |= subtle.ConstantTimeCompare([]byte(got), append([]byte("Bearer "), k.Reveal()...))
	}
	return ok == 1
}

func (s *Handler) startChallenge(r *http.Request, body []byte) (int, any, error) {
	if !s.appAuthorized(r) {
		// Guessing keys costs the guesser's address its tokens.
		if !s.limiters.Allow("ip:" + httpserve.ClientKey(httpserve.Client(r.Context()))) {
			return 0, nil, httpjson.Errorf(http.StatusTooManyRequests, twoman.CodeRateLimited, "too many requests from this address")
		}
		return 0, nil, httpjson.Errorf(http.StatusUnauthorized, twoman.CodeUnauthorized, "missing or wrong app API key")
	}
	var req wire.ChallengeRequest
	if err := httpjson.Decode(body, &req); err != nil {
		return 0, nil, err
	}
	if err := checkUserID(req.UserID); err != nil {
		return 0, nil, err
	}
	f, err := twoman.Factor{Type: twoman.FactorType(req.Factor.Type), Value: req.Factor.Value}.Normalize()
	if err != nil {
		return 0, nil, bad(twoman.CodeInvalidFactor, "the factor is not a valid email address or phone number")
	}
	ctx := r.Context()
	fh := s.factorHash(f)
	now := s.cfg.Now()
	mustAuth := req.ForceAuth || !s.cfg.InsecureUnverifiedSignup
	existing, err := s.cfg.Store.Identity(ctx, req.UserID)
	switch {
	case err == nil:
		mustAuth = true
		if existing.FactorType != f.Type || !hmac.Equal(existing.FactorHash, fh) {
			return 0, nil, httpjson.Errorf(http.StatusForbidden, twoman.CodeFactorMismatch, "this is not the factor registered for the user")
		}
	case !errors.Is(err, twoman.ErrNotFound):
		return 0, nil, err
	}
	var id [16]byte
	if _, err := io.ReadFull(s.cfg.Rand, id[:]); err != nil {
		return 0, nil, err
	}
	code, err := newOTP(s.cfg.Rand, s.cfg.CodeDigits)
	if err != nil {
		return 0, nil, err
	}
	rec := ChallengeRecord{
		ID: id, UserID: req.UserID, FactorType: f.Type, FactorHash: fh,
		CodeHash: s.codeHash(id, code), MustAuth: mustAuth,
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.CodeTTL),
	}
	err = s.cfg.Store.CreateChallenge(ctx, rec, now.Add(-time.Hour), s.cfg.MaxChallengesPerHour)
	if errors.Is(err, twoman.ErrRateLimited) {
		return 0, nil, httpjson.Errorf(http.StatusTooManyRequests, twoman.CodeRateLimited, "too many challenges for this user or factor; retry within the hour")
	}
	if err != nil {
		return 0, nil, err
	}
	if mustAuth {
		if err := s.cfg.Sender.Send(ctx, Challenge{UserID: req.UserID, Factor: f, Code: NewCode(code), Issued: now, Expires: rec.ExpiresAt}); err != nil {
			// A sender's error may quote the factor value (mail servers
			// echo the recipient): it never reaches the log.
			s.log.Error("sending a code failed", "user", req.UserID, "factor", string(f.Type), "error", redact(err.Error(), f.Value))
			return 0, nil, httpjson.Errorf(http.StatusBadGateway, twoman.CodeSendFailed, "the code could not be sent")
		}
	}
	return http.StatusCreated, wire.ChallengeResponse{SessionID: hex.EncodeToString(id[:]), MustAuthenticate: mustAuth, ExpiresAt: rec.ExpiresAt.UTC()}, nil
}

// checkUserID refuses user IDs a card could not carry (identity's rule; it
// also keeps NUL bytes away from PostgreSQL's TEXT columns).
func checkUserID(id string) error {
	if identity.CheckUserID(id) != nil {
		return bad(twoman.CodeInvalidRequest, "invalid user_id")
	}
	return nil
}

// redact replaces every occurrence of secret in s, in any letter case,
// with a placeholder.
func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	var b strings.Builder
	lower, target := strings.ToLower(s), strings.ToLower(secret)
	for {
		i := strings.Index(lower, target)
		if i < 0 || len(lower) != len(s) {
			break
		}
		b.WriteString(s[:i])
		b.WriteString("[redacted]")
		s, lower = s[i+len(target):], lower[i+len(target):]
	}
	if len(lower) != len(s) {
		// Case folding changed lengths: drop the text rather than risk
		// leaving the secret in it.
		return "[redacted]"
	}
	b.WriteString(s)
	return b.String()
}

func (s *Handler) factorHash(f twoman.Factor) []byte {
	return keyedHash(s.cfg.HashKey.Reveal(), labelFactor, string(f.Type), f.Value)
}

func (s *Handler) codeHash(id [16]byte, code string) []byte {
	return keyedHash(s.cfg.HashKey.Reveal(), labelOTP, hex.EncodeToString(id[:]), code)
}

// ---- client-facing: identity ----

// redeem checks a session answer. allowWithoutCode lets a session that
// does not require authentication (a new user) through without a code.
func (s *Handler) redeem(ctx context.Context, sessionID, code string, allowWithoutCode bool) (ChallengeRecord, error) {
	var id [16]byte
	if b, err := hex.DecodeString(sessionID); err != nil || len(b) != 16 {
		return ChallengeRecord{}, bad(twoman.CodeInvalidRequest, "session_id must be 32 hex digits")
	} else {
		copy(id[:], b)
	}
	if len(code) > 32 {
		return ChallengeRecord{}, bad(twoman.CodeInvalidRequest, "code too long")
	}
	// The bucket is the session's, not its spelling's: hex reads either
	// letter case, and each spelling would be a bucket of its own.
	if err := s.limitUser("session:" + hex.EncodeToString(id[:])); err != nil {
		return ChallengeRecord{}, err
	}
	rec, verdict, err := s.cfg.Store.Redeem(ctx, id, s.cfg.Now(), s.cfg.MaxAttempts, func(rec ChallengeRecord) bool {
		if code == "" {
			return allowWithoutCode && !rec.MustAuth
		}
		return hmac.Equal(rec.CodeHash, s.codeHash(id, code))
	})
	switch {
	case errors.Is(err, twoman.ErrNotFound):
		return ChallengeRecord{}, httpjson.Errorf(http.StatusNotFound, twoman.CodeUnknownSession, "no such challenge session")
	case err != nil:
		return ChallengeRecord{}, err
	}
	switch verdict {
	case Accepted:
		return rec, nil
	case WrongCode:
		if code == "" {
			return ChallengeRecord{}, httpjson.Errorf(http.StatusForbidden, twoman.CodeAuthRequired, "this session requires the code sent to the user")
		}
		left := s.cfg.MaxAttempts - rec.Attempts - 1
		return ChallengeRecord{}, httpjson.Errorf(http.StatusForbidden, twoman.CodeWrongCode, "wrong code; %d attempt(s) left", left)
	}
	return ChallengeRecord{}, httpjson.Errorf(http.StatusGone, twoman.CodeSessionDead, "the session is used, expired, or had too many wrong codes; start a new challenge")
}

func (s *Handler) checkBlob(b []byte) error {
	if len(b) == 0 || len(b) > s.cfg.MaxBlobSize {
		return bad(twoman.CodeInvalidRequest, "blob must be 1 to %d bytes", s.cfg.MaxBlobSize)
	}
	return nil
}

func (s *Handler) push(r *http.Request, body []byte) (int, any, error) {
	var req wire.PushRequest
	if err := httpjson.Decode(body, &req); err != nil {
		return 0, nil, err
	}
	if err := s.checkBlob(req.Blob); err != nil {
		return 0, nil, err
	}
	rec, err := s.redeem(r.Context(), req.SessionID, req.Code, true)
	if err != nil {
		return 0, nil, err
	}
	err = s.cfg.Store.PutIdentity(r.Context(), IdentityRecord{UserID: rec.UserID, FactorType: rec.FactorType, FactorHash: rec.FactorHash, Blob: req.Blob, UpdatedAt: s.cfg.Now()}, proof(rec))
	if errors.Is(err, twoman.ErrFactorMismatch) {
		return 0, nil, errFactorChanged
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

// proof is what a redeemed challenge session proves: its factor. A write
// to an identity or a password backup bound to another factor fails.
func proof(rec ChallengeRecord) Proof {
	return Proof{FactorType: rec.FactorType, FactorHash: rec.FactorHash}
}

var errFactorChanged = httpjson.Errorf(http.StatusForbidden, twoman.CodeFactorMismatch, "the user's registered factor is not the one this session was challenged on")

func (s *Handler) retrieve(r *http.Request, body []byte) (int, any, error) {
	var req wire.SessionAnswer
	if err := httpjson.Decode(body, &req); err != nil {
		return 0, nil, err
	}
	rec, err := s.redeem(r.Context(), req.SessionID, req.Code, false)
	if err != nil {
		return 0, nil, err
	}
	id, err := s.storedIdentity(r.Context(), rec)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, wire.RetrieveResponse{Blob: id.Blob}, nil
}

// storedIdentity returns the identity of the challenged user, provided it
// is still registered with the factor the challenge went to.
func (s *Handler) storedIdentity(ctx context.Context, rec ChallengeRecord) (IdentityRecord, error) {
	id, err := s.cfg.Store.Identity(ctx, rec.UserID)
	if errors.Is(err, twoman.ErrNotFound) {
		return IdentityRecord{}, errNoIdentity
	}
	if err != nil {
		return IdentityRecord{}, err
	}
	if id.FactorType != rec.FactorType || !hmac.Equal(id.FactorHash, rec.FactorHash) {
		return IdentityRecord{}, httpjson.Errorf(http.StatusForbidden, twoman.CodeFactorMismatch, "the factor changed since the challenge")
	}
	return id, nil
}

var errNoIdentity = httpjson.Errorf(http.StatusNotFound, twoman.CodeNoIdentity, "no identity stored for this user")

func (s *Handler) changeFactor(r *http.Request, body []byte) (int, any, error) {
	var req wire.FactorRequest
	if err := httpjson.Decode(body, &req); err != nil {
		return 0, nil, err
	}
	f, err := twoman.Factor{Type: twoman.FactorType(req.Factor.Type), Value: req.Factor.Value}.Normalize()
	if err != nil {
		return 0, nil, bad(twoman.CodeInvalidFactor, "the factor is not a valid email address or phone number")
	}
	if err := s.checkBlob(req.Blob); err != nil {
		return 0, nil, err
	}
	rec, err := s.redeem(r.Context(), req.SessionID, req.Code, false)
	if err != nil {
		return 0, nil, err
	}
	if _, err := s.storedIdentity(r.Context(), rec); err != nil {
		return 0, nil, err
	}
	err = s.cfg.Store.PutIdentity(r.Context(), IdentityRecord{UserID: rec.UserID, FactorType: f.Type, FactorHash: s.factorHash(f), Blob: req.Blob, UpdatedAt: s.cfg.Now()}, proof(rec))
	if errors.Is(err, twoman.ErrFactorMismatch) {
		return 0, nil, errFactorChanged
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

func (s *Handler) deleteIdentity(r *http.Request, body []byte) (int, any, error) {
	var req wire.SessionAnswer
	if err := httpjson.Decode(body, &req); err != nil {
		return 0, nil, err
	}
	rec, err := s.redeem(r.Context(), req.SessionID, req.Code, false)
	if err != nil {
		return 0, nil, err
	}
	if err := s.cfg.Store.DeleteIdentity(r.Context(), rec.UserID, proof(rec)); errors.Is(err, twoman.ErrNotFound) {
		return 0, nil, errNoIdentity
	} else if errors.Is(err, twoman.ErrFactorMismatch) {
		return 0, nil, errFactorChanged
	} else if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

// ---- client-facing: password backups ----

func (s *Handler) passwordParams(r *http.Request, body []byte) (int, any, error) {
	var req wire.PasswordParamsRequest
	if err := httpjson.Decode(body, &req); err != nil {
		return 0, nil, err
	}
	if err := checkUserID(req.UserID); err != nil {
		return 0, nil, err
	}
	if err := s.limitUser("user:" + req.UserID); err != nil {
		return 0, nil, err
	}
	rec, err := s.cfg.Store.Password(r.Context(), req.UserID)
	if errors.Is(err, twoman.ErrNotFound) {
		// The same answer as for a backup saved with the defaults, with a
		// salt nobody without the HashKey can tell from a random one:
		// this endpoint does not tell who has a password backup.
		return http.StatusOK, wire.PasswordParamsResponse{Params: s.defaultParams, Salt: s.noBackupSalt(req.UserID)}, nil
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, wire.PasswordParamsResponse{Params: rec.Params, Salt: rec.Salt}, nil
}

// noBackupSalt is the salt served for a user without a password backup:
// fixed per user and deployment, so that repeated queries agree.
func (s *Handler) noBackupSalt(userID string) []byte {
	return keyedHash(s.cfg.HashKey.Reveal(), labelNoBackupSalt, userID)[:wire.PasswordSaltSize]
}

// lookupHash is the stored form of a password backup's lookup secret, keyed
// like the SSKS's other hashes and bound to the user.
func (s *Handler) lookupHash(userID string, lookup []byte) []byte {
	return keyedHash(s.cfg.HashKey.Reveal(), labelLookup, userID, string(lookup))
}

// lockFor is how long a password backup stays locked after n failures.
func lockFor(max int) func(int) time.Duration {
	return func(n int) time.Duration {
		d := 15 * time.Minute
		for i := max; i < n && d < 24*time.Hour; i++ {
			d *= 2
		}
		return min(d, 24*time.Hour)
	}
}

// attempt checks a lookup secret against a user's backup with throttling.
func (s *Handler) attempt(ctx context.Context, userID string, lookup []byte) (PasswordRecord, error) {
	if err := checkUserID(userID); err != nil {
		return PasswordRecord{}, err
	}
	if len(lookup) != 32 {
		return PasswordRecord{}, bad(twoman.CodeInvalidRequest, "lookup must be 32 bytes")
	}
	if err := s.limitUser("user:" + userID); err != nil {
		return PasswordRecord{}, err
	}
	now := s.cfg.Now()
	want := s.lookupHash(userID, lookup)
	rec, ok, err := s.cfg.Store.PasswordAttempt(ctx, userID, now, func(p PasswordRecord) bool {
		return hmac.Equal(p.LookupHash, want)
	}, s.cfg.PasswordMaxFailures, lockFor(s.cfg.PasswordMaxFailures))
	switch {
	case errors.Is(err, twoman.ErrNotFound):
		// Answered like a wrong passphrase, as /v1/password/params
		// answers like a backup: who has one is not told.
		return PasswordRecord{}, errWrongPassphrase
	case err != nil:
		return PasswordRecord{}, err
	case ok:
		return rec, nil
	case rec.LockedUntil.After(now):
		secs := int(rec.LockedUntil.Sub(now).Seconds()) + 1
		return PasswordRecord{}, httpjson.Errorf(http.StatusTooManyRequests, twoman.CodeLocked, "too many wrong passphrases; retry in %d seconds", secs)
	}
	return PasswordRecord{}, errWrongPassphrase
}

var errWrongPassphrase = httpjson.Errorf(http.StatusForbidden, twoman.CodeWrongPassphrase, "wrong passphrase")

func (s *Handler) passwordStore(r *http.Request, body []byte) (int, any, error) {
	var req wire.PasswordStoreRequest
	if err := httpjson.Decode(body, &req); err != nil {
		return 0, nil, err
	}
	if err := s.checkBlob(req.Blob); err != nil {
		return 0, nil, err
	}
	if len(req.Lookup) != 32 || len(req.Params) == 0 || len(req.Params) > 1024 || len(req.Salt) != wire.PasswordSaltSize {
		return 0, nil, bad(twoman.CodeInvalidRequest, "lookup must be 32 bytes, params 1 to 1024 bytes and salt %d bytes", wire.PasswordSaltSize)
	}
	if err := checkUserID(req.UserID); err != nil {
		return 0, nil, err
	}
	ctx := r.Context()
	// With a challenge session, the backup is bound to the session's
	// factor: a later session replaces it only if it proves the same
	// factor. With the current passphrase, it keeps its binding.
	var by *Proof
	switch {
	case req.SessionID != "":
		rec, err := s.redeem(ctx, req.SessionID, req.Code, true)
		if err != nil {
			return 0, nil, err
		}
		if rec.UserID != req.UserID {
			return 0, nil, httpjson.Errorf(http.StatusForbidden, twoman.CodeForbidden, "the session is for another user")
		}
		p := proof(rec)
		by = &p
	case req.OldLookup != nil:
		if _, err := s.attempt(ctx, req.UserID, req.OldLookup); err != nil {
			return 0, nil, err
		}
	default:
		return 0, nil, httpjson.Errorf(http.StatusForbidden, twoman.CodeForbidden, "a challenge session or the current passphrase is required")
	}
	err := s.cfg.Store.PutPassword(ctx, PasswordRecord{UserID: req.UserID, LookupHash: s.lookupHash(req.UserID, req.Lookup), Params: req.Params, Salt: req.Salt, Blob: req.Blob, UpdatedAt: s.cfg.Now()}, by)
	if errors.Is(err, twoman.ErrFactorMismatch) {
		return 0, nil, httpjson.Errorf(http.StatusForbidden, twoman.CodeFactorMismatch, "the password backup was made under another factor; change it with the current passphrase")
	}
	if errors.Is(err, twoman.ErrNotFound) {
		return 0, nil, httpjson.Errorf(http.StatusNotFound, twoman.CodeNoIdentity, "no password backup for this user")
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

func (s *Handler) passwordRetrieve(r *http.Request, body []byte) (int, any, error) {
	var req wire.PasswordRetrieveRequest
	if err := httpjson.Decode(body, &req); err != nil {
		return 0, nil, err
	}
	rec, err := s.attempt(r.Context(), req.UserID, req.Lookup)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, wire.PasswordRetrieveResponse{Params: rec.Params, Blob: rec.Blob}, nil
}
