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

Authentication: JWTs issued by the app backend (HS256 secrets or Ed25519
public keys; several at once for rotation, selected by the token's "kid"),
and optionally Stream user tokens verified with the Stream API secret.
Pass secrets through the environment rather than flags: flags show in
process lists.

Flags (each also read from the environment variable in brackets; a flag
given on the command line wins):
`

// envFlag describes a flag that can also come from the environment.
type envFlag struct {
	name, env, def, usage string
	val                   *string
}

func serveCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := []envFlag{
		{name: "addr", env: "VEIL_ADDR", def: "127.0.0.1:8080", usage: "listen address"},
		{name: "db", env: "VEIL_DB", def: "veil-keys.db", usage: "SQLite file path (or sqlite:///path), or a postgres:// DSN"},
		{name: "jwt-secret", env: "VEIL_JWT_SECRETS", usage: "HS256 secrets, comma-separated, each `[kid=]secret` (at least 32 bytes)"},
		{name: "jwt-ed25519", env: "VEIL_JWT_ED25519_KEYS", usage: "Ed25519 public keys for EdDSA tokens, comma-separated, each `[kid=]base64`"},
		{name: "stream-secret", env: "VEIL_STREAM_SECRET", usage: "Stream API secret: also accept Stream user tokens"},
		{name: "max-body", env: "VEIL_MAX_BODY", def: "8388608", usage: "maximum request body in bytes"},
		{name: "rate", env: "VEIL_RATE", def: "100", usage: "requests per second per user"},
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
	ssks := fs.Bool("ssks", false, "serve the SSKS instead of the key service")
	insecureLog := fs.Bool("insecure-log-codes", false, "--ssks: DEVELOPMENT ONLY: write codes to the log instead of sending them")
	// Defaults are the static ones only: a value from the environment is
	// applied after parsing, so that usage text (printed for --help and for
	// any bad flag) never shows a secret.
	for i := range flags {
		f := &flags[i]
		f.val = fs.String(f.name, f.def, f.usage+" ["+f.env+"]")
	}
	fs.Usage = func() {
		fmt.Fprint(stderr, serveUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, f := range flags {
		if e := os.Getenv(f.env); e != "" && !given[f.name] {
			*f.val = e
		}
	}
	get := func(name string) string {
		for _, f := range flags {
			if f.name == name {
				return *f.val
			}
		}
		panic("unknown flag " + name)
	}

	var logger *slog.Logger
	switch get("log-format") {
	case "json":
		logger = slog.New(slog.NewJSONHandler(stderr, nil))
	case "text":
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	default:
		return errors.New("--log-format must be text or json")
	}

	var auth server.Auth
	if !*ssks {
		var err error
		if auth, err = parseAuth(get("jwt-secret"), get("jwt-ed25519"), get("stream-secret")); err != nil {
			return err
		}
	}
	maxBody, err := strconv.ParseInt(get("max-body"), 10, 64)
	if err != nil || maxBody <= 0 {
		return errors.New("--max-body must be a positive number of bytes")
	}
	rps, err := strconv.ParseFloat(get("rate"), 64)
	if err != nil || math.IsNaN(rps) || math.IsInf(rps, 0) || rps <= 0 {
		return errors.New("--rate must be a positive number")
	}

	// The DSN goes to the store as given: a bare path is a SQLite file, and
	// the store refuses what is neither a path nor a supported URL (a
	// key=value PostgreSQL string, a mistyped scheme).
	dsn := get("db")
	var h http.Handler
	what := "key service"
	if *ssks {
		what = "SSKS"
		srv, closeStore, err := ssksHandler(ctx, dsn, get, *insecureLog, logger)
		if err != nil {
			return err
		}
		defer closeStore()
		h = srv
	} else {
		store, err := server.OpenStore(ctx, dsn)
		if err != nil {
			return fmt.Errorf("opening the store: %w", err)
		}
		defer store.Close()
		if h, err = server.NewHandler(server.Config{
			Store: store, Auth: auth, Logger: logger, MaxBodyBytes: maxBody,
			RateLimit: rateLimit(rps), RateBurst: int(2 * rps),
		}); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", get("addr"))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	fmt.Fprintf(stdout, "veil %s listening on http://%s (store: %s)\n", what, ln.Addr(), storeKind(dsn))

	return serveUntilSignal(ctx, srv, ln)
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

// ssksHandler builds the SSKS from the flags.
func ssksHandler(ctx context.Context, dsn string, get func(string) string, insecureLog bool, logger *slog.Logger) (http.Handler, func() error, error) {
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
	case insecureLog:
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
