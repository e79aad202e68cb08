package ssks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/veilchat/veil/twoman/backend"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/session"
	"github.com/veilchat/veil/twoman"
	"github.com/veilchat/veil/twoman/internal/wire"
)

var appKey = bytes.Repeat([]byte("a"), 32)

// capture is a Sender that keeps the last code per user, as the user's
// mailbox would.
type capture struct {
	mu    sync.Mutex
	codes map[string]string
	sent  int
}

func (c *capture) Send(_ context.Context, ch Challenge) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.codes == nil {
		c.codes = map[string]string{}
	}
	c.codes[ch.UserID] = ch.Code.Reveal()
	c.sent++
	return nil
}

func (c *capture) code(user string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.codes[user]
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	store   Store
	srv     *httptest.Server
	sender  *capture
	clock   *clock
	backend *backend.Backend
	keys    *backend.MemoryKeyStore
	client  *twoman.Client
	logs    *bytes.Buffer
}

func openTestStore(t testing.TB) Store {
	t.Helper()
	st, err := OpenStore(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "ssks.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newFixture(t testing.TB, mutate ...func(*Config)) *fixture {
	t.Helper()
	f := &fixture{store: openTestStore(t), sender: &capture{}, clock: &clock{now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}, keys: &backend.MemoryKeyStore{}, logs: &bytes.Buffer{}}
	cfg := Config{Store: f.store, AppKeys: []Secret{NewSecret(appKey)}, HashKey: NewSecret(bytes.Repeat([]byte("h"), 32)), Sender: f.sender,
		Now: f.clock.Now, Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: f.logs}, nil)),
		// The clock stands still: a bucket would never refill. The rate
		// limit's own tests set one.
		RateLimit: rate.Inf}
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(s)
	t.Cleanup(f.srv.Close)
	if f.backend, err = backend.New(backend.Config{Keys: f.keys, SSKSURL: f.srv.URL, AppKey: backend.NewSecret(appKey)}); err != nil {
		t.Fatal(err)
	}
	// Password tests use the cheapest parameters the bounds allow.
	weakest := twoman.PasswordParams{Time: 1, Memory: twoman.MinPasswordMemory}
	if f.client, err = twoman.NewClient(twoman.ClientConfig{BaseURL: f.srv.URL, MinPasswordParams: &weakest}); err != nil {
		t.Fatal(err)
	}
	return f
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

var aliceEmail = twoman.Factor{Type: twoman.Email, Value: "Alice@Example.com"}

func apiCode(err error) string {
	var ae *twoman.APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

func TestReferenceFlow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)

	// Sign-up: the device creates the identity; the backend starts a
	// challenge; the user proves the factor with the code it receives.
	alice, err := identity.Generate(testrand.New("alice"), "alice", identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s1, err := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	if err != nil {
		t.Fatal(err)
	}
	if !s1.MustAuthenticate || f.sender.sent != 1 {
		t.Fatalf("sign-up: must_authenticate %v, %d codes sent; want true, 1", s1.MustAuthenticate, f.sender.sent)
	}
	if err := f.client.SaveIdentity(ctx, s1, "", alice); apiCode(err) != twoman.CodeAuthRequired {
		t.Fatalf("sign-up without the code: %v", err)
	}
	if err := f.client.SaveIdentity(ctx, s1, f.sender.code("alice"), alice); err != nil {
		t.Fatal(err)
	}
	// A grant made for alice before she loses her device.
	s, _ := session.New(nil, "messaging:c")
	grant, err := session.NewGrant(alice, alice.Card(), s, 0)
	if err != nil {
		t.Fatal(err)
	}

	// New device: log in to the app (same twoManRuleKey), answer the code.
	s2, err := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	if err != nil {
		t.Fatal(err)
	}
	if !s2.MustAuthenticate || !s2.RuleKey.Equal(s1.RuleKey) {
		t.Fatalf("recovery: must_authenticate %v, same key %v", s2.MustAuthenticate, s2.RuleKey.Equal(s1.RuleKey))
	}
	if _, err := f.client.RetrieveIdentity(ctx, s2, ""); apiCode(err) != twoman.CodeAuthRequired {
		t.Fatalf("retrieve without the code: %v", err)
	}
	code := f.sender.code("alice")
	if len(code) != 8 {
		t.Fatalf("code %q: want 8 digits", code)
	}
	got, err := f.client.RetrieveIdentity(ctx, s2, code)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(alice) {
		t.Fatal("recovered identity differs")
	}
	if _, err := session.OpenGrant(grant, got, func(string, uint32) (*identity.Card, error) { return alice.Card(), nil }); err != nil {
		t.Fatalf("the recovered identity does not open an old grant: %v", err)
	}
	// Replayed code: the session is used.
	if _, err := f.client.RetrieveIdentity(ctx, s2, code); apiCode(err) != twoman.CodeSessionDead {
		t.Fatalf("replayed code: %v, want %s", err, twoman.CodeSessionDead)
	}

	// Re-save after a key rotation, then recover the rotated identity.
	rotated, _ := got.Rotate(nil, identity.Options{})
	s3, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	if err := f.client.SaveIdentity(ctx, s3, f.sender.code("alice"), rotated); err != nil {
		t.Fatal(err)
	}
	s4, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	if got, err := f.client.RetrieveIdentity(ctx, s4, f.sender.code("alice")); err != nil || got.Generation() != 1 {
		t.Fatalf("rotated identity: %v, %v", got, err)
	}
}

func TestWrongCodesKillTheSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	alice, _ := identity.Generate(testrand.New("alice"), "alice", identity.Options{Kind: identity.KindX25519})
	s1, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	f.client.SaveIdentity(ctx, s1, f.sender.code("alice"), alice)

	s2, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	right := f.sender.code("alice")
	wrong := fmt.Sprintf("%08d", (atoi(right)+1)%100000000)
	for i := range 5 {
		_, err := f.client.RetrieveIdentity(ctx, s2, wrong)
		if apiCode(err) != twoman.CodeWrongCode {
			t.Fatalf("wrong answer %d: %v", i+1, err)
		}
	}
	if _, err := f.client.RetrieveIdentity(ctx, s2, right); apiCode(err) != twoman.CodeSessionDead {
		t.Fatalf("right code after 5 wrong ones: %v, want %s", err, twoman.CodeSessionDead)
	}

	// Expired code.
	s3, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	f.clock.advance(10*time.Minute + time.Second)
	if _, err := f.client.RetrieveIdentity(ctx, s3, f.sender.code("alice")); apiCode(err) != twoman.CodeSessionDead {
		t.Fatalf("expired code: %v, want %s", err, twoman.CodeSessionDead)
	}
}

func atoi(s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}

func TestChallengeRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	alice, _ := identity.Generate(testrand.New("alice"), "alice", identity.Options{Kind: identity.KindX25519})
	s1, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	if err := f.client.SaveIdentity(ctx, s1, f.sender.code("alice"), alice); err != nil {
		t.Fatal(err)
	}
	// The backend cannot redirect the code to an address it controls.
	if _, err := f.backend.StartChallenge(ctx, "alice", twoman.Factor{Type: twoman.Email, Value: "evil@example.com"}, false); apiCode(err) != twoman.CodeFactorMismatch {
		t.Fatalf("challenge to another address: %v", err)
	}
	// Rate limit: 5 challenges per hour per user and factor.
	n := 1 // s1
	var err error
	for ; n < 10 && err == nil; n++ {
		_, err = f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	}
	if apiCode(err) != twoman.CodeRateLimited || n != 6 {
		t.Fatalf("challenge %d: %v; want rate_limited at the 6th", n, err)
	}
	f.clock.advance(time.Hour + time.Second)
	if _, err := f.backend.StartChallenge(ctx, "alice", aliceEmail, false); err != nil {
		t.Fatalf("after an hour: %v", err)
	}
	// Wrong app key.
	bad, _ := backend.New(backend.Config{Keys: f.keys, SSKSURL: f.srv.URL, AppKey: backend.NewSecret(bytes.Repeat([]byte("b"), 32))})
	if _, err := bad.StartChallenge(ctx, "bob", twoman.Factor{Type: twoman.SMS, Value: "+33 6 12 34 56 78"}, false); apiCode(err) != twoman.CodeUnauthorized {
		t.Fatalf("wrong app key: %v", err)
	}
}

