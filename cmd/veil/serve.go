package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/time/rate"

	"github.com/veilchat/veil/keyservice/server"
)

const serveUsage = `Usage: veil serve [--ssks] [flags]

Serves Veil's key service (directory of cards, session grants) over HTTP,
or, with --ssks, the Secure Key Storage Service for two-man-rule recovery.
The two belong to different parties: run them as separate processes, with
separate databases.

Storage: SQLite at a file path by default (one process owns the file), or
PostgreSQL by DSN for several replicas behind a load balancer. The first
start needs --create to set up the database; later starts refuse a --db
that names none. The two services default to different files and ports,
and each refuses the other's database.

Key service authentication: JWTs issued by the app backend (HS256 secrets
or Ed25519 public keys; several at once for rotation, selected by the
token's "kid"; Ed25519 is recommended: the service then holds no secret
that could sign a token), and optionally Stream user tokens verified with
the Stream API secret, for reading only (Stream can sign one for any user,
so they never write). At least one of VEIL_JWT_SECRETS,
VEIL_JWT_ED25519_KEYS and VEIL_STREAM_SECRET is required.

SSKS: the app backends' API keys (VEIL_SSKS_APP_KEYS), the key of the
hashes of codes and factors (VEIL_SSKS_HASH_KEY), and one way to send codes:
SMTP (--smtp-addr, --smtp-from) or a signed webhook (--webhook-url,
--webhook-secret).

Pass secrets through the environment rather than flags: flags show in
process lists.

Operating: both services answer GET /healthz (the process is up), GET
/readyz (the database answers and its schema is this release's) and GET
/metrics (Prometheus; --metrics-addr moves it to a listener of its own).
Every request gets one log line at info with its request ID (from
X-Request-ID if sane, else new, and echoed in the answer), client address,
route, status and latency. SIGTERM or SIGINT stops accepting connections
and lets requests in flight finish for --shutdown-grace.

Flags (each also read from the environment variable in brackets; a flag
given on the command line wins; "key service:" flags apply without --ssks,
"--ssks:" flags with it, and either given to the other service is an
error):
`

// envFlag describes a flag that can also come from the environment.
type envFlag struct {
	name, env, def, usage string
	val                   *string
}

// serveFlagList returns the string flags of veil serve. Those of one
// service only say so in their usage.
func serveFlagList() []envFlag {
	return []envFlag{
		{name: "addr", env: "VEIL_ADDR", usage: "listen address (default " + defaultKeysAddr + "; " + defaultSSKSAddr + " with --ssks)"},
		{name: "db", env: "VEIL_DB", usage: "SQLite file path (or sqlite:///path), or a postgres:// DSN (default " + defaultKeysDB + "; " + defaultSSKSDB + " with --ssks)"},
		{name: "jwt-secret", env: "VEIL_JWT_SECRETS", usage: "key service: HS256 secrets, comma-separated, each `[kid=]secret` (at least 32 bytes)"},
		{name: "jwt-ed25519", env: "VEIL_JWT_ED25519_KEYS", usage: "key service: Ed25519 public keys for EdDSA tokens, comma-separated, each `[kid=]base64`"},
		{name: "stream-secret", env: "VEIL_STREAM_SECRET", usage: "key service: Stream API secret, to also accept Stream user tokens for reading only"},
		{name: "max-body", env: "VEIL_MAX_BODY", usage: "maximum request body in bytes (default 8388608 for the key service, 528384 for the SSKS)"},
		{name: "rate", env: "VEIL_RATE", usage: "requests per second per user, bursts of twice that (default 100 for the key service; 10 for the SSKS, per client address and per user)"},
		{name: "max-sessions-per-user", env: "VEIL_MAX_SESSIONS_PER_USER", def: "10000", usage: "key service: sessions one user may ever create; -1 for no limit"},
		{name: "max-bytes-per-user", env: "VEIL_MAX_BYTES_PER_USER", def: "67108864", usage: "key service: bytes of records and grants one user may ever store; -1 for no limit"},
		{name: "log-format", env: "VEIL_LOG_FORMAT", def: "text", usage: "log format: text or json"},
		{name: "ssks-app-keys", env: "VEIL_SSKS_APP_KEYS", usage: "--ssks: API keys of the app backends, comma-separated (each 32+ printable characters)"},
		{name: "ssks-hash-key", env: "VEIL_SSKS_HASH_KEY", usage: "--ssks: 64 hex digits keying the hashes of codes and factors"},
		{name: "smtp-addr", env: "VEIL_SMTP_ADDR", usage: "--ssks: SMTP server host:port for email codes"},
		{name: "smtp-from", env: "VEIL_SMTP_FROM", usage: "--ssks: sender address of code emails"},
		{name: "smtp-user", env: "VEIL_SMTP_USER", usage: "--ssks: SMTP username (AUTH PLAIN over TLS)"},
		{name: "smtp-password", env: "VEIL_SMTP_PASSWORD", usage: "--ssks: SMTP password"},
		{name: "app-name", env: "VEIL_APP_NAME", def: "Veil", usage: "--ssks: application name in code messages"},
		{name: "webhook-url", env: "VEIL_SSKS_WEBHOOK_URL", usage: "--ssks: URL receiving codes as signed JSON (SMS gateway), instead of SMTP"},
		{name: "webhook-secret", env: "VEIL_SSKS_WEBHOOK_SECRET", usage: "--ssks: HMAC secret of the webhook (32+ bytes)"},
		{name: "smtp-ca-file", env: "VEIL_SMTP_CA_FILE", usage: "--ssks: PEM file of the CA certificates trusted for the SMTP server's STARTTLS, instead of the system's"},
		{name: "code-digits", env: "VEIL_SSKS_CODE_DIGITS", def: "8", usage: "--ssks: digits of one-time codes, 8 to 12"},
		{name: "max-challenges-per-hour", env: "VEIL_SSKS_MAX_CHALLENGES", def: "5", usage: "--ssks: challenges started per user and per factor in any hour"},
	}
}

