package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"
	"github.com/golang-jwt/jwt/v5"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/streamadapter"
	"github.com/veilchat/veil/streamadapter/streamtest"
	"github.com/veilchat/veil/twoman"
	"github.com/veilchat/veil/twoman/ssks"
)

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

// outbox is the SSKS's sender in the test: the user's mailbox.
type outbox struct {
	mu    sync.Mutex
	codes map[string][]string // factor value → codes sent
}

func (o *outbox) Send(_ context.Context, c ssks.Challenge) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.codes[c.Factor.Value] = append(o.codes[c.Factor.Value], c.Code.Reveal())
	return nil
}

func (o *outbox) last(to string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c := o.codes[to]; len(c) > 0 {
		return c[len(c)-1]
	}
	return ""
}

// services are what the backend talks to: Stream (its emulator) and the
// SSKS, another party's.
type services struct {
	emu  *streamtest.Server
	ssks string
	mail *outbox
	env  map[string]string
}

func newServices(t *testing.T) *services {
	t.Helper()
	store, err := ssks.OpenStore(context.Background(), filepath.Join(t.TempDir(), "ssks.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	appKey := strings.Repeat("0123456789abcdef", 4)
	hashKey := make([]byte, 32)
	rand.Read(hashKey)
	mail := &outbox{codes: map[string][]string{}}
	h, err := ssks.NewHandler(ssks.Config{Store: store, AppKeys: []ssks.Secret{ssks.NewSecret([]byte(appKey))}, HashKey: ssks.NewSecret(hashKey), Sender: mail})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	emu := streamtest.NewTestServer(t, streamtest.Config{})
	return &services{emu: emu, ssks: srv.URL, mail: mail, env: map[string]string{
		"STREAM_KEY": emu.APIKey(), "STREAM_SECRET": emu.APISecret(), "STREAM_CHAT_URL": emu.URL,
		"VEIL_SSKS_URL": srv.URL, "VEIL_SSKS_APP_KEY": appKey,
	}}
}

var (
	reBase   = regexp.MustCompile(`(?m)^backend: (http://\S+)$`)
	rePublic = regexp.MustCompile(`(?m)^backend: key service at \S+, verifying EdDSA tokens with key (\S+)=(\S+)$`)
)

// startBackend runs the program until the test ends or stop is called, and
// returns its URL and its public key once it is ready.
func startBackend(t *testing.T, env map[string]string, args ...string) (base string, pub ed25519.PublicKey, kid string, stop func()) {
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
				t.Errorf("the backend stopped with %v\n%s", err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the backend did not stop")
		}
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(stdout.String(), "backend: ready"); {
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("the backend stopped before it was ready: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backend is not ready after 15 s:\n%s", stderr.String())
		}
	}
	out := stdout.String()
	m, p := reBase.FindStringSubmatch(out), rePublic.FindStringSubmatch(out)
	if m == nil || p == nil {
		t.Fatalf("the backend's output:\n%s", out)
	}
	raw, err := base64.StdEncoding.DecodeString(p[2])
	if err != nil || len(raw) != ed25519.PublicKeySize {
		t.Fatalf("the printed public key %q: %v", p[2], err)
	}
	for _, secret := range []string{env["STREAM_SECRET"], env["VEIL_SSKS_APP_KEY"]} {
		if strings.Contains(out+stderr.String(), secret) {
			t.Errorf("the backend's output or log holds a secret")
		}
	}
	return m[1], raw, p[1], stop
}

// call sends a request to the backend, with HTTP Basic credentials if user
// is set, and returns the status and the body.
func call(t *testing.T, method, url, user, password string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if s, ok := body.(string); ok {
		r = strings.NewReader(s)
	} else if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}

// device is a user's Veil client on a device of the app: it logs in to the
// backend and asks it for key-service tokens, refreshed when they near
// their expiry.
func device(t *testing.T, s *services, base, user, password string, refreshes *atomic.Int32) *streamadapter.Client {
	t.Helper()
	var (
		mu  sync.Mutex
		tok tokensResponse
	)
	ks, err := keyservice.NewClient(keyservice.ClientConfig{
		BaseURL: base + KeyServicePath,
		Token: func(context.Context) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			if time.Until(tok.ExpiresAt) < time.Minute {
				status, b := call(t, http.MethodPost, base+"/v1/tokens", user, password, nil)
				if status != http.StatusOK {
					return "", fmt.Errorf("token refresh: HTTP %d %s", status, b)
				}
				if err := json.Unmarshal(b, &tok); err != nil {
					return "", err
				}
				refreshes.Add(1)
			}
			return tok.KeyServiceToken, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := streamadapter.New(context.Background(), streamadapter.Config{Stream: s.emu.Client(), Veil: e2ee.Config{UserID: user, KeyService: ks}})
	if err != nil {
		t.Fatalf("%s's device: %v", user, err)
	}
	return c
}

// TestBackend drives the backend over HTTP as an app does: sign-up, tokens
// the key service accepts (a conversation between two devices whose only
// credentials are the backend's tokens), tokens it refuses, and a
// two-man-rule challenge whose session saves and retrieves an identity
// with the emailed code. Restarted on its data, it keeps its key, its
// accounts and the key service's data.
func TestBackend(t *testing.T) {
	ctx := context.Background()
	s := newServices(t)
	data := filepath.Join(t.TempDir(), "data")
	base, pub, kid, stop := startBackend(t, s.env, "--addr", "127.0.0.1:0", "--data", data)

	// Sign-up: the account, the Stream user, and tokens.
	signUps := map[string]tokensResponse{}
	for _, u := range []string{"alice", "bob"} {
		status, b := call(t, http.MethodPost, base+"/v1/signup", "", "", signUpRequest{UserID: u, Name: strings.ToUpper(u), Email: u + "@example.com", Password: u + "-password"})
		if status != http.StatusCreated {
			t.Fatalf("sign-up of %s: HTTP %d %s", u, status, b)
		}
		signUps[u] = decode[tokensResponse](t, b)
	}
	users, err := s.emu.Client().QueryUsers(ctx, &stream.QueryOption{Filter: map[string]any{"id": map[string]any{"$in": []string{"alice", "bob"}}}})
	if err != nil || len(users.Users) != 2 {
		t.Fatalf("the Stream users after sign-up: %+v %v", users, err)
	}

	// The Stream token is signed with the Stream secret, for the user; the
	// key-service token with the backend's Ed25519 key, naming it.
	alice := signUps["alice"]
	var sc userClaims
	if _, err := jwt.ParseWithClaims(alice.StreamToken, &sc, func(*jwt.Token) (any, error) { return []byte(s.emu.APISecret()), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()); err != nil || sc.UserID != "alice" {
		t.Fatalf("alice's Stream token: %+v %v", sc, err)
	}
	var kc userClaims
	kt, err := jwt.ParseWithClaims(alice.KeyServiceToken, &kc, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithExpirationRequired())
	if err != nil || kc.UserID != "alice" || kt.Header["kid"] != kid || time.Until(kc.ExpiresAt.Time) > tokenTTL || time.Until(kc.ExpiresAt.Time) < tokenTTL-time.Minute {
		t.Fatalf("alice's key-service token: %+v %v %v", kc, kt, err)
	}

	bad := []struct {
		name   string
		body   any
		status int
		code   string
		reason string
	}{
		{name: "taken", body: signUpRequest{UserID: "alice", Email: "mallory@example.com", Password: "mallory-password"}, status: http.StatusConflict, code: "user_exists",
			reason: "a second sign-up must not take over an account"},
		{name: "bad user ID", body: signUpRequest{UserID: "al ice", Email: "a@example.com", Password: "long-enough"}, status: http.StatusBadRequest, code: "bad_request",
			reason: "Stream refuses spaces in user IDs"},
		{name: "bad email", body: signUpRequest{UserID: "carol", Email: "not an address", Password: "long-enough"}, status: http.StatusBadRequest, code: "bad_request",
			reason: "recovery codes go to this address"},
		{name: "short password", body: signUpRequest{UserID: "carol", Email: "carol@example.com", Password: "short"}, status: http.StatusBadRequest, code: "bad_request",
			reason: "the stub's minimum"},
		{name: "unknown field", body: `{"user_id": "carol", "email": "carol@example.com", "password": "long-enough", "admin": true}`, status: http.StatusBadRequest, code: "bad_request",
			reason: "a field the route does not take is a client's mistake"},
		{name: "not JSON", body: "user_id=carol", status: http.StatusBadRequest, code: "bad_request", reason: "a form is not JSON"},
		{name: "too big", body: `{"user_id": "` + strings.Repeat("c", 8<<10) + `"}`, status: http.StatusBadRequest, code: "bad_request", reason: "bodies are bounded"},
	}
	for _, tt := range bad {
		status, b := call(t, http.MethodPost, base+"/v1/signup", "", "", tt.body)
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		json.Unmarshal(b, &e)
		if status != tt.status || e.Error.Code != tt.code {
			t.Errorf("sign-up %s: HTTP %d %s, want %d %s: %s", tt.name, status, b, tt.status, tt.code, tt.reason)
		}
	}
	for _, tt := range []struct{ name, user, password, path string }{
		{"no credentials", "", "", "/v1/tokens"},
		{"wrong password", "alice", "bob-password", "/v1/tokens"},
		{"unknown user", "mallory", "mallory-password", "/v1/tokens"},
		{"challenge, wrong password", "alice", "alice-passwor", "/v1/challenge"},
	} {
		if status, b := call(t, http.MethodPost, base+tt.path, tt.user, tt.password, nil); status != http.StatusUnauthorized || bytes.Contains(b, []byte("token")) {
			t.Errorf("%s: HTTP %d %s, want 401 and no token", tt.name, status, b)
		}
	}

	// Tokens the key service accepts: two devices whose only credentials
	// for it are the backend's tokens publish their cards, make a session
	// and talk.
	var refreshes atomic.Int32
	aliceDev := device(t, s, base, "alice", "alice-password", &refreshes)
	bobDev := device(t, s, base, "bob", "bob-password", &refreshes)
	ch, err := aliceDev.CreateChannel(ctx, "messaging", "plans", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.SendMessage(ctx, &stream.Message{Text: "meet at the usual place"}); err != nil {
		t.Fatal(err)
	}
	bobs, err := bobDev.Channel(ctx, "messaging", "plans")
	if err != nil {
		t.Fatal(err)
	}
	q, err := bobs.Query(ctx, nil)
	if err != nil || len(q.Messages) != 1 || q.Messages[0].Status != streamadapter.StatusDecrypted || q.Messages[0].Text != "meet at the usual place" {
		t.Fatalf("bob reads %+v %v", q, err)
	}
	if n := refreshes.Load(); n != 2 {
		t.Errorf("the devices refreshed their tokens %d times, want once each", n)
	}

	// Tokens it refuses: one signed with another Ed25519 key, and a
	// Stream token, which Stream could sign for anyone.
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	forged, _ := (&signer{key: otherKey, keyID: kid}).userToken("alice", time.Now(), time.Now().Add(time.Hour))
	for _, tt := range []struct {
		name, token string
		status      int
	}{
		{"the backend's token", alice.KeyServiceToken, http.StatusOK},
		{"another key's token", forged, http.StatusUnauthorized},
		{"a Stream token", alice.StreamToken, http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest(http.MethodGet, base+KeyServicePath+"/v1/users/bob/cards", nil)
		req.Header.Set("Authorization", "Bearer "+tt.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("the key service with %s: HTTP %d, want %d", tt.name, resp.StatusCode, tt.status)
		}
	}
	if status, _ := call(t, http.MethodGet, base+KeyServicePath+"/metrics", "", "", nil); status != http.StatusNotFound {
		t.Errorf("the key service's metrics are served on the public address: HTTP %d", status)
	}

	// A challenge: the code goes to the account's address; with it, the
	// session from the backend saves alice's identity, and a second one
	// retrieves it.
	ssksClient, err := twoman.NewClient(twoman.ClientConfig{BaseURL: s.ssks})
	if err != nil {
		t.Fatal(err)
	}
	challenge := func() *twoman.Session {
		t.Helper()
		status, b := call(t, http.MethodPost, base+"/v1/challenge", "alice", "alice-password", nil)
		if status != http.StatusOK {
			t.Fatalf("challenge: HTTP %d %s", status, b)
		}
		c := decode[challengeResponse](t, b)
		raw, err := base64.StdEncoding.DecodeString(c.RuleKey)
		if err != nil {
			t.Fatal(err)
		}
		rk, err := twoman.ParseRuleKey(raw)
		if err != nil {
			t.Fatal(err)
		}
		if c.UserID != "alice" || c.Factor != (twoman.Factor{Type: twoman.Email, Value: "alice@example.com"}) || !c.MustAuthenticate {
			t.Fatalf("the challenge: %+v", c)
		}
		return &twoman.Session{UserID: c.UserID, Factor: c.Factor, SessionID: c.SessionID, RuleKey: rk, MustAuthenticate: c.MustAuthenticate, ExpiresAt: c.ExpiresAt}
	}
	id := aliceDev.Veil().Identity()
	if err := ssksClient.SaveIdentity(ctx, challenge(), s.mail.last("alice@example.com"), id); err != nil {
		t.Fatalf("saving alice's identity with the session and the code: %v", err)
	}
	got, err := ssksClient.RetrieveIdentity(ctx, challenge(), s.mail.last("alice@example.com"))
	if err != nil || !got.Equal(id) {
		t.Fatalf("retrieving alice's identity: %v", err)
	}

	// A restart on the same data keeps the key (tokens issued before still
	// work), the accounts and the key service's data.
	stop()
	fi, err := os.Stat(filepath.Join(data, "jwt-ed25519.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the signing key file: %v %v", fi, err)
	}
	base, pub2, _, _ := startBackend(t, s.env, "--addr", "127.0.0.1:0", "--data", data)
	if !pub2.Equal(pub) {
		t.Fatal("the backend's public key changed across a restart")
	}
	if status, b := call(t, http.MethodPost, base+"/v1/tokens", "bob", "bob-password", nil); status != http.StatusOK {
		t.Fatalf("bob's login after a restart: HTTP %d %s", status, b)
	}
	ks, _ := keyservice.NewClient(keyservice.ClientConfig{BaseURL: base + KeyServicePath, Token: keyservice.StaticToken(alice.KeyServiceToken)})
	if h, err := ks.History(ctx, "bob"); err != nil || len(h) != 1 {
		t.Fatalf("bob's card after a restart, with a token issued before: %v %v", h, err)
	}
}

// TestBackendConfig: a configuration the backend cannot run with fails
// before it serves, naming the setting and the fix.
func TestBackendConfig(t *testing.T) {
	s := newServices(t)
	readable := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(readable, []byte("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"), 0o644)
	notKey := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(notKey, []byte("hello"), 0o600)
	tests := []struct {
		name   string
		unset  string
		args   []string
		want   string
		reason string
	}{
		{name: "no SSKS", unset: "VEIL_SSKS_URL", want: "VEIL_SSKS_URL is not set: run 'veil dev'", reason: "the two-man rule needs the SSKS"},
		{name: "no Stream secret", unset: "STREAM_SECRET", want: "STREAM_SECRET is not set", reason: "Stream tokens are signed with it"},
		{name: "missing key file", args: []string{"--signing-key", filepath.Join(t.TempDir(), "none.pem")}, want: "the signing key", reason: "a key given is never generated"},
		{name: "readable key file", args: []string{"--signing-key", readable}, want: "chmod 600", reason: "a private key others may read"},
		{name: "not a key", args: []string{"--signing-key", notKey}, want: "openssl genpkey -algorithm ed25519", reason: "the fix names the command"},
		{name: "argument", args: []string{"serve"}, want: `unexpected argument "serve"`, reason: "flags only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range s.env {
				env[k] = v
			}
			delete(env, tt.unset)
			args := append([]string{"--addr", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "data")}, tt.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, args, func(k string) string { return env[k] }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q: %s", err, tt.want, tt.reason)
			}
		})
	}
}