func TestSplitKnowledge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	alice, _ := identity.Generate(testrand.New("alice"), "alice", identity.Options{Kind: identity.KindX25519})
	s1, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	if err := f.client.SaveIdentity(ctx, s1, f.sender.code("alice"), alice); err != nil {
		t.Fatal(err)
	}
	s2, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	code := f.sender.code("alice")

	// 1. The whole SSKS database, without the twoManRuleKey: the blob does
	// not open under any key the SSKS could know, and nothing in the
	// database contains the code, the address or the key material.
	rec, err := f.store.Identity(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	// A service that hands the stored blob to anyone, and a device that
	// tries it under every key the SSKS could know.
	leak := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string][]byte{"blob": rec.Blob})
	}))
	defer leak.Close()
	thief, err := twoman.NewClient(twoman.ClientConfig{BaseURL: leak.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, guess := range [][]byte{make([]byte, 32), appKey, bytes.Repeat([]byte("h"), 32), rec.FactorHash} {
		k, err := twoman.ParseRuleKey(guess)
		if err != nil {
			t.Fatal(err)
		}
		s := &twoman.Session{UserID: "alice", Factor: s1.Factor, SessionID: "s", RuleKey: k}
		if _, err := thief.RetrieveIdentity(ctx, s, "00000000"); !errors.Is(err, twoman.ErrDecrypt) {
			t.Fatalf("the SSKS's own data opened the identity: %v", err)
		}
	}
	dump := dumpStore(t, f.store)
	for _, secret := range []string{code, "alice@example.com", string(alice.Export()[200:240])} {
		if bytes.Contains(dump, []byte(secret)) {
			t.Fatalf("the SSKS database contains %.12q…", secret)
		}
	}

	// 2. The twoManRuleKey and everything the backend sees (session ID,
	// must_authenticate, expiry, factor), but not the code: retrieval is
	// refused, and guessing ends after 5 attempts.
	if _, err := f.client.RetrieveIdentity(ctx, s2, ""); apiCode(err) != twoman.CodeAuthRequired {
		t.Fatalf("no code: %v", err)
	}
	for i := range 5 {
		guess := fmt.Sprintf("%08d", i)
		if guess == code {
			continue
		}
		f.client.RetrieveIdentity(ctx, s2, guess)
	}
	if _, err := f.client.RetrieveIdentity(ctx, s2, code); apiCode(err) != twoman.CodeSessionDead {
		t.Fatalf("guessing did not kill the session: %v", err)
	}
	// The backend's view of the session cannot push a replacement either.
	if err := f.client.SaveIdentity(ctx, s2, "", alice); apiCode(err) == "" {
		t.Fatal("a used session accepted a push")
	}
}

// dumpStore returns every stored row as bytes (via the store's own
// methods), as an attacker with the database would see them.
func dumpStore(t *testing.T, st Store) []byte {
	t.Helper()
	var b bytes.Buffer
	rec, err := st.Identity(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	json.NewEncoder(&b).Encode(rec)
	d, ok := st.(interface {
		Dump(context.Context) ([]byte, error)
	})
	if !ok {
		t.Fatalf("%T has no Dump: the raw rows would go unchecked", st)
	}
	raw, err := d.Dump(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b.Write(raw)
	return b.Bytes()
}

func TestPasswordBackup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	alice, _ := identity.Generate(testrand.New("alice"), "alice", identity.Options{Kind: identity.KindX25519})
	fast := &twoman.PasswordParams{Alg: "argon2id", Time: 1, Memory: twoman.MinPasswordMemory, Threads: 1, Version: 1}
	s, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	if err := f.client.SavePassword(ctx, s, f.sender.code("alice"), "correct horse battery", alice, fast); err != nil {
		t.Fatal(err)
	}
	got, err := f.client.RetrievePassword(ctx, "alice", "correct horse battery")
	if err != nil || !got.Equal(alice) {
		t.Fatalf("retrieve: %v", err)
	}
	if _, err := f.client.RetrievePassword(ctx, "alice", "wrong"); !errors.Is(err, twoman.ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if err := f.client.ChangePassword(ctx, "correct horse battery", "new passphrase", alice, fast); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.RetrievePassword(ctx, "alice", "correct horse battery"); !errors.Is(err, twoman.ErrWrongPassphrase) {
		t.Fatalf("old passphrase after change: %v", err)
	}
	if _, err := f.client.RetrievePassword(ctx, "alice", "new passphrase"); err != nil {
		t.Fatal(err)
	}
	if err := f.client.ChangePassword(ctx, "not it", "x", alice, fast); !errors.Is(err, twoman.ErrWrongPassphrase) {
		t.Fatalf("change with a wrong old passphrase: %v", err)
	}
	// Throttling: after 5 failures the backup locks, even for the right
	// passphrase, until the lock expires.
	for range 5 {
		f.client.RetrievePassword(ctx, "alice", "guess")
	}
	if _, err := f.client.RetrievePassword(ctx, "alice", "new passphrase"); apiCode(err) != twoman.CodeLocked {
		t.Fatalf("after 5 failures: %v, want %s", err, twoman.CodeLocked)
	}
	f.clock.advance(16 * time.Minute)
	if _, err := f.client.RetrievePassword(ctx, "alice", "new passphrase"); err != nil {
		t.Fatalf("after the lock expired: %v", err)
	}
	// Nobody creates a backup for a user without a challenge session.
	body, _ := json.Marshal(wire.PasswordStoreRequest{UserID: "bob", Lookup: bytes.Repeat([]byte{1}, 32), Params: []byte(`{"alg":"argon2id","time":1,"memory":19456,"threads":1,"version":1}`), Salt: make([]byte, wire.PasswordSaltSize), Blob: []byte("x")})
	resp, err := http.Post(f.srv.URL+"/v1/password/store", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unauthorized backup: %s, want 403", resp.Status)
	}
	// Hostile parameters are refused by the client.
	if err := f.client.SavePassword(ctx, s, "", "p", alice, &twoman.PasswordParams{Alg: "argon2id", Time: 1, Memory: 1 << 30, Threads: 1, Version: 1}); err == nil {
		t.Fatal("out-of-bounds parameters accepted")
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, func(c *Config) { c.MaxBlobSize = 1024 })
	s, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	post := func(path, body string, auth bool) (int, string) {
		req, _ := http.NewRequest("POST", f.srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth {
			req.Header.Set("Authorization", "Bearer "+string(appKey))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var eb struct{ Error struct{ Code string } }
		json.NewDecoder(resp.Body).Decode(&eb)
		if resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: not a JSON answer", path)
		}
		return resp.StatusCode, eb.Error.Code
	}
	big := strings.Repeat("A", 2000)
	tests := []struct {
		name, path, body string
		auth             bool
		status           int
		code             string
	}{
		{"malformed", "/v1/identity/push", `{"session_id":`, false, 400, twoman.CodeInvalidRequest},
		{"unknown field", "/v1/identity/retrieve", `{"session_id":"00","code":"1","x":1}`, false, 400, twoman.CodeInvalidRequest},
		{"bad session id", "/v1/identity/retrieve", `{"session_id":"zz","code":"12345678"}`, false, 400, twoman.CodeInvalidRequest},
		{"unknown session", "/v1/identity/retrieve", `{"session_id":"` + strings.Repeat("0", 32) + `","code":"12345678"}`, false, 404, twoman.CodeUnknownSession},
		{"oversize blob", "/v1/identity/push", `{"session_id":"` + s.SessionID + `","blob":"` + big + `"}`, false, 400, twoman.CodeInvalidRequest},
		{"empty blob", "/v1/identity/push", `{"session_id":"` + s.SessionID + `","blob":""}`, false, 400, twoman.CodeInvalidRequest},
		{"bad factor type", "/v1/challenges", `{"user_id":"bob","factor":{"type":"fax","value":"1"}}`, true, 400, twoman.CodeInvalidFactor},
		{"bad email", "/v1/challenges", `{"user_id":"bob","factor":{"type":"email","value":"not-an-address"}}`, true, 400, twoman.CodeInvalidFactor},
		{"header injection", "/v1/challenges", `{"user_id":"bob","factor":{"type":"email","value":"a@b.c\r\nBcc: x@y.z"}}`, true, 400, twoman.CodeInvalidFactor},
		{"bad phone", "/v1/challenges", `{"user_id":"bob","factor":{"type":"sms","value":"call me"}}`, true, 400, twoman.CodeInvalidFactor},
		{"no app key", "/v1/challenges", `{"user_id":"bob","factor":{"type":"sms","value":"+15551234567"}}`, false, 401, twoman.CodeUnauthorized},
		{"no user", "/v1/challenges", `{"factor":{"type":"sms","value":"+15551234567"}}`, true, 400, twoman.CodeInvalidRequest},
		{"no route", "/v1/nothing", `{}`, false, 404, twoman.CodeNotFound},
	}
	for _, tc := range tests {
		status, code := post(tc.path, tc.body, tc.auth)
		if status != tc.status || code != tc.code {
			t.Errorf("%s: %d %q, want %d %q", tc.name, status, code, tc.status, tc.code)
		}
	}
	// Nothing was stored half-way: no identity for alice, and the session
	// is still usable (the refused pushes did not consume it).
	if _, err := f.store.Identity(ctx, "alice"); !errors.Is(err, twoman.ErrNotFound) {
		t.Fatalf("a refused request stored an identity: %v", err)
	}
	alice, _ := identity.Generate(testrand.New("alice"), "alice", identity.Options{Kind: identity.KindX25519})
	if err := f.client.SaveIdentity(ctx, s, f.sender.code("alice"), alice); err != nil {
		t.Fatalf("session consumed by refused requests: %v", err)
	}
}

func TestSecretsRedacted(t *testing.T) {
	t.Parallel()
	k, _ := twoman.NewRuleKey(testrand.New("k"))
	c := NewCode("12345678")
	s := twoman.Session{UserID: "u", RuleKey: k}
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		fmt.Fprintf(&out, verb+"\n", k)
		fmt.Fprintf(&out, verb+"\n", c)
		fmt.Fprintf(&out, verb+"\n", s)
		fmt.Fprintf(&out, verb+"\n", Challenge{Code: c})
	}
	slog.New(slog.NewJSONHandler(&out, nil)).Info("x", "key", k, "code", c, "session", s)
	slog.New(slog.NewTextHandler(&out, nil)).Info("x", "key", k, "code", c, "session", s)
	if _, err := json.Marshal(s); err == nil {
		t.Error("a twoman.Session with its key marshalled to JSON implicitly")
	}
	for _, secret := range []string{"12345678", fmt.Sprintf("%x", k.Bytes()), strings.Trim(fmt.Sprint(k.Bytes()[:4]), "[]")} {
		if strings.Contains(out.String(), secret) {
			t.Fatalf("secret %q printed:\n%s", secret, out.String())
		}
	}
}

func mustIdentity(t *testing.T) *identity.Identity {
	t.Helper()
	id, err := identity.Generate(testrand.New("alice"), "alice", identity.Options{Kind: identity.KindX25519})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestChangeFactorAndDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	alice := mustIdentity(t)
	s1, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	if err := f.client.SaveIdentity(ctx, s1, f.sender.code("alice"), alice); err != nil {
		t.Fatal(err)
	}
	phone := twoman.Factor{Type: twoman.SMS, Value: "+33 6 12 34 56 78"}
	s2, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	if err := f.client.ChangeFactor(ctx, s2, f.sender.code("alice"), phone, alice); err != nil {
		t.Fatal(err)
	}
	// The old factor no longer receives codes; the new one recovers.
	if _, err := f.backend.StartChallenge(ctx, "alice", aliceEmail, false); apiCode(err) != twoman.CodeFactorMismatch {
		t.Fatalf("old factor after the change: %v", err)
	}
	s3, err := f.backend.StartChallenge(ctx, "alice", phone, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := f.client.RetrieveIdentity(ctx, s3, f.sender.code("alice")); err != nil || !got.Equal(alice) {
		t.Fatalf("recovery through the new factor: %v", err)
	}
	s4, _ := f.backend.StartChallenge(ctx, "alice", phone, false)
	if err := f.client.DeleteIdentity(ctx, s4, f.sender.code("alice")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Identity(ctx, "alice"); !errors.Is(err, twoman.ErrNotFound) {
		t.Fatalf("identity still stored after delete: %v", err)
	}
}

// TestUnverifiedSignup: the Seald-compatible mode lets a new user save
// without a code, once, and never retrieve without one.
func TestUnverifiedSignup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, func(c *Config) { c.InsecureUnverifiedSignup = true })
	s1, err := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	if err != nil || s1.MustAuthenticate || f.sender.sent != 0 {
		t.Fatalf("new user: %+v %v, %d codes", s1, err, f.sender.sent)
	}
	alice := mustIdentity(t)
	if err := f.client.SaveIdentity(ctx, s1, "", alice); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.RetrieveIdentity(ctx, s1, ""); apiCode(err) == "" {
		t.Fatal("a sign-up session retrieved without a code")
	}
	s2, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	if !s2.MustAuthenticate {
		t.Fatal("an existing user must authenticate")
	}
}

// TestStaleSessionsCannotTakeOver: a challenge session started before the
// user signed up (the backend alone may start one to an address of its
// choosing while nothing is registered) must not, once the user has
// registered another factor, replace or delete the user's identity, nor
// replace a password backup made under another factor.
func TestStaleSessionsCannotTakeOver(t *testing.T) {
	t.Parallel()
	evil := twoman.Factor{Type: twoman.Email, Value: "evil@attacker.example"}
	for _, unverified := range []bool{false, true} {
		t.Run(fmt.Sprintf("unverified signup %v", unverified), func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, func(c *Config) { c.InsecureUnverifiedSignup = unverified })
			code := func(s *twoman.Session) string {
				if s.MustAuthenticate {
					return f.sender.code("alice")
				}
				return ""
			}
			stale, err := f.backend.StartChallenge(ctx, "alice", evil, false)
			if err != nil {
				t.Fatal(err)
			}
			staleCode := code(stale)
			alice := mustIdentity(t)
			s1, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
			if err := f.client.SaveIdentity(ctx, s1, code(s1), alice); err != nil {
				t.Fatal(err)
			}
			if err := f.client.SaveIdentity(ctx, stale, staleCode, mustIdentity(t)); apiCode(err) != twoman.CodeFactorMismatch {
				t.Fatalf("push through a session on another factor: %v, want %s", err, twoman.CodeFactorMismatch)
			}
			s2, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
			if got, err := f.client.RetrieveIdentity(ctx, s2, f.sender.code("alice")); err != nil || !got.Equal(alice) {
				t.Fatalf("alice's identity after the refused push: %v", err)
			}
		})
	}
}

// TestStaleSessionCannotDelete: the same for delete: a session proved on
// a factor that is not the registered one removes nothing.
func TestStaleSessionCannotDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	evil := twoman.Factor{Type: twoman.Email, Value: "evil@attacker.example"}
	stale, err := f.backend.StartChallenge(ctx, "alice", evil, false)
	if err != nil {
		t.Fatal(err)
	}
	staleCode := f.sender.code("alice")
	s1, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	if err := f.client.SaveIdentity(ctx, s1, f.sender.code("alice"), mustIdentity(t)); err != nil {
		t.Fatal(err)
	}
	if err := f.client.DeleteIdentity(ctx, stale, staleCode); apiCode(err) != twoman.CodeFactorMismatch {
		t.Fatalf("delete through a session on another factor: %v, want %s", err, twoman.CodeFactorMismatch)
	}
	if _, err := f.store.Identity(ctx, "alice"); err != nil {
		t.Fatalf("alice's identity is gone: %v", err)
	}
}

