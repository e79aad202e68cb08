package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"
	"github.com/golang-jwt/jwt/v5"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/examples/bot/echobot"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bot:", err)
		os.Exit(1)
	}
}

const usage = `Usage: go run ./examples/bot [--addr ADDR] [--state DIR] [--user ID]
                          [--register] [--webhook-url URL]

An end-to-end encrypted bot on Stream: add it to an encrypted channel and
write; it answers, encrypted. See 'go doc ./examples/bot'.

Environment (what 'veil dev' prints):
  STREAM_KEY, STREAM_SECRET   the Stream app's key and secret (required)
  STREAM_CHAT_URL             the Stream API (default: Stream's)
  VEIL_KEYSERVICE_URL         the key service (required)
  VEIL_JWT_SECRET             the HS256 secret of key-service tokens (required)
  VEIL_BOT_STATE_KEY          the state key, 64 hex digits (default: DIR/state.key,
                              generated on the first start)

Flags:
`

// run is the bot's program: it reads its configuration from args and
// getenv, serves Stream's webhook until ctx ends, and prints what it does
// on stdout, its log on stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8183", "address to listen on for Stream's webhook")
	stateDir := fs.String("state", "veil-bot-state", "directory of the bot's encrypted state (its identity and channel keys)")
	userID := fs.String("user", echobot.DefaultUserID, "the bot's Stream user ID")
	register := fs.Bool("register", false, "set the Stream app's webhook_url to the bot (replacing any other)")
	webhookURL := fs.String("webhook-url", "", "the URL at which Stream reaches the bot (default: http://ADDR"+echobot.WebhookPath+")")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: the bot takes flags only (see --help)", fs.Arg(0))
	}

	env := map[string]string{}
	for _, name := range []string{"STREAM_KEY", "STREAM_SECRET", "VEIL_KEYSERVICE_URL", "VEIL_JWT_SECRET"} {
		if env[name] = getenv(name); env[name] == "" {
			return fmt.Errorf("%s is not set: run 'veil dev' and export what it prints, or set your deployment's values", name)
		}
	}
	jwtSecret := []byte(env["VEIL_JWT_SECRET"])
	if len(jwtSecret) < 32 {
		return errors.New("VEIL_JWT_SECRET is shorter than 32 bytes: the key service refuses such HS256 keys")
	}
	var stateKey e2ee.StateKey
	if s := getenv("VEIL_BOT_STATE_KEY"); s != "" {
		raw, err := hex.DecodeString(s)
		if err == nil {
			stateKey, err = e2ee.ParseStateKey(raw)
		}
		clear(raw)
		if err != nil {
			return errors.New("VEIL_BOT_STATE_KEY is not 64 hex digits: unset it to keep the key in the state directory, or generate one with 'openssl rand -hex 32'")
		}
	}

	sc, err := stream.NewClient(env["STREAM_KEY"], env["STREAM_SECRET"])
	if err != nil {
		return err
	}
	sc.BaseURL = stream.DefaultBaseURL
	if u := getenv("STREAM_CHAT_URL"); u != "" {
		sc.BaseURL = u
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	bot, err := echobot.New(ctx, echobot.Config{
		UserID:          *userID,
		Stream:          sc,
		KeyServiceURL:   env["VEIL_KEYSERVICE_URL"],
		KeyServiceToken: keyServiceToken(jwtSecret, *userID),
		StateDir:        *stateDir,
		StateKey:        stateKey,
		Logger:          logger,
	})
	if err != nil {
		return err
	}
	defer bot.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	if *webhookURL == "" {
		host, _, _ := net.SplitHostPort(ln.Addr().String())
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() && *register {
			ln.Close()
			return errors.New("--addr listens on every interface: give --webhook-url, the address at which Stream reaches the bot")
		}
		*webhookURL = "http://" + ln.Addr().String() + echobot.WebhookPath
	}
	srv := &http.Server{Handler: bot.Handler(env["STREAM_SECRET"]), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	fmt.Fprintf(stdout, "bot: %s, identity fingerprint %s\n", bot.UserID(), bot.Fingerprint())
	fmt.Fprintf(stdout, "bot: webhook at %s\n", *webhookURL)
	if *register {
		if err := bot.Register(ctx, *webhookURL); err != nil {
			srv.Close()
			return fmt.Errorf("setting the app's webhook_url: %w", err)
		}
		fmt.Fprintln(stdout, "bot: set as the Stream app's webhook_url")
	}
	fmt.Fprintf(stdout, "bot: ready: add %s to an encrypted channel and write to it. Ctrl-C stops.\n", bot.UserID())

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
	bot.Close()
	fmt.Fprintln(stdout, "bot: stopped")
	return nil
}

// tokenClaims are the claims of a key-service user token: the user in
// "user_id" (as in Stream's tokens), and when it was issued and expires.
type tokenClaims struct {
	UserID string `json:"user_id"`
	jwt.RegisteredClaims
}

// keyServiceToken returns a keyservice.ClientConfig.Token that signs, for
// each request, an HS256 token for userID valid for five minutes. The bot
// holds the secret because it runs beside the app's backend, as the app
// owner's service; a bot run by someone else would ask the backend for its
// tokens instead. Signing here with golang-jwt keeps the key service's
// server package (its database drivers and metrics) out of the bot.
func keyServiceToken(secret []byte, userID string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		now := time.Now()
		return jwt.NewWithClaims(jwt.SigningMethodHS256, tokenClaims{
			UserID: userID,
			RegisteredClaims: jwt.RegisteredClaims{
				IssuedAt:  jwt.NewNumericDate(now),
				ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)),
			},
		}).SignedString(secret)
	}
}
