package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/examples/bot/echobot"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/streamadapter"
	"github.com/veilchat/veil/streamadapter/streamtest"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// stack is what `veil dev` runs, in the test: the Stream emulator and the
// key service, whose tokens are HS256 JWTs under jwtSecret.
type stack struct {
	emu       *streamtest.Server
	ksURL     string
	jwtSecret []byte
}

func newStack(t *testing.T) *stack {
	t.Helper()
	secret := []byte(strings.Repeat("s3cr3t-", 6))
	store, err := server.OpenStore(context.Background(), filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h, err := server.NewHandler(server.Config{Store: store, Auth: server.Auth{Keys: []server.Key{{HS256: server.NewSecret(secret)}}}})
	if err != nil {
		t.Fatal(err)
	}
	ks := httptest.NewServer(h)
	t.Cleanup(ks.Close)
	return &stack{emu: streamtest.NewTestServer(t, streamtest.Config{}), ksURL: ks.URL, jwtSecret: secret}
}

// env is the environment `veil dev` prints, for this stack.
func (s *stack) env() map[string]string {
	return map[string]string{
		"STREAM_KEY":          s.emu.APIKey(),
		"STREAM_SECRET":       s.emu.APISecret(),
		"STREAM_CHAT_URL":     s.emu.URL,
		"VEIL_KEYSERVICE_URL": s.ksURL,
		"VEIL_JWT_SECRET":     string(s.jwtSecret),
	}
}

// user returns a Veil user on the stack's Stream.
func (s *stack) user(t *testing.T, name string) *streamadapter.Client {
	t.Helper()
	ctx := context.Background()
	sc := s.emu.Client()
	if _, err := sc.UpsertUser(ctx, &stream.User{ID: name}); err != nil {
		t.Fatal(err)
	}
	tok, err := server.UserToken(s.jwtSecret, "", name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: s.ksURL, Token: keyservice.StaticToken(tok)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := streamadapter.New(ctx, streamadapter.Config{Stream: sc, Veil: e2ee.Config{UserID: name, KeyService: ks}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startBot runs the program with args and env until the test ends or stop
// is called; it returns the bot's standard output once it is ready.
func startBot(t *testing.T, env map[string]string, args ...string) (stdout *syncBuffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(k string) string { return env[k] }, stdout, stderr) }()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the bot stopped with %v\n%s", err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the bot did not stop")
		}
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(stdout.String(), "bot: ready"); {
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("the bot stopped before it was ready: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bot is not ready after 15 s:\n%s\n%s", stdout.String(), stderr.String())
		}
	}
	return stdout, stop
}

// answerTo waits for the bot's answer to the message msgID in ch, as the
// channel's member reads it.
func answerTo(t *testing.T, ch *streamadapter.Channel, botID, msgID string) *streamadapter.Message {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		q, err := ch.Query(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range q.Messages {
			if m.User != nil && m.User.ID == botID && m.QuotedMessageID == msgID {
				return m
			}
		}
	}
	t.Fatalf("no answer from %s to %s within 10 s", botID, msgID)
	return nil
}

