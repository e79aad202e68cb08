package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzHandlerRequests sends arbitrary bodies to every write route as an
// authenticated member: every answer is JSON, never a 5xx or a panic.
func FuzzHandlerRequests(f *testing.F) {
	srv := newTestServer(f, openTestStore(f))
	alice := srv.member(f, "alice")
	srv.member(f, "bob")
	s, err := alice.mgr.Create(context.Background(), "messaging:fuzz", []string{"bob"})
	if err != nil {
		f.Fatal(err)
	}
	sid := s.ID().String()
	routes := []struct{ method, path string }{
		{"PUT", "/v1/users/alice/cards"},
		{"POST", "/v1/cards/lookup"},
		{"POST", "/v1/sessions"},
		{"POST", "/v1/sessions/" + sid + "/members"},
		{"POST", "/v1/sessions/" + sid + "/rotate"},
		{"PUT", "/v1/sessions/" + sid + "/admins/bob"},
	}
	for i, seed := range []string{
		`{"card":"AQID"}`, `{"user_ids":["alice","bob"]}`,
		`{"id":"` + strings.Repeat("ab", 16) + `","channel_cid":"m:x","grants":[{"grantee":"alice","epoch":0,"grant":"YWdl"}]}`,
		`{"epoch":0,"grants":[]}`, `{"from_epoch":0,"remove":["bob"],"grants":[{"grantee":"alice","epoch":1,"grant":""}]}`,
		`{"admin":true}`, `{"from_epoch":4294967295}`, `null`, `[]`, "\xff",
	} {
		f.Add(uint8(i), []byte(seed))
	}
	tok := userToken(f, "alice")
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := routes[int(route)%len(routes)]
		req := httptest.NewRequest(r.method, r.path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		srv.Config.Handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s: status %d for %q: %s", r.method, r.path, rec.Code, body, rec.Body.Bytes())
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s: non-JSON answer", r.method, r.path)
		}
		if rec.Code >= 400 && rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s %s: error without JSON content type", r.method, r.path)
		}
	})
}
