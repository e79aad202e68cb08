package keyservice

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/veilchat/veil/session"
)

// FuzzClientResponses: the key service is untrusted, so whatever it
// answers — any status, any body — the client returns a result or an
// error, never panics, and never loops (every call has a deadline it must
// not need).
func FuzzClientResponses(f *testing.F) {
	for _, seed := range []struct {
		status uint16
		body   string
	}{
		{200, `{"cards":{}}`},
		{200, `{"cards":[]}`},
		{200, `{"records":["AQI=","AwQ="],"next":2}`},
		{200, `{"records":[],"next":0}`},
		{200, `{"seq":3,"hash":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}`},
		{200, `{"seq":3,"hash":"AAEC"}`},
		{200, `{"grants":[{"grantee":"a","epoch":0,"grant":"YWdl"}],"next":0}`},
		{200, `{"grants":[{"grantee":"a","epoch":3,"grant":""},{"grantee":"a","epoch":2,"grant":""}]}`},
		{200, `{"id":"zz"}`},
		{404, `{"error":{"code":"unknown_session","message":"no"}}`},
		{409, `{"error":{"code":"conflict","head":{"seq":1,"hash":""}}}`},
		{409, `{"error":{"code":"session_exists","session_id":"00000000000000000000000000000001"}}`},
		{409, `{"error":{"code":"session_exists","session_id":"zz"}}`},
		{200, `null`},
		{200, `{"cards":{"a":"AQID"}}`},
		{400, ``},
	} {
		f.Add(seed.status, []byte(seed.body))
	}
	// One server per fuzzing process; each input sets what it answers
	// (inputs run one at a time in a process).
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
	c, err := NewClient(ClientConfig{BaseURL: srv.URL, Token: StaticToken("t"), MaxRetries: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, status uint16, body []byte) {
		if status < 200 || status > 499 || status == 429 {
			status = 200 // retried statuses only slow the target down
		}
		answer.mu.Lock()
		answer.status, answer.body = int(status), body
		answer.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		id := session.ID{1}
		calls := []func() error{
			func() error { _, err := c.Latest(ctx, []string{"a", "b"}); return err },
			func() error { _, err := c.History(ctx, "a"); return err },
			func() error { _, err := c.Lookup(ctx, "messaging:x"); return err },
			func() error { _, err := c.Log(ctx, id, 0); return err },
			func() error { _, err := c.Head(ctx, id); return err },
			func() error { _, err := c.Grants(ctx, id); return err },
			func() error {
				return c.Create(ctx, []byte("genesis"), []session.GrantRecord{{Grantee: "a", Epoch: 0, Grant: []byte("g")}})
			},
			func() error { return c.Append(ctx, id, []byte("record"), nil) },
			func() error { return c.Delete(ctx, id) },
		}
		for i, call := range calls {
			if err := call(); ctx.Err() != nil {
				t.Fatalf("call %d did not return before the deadline: %v", i, err)
			}
		}
	})
}
