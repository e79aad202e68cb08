package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
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
	"time"

	"golang.org/x/time/rate"

	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/twoman/ssks"
)

const serveUsage = `Usage: veil serve [--ssks] [flags]

Serves Veil's key service (directory of cards, session grants) over HTTP,
or, with --ssks, the Secure Key Storage Service for two-man-rule recovery.
The two belong to different parties: run them as separate processes, with
separate databases.

Storage: SQLite at a file path by default (one process owns the file), or
PostgreSQL by DSN for several replicas behind a load balancer.

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

Flags (each also read from the environment variable in brackets; a flag
given on the command line wins; "key service:" flags apply without --ssks,
"--ssks:" flags with it):
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
		{name: "addr", env: "VEIL_ADDR", def: "127.0.0.1:8080", usage: "listen address"},
		{name: "db", env: "VEIL_DB", def: "veil-keys.db", usage: "SQLite file path (or sqlite:///path), or a postgres:// DSN"},
		{name: "jwt-secret", env: "VEIL_JWT_SECRETS", usage: "key service: HS256 secrets, comma-separated, each `[kid=]secret` (at least 32 bytes)"},
		{name: "jwt-ed25519", env: "VEIL_JWT_ED25519_KEYS", usage: "key service: Ed25519 public keys for EdDSA tokens, comma-separated, each `[kid=]base64`"},
		{name: "stream-secret", env: "VEIL_STREAM_SECRET", usage: "key service: Stream API secret, to also accept Stream user tokens for reading only"},
		{name: "max-body", env: "VEIL_MAX_BODY", def: "8388608", usage: "key service: maximum request body in bytes"},
		{name: "rate", env: "VEIL_RATE", def: "100", usage: "key service: requests per second per user (bursts of twice that)"},
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
	}
}

// serveSettings are veil serve's settings, from its flags and the
// environment, with the ones both services share already checked.
type serveSettings struct {
	ssks        bool // serve the SSKS instead of the key service
	insecureLog bool // --insecure-log-codes
	flags       []envFlag
	logger      *slog.Logger
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
	h, closeStore, err := setup(ctx, dsn, s)
	if err != nil {
		return err
	}
	defer closeStore()

	ln, err := net.Listen("tcp", s.get("addr"))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	fmt.Fprintf(stdout, "veil %s listening on http://%s (store: %s)\n", what, ln.Addr(), storeKind(dsn))

	return serveUntilSignal(ctx, srv, ln)
}

// parseServeFlags reads veil serve's flags, fills what the command line
// left unset from the environment, and checks the settings both services
// share.
func parseServeFlags(args []string, stderr io.Writer) (*serveSettings, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	s := &serveSettings{flags: serveFlagList()}
	fs.BoolVar(&s.ssks, "ssks", false, "serve the SSKS instead of the key service")
	fs.BoolVar(&s.insecureLog, "insecure-log-codes", false, "--ssks: DEVELOPMENT ONLY: write codes to the log instead of sending them")
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

	switch s.get("log-format") {
	case "json":
		s.logger = slog.New(slog.NewJSONHandler(stderr, nil))
	case "text":
		s.logger = slog.New(slog.NewTextHandler(stderr, nil))
	default:
		return nil, errors.New("--log-format must be text or json")
	}
	var err error
	s.maxBody, err = strconv.ParseInt(s.get("max-body"), 10, 64)
	if err != nil || s.maxBody <= 0 {
		return nil, errors.New("--max-body must be a positive number of bytes")
	}
	s.maxSessions, err = strconv.ParseInt(s.get("max-sessions-per-user"), 10, 64)
	if err != nil || s.maxSessions == 0 || s.maxSessions < -1 {
		return nil, errors.New("--max-sessions-per-user must be a positive number, or -1 for no limit")
	}
	s.maxBytes, err = strconv.ParseInt(s.get("max-bytes-per-user"), 10, 64)
	if err != nil || s.maxBytes == 0 || s.maxBytes < -1 {
		return nil, errors.New("--max-bytes-per-user must be a positive number of bytes, or -1 for no limit")
	}
	s.rps, err = strconv.ParseFloat(s.get("rate"), 64)
	if err != nil || math.IsNaN(s.rps) || math.IsInf(s.rps, 0) || s.rps <= 0 {
		return nil, errors.New("--rate must be a positive number")
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
	store, err := server.OpenStore(ctx, dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the store: %w", err)
	}
	h, err := server.NewHandler(server.Config{
		Store: store, Auth: auth, Logger: s.logger, MaxBodyBytes: s.maxBody,
		RateLimit: rateLimit(s.rps), RateBurst: int(2 * s.rps),
		MaxSessionsPerUser: s.maxSessions, MaxBytesPerUser: s.maxBytes,
	})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return h, store.Close, nil
}

func storeKind(dsn string) string {
	if strings.HasPrefix(dsn, "postgres") {
		return "postgres"
	}
	return "sqlite"
}

// parseAuth builds the Auth from the flag values; no secret is echoed in
// its errors.
func parseAuth(secrets, edKeys, streamSecret string) (server.Auth, error) {
	var a server.Auth
	for i, item := range splitList(secrets) {
		kid, secret := splitKID(item)
		if len(secret) < 32 {
			return a, fmt.Errorf("--jwt-secret entry %d: secrets must be at least 32 bytes", i+1)
		}
		a.Keys = append(a.Keys, server.Key{ID: kid, HS256: server.NewSecret([]byte(secret))})
	}
	for i, item := range splitList(edKeys) {
		kid, b64 := "", item
		if pub, err := base64.StdEncoding.DecodeString(item); err != nil || len(pub) != ed25519.PublicKeySize {
			kid, b64 = splitKID(item)
		}
		pub, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return a, fmt.Errorf("--jwt-ed25519 entry %d: not a base64 Ed25519 public key", i+1)
		}
		a.Keys = append(a.Keys, server.Key{ID: kid, Ed25519: pub})
	}
	if streamSecret != "" {
		a.StreamSecret = server.NewSecret([]byte(streamSecret))
	}
	if len(a.Keys) == 0 && a.StreamSecret.IsZero() {
		return a, errors.New("no authentication configured: set VEIL_JWT_SECRETS, VEIL_JWT_ED25519_KEYS or VEIL_STREAM_SECRET (see --help)")
	}
	return a, nil
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

// splitKID splits "kid=value", where kid is 1 to 64 letters, digits, '.',
// '_' or '-' and value is not empty; anything else is a value without a key
// ID. (A secret that contains '=' after such a prefix needs a key ID.)
func splitKID(s string) (kid, value string) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" || len(k) > 64 || v == "" {
		return "", s
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return "", s
		}
	}
	return k, v
}

func rateLimit(rps float64) rate.Limit { return rate.Limit(rps) }

// ssksHandler builds the SSKS from the settings. The returned function
// closes its store.
func ssksHandler(ctx context.Context, dsn string, s *serveSettings) (http.Handler, func() error, error) {
	get, logger := s.get, s.logger
	var appKeys []ssks.Secret
	for _, k := range splitList(get("ssks-app-keys")) {
		appKeys = append(appKeys, ssks.NewSecret([]byte(k)))
	}
	if len(appKeys) == 0 {
		return nil, nil, errors.New("--ssks needs VEIL_SSKS_APP_KEYS (see --help)")
	}
	hashKey, err := hex.DecodeString(get("ssks-hash-key"))
	if err != nil || len(hashKey) != 32 {
		return nil, nil, errors.New("--ssks needs VEIL_SSKS_HASH_KEY: 64 hex digits (e.g. openssl rand -hex 32)")
	}
	var sender ssks.Sender
	switch {
	case s.insecureLog:
		logger.Warn("INSECURE: one-time codes are written to this log; never use --insecure-log-codes in production")
		sender = ssks.InsecureLogSender{Logger: logger}
	case get("webhook-url") != "":
		if len(get("webhook-secret")) < 32 {
			return nil, nil, errors.New("--webhook-url needs --webhook-secret (VEIL_SSKS_WEBHOOK_SECRET) of 32 bytes or more")
		}
		sender = &ssks.WebhookSender{URL: get("webhook-url"), Secret: ssks.NewSecret([]byte(get("webhook-secret")))}
	case get("smtp-addr") != "":
		if get("smtp-from") == "" {
			return nil, nil, errors.New("--smtp-from is required with --smtp-addr")
		}
		sender = &ssks.SMTPSender{Addr: get("smtp-addr"), From: get("smtp-from"), AppName: get("app-name"),
			Username: get("smtp-user"), Password: ssks.NewSecret([]byte(get("smtp-password")))}
	default:
		return nil, nil, errors.New("--ssks needs a way to send codes: --smtp-addr, --webhook-url (or --insecure-log-codes in development)")
	}
	store, err := ssks.OpenStore(ctx, dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the store: %w", err)
	}
	srv, err := ssks.NewHandler(ssks.Config{Store: store, AppKeys: appKeys, HashKey: ssks.NewSecret(hashKey), Sender: sender, Logger: logger})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return srv, store.Close, nil
}
