package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/veilchat/veil/internal/pgtest"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/session"
)

var crashSecret = strings.Repeat("s", 32)

// buildVeil compiles this command once per test binary.
var buildVeil = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "veil-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "veil")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// startVeil runs the built binary with env added to the environment and
// args, waits for the line announcing its URL, and returns the process, the
// URL and its standard error so far and to come.
func startVeil(t *testing.T, bin string, env []string, args ...string) (*exec.Cmd, string, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("veil printed nothing; stderr:\n%s", stderr.String())
	}
	line := lines.Text()
	i := strings.Index(line, "http://")
	if i < 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("unexpected first line %q", line)
	}
	go func() {
		for lines.Scan() {
		}
	}()
	return cmd, strings.Fields(line[i:])[0], stderr
}

// startServe starts the key service on db with the test's secret.
func startServe(t *testing.T, bin, db string) (*exec.Cmd, string) {
	cmd, url, _ := startVeil(t, bin, []string{"VEIL_JWT_SECRETS=" + crashSecret}, "serve", "--create", "--addr", "127.0.0.1:0", "--db", db, "--rate", "100000")
	return cmd, url
}

// TestCrashSafety kills `veil serve` with SIGKILL in the middle of a stream
// of writes, restarts it on the same database, and checks that every write
// it had acknowledged is there.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, err := buildVeil()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("sqlite", func(t *testing.T) {
		crashOnce(t, bin, filepath.Join(t.TempDir(), "keys.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		crashOnce(t, bin, pgtest.DSN(t))
	})
}

func crashOnce(t *testing.T, bin, db string) {
	const users = 400
	cards := make([]*identity.Card, users)
	for i := range cards {
		id, err := identity.Generate(testrand.New(fmt.Sprint("crash", i)), fmt.Sprintf("u%03d", i), identity.Options{Kind: identity.KindX25519})
		if err != nil {
			t.Fatal(err)
		}
		cards[i] = id.Card()
	}
	cmd, base := startServe(t, bin, db)

	type ack struct {
		user    int
		session string // empty for a card write
	}
	var (
		mu    sync.Mutex
		acked []ack
		wg    sync.WaitGroup
	)
	client := &http.Client{Timeout: 5 * time.Second}
	do := func(method, path, user string, body any) (int, []byte) {
		tok, _ := server.UserToken([]byte(crashSecret), "", user, time.Hour)
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		out.ReadFrom(resp.Body)
		return resp.StatusCode, out.Bytes()
	}
	ctx, cancel := context.WithCancel(context.Background())
	const writers = 8
	for w := range writers {
		wg.Go(func() {
			for i := w; i < users && ctx.Err() == nil; i += writers {
				user := cards[i].UserID()
				if s, _ := do("PUT", "/v1/users/"+user+"/cards", user, map[string]any{"card": cards[i].Marshal()}); s != 201 {
					continue
				}
				mu.Lock()
				acked = append(acked, ack{user: i})
				mu.Unlock()
				sid, _ := session.NewID(nil)
				body := map[string]any{"id": sid.String(), "channel_cid": "crash:" + user,
					"grants": []map[string]any{{"grantee": user, "epoch": 0, "grant": []byte("age-encryption.org/v1\n")}}}
				if s, _ := do("POST", "/v1/sessions", user, body); s == 201 {
					mu.Lock()
					acked = append(acked, ack{user: i, session: sid.String()})
					mu.Unlock()
				}
			}
		})
	}
	// Kill once a good number of writes were acknowledged, mid-stream.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 150 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 20 {
		t.Fatalf("only %d writes acknowledged before the kill; the test proves nothing", len(acked))
	}
	if len(acked) >= 2*users {
		t.Fatalf("every write finished before the kill; the test proves nothing")
	}

	cmd2, base2 := startServe(t, bin, db)
	defer func() { cmd2.Process.Kill(); cmd2.Wait() }()
	base = base2
	for _, a := range acked {
		user := cards[a.user].UserID()
		if a.session == "" {
			s, body := do("GET", "/v1/users/"+user+"/cards", user, nil)
			var resp struct{ Cards [][]byte }
			json.Unmarshal(body, &resp)
			if s != 200 || len(resp.Cards) != 1 || !bytes.Equal(resp.Cards[0], cards[a.user].Marshal()) {
				t.Errorf("acknowledged card of %s lost after the crash: %d", user, s)
			}
			continue
		}
		s, body := do("GET", "/v1/sessions?channel_cid=crash:"+user, user, nil)
		if s != 200 || !strings.Contains(string(body), a.session) {
			t.Errorf("acknowledged session of %s lost after the crash: %d %s", user, s, body)
		}
	}
	t.Logf("%d acknowledged writes before SIGKILL, all present after restart", len(acked))
}
