package server

import (
	"bytes"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzAuthenticate feeds arbitrary Authorization header values to the
// token check: no panic; a success names either the service or a user ID
// that CheckUserID accepts, never both; a token signed with the Stream
// secret never yields the service role.
func FuzzAuthenticate(f *testing.F) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	edPub, edPriv, _ := ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{1}, 64)))
	streamSecret := bytes.Repeat([]byte("s"), 32)
	a := &Auth{Keys: []Key{{HS256: NewSecret(testSecret)}, {ID: "ed", Ed25519: edPub}}, StreamSecret: NewSecret(streamSecret)}
	exp := jwt.NewNumericDate(now.Add(time.Hour))
	sign := func(m jwt.SigningMethod, key any, kid string, c jwt.Claims) string {
		t := jwt.NewWithClaims(m, c)
		if kid != "" {
			t.Header["kid"] = kid
		}
		s, err := t.SignedString(key)
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	user := sign(jwt.SigningMethodHS256, testSecret, "", claims{UserID: "alice", RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: exp}})
	svc := sign(jwt.SigningMethodHS256, testSecret, "", claims{Role: "service", RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: exp}})
	ed := sign(jwt.SigningMethodEdDSA, edPriv, "ed", claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "bob", ExpiresAt: exp}})
	stream := sign(jwt.SigningMethodHS256, streamSecret, "", jwt.MapClaims{"user_id": "carol", "exp": exp.Unix()})
	streamSvc := sign(jwt.SigningMethodHS256, streamSecret, "", jwt.MapClaims{"user_id": "carol", "role": "service", "exp": exp.Unix()})
	for _, s := range []string{user, "Bearer " + user, svc, ed, stream, "Bearer  " + stream, streamSvc, "", "Bearer ", "a.b.c",
		"eyJhbGciOiJub25lIn0.eyJ1c2VyX2lkIjoiYSJ9."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		p, err := a.authenticate(header, clock)
		if err != nil {
			if p != (Principal{}) {
				t.Fatalf("an error with a principal: %+v", p)
			}
			return
		}
		if p.Service == (p.UserID != "") {
			t.Fatalf("principal %+v is neither or both service and user", p)
		}
		if !p.Service && !validUserID(p.UserID) {
			t.Fatalf("accepted invalid user ID %q", p.UserID)
		}
		if p.Service {
			// Only a Veil key may grant the service role.
			veilOnly := &Auth{Keys: a.Keys}
			if q, err := veilOnly.authenticate(header, clock); err != nil || !q.Service {
				t.Fatalf("the service role came from a non-Veil key")
			}
		}
	})
}
