package httpserve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veilchat/veil/internal/httpjson"
)

// Config configures a [Frontend]. Namespace and Metrics are required;
// every other zero field turns its protection off (the services apply
// their defaults before building a Frontend).
type Config struct {
	// Route, if set, may route a request the mux cannot (a path whose
	// wildcard segment decodes to "/" alone, which http.ServeMux reads as
	// the end of the path): given the request and the mux's lookup, it
	// returns the handler and the pattern to count it under, or false to
	// let the mux route it. The handler must set the path values it needs.
	Route func(r *http.Request, lookup func(*http.Request) (http.Handler, string)) (http.Handler, string, bool)
	// Namespace prefixes the metric names: "veil_keyservice" gives
	// veil_keyservice_requests_total and so on.
	Namespace string
	// Metrics receives the Frontend's metrics.
	Metrics prometheus.Registerer
	// Logger receives one access line per request (info; debug for
	// [Frontend.HandleProbe] routes), the reason of a 401 or 403 at debug,
	// and the error behind a 5xx. Nil discards.
	Logger *slog.Logger
	// TrustedProxies are the networks of the reverse proxies whose
	// X-Forwarded-For is believed (see [ClientAddr]).
	TrustedProxies []netip.Prefix
	// MaxInFlightPerClient caps the requests one client address (see
	// [ClientKey]) has in flight; more are refused with 429. Zero or
	// negative: no cap.
	MaxInFlightPerClient int
	// MinBodyRate (bytes per second) is the rate below which a body
	// upload is dropped once BodyRateGrace has passed since the request
	// began. Zero or negative: no minimum.
	MinBodyRate   int64
	BodyRateGrace time.Duration
	// BodyMemory bounds the bytes of request bodies received and held at
	// once: the bytes each request has read of its body, until its
	// handler returns. A read that would pass it fails with
	// [httpjson.ErrBodyMemory], which httpjson.ReadBody answers with 503
	// unavailable. Bytes are counted as they arrive, not as a
	// Content-Length announces them, so that uploads trickled slowly hold
	// what they sent, not what they promised. Zero or negative: no bound.
	BodyMemory int64
	// BodyMemoryPerClient bounds, likewise, the bytes of bodies one client
	// address (see [ClientKey]) holds at once, so that one client that
	// sends most of several large bodies and stalls cannot hold all of
	// BodyMemory until the server's read timeout, refusing everyone
	// else's bodies meanwhile. It applies with a BodyMemory only. Zero or
	// negative: no bound per client.
	BodyMemoryPerClient int64
}

// ClientShare is the BodyMemoryPerClient the services derive from their
// bound of bodies held at once and of one body: an eighth of the first, or
// the second if that is more (a client may always send one body of the
// largest size); zero when bodies held are not bounded.
func ClientShare(bodyMemory, maxBody int64) int64 {
	if bodyMemory <= 0 {
		return 0
	}
	return max(bodyMemory/8, maxBody)
}

// Frontend routes requests to a service's handlers (an [http.ServeMux] of
// method patterns) and does, for every request, what the package
// documentation lists. It is safe for concurrent use once its routes are
// registered.
type Frontend struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	routes   map[string]bool // registered pattern → is a probe
	clientMu sync.Mutex
	inFlight map[string]int   // ClientKey → requests in flight; no zero entries
	held     map[string]int64 // ClientKey → bytes of bodies held; no zero entries
	bodies   atomic.Int64     // bytes of bodies held by requests in flight

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	active   prometheus.Gauge
	refused  *prometheus.CounterVec
}

// Route labels of the requests that match no route.
const unmatchedRoute = "unmatched"

// Reasons of the refused_total metric.
const (
	refusedInFlight   = "client_in_flight"
	refusedSlowBody   = "slow_body"
	refusedBodyMemory = "body_memory"
)

// New returns a Frontend with no routes and registers its metrics.
func New(cfg Config) (*Frontend, error) {
	if cfg.Namespace == "" || cfg.Metrics == nil {
		return nil, errors.New("httpserve: Config needs Namespace and Metrics")
	}
	f := &Frontend{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), routes: map[string]bool{}, inFlight: map[string]int{}, held: map[string]int64{}}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	ns := cfg.Namespace
	f.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ns + "_requests_total", Help: `Requests by route and status code; route="unmatched" for requests that match no route (404, 405).`,
	}, []string{"route", "code"})
	f.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: ns + "_request_duration_seconds", Help: "Request latency by route.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14),
	}, []string{"route"})
	f.active = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: ns + "_requests_in_flight", Help: "Requests being served.",
	})
	f.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ns + "_refused_total",
		Help: "Requests cut short by a serving limit: client_in_flight (429: the client's cap of requests in flight), slow_body (408: the body came below the minimum rate), body_memory (503: the bodies held at once would pass their memory bound, or the client's share of it).",
	}, []string{"reason"})
	for _, c := range []prometheus.Collector{f.requests, f.latency, f.active, f.refused} {
		if err := cfg.Metrics.Register(c); err != nil {
			return nil, fmt.Errorf("httpserve: registering metrics: %w", err)
		}
	}
	// Series exist before the first request, so that dashboards and
	// alerts see zeros rather than nothing.
	f.refused.WithLabelValues(refusedInFlight)
	f.refused.WithLabelValues(refusedSlowBody)
	f.refused.WithLabelValues(refusedBodyMemory)
	f.requests.WithLabelValues(unmatchedRoute, "404")
	f.requests.WithLabelValues(unmatchedRoute, "405")
	return f, nil
}

