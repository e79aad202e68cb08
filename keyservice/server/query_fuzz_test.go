package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"golang.org/x/time/rate"

	"github.com/veilchat/veil/internal/pgtest"
)

// fuzzQueryRoutes are the routes whose input is the path, the query string
// and headers (FuzzHandlerRequests covers the JSON bodies); "%s" is the
// fuzzed path value.
var fuzzQueryRoutes = []struct{ method, path string }{
	{"GET", "/v1/users/%s/cards"},
	{"GET", "/v1/sessions"},
	{"GET", "/v1/sessions/%s"},
	{"GET", "/v1/sessions/%s/grants"},
	{"DELETE", "/v1/sessions/%s"},
	{"PUT", "/v1/sessions/%s/admins/bob"},
	{"PUT", "/v1/sessions/SID/admins/%s"},
	{"POST", "/v1/sessions"},
	{"GET", "/v1/sessions/SID"},
	{"GET", "/v1/sessions/SID/grants"},
}

// fuzzHandlerQueries sends arbitrary path values, query strings and
// Idempotency-Key headers as an authenticated member: no panic, no 5xx,
// every answer JSON.
func fuzzHandlerQueries(f *testing.F, st Store) {
	srv := newTestServer(f, st, func(c *Config) { c.RateLimit, c.RateBurst = rate.Inf, 1 })
	alice := srv.member(f, "alice")
	srv.member(f, "bob")
	s, err := alice.mgr.Create(context.Background(), "messaging:fuzzq", []string{"bob"})
	if err != nil {
		f.Fatal(err)
	}
	sid := s.ID().String()
	for i, seed := range []struct{ arg, query, idem string }{
		{"alice", "", ""}, {"", "channel_cid=messaging:fuzzq", ""}, {sid, "limit=1&after=alice", ""},
		{sid, "limit=1&after_epoch=0", ""}, {sid, "", ""}, {sid, "", ""}, {"bob", "", ""},
		{"", "", "key-1"}, {"", "limit=1000&after=" + url.QueryEscape("\xff"), ""}, {"", "after_epoch=4294967295", ""},
	} {
		f.Add(uint8(i), seed.arg, seed.query, seed.idem, []byte(`{"admin":true}`))
	}
	tok := userToken(f, "alice")
	f.Fuzz(func(t *testing.T, route uint8, arg, query, idem string, body []byte) {
		r := fuzzQueryRoutes[int(route)%len(fuzzQueryRoutes)]
		path := bytes.ReplaceAll([]byte(r.path), []byte("%s"), []byte(url.PathEscape(arg)))
		path = bytes.ReplaceAll(path, []byte("SID"), []byte(sid))
		req, err := http.NewRequest(r.method, "http://ks"+string(path)+"?"+query, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		if idem != "" {
			req.Header["Idempotency-Key"] = []string{idem}
		}
		rec := httptest.NewRecorder()
		srv.Config.Handler.ServeHTTP(rec, req)
		if rec.Code/100 == 3 {
			return // ServeMux redirects unclean paths ("//", "/./") to their clean form
		}
		if rec.Code >= 500 {
			t.Fatalf("%s %s?%s (Idempotency-Key %q): status %d: %s", r.method, path, query, idem, rec.Code, rec.Body.Bytes())
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s: non-JSON answer", r.method, path)
		}
	})
}

func FuzzHandlerQueries(f *testing.F) { fuzzHandlerQueries(f, openTestStore(f)) }

// FuzzHandlerQueriesPostgres is FuzzHandlerQueries over PostgreSQL, which
// refuses NUL bytes and invalid UTF-8 in TEXT columns.
func FuzzHandlerQueriesPostgres(f *testing.F) {
	if !pgtest.Available() {
		f.Skip("VEIL_TEST_POSTGRES not set")
	}
	st, err := OpenStore(context.Background(), pgtest.DSN(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	fuzzHandlerQueries(f, st)
}