// serveSettings are veil serve's settings, from its flags and the
// environment, with the ones both services share already checked.
type serveSettings struct {
	ssks        bool // serve the SSKS instead of the key service
	insecureLog bool // --insecure-log-codes
	create      bool // --create: set up a new database if there is none
	flags       []envFlag
	logger      *slog.Logger
	ops         opsSettings
	maxBody     int64
	maxSessions int64
	maxBytes    int64
	rps         float64
}

// get returns the value of a string flag: the command line's, else the
// environment's, else the default.
func (s *serveSettings) get(name string) string {
	for _, f := range s.flags {
		if f.name == name {
			return *f.val
		}
	}
	panic("unknown flag " + name)
}

func serveCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	// The DSN goes to the store as given: a bare path is a SQLite file, and
	// the store refuses what is neither a path nor a supported URL (a
	// key=value PostgreSQL string, a mistyped scheme).
	dsn := s.get("db")
	what, setup := "key service", keyServiceHandler
	if s.ssks {
		what, setup = "SSKS", ssksHandler
	}
	// From here on errors go to the log, in its format.
	fail := func(err error) error {
		s.logger.Error("veil serve: "+err.Error(), "service", what)
		return &reportedError{err}
	}
	h, closeStore, err := setup(ctx, dsn, s)
	if err != nil {
		return fail(err)
	}
	defer closeStore()

	ln, err := net.Listen("tcp", s.get("addr"))
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "veil %s listening on http://%s (store: %s)\n", what, ln.Addr(), storeKind(dsn))
	s.logger.Info("listening", "service", what, "addr", ln.Addr().String(), "store", storeKind(dsn))
	namespace := "veil_keyservice"
	if s.ssks {
		namespace = "veil_ssks"
	}
	if err := serveHandler(ctx, h, ln, s.ops, s.logger, namespace); err != nil {
		return fail(err)
	}
	return nil
}

