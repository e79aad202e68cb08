package server

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/keyservice/internal/wire"
)

// FuzzHandlerRequests sends arbitrary bodies to every write route as an
// authenticated member — seeded with valid geneses and records, which the
// fuzzer mutates — : every answer is JSON, never a 5xx or a panic, and the
// log the handler keeps still verifies.
func FuzzHandlerRequests(f *testing.F) {
	srv := newTestServer(f, openTestStore(f))
	alice := srv.member(f, "alice")
	bob := srv.member(f, "bob")
	carol := srv.member(f, "carol")
	c := newChain(f, "messaging:fuzz", alice.id, bob.id)
	srv.post(f, "alice", "/v1/sessions", c.create())
	sid := c.id.String()
	routes := []struct{ method, path string }{
		{"PUT", "/v1/users/alice/cards"},
		{"POST", "/v1/cards/lookup"},
		{"POST", "/v1/sessions"},
		{"POST", "/v1/sessions/" + sid + "/log"},
	}
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	add, _ := c.sign(alice.id, []memberlog.Op{addOp(carol.id)}, false)
	rotate, _ := c.sign(alice.id, nil, true)
	for i, seed := range []string{
		js(wire.PublishCardRequest{Card: alice.id.Card().Marshal()}), `{"user_ids":["alice","bob"]}`,
		js(newChain(f, "messaging:fuzz-new", alice.id, bob.id).create()), js(add),
		js(c.create()), js(rotate), `{"record":"AQI=","grants":[{"grantee":"alice","epoch":0,"grant":""}]}`,
		`{"genesis":null,"grants":null}`, `null`, `[]`, "\xff",
	} {
		f.Add(uint8(i), []byte(seed))
	}
	tok := userToken(f, "alice")
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := routes[int(route)%len(routes)]
		req := httptest.NewRequest(r.method, r.path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
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
		// Whatever was accepted, the stored log replays: nothing the
		// handler stored breaks the chain.
		if _, err := srv.h.replay(t.Context(), c.id, nil); err != nil {
			t.Fatalf("the stored log does not replay after %s %s %q: %v", r.method, r.path, body, err)
		}
	})
}
