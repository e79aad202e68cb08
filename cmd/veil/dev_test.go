package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/twoman"
	"github.com/veilchat/veil/twoman/backend"
)

// devEnvNames are the variables veil dev prints.
var devEnvNames = []string{"STREAM_KEY", "STREAM_SECRET", "STREAM_CHAT_URL", "VEIL_KEYSERVICE_URL", "VEIL_JWT_SECRET", "VEIL_SSKS_URL", "VEIL_SSKS_APP_KEY"}

var reExport = regexp.MustCompile(`^export ([A-Z_]+)=(\S+)$`)

// readDevEnv reads veil dev's standard output up to its "# Ready" line and
// returns the exported variables and the other lines; the rest of the
// output is drained.
func readDevEnv(t *testing.T, r io.Reader) (map[string]string, []string) {
	t.Helper()
	env := map[string]string{}
	var comments []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if m := reExport.FindStringSubmatch(line); m != nil {
			env[m[1]] = m[2]
			continue
		}
		if !strings.HasPrefix(line, "# ") {
			t.Errorf("veil dev printed a line that is neither an export nor a comment: %q", line)
		}
		comments = append(comments, line)
		if strings.HasPrefix(line, "# Ready.") {
			go io.Copy(io.Discard, r)
			for _, name := range devEnvNames {
				if env[name] == "" {
					t.Fatalf("veil dev did not export %s: %v", name, env)
				}
			}
			return env, comments
		}
	}
	t.Fatalf("veil dev stopped before it was ready: %v", sc.Err())
	return nil, nil
}

// startDevInProcess runs veil dev with args through run, on free ports.
// stop cancels it and returns its exit status.
func startDevInProcess(t *testing.T, args ...string) (env map[string]string, comments []string, stderr *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr = &syncBuffer{}
	done := make(chan int, 1)
	args = append([]string{"dev", "--keyservice-addr", "127.0.0.1:0", "--ssks-addr", "127.0.0.1:0", "--stream-addr", "127.0.0.1:0"}, args...)
	go func() {
		done <- run(ctx, args, pw, stderr)
		pw.Close()
	}()
	stopped := false
	stop = func() int {
		if stopped {
			return 0
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(15 * time.Second):
			t.Fatal("veil dev did not stop within 15 s")
			return -1
		}
	}
	t.Cleanup(func() { stop() })
	env, comments = readDevEnv(t, pr)
	return env, comments, stderr, stop
}