// TestPasswordBackupBoundToFactor: a password backup made under one
// factor cannot be replaced through a challenge to another (the backend
// alone can challenge any address for a user without a registered
// identity); the same factor, or the current passphrase, can.
func TestPasswordBackupBoundToFactor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	fast := &twoman.PasswordParams{Alg: "argon2id", Time: 1, Memory: twoman.MinPasswordMemory, Threads: 1, Version: 1}
	alice := mustIdentity(t)
	s, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	if err := f.client.SavePassword(ctx, s, f.sender.code("alice"), "alice's passphrase", alice, fast); err != nil {
		t.Fatal(err)
	}
	evil, err := f.backend.StartChallenge(ctx, "alice", twoman.Factor{Type: twoman.Email, Value: "evil@attacker.example"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.client.SavePassword(ctx, evil, f.sender.code("alice"), "backend's passphrase", mustIdentity(t), fast); apiCode(err) != twoman.CodeFactorMismatch {
		t.Fatalf("replacing the backup through another factor: %v, want %s", err, twoman.CodeFactorMismatch)
	}
	if got, err := f.client.RetrievePassword(ctx, "alice", "alice's passphrase"); err != nil || !got.Equal(alice) {
		t.Fatalf("alice's backup after the refused replace: %v", err)
	}
	// Alice, having forgotten her passphrase, replaces it through her own
	// factor.
	s2, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	if err := f.client.SavePassword(ctx, s2, f.sender.code("alice"), "a new passphrase", alice, fast); err != nil {
		t.Fatalf("replacing the backup through the same factor: %v", err)
	}
	if got, err := f.client.RetrievePassword(ctx, "alice", "a new passphrase"); err != nil || !got.Equal(alice) {
		t.Fatalf("after the replace: %v", err)
	}
}

// TestConcurrentChallengesRespectTheLimit: a burst of challenge requests
// for one user and factor starts at most MaxChallengesPerHour sessions, on
// every store (the count and the insert are one transaction).
func TestConcurrentChallengesRespectTheLimit(t *testing.T) {
	t.Parallel()
	for name, open := range storeOpeners(t) {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.Store = open(t) })
			var mu sync.Mutex
			accepted, limited := 0, 0
			var wg sync.WaitGroup
			for range 30 {
				wg.Go(func() {
					_, err := f.backend.StartChallenge(context.Background(), "alice", aliceEmail, false)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						accepted++
					case apiCode(err) == twoman.CodeRateLimited:
						limited++
					default:
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if accepted != 5 || limited != 25 || f.sender.sent != 5 {
				t.Fatalf("30 concurrent challenges: %d accepted, %d limited, %d codes sent; want 5, 25, 5", accepted, limited, f.sender.sent)
			}
		})
	}
}

