package server

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"github.com/veilchat/veil/internal/pgtest"
	"github.com/veilchat/veil/keyservice/internal/wire"
)

// fuzzQueryRoutes are the routes whose input is the path, the query string
// and headers (FuzzHandlerRequests covers the JSON bodies); "%s" is the
// fuzzed path value.
var fuzzQueryRoutes = []struct{ method, path string }{
	{"GET", "/v1/users/%s/cards"},
	{"GET", "/v1/sessions"},
	{"GET", "/v1/sessions/%s/log"},
	{"GET", "/v1/sessions/%s/head"},
	{"GET", "/v1/sessions/%s/grants"},
	{"POST", "/v1/sessions/%s/log"},
	{"DELETE", "/v1/sessions/%s"},
	{"GET", "/v1/sessions/SID/log"},
	{"GET", "/v1/sessions/SID/head"},
	{"GET", "/v1/sessions/SID/grants"},
}

// fuzzHandlerQueries sends arbitrary path values, query strings and
// headers as an authenticated member: no panic, no 5xx, every answer JSON,
// and a page of the log is a run of records from where it was asked.
func fuzzHandlerQueries(f *testing.F, st Store) {
	srv := newTestServer(f, st, func(c *Config) { c.RateLimit, c.RateBurst = rate.Inf, 1 })
	alice := srv.member(f, "alice")
	srv.member(f, "bob")
	s, err := alice.mgr.Create(context.Background(), "messaging:fuzzq", []string{"bob"})
	if err != nil {
		f.Fatal(err)
	}
	if err := alice.mgr.Rotate(context.Background(), s.ID()); err != nil {
		f.Fatal(err)
	}
	sid := s.ID().String()
	for i, seed := range []struct{ arg, query, hdr string }{
		{"alice", "", ""}, {"", "channel_cid=messaging:fuzzq", ""}, {sid, "from=1&limit=1", ""},
		{sid, "", ""}, {sid, "limit=1&after_epoch=0", ""}, {sid, "", ""}, {sid, "", ""},
		{"", "from=4294967295", "key-1"}, {"", "limit=1000&from=" + url.QueryEscape("\xff"), ""}, {"", "after_epoch=4294967295", ""},
	} {
		f.Add(uint8(i), seed.arg, seed.query, seed.hdr, []byte(`{"record":"AQ=="}`))
	}
	tok := userToken(f, "alice")
	f.Fuzz(func(t *testing.T, route uint8, arg, query, hdr string, body []byte) {
		r := fuzzQueryRoutes[int(route)%len(fuzzQueryRoutes)]
		path := bytes.ReplaceAll([]byte(r.path), []byte("%s"), []byte(url.PathEscape(arg)))
		path = bytes.ReplaceAll(path, []byte("SID"), []byte(sid))
		req, err := http.NewRequest(r.method, "http://ks"+string(path)+"?"+query, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		if hdr != "" {
			req.Header["Idempotency-Key"] = []string{hdr} // a header the API ignores
		}
		rec := httptest.NewRecorder()
		srv.Config.Handler.ServeHTTP(rec, req)
		if rec.Code/100 == 3 {
			return // ServeMux redirects unclean paths ("//", "/./") to their clean form
		}
		if rec.Code >= 500 {
			t.Fatalf("%s %s?%s: status %d: %s", r.method, path, query, rec.Code, rec.Body.Bytes())
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s: non-JSON answer", r.method, path)
		}
		if r.method == "GET" && strings.HasSuffix(r.path, "/log") && rec.Code == 200 {
			var page wire.LogResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
				t.Fatal(err)
			}
			from, _ := strconv.ParseUint(cmp.Or(req.URL.Query().Get("from"), "0"), 10, 32) // the handler parsed it
			if page.Next != nil && (len(page.Records) == 0 || uint64(*page.Next) != from+uint64(len(page.Records))) {
				t.Fatalf("GET %s?%s: a page of %d records from %d says the next starts at %d", path, query, len(page.Records), from, *page.Next)
			}
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
