package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veilchat/veil/internal/httpserve"
)

// opsFlagList returns the flags of veil serve that set how it serves,
// logs and stops, the same for both services.
func opsFlagList() []envFlag {
	return []envFlag{
		{name: "log-level", env: "VEIL_LOG_LEVEL", def: "info", usage: "log level: debug, info, warn or error (debug adds why a request was refused with 401 or 403)"},
		{name: "trusted-proxy", env: "VEIL_TRUSTED_PROXIES", usage: "CIDR prefixes of the reverse proxies whose X-Forwarded-For names the client, comma-separated (e.g. 10.0.0.0/8); none by default"},
		{name: "read-header-timeout", env: "VEIL_READ_HEADER_TIMEOUT", def: "10s", usage: "time to read a request's headers"},
		{name: "read-timeout", env: "VEIL_READ_TIMEOUT", def: "1m", usage: "time to read a whole request, body included"},
		{name: "write-timeout", env: "VEIL_WRITE_TIMEOUT", def: "1m", usage: "time to handle a request and write its answer, from the end of its headers"},
		{name: "idle-timeout", env: "VEIL_IDLE_TIMEOUT", def: "2m", usage: "time a keep-alive connection may wait for its next request"},
		{name: "max-header-bytes", env: "VEIL_MAX_HEADER_BYTES", def: "65536", usage: "maximum bytes of a request's headers"},
		{name: "max-conns", env: "VEIL_MAX_CONNS", def: "1024", usage: "maximum open connections; when all are open, the one idle longest is closed for a new one, else further clients wait in the kernel's backlog"},
		{name: "max-inflight-per-client", env: "VEIL_MAX_INFLIGHT_PER_CLIENT", def: "64", usage: "maximum requests in flight, and connections open, per client address (IPv6: per /64; --trusted-proxy peers have no connection cap); 0 for no cap"},
		{name: "min-body-rate", env: "VEIL_MIN_BODY_RATE", def: "1024", usage: "bytes per second below which a request body is dropped once --body-rate-window has passed; 0 for no minimum"},
		{name: "body-rate-window", env: "VEIL_BODY_RATE_WINDOW", def: "10s", usage: "grace period before --min-body-rate applies"},
		{name: "max-body-memory", env: "VEIL_MAX_BODY_MEMORY", def: "268435456", usage: "maximum bytes of request bodies held at once, counted as they arrive; a body past it is answered 503; 0 for no bound"},
		{name: "metrics-addr", env: "VEIL_METRICS_ADDR", usage: "serve /metrics on this address instead of the main one (e.g. 127.0.0.1:9090)"},
		{name: "shutdown-grace", env: "VEIL_SHUTDOWN_GRACE", def: "10s", usage: "on SIGTERM or SIGINT, time given to requests in flight before connections are cut"},
	}
}

// opsSettings are the checked values of opsFlagList's flags.
type opsSettings struct {
	level             slog.Level
	trusted           []netip.Prefix
	readHeaderTimeout time.Duration
	readTimeout       time.Duration
	writeTimeout      time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int
	maxConns          int
	maxInFlight       int   // as Config.MaxInFlightPerClient: -1 for no cap
	minBodyRate       int64 // as Config.MinBodyRate: -1 for no minimum
	bodyRateWindow    time.Duration
	maxBodyMemory     int64 // as Config.MaxBodyMemory: -1 for no bound
	metricsAddr       string
	shutdownGrace     time.Duration

	// registry receives the service's metrics and the server's own;
	// metrics serves it, on --metrics-addr if set.
	registry *prometheus.Registry
	metrics  http.Handler
}

// parseOps checks the values of opsFlagList's flags.
func parseOps(get func(string) string) (opsSettings, error) {
	var o opsSettings
	switch get("log-level") {
	case "debug":
		o.level = slog.LevelDebug
	case "info":
		o.level = slog.LevelInfo
	case "warn":
		o.level = slog.LevelWarn
	case "error":
		o.level = slog.LevelError
	default:
		return o, errors.New("--log-level must be debug, info, warn or error")
	}
	var err error
	if o.trusted, err = httpserve.ParsePrefixes(get("trusted-proxy")); err != nil {
		return o, fmt.Errorf("--trusted-proxy: %w", err)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
	}{
		{"read-header-timeout", &o.readHeaderTimeout}, {"read-timeout", &o.readTimeout}, {"write-timeout", &o.writeTimeout},
		{"idle-timeout", &o.idleTimeout}, {"body-rate-window", &o.bodyRateWindow}, {"shutdown-grace", &o.shutdownGrace},
	} {
		// Zero would mean "no timeout" to net/http: a limit is turned
		// off by a large value, knowingly, not by a zero.
		if *d.v, err = time.ParseDuration(get(d.name)); err != nil || *d.v <= 0 {
			return o, fmt.Errorf("--%s must be a positive duration (e.g. 30s, 2m)", d.name)
		}
	}
	positive := func(name string, min int64) (int64, error) {
		n, err := strconv.ParseInt(get(name), 10, 64)
		if err != nil || n < min || n > 1<<40 {
			if min == 0 {
				return 0, fmt.Errorf("--%s must be a number, 0 or more", name)
			}
			return 0, fmt.Errorf("--%s must be a positive number", name)
		}
		return n, nil
	}
	n, err := positive("max-header-bytes", 1)
	if err != nil {
		return o, err
	}
	o.maxHeaderBytes = int(n)
	if n, err = positive("max-conns", 1); err != nil {
		return o, err
	}
	o.maxConns = int(n)
	if n, err = positive("max-inflight-per-client", 0); err != nil {
		return o, err
	}
	o.maxInFlight = int(n)
	if n == 0 {
		o.maxInFlight = -1
	}
	if o.minBodyRate, err = positive("min-body-rate", 0); err != nil {
		return o, err
	}
	if o.minBodyRate == 0 {
		o.minBodyRate = -1
	}
	if o.maxBodyMemory, err = positive("max-body-memory", 0); err != nil {
		return o, err
	}
	if o.maxBodyMemory == 0 {
		o.maxBodyMemory = -1
	}
	o.metricsAddr = get("metrics-addr")
	o.registry = prometheus.NewRegistry()
	if err := httpserve.RegisterRuntime(o.registry); err != nil {
		return o, err
	}
	return o, nil
}

