package twoman

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/twoman/internal/wire"
)

// FuzzClientResponses: the SSKS is untrusted alone, so whatever it answers
// (any status, any body) the backend and the device client return a
// result or an error, never panic, and never accept an identity that was
// not saved; password parameters outside the bounds are refused.
func FuzzClientResponses(f *testing.F) {
	id, err := fuzzIdentity(time.Unix(1_700_000_000, 0))
	if err != nil {
		f.Fatal(err)
	}
	rk, _ := ParseRuleKey(bytes.Repeat([]byte{9}, KeySize))
	sess := &Session{UserID: "alice", Factor: Factor{Type: Email, Value: "a@b.c"}, SessionID: "00", RuleKey: rk}
	blob, err := encryptIdentity(sess, id)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(wire.RetrieveResponse{Blob: blob})
	params, _ := json.Marshal(DefaultPasswordParams)
	pp, _ := json.Marshal(wire.PasswordParamsResponse{Params: params, Salt: bytes.Repeat([]byte{7}, wire.PasswordSaltSize)})
	for _, seed := range []struct {
		status uint16
		body   string
	}{
		{200, string(good)}, {200, `{"blob":"AQID"}`}, {200, `{"blob":null}`}, {200, string(pp)},
		{200, `{"params":"eyJhbGciOiJhcmdvbjJpZCIsInQiOjQyOTQ5NjcyOTUsIm1fa2liIjo0Mjk0OTY3Mjk1LCJwIjoyNTUsInYiOjF9"}`},
		{201, `{"session_id":"00112233445566778899aabbccddeeff","must_authenticate":true,"expires_at":"2026-01-01T00:00:00Z"}`},
		{201, `{"expires_at":"not a time"}`}, {403, `{"error":{"code":"factor_mismatch","message":"no"}}`},
		{400, `{"error":{"code":"wrong_passphrase"}}`}, {200, `null`}, {200, `[]`}, {502, ``},
	} {
		f.Add(seed.status, []byte(seed.body))
	}
	var answer struct {
		mu     sync.Mutex
		status int
		body   []byte
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer.mu.Lock()
		status, body := answer.status, answer.body
		answer.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	f.Cleanup(srv.Close)
	c, err := NewClient(ClientConfig{BaseURL: srv.URL})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, status uint16, body []byte) {
		if status < 200 || status > 599 {
			status = 200
		}
		answer.mu.Lock()
		answer.status, answer.body = int(status), body
		answer.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		got, err := c.RetrieveIdentity(ctx, sess, "12345678")
		if err == nil && !isFuzzIdentity(got) {
			t.Fatalf("RetrieveIdentity accepted an identity that was never saved")
		}
		if p, salt, err := c.passwordParams(ctx, "alice"); err == nil {
			if p.check() != nil || len(salt) != wire.PasswordSaltSize {
				t.Fatalf("passwordParams accepted out-of-bounds parameters %+v or a %d-byte salt", p, len(salt))
			}
		}
		c.DeleteIdentity(ctx, sess, "12345678")
		if ctx.Err() != nil {
			t.Fatal("a call did not return before the deadline")
		}
	})
}

// fuzzIdentity is the identity FuzzClientResponses saves, created at the
// given time.
func fuzzIdentity(created time.Time) (*identity.Identity, error) {
	return identity.Generate(testrand.New("fuzz-twoman"), "alice", identity.Options{Kind: identity.KindX25519, Created: created})
}

// isFuzzIdentity reports whether got is the identity FuzzClientResponses
// saves. Its creation time is not compared: the fuzzing cache keeps blobs
// from earlier versions of the fixture, whose identities had other
// creation times; every other byte of the identity must match.
func isFuzzIdentity(got *identity.Identity) bool {
	if got == nil || got.Generation() != 0 {
		return false
	}
	want, err := fuzzIdentity(got.Card().Created())
	return err == nil && got.Equal(want)
}

// FuzzFactorNormalize: no panic; a normalized factor normalizes to itself
// (client and SSKS both normalize: the SSKS hashes the factor and the
// client binds it into the identity blob's associated data, so they must
// agree), and a normalized email is at most 254 bytes without spaces or
// line breaks.
func FuzzFactorNormalize(f *testing.F) {
	for _, s := range []struct{ typ, v string }{
		{"email", " Alice@Example.COM "}, {"email", "@x"}, {"email", "a@"}, {"sms", "+1 (555) 123-4567"},
		{"sms", "0033.6.12.34.56.78"}, {"sms", "+"}, {"fax", "1"}, {"email", "\u212a@x.y"}, {"sms", "١٢٣٤٥٦٧"},
	} {
		f.Add(s.typ, s.v)
	}
	f.Fuzz(func(t *testing.T, typ, v string) {
		n, err := Factor{Type: FactorType(typ), Value: v}.Normalize()
		if err != nil {
			if !errors.Is(err, ErrInvalidFactor) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		again, err := n.Normalize()
		if err != nil || again != n {
			t.Fatalf("Normalize is not idempotent: %q -> %q -> %q (%v)", v, n.Value, again.Value, err)
		}
		if n.Type == Email && (len(n.Value) > 254 || bytes.ContainsAny([]byte(n.Value), " \t\r\n")) {
			t.Fatalf("normalized email %q", n.Value)
		}
	})
}

// TestIsFuzzIdentity: the fuzz target's check accepts its identity at any
// creation time and nothing else.
func TestIsFuzzIdentity(t *testing.T) {
	for _, at := range []time.Time{time.Unix(1_700_000_000, 0), time.Unix(1_600_000_000, 0)} {
		id, err := fuzzIdentity(at)
		if err != nil || !isFuzzIdentity(id) {
			t.Fatalf("the fixture at %v is not recognized (%v)", at, err)
		}
		next, err := id.Rotate(testrand.New("rotate"), identity.Options{Kind: identity.KindX25519})
		if err != nil || isFuzzIdentity(next) {
			t.Fatalf("a rotated fixture is accepted (%v)", err)
		}
	}
	other, err := identity.Generate(testrand.New("other"), "alice", identity.Options{Kind: identity.KindX25519, Created: time.Unix(1_700_000_000, 0)})
	if err != nil || isFuzzIdentity(other) || isFuzzIdentity(nil) {
		t.Fatalf("another identity is accepted (%v)", err)
	}
}