// Handle registers h for pattern, an [http.ServeMux] pattern with a
// method ("POST /v1/sessions"). A GET pattern also serves HEAD.
func (f *Frontend) Handle(pattern string, h http.Handler) { f.handle(pattern, h, false) }

// HandleProbe registers h for pattern as Handle does, for the routes
// machines poll (health, readiness, metrics): their access lines are at
// debug, and a client's cap of requests in flight does not apply, so that
// a load balancer's checks are not refused for the traffic it forwards.
func (f *Frontend) HandleProbe(pattern string, h http.Handler) { f.handle(pattern, h, true) }

func (f *Frontend) handle(pattern string, h http.Handler, probe bool) {
	f.mux.Handle(pattern, h)
	f.routes[pattern] = probe
	f.latency.WithLabelValues(pattern)
}

// entry is what the access line of a request says; handlers add to it
// through the context (SetUser, SetRefusal, SetError).
type entry struct {
	id     string
	client netip.Addr
	mu     sync.Mutex
	user   string
	reason string
	err    error
}

type entryKey struct{}

func entryOf(ctx context.Context) *entry {
	e, _ := ctx.Value(entryKey{}).(*entry)
	return e
}

// SetUser records who the request acts as, for its access line. It does
// nothing on a context that no Frontend made.
func SetUser(ctx context.Context, user string) {
	if e := entryOf(ctx); e != nil {
		e.mu.Lock()
		e.user = user
		e.mu.Unlock()
	}
}

// SetRefusal records why a request was refused (401, 403), logged at
// debug. The reason must carry no token, code or secret.
func SetRefusal(ctx context.Context, reason string) {
	if e := entryOf(ctx); e != nil {
		e.mu.Lock()
		e.reason = reason
		e.mu.Unlock()
	}
}

// SetError records the error behind a 5xx answer, logged with the access
// line. Its text must carry no secret.
func SetError(ctx context.Context, err error) {
	if e := entryOf(ctx); e != nil {
		e.mu.Lock()
		e.err = err
		e.mu.Unlock()
	}
}

// RequestID returns the ID of the request ctx belongs to ("" outside a
// Frontend).
func RequestID(ctx context.Context) string {
	if e := entryOf(ctx); e != nil {
		return e.id
	}
	return ""
}

// Client returns the client address of the request ctx belongs to (the
// zero Addr outside a Frontend), as [ClientAddr] found it.
func Client(ctx context.Context) netip.Addr {
	if e := entryOf(ctx); e != nil {
		return e.client
	}
	return netip.Addr{}
}

// ServeHTTP implements [http.Handler].
func (f *Frontend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	e := &entry{id: requestID(r.Header.Get("X-Request-ID")), client: ClientAddr(r, f.cfg.TrustedProxies)}
	w.Header().Set("X-Request-ID", e.id)
	r = r.WithContext(context.WithValue(r.Context(), entryKey{}, e))
	rec := &httpjson.StatusRecorder{ResponseWriter: w}
	f.active.Inc()
	route, probe, note := f.serve(rec, r, e)
	f.active.Dec()
	d := time.Since(start)
	status := rec.Status
	if status == 0 {
		status = http.StatusOK // what net/http sends for a handler that wrote nothing
	}
	f.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	f.latency.WithLabelValues(route).Observe(d.Seconds())

	e.mu.Lock()
	user, reason, err := e.user, e.reason, e.err
	e.mu.Unlock()
	attrs := []slog.Attr{
		// The method is any token net/http accepts, as long as the
		// headers may be; the routes' are a few letters.
		slog.String("request_id", e.id), slog.String("method", truncate(r.Method, 16)), slog.String("route", route),
		slog.Int("status", status), slog.Duration("duration", d), slog.String("client", clientString(e.client)),
	}
	if route == unmatchedRoute {
		attrs = append(attrs, slog.String("path", truncate(r.URL.EscapedPath(), 128)))
	}
	if user != "" {
		attrs = append(attrs, slog.String("user", user))
	}
	if note != "" {
		attrs = append(attrs, slog.String("refused", note))
	}
	ctx := context.WithoutCancel(r.Context())
	switch {
	case status >= 500 && err != nil:
		attrs = append(attrs, slog.String("error", err.Error()))
		f.log.LogAttrs(ctx, slog.LevelError, "request failed", attrs...)
	case probe && status < 500:
		f.log.LogAttrs(ctx, slog.LevelDebug, "request", attrs...)
	default:
		f.log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
	}
	if (status == http.StatusUnauthorized || status == http.StatusForbidden) && reason != "" {
		f.log.LogAttrs(ctx, slog.LevelDebug, "refused", slog.String("request_id", e.id), slog.Int("status", status), slog.String("reason", reason))
	}
}

