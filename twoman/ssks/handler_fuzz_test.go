package ssks

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzHandlerRequests sends arbitrary bodies to every SSKS route: the handler
// must answer every one with a JSON response and never a 5xx or a panic.
func FuzzHandlerRequests(f *testing.F) {
	routes := []string{"/v1/challenges", "/v1/identity/push", "/v1/identity/retrieve", "/v1/identity/factor",
		"/v1/identity/delete", "/v1/password/params", "/v1/password/store", "/v1/password/retrieve"}
	seeds := []string{
		`{"user_id":"alice","factor":{"type":"email","value":"a@b.c"}}`,
		`{"session_id":"00000000000000000000000000000000","code":"12345678","blob":"AAEC"}`,
		`{"user_id":"alice","lookup":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","params":"e30=","salt":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","blob":"AA=="}`,
		`{"session_id":"zz"}`, `[]`, `null`, `{"factor":{"type":"sms","value":"+1 (555) 123-4567"}}`, "\x00\xff",
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		path := routes[int(route)%len(routes)]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+string(appKey))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		fx.srv.Config.Handler.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusBadGateway {
			t.Fatalf("%s: status %d for %q", path, rec.Code, body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s: non-JSON answer %q", path, rec.Body.Bytes())
		}
	})
}
