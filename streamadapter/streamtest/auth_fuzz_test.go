package streamtest

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzAuth sends arbitrary Authorization and Stream-Auth-Type headers and
// api_key values: no panic; every answer is JSON; a request is let through
// only with the app's API key, Stream-Auth-Type jwt and a token that
// verifies under the app secret (checked independently here).
func FuzzAuth(f *testing.F) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewServer(Config{APIKey: "key", APISecret: NewSecret([]byte("secret")), Now: func() time.Time { return now }})
	f.Cleanup(s.Close)
	sign := func(secret string, c jwt.MapClaims) string {
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
		return tok
	}
	for _, tok := range []string{
		sign("secret", jwt.MapClaims{"server": true}), "Bearer " + sign("secret", jwt.MapClaims{"user_id": "a"}),
		sign("secret", jwt.MapClaims{"user_id": "a", "exp": now.Add(-time.Hour).Unix()}),
		sign("other", jwt.MapClaims{"server": true}), "eyJhbGciOiJub25lIn0.eyJzZXJ2ZXIiOnRydWV9.", "",
	} {
		f.Add("key", "jwt", tok)
	}
	f.Add("nope", "jwt", sign("secret", jwt.MapClaims{"server": true}))
	f.Add("key", "anonymous", "")
	f.Fuzz(func(t *testing.T, apiKey, authType, auth string) {
		req := httptest.NewRequest("GET", "/users", nil)
		q := req.URL.Query()
		q.Set("api_key", apiKey)
		req.URL.RawQuery = q.Encode()
		req.Header["Stream-Auth-Type"] = []string{authType}
		req.Header["Authorization"] = []string{auth}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("non-JSON answer %q", rec.Body.Bytes())
		}
		if rec.Code != 200 {
			return
		}
		tok := strings.TrimPrefix(auth, "Bearer ")
		_, err := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return now })).
			Parse(tok, func(*jwt.Token) (any, error) { return []byte("secret"), nil })
		if apiKey != "key" || authType != "jwt" || err != nil {
			t.Fatalf("let through: api_key %q, Stream-Auth-Type %q, token %q (%v)", apiKey, authType, auth, err)
		}
	})
}