// TestDev starts veil dev and uses every service with what it printed: the
// Stream emulator through stream-chat-go (configured by the environment,
// as a user's program would be), the key service through its client with a
// token minted from VEIL_JWT_SECRET and with a Stream user token, and the
// SSKS through the app backend's half and a device, with the code read from
// veil dev's log. Then it stops cleanly and removes its temporary data.
func TestDev(t *testing.T) {
	ctx := context.Background()
	env, comments, stderr, stop := startDevInProcess(t)
	for _, name := range devEnvNames {
		t.Setenv(name, env[name])
	}

	// Stream: stream-chat-go reads STREAM_KEY, STREAM_SECRET and STREAM_CHAT_URL.
	sc, err := stream.NewClientFromEnvVars()
	if err != nil {
		t.Fatal(err)
	}
	if sc.BaseURL != env["STREAM_CHAT_URL"] {
		t.Fatalf("stream-chat-go took base URL %q, not STREAM_CHAT_URL %q", sc.BaseURL, env["STREAM_CHAT_URL"])
	}
	if _, err := sc.UpsertUsers(ctx, &stream.User{ID: "alice"}, &stream.User{ID: "bob"}); err != nil {
		t.Fatal(err)
	}
	ch, err := sc.CreateChannelWithMembers(ctx, "messaging", "dev-test", "alice", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Channel.SendMessage(ctx, &stream.Message{Text: "hello"}, "alice"); err != nil {
		t.Fatal(err)
	}
	q, err := sc.QueryChannels(ctx, &stream.QueryOption{Filter: map[string]any{"id": "dev-test"}})
	if err != nil || len(q.Channels) != 1 || len(q.Channels[0].Messages) != 1 {
		t.Fatalf("the channel on the emulator: %+v, %v", q, err)
	}

	// Key service: a token signed with VEIL_JWT_SECRET writes and reads.
	alice, err := identity.Generate(nil, "alice", identity.Options{Kind: identity.KindX25519})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := server.UserToken([]byte(os.Getenv("VEIL_JWT_SECRET")), "", "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: os.Getenv("VEIL_KEYSERVICE_URL"), Token: keyservice.StaticToken(tok)})
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.PublishCard(ctx, alice.Card()); err != nil {
		t.Fatal(err)
	}
	// A Stream user token reads, and may not write.
	streamTok, err := sc.CreateToken("bob", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ksBob, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: os.Getenv("VEIL_KEYSERVICE_URL"), Token: keyservice.StaticToken(streamTok)})
	if err != nil {
		t.Fatal(err)
	}
	h, err := ksBob.History(ctx, "alice")
	if err != nil || len(h) != 1 || !h[0].Equal(alice.Card()) {
		t.Fatalf("alice's card read with bob's Stream token: %v, %v", h, err)
	}
	bob, _ := identity.Generate(nil, "bob", identity.Options{Kind: identity.KindX25519})
	var apiErr *keyservice.APIError
	if err := ksBob.PublishCard(ctx, bob.Card()); !errors.As(err, &apiErr) || apiErr.Code != keyservice.CodeStreamToken {
		t.Fatalf("a Stream token wrote: %v", err)
	}

	// SSKS: the backend's half starts a challenge with VEIL_SSKS_APP_KEY;
	// the code shows in veil dev's log; the device saves and retrieves the
	// identity with it.
	rec, err := backend.New(backend.Config{Keys: &backend.MemoryKeyStore{}, SSKSURL: os.Getenv("VEIL_SSKS_URL"), AppKey: backend.NewSecret([]byte(os.Getenv("VEIL_SSKS_APP_KEY")))})
	if err != nil {
		t.Fatal(err)
	}
	device, err := twoman.NewClient(twoman.ClientConfig{BaseURL: os.Getenv("VEIL_SSKS_URL")})
	if err != nil {
		t.Fatal(err)
	}
	email := twoman.Factor{Type: twoman.Email, Value: "alice@example.com"}
	codeSeen := 0
	nextCode := func() string {
		t.Helper()
		re := regexp.MustCompile(`code=(\d{8,12})`)
		for range 100 {
			if m := re.FindAllStringSubmatch(stderr.String(), -1); len(m) > codeSeen {
				codeSeen++
				return m[codeSeen-1][1]
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no code in veil dev's log:\n%s", stderr.String())
		return ""
	}
	s, err := rec.StartChallenge(ctx, "alice", email, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := device.SaveIdentity(ctx, s, nextCode(), alice); err != nil {
		t.Fatal(err)
	}
	if s, err = rec.StartChallenge(ctx, "alice", email, false); err != nil {
		t.Fatal(err)
	}
	got, err := device.RetrieveIdentity(ctx, s, nextCode())
	if err != nil || !got.Equal(alice) {
		t.Fatalf("the identity retrieved with the emailed code: %v", err)
	}

	// A clean stop removes the temporary data.
	var dataDir string
	for _, c := range comments {
		if d, ok := strings.CutPrefix(c, "# Data: "); ok {
			dataDir, _, _ = strings.Cut(d, " (removed at exit)")
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "keys.db")); err != nil {
		t.Fatalf("the data directory %q: %v (comments %q)", dataDir, err, comments)
	}
	if code := stop(); code != 0 {
		t.Fatalf("veil dev exited %d:\n%s", code, stderr.String())
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary data directory is still there: %v", err)
	}
	if !strings.Contains(stderr.String(), "INSECURE") || !strings.Contains(stderr.String(), "veil dev: stopped") {
		t.Errorf("the log lacks the insecure sender's warning or the stop:\n%s", stderr.String())
	}
	for _, secret := range []string{"VEIL_JWT_SECRET", "VEIL_SSKS_APP_KEY", "STREAM_SECRET"} {
		if strings.Contains(stderr.String(), env[secret]) {
			t.Errorf("the log holds %s", secret)
		}
	}
}

// TestDevDir: with --dir, the secrets and databases outlive the process: a
// second start has the same credentials and the card published before.
func TestDevDir(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "stack")
	env, _, _, stop := startDevInProcess(t, "--dir", dir)
	alice, _ := identity.Generate(nil, "alice", identity.Options{Kind: identity.KindX25519})
	tok, _ := server.UserToken([]byte(env["VEIL_JWT_SECRET"]), "", "alice", time.Hour)
	ks, _ := keyservice.NewClient(keyservice.ClientConfig{BaseURL: env["VEIL_KEYSERVICE_URL"], Token: keyservice.StaticToken(tok)})
	if err := ks.PublishCard(ctx, alice.Card()); err != nil {
		t.Fatal(err)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	fi, err := os.Stat(filepath.Join(dir, devSecretsFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the secrets file: %v %v", fi, err)
	}

	env2, _, _, stop2 := startDevInProcess(t, "--dir", dir)
	defer stop2()
	for _, name := range []string{"STREAM_KEY", "STREAM_SECRET", "VEIL_JWT_SECRET", "VEIL_SSKS_APP_KEY"} {
		if env2[name] != env[name] {
			t.Errorf("%s changed across restarts", name)
		}
	}
	ks2, _ := keyservice.NewClient(keyservice.ClientConfig{BaseURL: env2["VEIL_KEYSERVICE_URL"], Token: keyservice.StaticToken(tok)})
	if h, err := ks2.History(ctx, "alice"); err != nil || len(h) != 1 || !h[0].Equal(alice.Card()) {
		t.Errorf("alice's card after a restart: %v", err)
	}
	if err := stop2(); err != 0 {
		t.Fatalf("exit %d", err)
	}

	// A secrets file others may read is refused; so is a damaged one.
	os.Chmod(filepath.Join(dir, devSecretsFile), 0o644)
	if code, _, errOut := runVeil("dev", "--dir", dir, "--keyservice-addr", "127.0.0.1:0", "--ssks-addr", "127.0.0.1:0", "--stream-addr", "127.0.0.1:0"); code != 1 || !strings.Contains(errOut, "chmod 600") {
		t.Errorf("a readable secrets file: exit %d, %q", code, errOut)
	}
	os.Chmod(filepath.Join(dir, devSecretsFile), 0o600)
	os.WriteFile(filepath.Join(dir, devSecretsFile), []byte("VEIL_JWT_SECRET=short\n"), 0o600)
	if code, _, errOut := runVeil("dev", "--dir", dir, "--keyservice-addr", "127.0.0.1:0", "--ssks-addr", "127.0.0.1:0", "--stream-addr", "127.0.0.1:0"); code != 1 || !strings.Contains(errOut, "delete the file") || strings.Contains(errOut, "short") {
		t.Errorf("a damaged secrets file: exit %d, %q", code, errOut)
	}
}

// TestDevBusyPort: a port in use fails the start, names the address, and
// leaves nothing running.
func TestDevBusyPort(t *testing.T) {
	env, _, _, stop := startDevInProcess(t)
	defer stop()
	busy := strings.TrimPrefix(env["VEIL_KEYSERVICE_URL"], "http://")
	code, _, errOut := runVeil("dev", "--keyservice-addr", "127.0.0.1:0", "--ssks-addr", "127.0.0.1:0", "--stream-addr", busy)
	if code != 1 || !strings.Contains(errOut, busy) {
		t.Errorf("a busy port: exit %d, %q", code, errOut)
	}
}

// TestDevSignal runs the built binary and stops it with SIGINT, then
// SIGTERM: each time it exits 0 after shutting down.
func TestDevSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, err := buildVeil()
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		cmd := exec.Command(bin, "dev", "--keyservice-addr", "127.0.0.1:0", "--ssks-addr", "127.0.0.1:0", "--stream-addr", "127.0.0.1:0")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		stderr := &syncBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		env, _ := readDevEnv(t, stdout)
		resp, err := http.Get(env["VEIL_KEYSERVICE_URL"] + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("/healthz: %v %v", resp, err)
		}
		resp.Body.Close()
		cmd.Process.Signal(sig)
		errc := make(chan error, 1)
		go func() { errc <- cmd.Wait() }()
		select {
		case err := <-errc:
			if err != nil || !strings.Contains(stderr.String(), "veil dev: stopped") {
				t.Errorf("%v: %v\n%s", sig, err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("%v: veil dev did not stop", sig)
		}
	}
}