// TestHostileUserIDs: user IDs that are not valid UTF-8 or hold control
// characters are refused as bad requests by every route that takes one,
// on every store (PostgreSQL refuses NUL bytes in text, and a 500 would
// follow).
func TestHostileUserIDs(t *testing.T) {
	t.Parallel()
	for name, open := range storeOpeners(t) {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.Store = open(t) })
			for _, id := range []string{"a\x00b", "a\xffb", "a\nb", strings.Repeat("a", 256)} {
				for _, r := range []struct {
					path, body string
					auth       bool
				}{
					{"/v1/challenges", fmt.Sprintf(`{"user_id":%q,"factor":{"type":"email","value":"a@example.com"}}`, id), true},
					{"/v1/password/params", fmt.Sprintf(`{"user_id":%q}`, id), false},
					{"/v1/password/retrieve", fmt.Sprintf(`{"user_id":%q,"lookup":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`, id), false},
					{"/v1/password/store", fmt.Sprintf(`{"user_id":%q,"old_lookup":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","lookup":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","params":"e30=","salt":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","blob":"YQ=="}`, id), false},
				} {
					req, _ := http.NewRequest("POST", f.srv.URL+r.path, strings.NewReader(r.body))
					req.Header.Set("Content-Type", "application/json")
					if r.auth {
						req.Header.Set("Authorization", "Bearer "+string(appKey))
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusBadRequest {
						t.Errorf("%s with user ID %q: %d, want 400", r.path, id, resp.StatusCode)
					}
				}
			}
		})
	}
}

// stalledStore is a Store whose Identity never answers within the
// request's deadline.
type stalledStore struct{ Store }

func (stalledStore) Identity(context.Context, string) (IdentityRecord, error) {
	return IdentityRecord{}, fmt.Errorf("ssks: reading the identity: %w", context.DeadlineExceeded)
}

// TestStoreDeadlineIsUnavailable: a store that does not answer in time
// is reported as the key service reports it, 503 CodeUnavailable, which
// matches ErrUnavailable (retry later), not as an internal error.
func TestStoreDeadlineIsUnavailable(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) { c.Store = stalledStore{c.Store} })
	_, err := f.backend.StartChallenge(context.Background(), "alice", aliceEmail, false)
	var ae *twoman.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != twoman.CodeUnavailable || !errors.Is(err, twoman.ErrUnavailable) {
		t.Fatalf("StartChallenge with a stalled store: %v, want 503 %s matching ErrUnavailable", err, twoman.CodeUnavailable)
	}
}
