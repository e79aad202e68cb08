package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/twoman/backend"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

const usage = `Usage: go run ./examples/backend [--addr ADDR] [--data DIR] [--signing-key FILE]

The app backend of Veil's reference architecture: sign-up, Stream and
key-service tokens, two-man-rule challenges, and the key service itself.
See 'go doc ./examples/backend'.

Environment (what 'veil dev' prints):
  STREAM_KEY, STREAM_SECRET   the Stream app's key and secret (required)
  STREAM_CHAT_URL             the Stream API (default: Stream's)
  VEIL_SSKS_URL               the SSKS (required)
  VEIL_SSKS_APP_KEY           the backend's SSKS API key (required)

Flags:
`

// run is the backend's program: it reads its configuration from args and
// getenv, serves until ctx ends, and prints its addresses on stdout, its
// log on stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8190", "address to listen on")
	data := fs.String("data", "veil-backend-data", "directory of the key service's database, the twoManRuleKeys' database and the logins")
	keyFile := fs.String("signing-key", "", "PEM Ed25519 private key that signs key-service tokens (default: DIR/jwt-ed25519.key, generated on the first start)")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: the backend takes flags only (see --help)", fs.Arg(0))
	}
	env := map[string]string{}
	for _, name := range []string{"STREAM_KEY", "STREAM_SECRET", "VEIL_SSKS_URL", "VEIL_SSKS_APP_KEY"} {
		if env[name] = getenv(name); env[name] == "" {
			return fmt.Errorf("%s is not set: run 'veil dev' and export what it prints, or set your deployment's values", name)
		}
	}

	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	create := *keyFile == ""
	if create {
		*keyFile = filepath.Join(*data, "jwt-ed25519.key")
	}
	key, err := signingKeyIn(*keyFile, create)
	if err != nil {
		return err
	}
	sign := newSigner(key)

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	sc, err := stream.NewClient(env["STREAM_KEY"], env["STREAM_SECRET"])
	if err != nil {
		return err
	}
	sc.BaseURL = stream.DefaultBaseURL
	if u := getenv("STREAM_CHAT_URL"); u != "" {
		sc.BaseURL = u
	}

	// The key service, embedded: it verifies the tokens this backend
	// signs with the public key alone.
	store, err := server.OpenStore(ctx, filepath.Join(*data, "keys.db"))
	if err != nil {
		return fmt.Errorf("opening the key service's database: %w", err)
	}
	defer store.Close()
	keys, err := server.NewHandler(server.Config{
		Store:  store,
		Auth:   server.Auth{Keys: []server.Key{{ID: sign.keyID, Ed25519: sign.public()}}},
		Logger: logger.With("service", "keyservice"),
	})
	if err != nil {
		return err
	}

	// The backend's half of the two-man rule: the twoManRuleKeys, in a
	// database of their own (the SSKS, another party, has the other half).
	ruleKeys, err := backend.OpenKeyStore(ctx, filepath.Join(*data, "twoman.db"))
	if err != nil {
		return fmt.Errorf("opening the twoManRuleKeys' database: %w", err)
	}
	defer ruleKeys.Close()
	recovery, err := backend.New(backend.Config{Keys: ruleKeys, SSKSURL: env["VEIL_SSKS_URL"], AppKey: backend.NewSecret([]byte(env["VEIL_SSKS_APP_KEY"]))})
	if err != nil {
		return err
	}

	accounts, err := openLogins(filepath.Join(*data, "logins.json"))
	if err != nil {
		return err
	}
	a := &app{stream: sc, signer: sign, recovery: recovery, logins: accounts, keys: keys, log: logger, now: time.Now}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "backend: %s\n", base)
	fmt.Fprintf(stdout, "backend: key service at %s%s, verifying EdDSA tokens with key %s=%s\n",
		base, KeyServicePath, sign.keyID, base64.StdEncoding.EncodeToString(sign.public()))
	fmt.Fprintln(stdout, "backend: ready: POST /v1/signup, /v1/tokens, /v1/challenge. Ctrl-C stops.")

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "backend: stopped")
	return nil
}
