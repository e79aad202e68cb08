package backend

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/twoman"
)

// FuzzBackendResponses: whatever a hostile or broken SSKS answers to a
// challenge request, StartChallenge returns an error or a Session for the
// user, factor and key it was asked about, and returns in time.
func FuzzBackendResponses(f *testing.F) {
	f.Add(uint16(200), []byte(`{"session_id":"s1","must_authenticate":true,"expires_at":"2030-01-01T00:00:00Z"}`))
	f.Add(uint16(200), []byte(`{"session_id":"","must_authenticate":false}`))
	f.Add(uint16(429), []byte(`{"error":{"code":"rate_limited","message":"slow down"}}`))
	f.Add(uint16(500), []byte(`not json`))
	f.Add(uint16(200), []byte(`[]`))
	var answer struct {
		mu     sync.Mutex
		status int
		body   []byte
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer.mu.Lock()
		status, body := answer.status, answer.body
		answer.mu.Unlock()
		w.WriteHeader(status)
		w.Write(body)
	}))
	f.Cleanup(srv.Close)
	rk, err := twoman.NewRuleKey(testrand.New("backend-fuzz"))
	if err != nil {
		f.Fatal(err)
	}
	keys := &MemoryKeyStore{}
	if err := keys.PutRuleKey(context.Background(), "alice", rk); err != nil {
		f.Fatal(err)
	}
	b, err := New(Config{Keys: keys, SSKSURL: srv.URL, AppKey: NewSecret([]byte("0123456789abcdef0123456789abcdef"))})
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
		s, err := b.StartChallenge(ctx, "alice", twoman.Factor{Type: twoman.Email, Value: "A@B.C"}, false)
		if err == nil && (s.UserID != "alice" || s.Factor.Value != "a@b.c" || !s.RuleKey.Equal(rk)) {
			t.Fatalf("StartChallenge returned %+v", s)
		}
		if ctx.Err() != nil {
			t.Fatal("StartChallenge did not return before the deadline")
		}
	})
}
