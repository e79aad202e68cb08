package keyservice

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestUserIDPathOnTheWire checks the request line the Client sends for a
// user ID in a path: each byte that means something in a URL is escaped
// exactly once, "." and ".." are escaped so that nothing resolves them,
// and the base URL's own path (escaped or not) is kept before it.
func TestUserIDPathOnTheWire(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.RequestURI
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"cards":[]}`))
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		base, user, want string
		reason           string
	}{
		{"", "alice", "/v1/users/alice/cards", "the control case"},
		{"", "with space", "/v1/users/with%20space/cards", "escaped once, not %2520"},
		{"", "zoë", "/v1/users/zo%C3%AB/cards", "UTF-8, escaped once"},
		{"", "a/b", "/v1/users/a%2Fb/cards", "'/' stays in its segment"},
		{"", "100%", "/v1/users/100%25/cards", "'%' escaped once"},
		{"", "q?#", "/v1/users/q%3F%23/cards", "neither a query nor a fragment"},
		{"", "a+b", "/v1/users/a+b/cards", "'+' is literal in a path"},
		{"", "..", "/v1/users/%2E%2E/cards", "nothing resolves an escaped '..'"},
		{"", ".", "/v1/users/%2E/cards", "nor an escaped '.'"},
		{"/keys/", "a/b", "/keys/v1/users/a%2Fb/cards", "under a base path, trailing slash dropped"},
		{"/key%20s", "a b", "/key%20s/v1/users/a%20b/cards", "a base path that is escaped itself stays as given"},
	}
	for _, tt := range tests {
		c, err := NewClient(ClientConfig{BaseURL: srv.URL + tt.base, Token: StaticToken("t"), MaxRetries: -1})
		if err != nil {
			t.Fatal(err)
		}
		c.History(t.Context(), tt.user) // no cards: an error, after the request
		mu.Lock()
		if got != tt.want {
			t.Errorf("History(%q) under %q sent %q, want %q (%s)", tt.user, tt.base, got, tt.want, tt.reason)
		}
		mu.Unlock()
	}
}
