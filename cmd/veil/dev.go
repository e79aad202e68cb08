package main

import (
	"bufio"
	"context"
	"crypto/rand"
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
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/streamadapter/streamtest"
	"github.com/veilchat/veil/twoman/ssks"
)

const devUsage = `Usage: veil dev [--dir DIR] [--keyservice-addr ADDR] [--ssks-addr ADDR]
                [--stream-addr ADDR] [--bot] [--verbose]

Runs Veil's services for local development, in one process, on loopback:

  - the key service, on SQLite in DIR;
  - the SSKS, on SQLite in DIR, with the development sender: one-time codes
    are printed on standard error instead of being emailed (INSECURE:
    whoever reads them can recover any identity stored there);
  - the Stream Chat emulator (the streamtest package), in memory;
  - with --bot, the bot of examples/bot, a Veil user (veil-bot) that
    answers, encrypted, in the encrypted channels it is a member of: it is
    the emulator's webhook, on a loopback port of its own, and keeps its
    identity in DIR/bot.

It prints the environment to export in the shell of your app, bot or tests,
then serves until interrupted (Ctrl-C, SIGTERM), and shuts down cleanly.

  STREAM_KEY, STREAM_SECRET   the emulator's app key and secret
  STREAM_CHAT_URL             the emulator (stream-chat-go reads these three)
  VEIL_KEYSERVICE_URL         the key service
  VEIL_JWT_SECRET             the HS256 secret of key-service user tokens: a
                              JWT with "user_id" and "exp" signed with it, the
                              value used as given ('veil token' prints one;
                              in Go, package keyservice/server's
                              UserToken(secret, "", userID, ttl)); Stream
                              user tokens are accepted for reading
  VEIL_SSKS_URL               the SSKS
  VEIL_SSKS_APP_KEY           the app backend's SSKS API key
                              (twoman/backend.Config.AppKey)

Without --dir the data lives in a temporary directory removed at exit, and
the secrets are new at each start. With --dir the databases stay, and the
secrets are kept in DIR/dev-secrets (mode 0600) so that they keep working;
the emulator's channels and messages never outlive the process.

Nothing here is fit for production: use 'veil serve' (docs/DEPLOY.md).

Flags:
`

// Default addresses of veil dev: loopback, beside veil serve's 8080 (and the
// SSKS's 8081 in docs/DEPLOY.md) and veil streamtest's 3030.
const (
	devKeyServiceAddr = "127.0.0.1:8180"
	devSSKSAddr       = "127.0.0.1:8181"
	devStreamAddr     = "127.0.0.1:8182"
)

// devStarted, if set, is called with the stack once it runs: tests reach
// the emulator through it.
var devStarted func(*devStack)

func devCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory of the databases and secrets, kept across runs (default: a temporary directory removed at exit)")
	ksAddr := fs.String("keyservice-addr", devKeyServiceAddr, "loopback address of the key service (port 0: any free port)")
	ssksAddr := fs.String("ssks-addr", devSSKSAddr, "loopback address of the SSKS")
	streamAddr := fs.String("stream-addr", devStreamAddr, "loopback address of the Stream emulator")
	bot := fs.Bool("bot", false, "also run the example bot (examples/bot) as a Veil user the emulator's webhook reaches")
	verbose := fs.Bool("verbose", false, "log every request, not only warnings and codes")
	fs.Usage = func() {
		fmt.Fprint(stderr, devUsage)
		fs.PrintDefaults()
	}
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("dev", "dev takes flags only, and %d argument(s) are not flags", len(rest))
	}
	for _, a := range []struct{ flag, addr string }{{"keyservice-addr", *ksAddr}, {"ssks-addr", *ssksAddr}, {"stream-addr", *streamAddr}} {
		if !isLoopback(a.addr) {
			return usagef("dev", "--%s must be a loopback address such as 127.0.0.1:PORT: the development stack prints one-time codes and takes no TLS", a.flag)
		}
	}

	persist := *dir != ""
	if persist {
		if err := os.MkdirAll(*dir, 0o700); err != nil {
			return err
		}
	} else {
		if *dir, err = os.MkdirTemp("", "veil-dev-"); err != nil {
			return err
		}
		defer os.RemoveAll(*dir)
	}
	sec, err := devSecretsIn(*dir, persist)
	if err != nil {
		return err
	}

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	st, err := startDev(ctx, *dir, sec, logger, *verbose, [3]string{*ksAddr, *ssksAddr, *streamAddr})
	if err != nil {
		return err
	}
	defer st.close()
	var botID string
	if *bot {
		if botID, err = st.startBot(ctx, *dir, sec, logger); err != nil {
			return fmt.Errorf("starting the bot: %w", err)
		}
	}
	if devStarted != nil {
		devStarted(st)
	}

	fmt.Fprintln(stdout, "# veil dev: Veil's services for local development, on loopback. Not for production.")
	for _, kv := range [][2]string{
		{"STREAM_KEY", sec.streamKey},
		{"STREAM_SECRET", sec.streamSecret},
		{"STREAM_CHAT_URL", st.urls[2]},
		{"VEIL_KEYSERVICE_URL", st.urls[0]},
		{"VEIL_JWT_SECRET", sec.jwtSecret},
		{"VEIL_SSKS_URL", st.urls[1]},
		{"VEIL_SSKS_APP_KEY", sec.appKey},
	} {
		fmt.Fprintf(stdout, "export %s=%s\n", kv[0], kv[1])
	}
	fmt.Fprintln(stdout, "# Key-service tokens: HS256 JWTs with \"user_id\" and \"exp\", signed with VEIL_JWT_SECRET.")
	fmt.Fprintln(stdout, "# The SSKS prints one-time codes on standard error (INSECURE development sender).")
	if *bot {
		fmt.Fprintf(stdout, "# Bot: user ID %s (examples/bot), the emulator's webhook: add it to an encrypted channel and write.\n", botID)
	}
	if persist {
		fmt.Fprintf(stdout, "# Data and secrets: %s (kept).\n", *dir)
	} else {
		fmt.Fprintf(stdout, "# Data: %s (removed at exit).\n", *dir)
	}
	fmt.Fprintln(stdout, "# Ready. Ctrl-C stops.")

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
	case err := <-st.errc:
		return fmt.Errorf("a service stopped: %w", err)
	}
	if err := st.shutdown(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "veil dev: stopped")
	return nil
}

// isLoopback reports whether addr is host:port with a loopback host.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// devStack is the running services of veil dev.
type devStack struct {
	urls    [3]string // key service, SSKS, Stream emulator
	emu     *streamtest.Server
	servers []*http.Server
	errc    chan error
	closers []func()
}

// startDev opens the stores and starts the three servers on addrs (key
// service, SSKS, Stream emulator). On error, what was started is stopped.
func startDev(ctx context.Context, dir string, sec *devSecrets, logger *slog.Logger, verbose bool, addrs [3]string) (_ *devStack, err error) {
	st := &devStack{errc: make(chan error, 4)}
	defer func() {
		if err != nil {
			st.close()
		}
	}()

	keys, err := server.OpenStore(ctx, filepath.Join(dir, "keys.db"))
	if err != nil {
		return nil, fmt.Errorf("opening the key service's store: %w", err)
	}
	st.closers = append(st.closers, func() { keys.Close() })
	kh, err := server.NewHandler(server.Config{
		Store: keys, Logger: logger.With("service", "keyservice"),
		Auth: server.Auth{
			Keys:         []server.Key{{HS256: server.NewSecret([]byte(sec.jwtSecret))}},
			StreamSecret: server.NewSecret([]byte(sec.streamSecret)),
		},
	})
	if err != nil {
		return nil, err
	}

	codes, err := ssks.OpenStore(ctx, filepath.Join(dir, "ssks.db"))
	if err != nil {
		return nil, fmt.Errorf("opening the SSKS's store: %w", err)
	}
	st.closers = append(st.closers, func() { codes.Close() })
	hashKey, _ := hex.DecodeString(sec.hashKey)
	sh, err := ssks.NewHandler(ssks.Config{
		Store: codes, AppKeys: []ssks.Secret{ssks.NewSecret([]byte(sec.appKey))}, HashKey: ssks.NewSecret(hashKey),
		// The sender logs at warning level: codes show without --verbose.
		Sender: ssks.InsecureLogSender{Logger: logger.With("service", "ssks")},
		Logger: logger.With("service", "ssks"),
	})
	clear(hashKey)
	if err != nil {
		return nil, err
	}

	emuCfg := streamtest.Config{APIKey: sec.streamKey, APISecret: streamtest.NewSecret([]byte(sec.streamSecret))}
	if verbose {
		emuCfg.Logger = logger.With("service", "stream")
	}
	emu := streamtest.NewServer(emuCfg)
	st.closers = append(st.closers, emu.Close)
	st.emu = emu

	handlers := [3]http.Handler{kh, sh, emu.Handler()}
	lns := make([]net.Listener, 0, 3)
	for i, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
		st.urls[i] = "http://" + ln.Addr().String()
	}
	emu.SetURL(st.urls[2])
	for i, ln := range lns {
		srv := &http.Server{Handler: handlers[i], ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
			ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
		st.servers = append(st.servers, srv)
		go func() {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				st.errc <- err
			}
		}()
	}
	return st, nil
}

