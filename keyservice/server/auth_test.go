package server

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestAuthTokens(t *testing.T) {
	t.Parallel()
	now := time.Now
	k1, k2 := bytes.Repeat([]byte("1"), 32), bytes.Repeat([]byte("2"), 32)
	streamSecret := bytes.Repeat([]byte("s"), 40)
	edPub, edPriv, _ := ed25519.GenerateKey(nil)
	auth := &Auth{Keys: []Key{{ID: "old", HS256: NewSecret(k1)}, {ID: "new", HS256: NewSecret(k2)}, {ID: "ed", Ed25519: edPub}}, StreamSecret: NewSecret(streamSecret)}

	signed := func(method jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(method, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	exp := time.Now().Add(time.Hour).Unix()
	user := func(u string) jwt.MapClaims { return jwt.MapClaims{"user_id": u, "exp": exp} }
	tests := []struct {
		name, token, reason string
		want                Principal
		ok                  bool
	}{
		{"old key by kid", signed(jwt.SigningMethodHS256, k1, "old", user("alice")), "rotation keeps old tokens valid", Principal{UserID: "alice"}, true},
		{"new key by kid", signed(jwt.SigningMethodHS256, k2, "new", user("alice")), "the new key works", Principal{UserID: "alice"}, true},
		{"no kid", signed(jwt.SigningMethodHS256, k2, "", user("bob")), "without kid every key is tried", Principal{UserID: "bob"}, true},
		{"wrong kid", signed(jwt.SigningMethodHS256, k2, "old", user("bob")), "kid selects exactly one key", Principal{}, false},
		{"sub claim", signed(jwt.SigningMethodHS256, k1, "", jwt.MapClaims{"sub": "carol", "exp": exp}), "sub names the user too", Principal{UserID: "carol"}, true},
		{"eddsa", signed(jwt.SigningMethodEdDSA, edPriv, "ed", user("dave")), "Ed25519 tokens", Principal{UserID: "dave"}, true},
		{"service", signed(jwt.SigningMethodHS256, k1, "", jwt.MapClaims{"role": "service", "exp": exp}), "service role", Principal{Service: true}, true},
		{"stream token", signed(jwt.SigningMethodHS256, streamSecret, "", user("erin")), "one token for Stream and Veil, to read only", Principal{UserID: "erin", ViaStream: true}, true},
		{"stream service", signed(jwt.SigningMethodHS256, streamSecret, "", jwt.MapClaims{"role": "service", "user_id": "x", "exp": exp}), "Stream cannot mint service tokens", Principal{}, false},
		{"no exp", signed(jwt.SigningMethodHS256, k1, "", jwt.MapClaims{"user_id": "alice"}), "tokens must expire", Principal{}, false},
		{"expired", signed(jwt.SigningMethodHS256, k1, "", jwt.MapClaims{"user_id": "alice", "exp": time.Now().Add(-time.Hour).Unix()}), "expiry is enforced", Principal{}, false},
		{"none alg", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJ1c2VyX2lkIjoiYWxpY2UifQ.", "alg none is refused", Principal{}, false},
		{"no user", signed(jwt.SigningMethodHS256, k1, "", jwt.MapClaims{"exp": exp}), "a user token names its user", Principal{}, false},
		{"garbage", "not a token", "malformed", Principal{}, false},
	}
	for _, tc := range tests {
		got, err := auth.authenticate("Bearer "+tc.token, now)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v ok=%v (%s)", tc.name, got, err, tc.want, tc.ok, tc.reason)
		}
	}
	// Stream clients send the token without "Bearer ".
	if p, err := auth.authenticate(signed(jwt.SigningMethodHS256, k1, "", user("alice")), now); err != nil || p.UserID != "alice" {
		t.Errorf("bare Authorization header: %+v %v", p, err)
	}
}

// TestTokenWithoutExpiry: a token without "exp" is refused with an error
// that names the claim, whether it is signed with a Veil key or with the
// Stream secret, over HTTP as well.
func TestTokenWithoutExpiry(t *testing.T) {
	t.Parallel()
	secret := bytes.Repeat([]byte("1"), 32)
	stream := bytes.Repeat([]byte("s"), 32)
	auth := &Auth{Keys: []Key{{HS256: NewSecret(secret)}}, StreamSecret: NewSecret(stream)}
	for _, tc := range []struct {
		name, reason string
		key          []byte
	}{
		{"veil key", "the backend forgot exp", secret},
		{"stream secret", "Stream tokens must expire too", stream},
	} {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"user_id": "alice"}).SignedString(tc.key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := auth.authenticate(tok, time.Now); err == nil || !strings.Contains(err.Error(), "exp") {
			t.Errorf("%s: %v, want an error naming the exp claim (%s)", tc.name, err, tc.reason)
		}
	}
	srv := newTestServer(t, openTestStore(t))
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"user_id": "alice"}).SignedString(testSecret)
	if r := request(t, srv, "GET", "/v1/users/alice/cards", tok, nil); r.status != 401 || !strings.Contains(r.err.Message, "exp") {
		t.Fatalf("over HTTP: %d %+v, want 401 naming the exp claim", r.status, r.err)
	}
}

// TestStreamSecretIsNoVeilKey: a Veil HS256 key equal to the Stream
// secret would make every token Stream signs a backend token — writes
// and the service role included — and the Stream secret read-only in name
// only: NewHandler refuses the configuration.
func TestStreamSecretIsNoVeilKey(t *testing.T) {
	t.Parallel()
	stream := bytes.Repeat([]byte("s"), 32)
	other := bytes.Repeat([]byte("o"), 32)
	for _, tc := range []struct {
		name, reason string
		keys         []Key
		ok           bool
	}{
		{"distinct", "a backend key and the Stream secret", []Key{{HS256: NewSecret(other)}}, true},
		{"equal", "the Stream secret as a backend key", []Key{{HS256: NewSecret(stream)}}, false},
		{"equal among others", "the Stream secret as one of the backend keys", []Key{{ID: "a", HS256: NewSecret(other)}, {ID: "b", HS256: NewSecret(stream)}}, false},
	} {
		_, err := NewHandler(Config{Store: openTestStore(t), Auth: Auth{Keys: tc.keys, StreamSecret: NewSecret(stream)}})
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok = %v (%s)", tc.name, err, tc.ok, tc.reason)
		}
		if err != nil && strings.Contains(err.Error(), string(stream)) {
			t.Errorf("%s: the error quotes the secret", tc.name)
		}
	}
}