// parseServeFlags reads veil serve's flags, fills what the command line
// left unset from the environment, and checks the settings both services
// share.
func parseServeFlags(args []string, stderr io.Writer) (*serveSettings, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := &serveSettings{flags: append(serveFlagList(), opsFlagList()...)}
	fs.BoolVar(&s.ssks, "ssks", false, "serve the SSKS instead of the key service")
	fs.BoolVar(&s.insecureLog, "insecure-log-codes", false, "--ssks: DEVELOPMENT ONLY: write codes to the log instead of sending them")
	fs.BoolVar(&s.create, "create", false, "set up a new database when --db names none (first start); without it a database that does not exist or holds no data of this service is refused")
	// Defaults are the static ones only: a value from the environment is
	// applied after parsing, so that usage text (printed for --help and for
	// any bad flag) never shows a secret.
	for i := range s.flags {
		f := &s.flags[i]
		f.val = fs.String(f.name, f.def, f.usage+" ["+f.env+"]")
	}
	fs.Usage = func() {
		fmt.Fprint(stderr, serveUsage)
		fs.PrintDefaults()
	}
	if rest, err := parseFlags(fs, args); err != nil {
		return nil, err
	} else if len(rest) > 0 {
		return nil, usagef("serve", "serve takes flags only, and %d argument(s) are not flags", len(rest))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, f := range s.flags {
		if e := os.Getenv(f.env); e != "" && !given[f.name] {
			*f.val = e
		}
	}
	s.applyServiceDefaults()

	if err := checkMode(fs, s.flags, s.ssks, given); err != nil {
		return nil, err
	}
	var err error
	if s.ops, err = parseOps(s.get); err != nil {
		return nil, err
	}
	if s.logger, err = newLogger(s.get("log-format"), s.ops.level, stderr); err != nil {
		return nil, err
	}
	if v := s.get("max-body"); v != "" {
		s.maxBody, err = strconv.ParseInt(v, 10, 64)
		if err != nil || s.maxBody <= 0 {
			return nil, errors.New("--max-body must be a positive number of bytes")
		}
	}
	if s.maxBody > 0 && s.ops.maxBodyMemory > 0 && s.ops.maxBodyMemory < s.maxBody {
		return nil, errors.New("--max-body-memory must be at least --max-body")
	}
	s.maxSessions, err = strconv.ParseInt(s.get("max-sessions-per-user"), 10, 64)
	if err != nil || s.maxSessions == 0 || s.maxSessions < -1 {
		return nil, errors.New("--max-sessions-per-user must be a positive number, or -1 for no limit")
	}
	s.maxBytes, err = strconv.ParseInt(s.get("max-bytes-per-user"), 10, 64)
	if err != nil || s.maxBytes == 0 || s.maxBytes < -1 {
		return nil, errors.New("--max-bytes-per-user must be a positive number of bytes, or -1 for no limit")
	}
	if v := s.get("rate"); v != "" {
		s.rps, err = strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(s.rps) || math.IsInf(s.rps, 0) || s.rps <= 0 {
			return nil, errors.New("--rate must be a positive number")
		}
	}
	return s, nil
}

// keyServiceHandler builds the key service from the settings. The returned
// function closes its store.
func keyServiceHandler(ctx context.Context, dsn string, s *serveSettings) (http.Handler, func() error, error) {
	auth, err := parseAuth(s.get("jwt-secret"), s.get("jwt-ed25519"), s.get("stream-secret"))
	if err != nil {
		return nil, nil, err
	}
	logAuth(s.logger, auth)
	store, err := openKeyStore(ctx, dsn, s.create)
	if err != nil {
		return nil, nil, err
	}
	o := &s.ops
	h, err := server.NewHandler(server.Config{
		Store: store, Auth: auth, Logger: s.logger, MaxBodyBytes: s.maxBody,
		RateLimit: rateLimit(s.rps), RateBurst: int(2 * s.rps),
		MaxSessionsPerUser: s.maxSessions, MaxBytesPerUser: s.maxBytes,
		Metrics: o.registry, OmitMetricsRoute: o.metricsAddr != "", TrustedProxies: o.trusted,
		MaxInFlightPerClient: o.maxInFlight, MinBodyRate: o.minBodyRate, BodyRateGrace: o.bodyRateWindow, MaxBodyMemory: o.maxBodyMemory,
	})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	o.metrics = h.MetricsHandler()
	return h, store.Close, nil
}

func storeKind(dsn string) string {
	if strings.HasPrefix(dsn, "postgres") {
		return "postgres"
	}
	return "sqlite"
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func rateLimit(rps float64) rate.Limit { return rate.Limit(rps) }