// shutdown stops the servers gracefully (10 s at most), then closes the
// stores.
func (st *devStack) shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, srv := range st.servers {
		wg.Go(func() {
			if err := srv.Shutdown(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st.servers = nil
	st.close()
	return errors.Join(errs...)
}

// close stops what is still running at once, and closes the stores.
func (st *devStack) close() {
	for _, srv := range st.servers {
		srv.Close()
	}
	st.servers = nil
	for i := len(st.closers) - 1; i >= 0; i-- {
		st.closers[i]()
	}
	st.closers = nil
}

// devSecrets are the credentials of a development stack, random at its
// first start. They are development secrets: veil dev prints all but the
// hash key.
type devSecrets struct {
	streamKey, streamSecret string
	jwtSecret               string // HS256 key of key-service user tokens
	appKey                  string // the app backend's SSKS API key
	hashKey                 string // the SSKS's hash key, 64 hex digits
}

const devSecretsFile = "dev-secrets"

// devSecretsIn returns the secrets kept in dir, or new ones (saved there
// when persist).
func devSecretsIn(dir string, persist bool) (*devSecrets, error) {
	path := filepath.Join(dir, devSecretsFile)
	if persist {
		s, err := readDevSecrets(path)
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			return s, err
		}
	}
	random := func(n int) string {
		b := make([]byte, n)
		rand.Read(b)
		return hex.EncodeToString(b)
	}
	s := &devSecrets{streamKey: "dev" + random(8), streamSecret: random(32), jwtSecret: random(32), appKey: random(32), hashKey: random(32)}
	if persist {
		if err := writeNewFile(path, s.text(), 0o600, false); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *devSecrets) fields() map[string]*string {
	return map[string]*string{
		"STREAM_KEY": &s.streamKey, "STREAM_SECRET": &s.streamSecret, "VEIL_JWT_SECRET": &s.jwtSecret,
		"VEIL_SSKS_APP_KEY": &s.appKey, "VEIL_SSKS_HASH_KEY": &s.hashKey,
	}
}

func (s *devSecrets) text() []byte {
	b := []byte("# Secrets of 'veil dev' for the databases beside this file (development only).\n")
	for _, name := range []string{"STREAM_KEY", "STREAM_SECRET", "VEIL_JWT_SECRET", "VEIL_SSKS_APP_KEY", "VEIL_SSKS_HASH_KEY"} {
		b = fmt.Appendf(b, "%s=%s\n", name, *s.fields()[name])
	}
	return b
}

// readDevSecrets reads a dev-secrets file. It refuses one that others may
// read, or that lacks a value; its errors never quote a value.
func readDevSecrets(path string) (*devSecrets, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: group or others may access it: chmod 600 it", path)
	}
	data, err := readFileBounded(path, 4<<10)
	if err != nil {
		return nil, err
	}
	s := &devSecrets{}
	fields := s.fields()
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		p := fields[name]
		if !ok || p == nil || *p != "" {
			return nil, fmt.Errorf("%s: a line is not one of its five NAME=value settings", path)
		}
		*p = value
	}
	for name, p := range fields {
		valid := *p != ""
		if name != "STREAM_KEY" {
			b, err := hex.DecodeString(*p)
			valid = err == nil && len(b) == 32
		}
		if !valid {
			return nil, fmt.Errorf("%s: %s is missing or not 64 hex digits: delete the file to start afresh (with new databases)", path, name)
		}
	}
	return s, nil
}