func clientString(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	return a.String()
}

// serve answers r and returns its route label, whether it is a probe, and
// which serving limit (if any) cut it short.
func (f *Frontend) serve(w *httpjson.StatusRecorder, r *http.Request, e *entry) (route string, probe bool, refused string) {
	h, pattern := f.mux.Handler(r)
	serve := f.mux.ServeHTTP
	if f.cfg.Route != nil {
		if rh, rp, ok := f.cfg.Route(r, f.mux.Handler); ok {
			h, pattern, serve = rh, rp, rh.ServeHTTP
		}
	}
	probe, known := f.routes[pattern]
	if !known {
		// No route: the mux's own answer says whether the path exists for
		// other methods (405, with Allow) or not at all (404). Its body is
		// text; ours is the JSON error every other answer has.
		p := &probeWriter{header: http.Header{}}
		h.ServeHTTP(p, r)
		if p.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", p.header.Get("Allow"))
			httpjson.WriteError(w, http.StatusMethodNotAllowed, httpjson.CodeMethodNotAllowed, "the route does not take this method")
		} else {
			httpjson.WriteError(w, http.StatusNotFound, httpjson.CodeNotFound, "no such route")
		}
		return unmatchedRoute, false, ""
	}
	if !probe && f.cfg.MaxInFlightPerClient > 0 {
		release, ok := f.acquire(ClientKey(e.client))
		if !ok {
			f.refused.WithLabelValues(refusedInFlight).Inc()
			w.Header().Set("Retry-After", "1")
			httpjson.WriteError(w, http.StatusTooManyRequests, httpjson.CodeRateLimited, "too many requests in flight from this address")
			return pattern, probe, refusedInFlight
		}
		defer release()
	}
	if err := httpjson.RequireJSON(r); err != nil {
		var he *httpjson.Error
		errors.As(err, &he)
		httpjson.WriteError(w, he.Status, he.Code, he.Message)
		return pattern, probe, ""
	}
	if f.cfg.BodyMemory > 0 && r.ContentLength != 0 {
		b := &budgetBody{ReadCloser: r.Body, f: f, client: ClientKey(e.client)}
		r.Body = b
		defer func() {
			f.bodies.Add(-b.held)
			f.holdClient(b.client, -b.held)
			if b.refused {
				f.refused.WithLabelValues(refusedBodyMemory).Inc()
				refused = refusedBodyMemory
			}
		}()
	}
	if f.cfg.MinBodyRate > 0 && r.ContentLength != 0 {
		stop := watchBody(w, r, f.cfg.MinBodyRate, f.cfg.BodyRateGrace, func() {
			f.refused.WithLabelValues(refusedSlowBody).Inc()
		})
		serve(w, r)
		if stop() {
			refused = refusedSlowBody
		}
		return pattern, probe, refused
	}
	serve(w, r)
	return pattern, probe, ""
}

// probeWriter takes the mux's answer for a request that matches no route,
// to read its status and Allow header.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header         { return p.header }
func (p *probeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (p *probeWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}

// acquire takes one of key's in-flight slots; release gives it back. The
// map holds only clients with requests in flight, so its size is bounded
// by the requests being served.
func (f *Frontend) acquire(key string) (release func(), ok bool) {
	f.clientMu.Lock()
	defer f.clientMu.Unlock()
	if f.inFlight[key] >= f.cfg.MaxInFlightPerClient {
		return nil, false
	}
	f.inFlight[key]++
	return func() {
		f.clientMu.Lock()
		defer f.clientMu.Unlock()
		if f.inFlight[key]--; f.inFlight[key] <= 0 {
			delete(f.inFlight, key)
		}
	}, true
}

// holdClient adds n (negative: gives back) to the bytes of bodies client
// holds, and reports whether that stays within BodyMemoryPerClient; if
// not, nothing is added. Without a bound per client it does nothing.
func (f *Frontend) holdClient(client string, n int64) bool {
	if f.cfg.BodyMemoryPerClient <= 0 || n == 0 {
		return true
	}
	f.clientMu.Lock()
	defer f.clientMu.Unlock()
	total := f.held[client] + n
	switch {
	case n > 0 && total > f.cfg.BodyMemoryPerClient:
		return false
	case total <= 0:
		delete(f.held, client)
	default:
		f.held[client] = total
	}
	return true
}

// budgetBody counts the bytes read of a body against BodyMemory and its
// client's BodyMemoryPerClient. It is read by the handler's goroutine
// only.
type budgetBody struct {
	io.ReadCloser
	f       *Frontend
	client  string // ClientKey
	held    int64
	refused bool
}

func (b *budgetBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		if b.f.bodies.Add(int64(n)) > b.f.cfg.BodyMemory {
			b.f.bodies.Add(-int64(n))
			b.refused = true
			return 0, httpjson.ErrBodyMemory
		}
		if !b.f.holdClient(b.client, int64(n)) {
			b.f.bodies.Add(-int64(n))
			b.refused = true
			return 0, httpjson.ErrBodyMemory
		}
		b.held += int64(n)
	}
	return n, err
}

// truncate returns s cut to at most n bytes.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