// answersTo waits until the bot has answered msgID want times in ch, or a
// second has passed after the last new answer, and returns the count.
func answersTo(t *testing.T, ch *streamadapter.Channel, msgID string, want int) int {
	t.Helper()
	n, last := 0, time.Now()
	for time.Since(last) < time.Second {
		q, err := ch.Query(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		count := 0
		for _, m := range q.Messages {
			if m.User != nil && m.User.ID == echobot.DefaultUserID && m.QuotedMessageID == msgID {
				count++
			}
		}
		if count != n {
			n, last = count, time.Now()
		}
		if n > want {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// TestRun runs the bot against a stack configured as `veil dev` prints it,
// registered as the app's webhook: alice creates an encrypted channel with
// it and writes; she reads its answers decrypted; Stream holds neither
// text. Restarted on the same state, the bot keeps its identity and still
// reads the channel.
func TestRun(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	state := filepath.Join(t.TempDir(), "state")
	out, stop := startBot(t, s.env(), "--addr", "127.0.0.1:0", "--state", state, "--register")

	fp := regexp.MustCompile(`bot: veil-bot, identity fingerprint (\S[^\n]*)\n`).FindStringSubmatch(out.String())
	hook := regexp.MustCompile(`bot: webhook at (\S+)\n`).FindStringSubmatch(out.String())
	if fp == nil || hook == nil || !strings.Contains(out.String(), "set as the Stream app's webhook_url") {
		t.Fatalf("the bot's output:\n%s", out.String())
	}
	settings, err := s.emu.Client().GetAppSettings(ctx)
	if err != nil || settings.App.WebhookURL == nil || *settings.App.WebhookURL != hook[1] {
		t.Fatalf("the app's webhook_url: %+v %v, want %s", settings, err, hook[1])
	}

	alice := s.user(t, "alice")
	ch, err := alice.CreateChannel(ctx, "messaging", "alice-bot", []string{echobot.DefaultUserID})
	if err != nil {
		t.Fatal(err)
	}
	secret := "the launch code is 0000-7741"
	sent, err := ch.SendMessage(ctx, &stream.Message{Text: secret})
	if err != nil {
		t.Fatal(err)
	}
	got := answerTo(t, ch, echobot.DefaultUserID, sent.ID)
	if got.Status != streamadapter.StatusDecrypted || got.Text != "you said: "+secret {
		t.Fatalf("the answer as alice reads it: %v %q %v", got.Status, got.Text, got.Err)
	}
	cmd, err := ch.SendMessage(ctx, &stream.Message{Text: "/fingerprint"})
	if err != nil {
		t.Fatal(err)
	}
	if got := answerTo(t, ch, echobot.DefaultUserID, cmd.ID); got.Status != streamadapter.StatusDecrypted || !strings.Contains(got.Text, fp[1]) {
		t.Fatalf("the answer to /fingerprint: %v %q, want the fingerprint %s", got.Status, got.Text, fp[1])
	}

	for _, plain := range []string{"0000-7741", "you said", "fingerprint"} {
		if where := s.emu.Snapshot().Find([]byte(plain)); len(where) > 0 {
			t.Errorf("Stream holds %q at %v", plain, where)
		}
	}
	// A call Stream sends again (the same X-Webhook-Id) is answered once:
	// alice's message.new, signed as Stream signs it, sent twice under a
	// new ID gets one more answer, not two.
	var body []byte
	for _, b := range s.emu.Snapshot().Webhooks {
		var ev struct {
			Type    string `json:"type"`
			Message struct {
				ID string `json:"id"`
			} `json:"message"`
		}
		if json.Unmarshal(b, &ev) == nil && ev.Type == "message.new" && ev.Message.ID == sent.ID {
			body = b
		}
	}
	if body == nil {
		t.Fatal("no message.new call for alice's message in the snapshot")
	}
	mac := hmac.New(sha256.New, []byte(s.emu.APISecret()))
	mac.Write(body)
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, hook[1], bytes.NewReader(body))
		req.Header.Set("X-Signature", hex.EncodeToString(mac.Sum(nil)))
		req.Header.Set("X-Webhook-Id", "replayed-call")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("the replayed call: HTTP %d", resp.StatusCode)
		}
	}
	if n := answersTo(t, ch, sent.ID, 2); n != 2 {
		t.Fatalf("%d answers to alice's message after a call sent twice, want 2 (the first, and one for the replay)", n)
	}

	fi, err := os.Stat(filepath.Join(state, echobot.StateKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the state key file: %v %v", fi, err)
	}

	// The same state after a restart: the same identity, and the channel
	// still answered.
	stop()
	out, _ = startBot(t, s.env(), "--addr", "127.0.0.1:0", "--state", state, "--register")
	if !strings.Contains(out.String(), "identity fingerprint "+fp[1]+"\n") {
		t.Fatalf("the bot changed identity across a restart (was %s):\n%s", fp[1], out.String())
	}
	again, err := ch.SendMessage(ctx, &stream.Message{Text: "still there?"})
	if err != nil {
		t.Fatal(err)
	}
	if got := answerTo(t, ch, echobot.DefaultUserID, again.ID); got.Status != streamadapter.StatusDecrypted || got.Text != "you said: still there?" {
		t.Fatalf("the answer after a restart: %v %q %v", got.Status, got.Text, got.Err)
	}
}

// TestRunConfig: a configuration the bot cannot run with fails before it
// starts, with an error that names the setting and the fix and quotes no
// secret.
func TestRunConfig(t *testing.T) {
	s := newStack(t)
	unreadable := t.TempDir()
	os.WriteFile(filepath.Join(unreadable, echobot.StateKeyFile), []byte(strings.Repeat("ab", 32)+"\n"), 0o644)
	damaged := t.TempDir()
	os.WriteFile(filepath.Join(damaged, echobot.StateKeyFile), []byte("not a key\n"), 0o600)
	tests := []struct {
		name   string
		unset  string
		set    map[string]string
		args   []string
		want   string
		reason string
	}{
		{name: "no key service", unset: "VEIL_KEYSERVICE_URL", want: "VEIL_KEYSERVICE_URL is not set: run 'veil dev'",
			reason: "a shell without veil dev's exports"},
		{name: "no Stream secret", unset: "STREAM_SECRET", want: "STREAM_SECRET is not set",
			reason: "the bot checks the webhook's signature with it"},
		{name: "short JWT secret", set: map[string]string{"VEIL_JWT_SECRET": "short"}, want: "VEIL_JWT_SECRET is shorter than 32 bytes",
			reason: "the key service would refuse every token"},
		{name: "bad state key", set: map[string]string{"VEIL_BOT_STATE_KEY": "secretvalue"}, want: "VEIL_BOT_STATE_KEY is not 64 hex digits",
			reason: "a key that is not one"},
		{name: "readable key file", args: []string{"--state", unreadable}, want: "chmod 600",
			reason: "a state key others may read"},
		{name: "damaged key file", args: []string{"--state", damaged}, want: "does not hold a state key",
			reason: "a key file that is not one"},
		{name: "argument", args: []string{"extra"}, want: `unexpected argument "extra"`,
			reason: "the bot takes flags only"},
		{name: "every interface, registered", args: []string{"--addr", "0.0.0.0:0", "--register"}, want: "give --webhook-url",
			reason: "http://0.0.0.0 is no address Stream can call"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := s.env()
			delete(env, tt.unset)
			for k, v := range tt.set {
				env[k] = v
			}
			args := append([]string{"--addr", "127.0.0.1:0", "--state", filepath.Join(t.TempDir(), "state")}, tt.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var stderr syncBuffer
			err := run(ctx, args, func(k string) string { return env[k] }, &syncBuffer{}, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q: %s", err, tt.want, tt.reason)
			}
			for _, secret := range []string{env["STREAM_SECRET"], "secretvalue", strings.Repeat("ab", 32)} {
				if secret != "" && strings.Contains(fmt.Sprint(err)+stderr.String(), secret) {
					t.Errorf("the error or the log quotes a secret: %v", err)
				}
			}
		})
	}
}