// newLogger returns the logger of --log-format and --log-level.
func newLogger(format string, level slog.Level, w io.Writer) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, errors.New("--log-format must be text or json")
}

// checkMode refuses a flag, or its environment variable, that the chosen
// service would ignore: the usage of each says which service it is for
// ("key service:" or "--ssks:"). A setting silently ignored is a
// setting the operator believes in and does not have.
func checkMode(fs *flag.FlagSet, flags []envFlag, ssks bool, given map[string]bool) error {
	envOf := map[string]string{}
	for _, f := range flags {
		envOf[f.name] = f.env
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		var forSSKS bool
		switch {
		case strings.HasPrefix(f.Usage, "--ssks:"):
			forSSKS = true
		case strings.HasPrefix(f.Usage, "key service:"):
			forSSKS = false
		default:
			return // both services
		}
		if forSSKS == ssks {
			return
		}
		where := "without --ssks"
		if ssks {
			where = "with --ssks"
		}
		switch env := envOf[f.Name]; {
		case given[f.Name]:
			err = fmt.Errorf("--%s does not apply %s", f.Name, where)
		case env != "" && os.Getenv(env) != "":
			err = fmt.Errorf("%s (--%s) is set but does not apply %s", env, f.Name, where)
		}
	})
	return err
}

// reportedError is an error already written to the log: run exits with
// status 1 without printing it again, so that with --log-format json
// every line of standard error stays JSON.
type reportedError struct{ err error }

func (e *reportedError) Error() string { return e.err.Error() }
func (e *reportedError) Unwrap() error { return e.err }

// serveHandler serves h as veil serve does: on ln, behind a cap of open
// connections and the server's timeouts, with /metrics on its own
// listener if --metrics-addr is set, until ctx ends or SIGTERM or SIGINT
// arrives; then it drains requests in flight for --shutdown-grace. what
// names the service ("key service", "SSKS") and namespace its metrics.
func serveHandler(ctx context.Context, h http.Handler, ln net.Listener, o opsSettings, logger *slog.Logger, namespace string) error {
	limited := httpserve.LimitListener(ln, o.maxConns)
	// A client address has as many connections as requests in flight:
	// more would be idle, or sending their headers slowly to keep
	// others out. Proxies carry everyone's.
	limited.LimitPerClient(o.maxInFlight, o.trusted)
	err := o.registry.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: namespace + "_open_connections", Help: "Connections open on the main listener (at most --max-conns).",
	}, func() float64 { return float64(limited.Open()) }))
	if err != nil {
		return err
	}
	api := o.httpServer(h, logger)
	api.ConnState = limited.ConnState // idle connections give way to new ones
	servers := []*http.Server{api}
	listeners := []net.Listener{limited}
	if o.metricsAddr != "" {
		mln, err := net.Listen("tcp", o.metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", o.metrics)
		servers = append(servers, o.httpServer(mux, logger))
		listeners = append(listeners, mln)
		logger.Info("metrics listening", "addr", mln.Addr().String())
	}
	return serveUntilStopped(ctx, servers, listeners, o.shutdownGrace, logger)
}

// httpServer returns an http.Server of h with the settings' limits, its
// own errors (bad TLS, refused queries, panics) logged through logger.
func (o opsSettings) httpServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: o.readHeaderTimeout,
		ReadTimeout:       o.readTimeout,
		WriteTimeout:      o.writeTimeout,
		IdleTimeout:       o.idleTimeout,
		MaxHeaderBytes:    o.maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// serveUntilStopped serves each server on its listener until one fails,
// ctx ends, or SIGTERM or SIGINT arrives. Then it stops them: listeners
// close at once (new connections are refused), requests in flight have
// grace to finish, and connections still busy after it are cut.
func serveUntilStopped(ctx context.Context, servers []*http.Server, listeners []net.Listener, grace time.Duration, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }()
	}
	var failed error
	select {
	case failed = <-errc:
	case <-ctx.Done():
		logger.Info("shutting down", "grace", grace.String())
	}
	// The shutdown gets its own deadline, keeping ctx's values.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil {
			errs = append(errs, err)
			srv.Close()
		}
	}
	if errors.Is(errors.Join(errs...), context.DeadlineExceeded) {
		logger.Warn("shutdown grace expired: connections still busy were cut", "grace", grace.String())
		errs = nil
	}
	if failed != nil && !errors.Is(failed, http.ErrServerClosed) {
		return failed
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}
