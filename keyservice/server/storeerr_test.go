package server

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/session"
)

// TestStoreOutageIs503: when the database fails (here: closed under the
// running handler), every route that reaches it answers 503 unavailable —
// the code the API documents for a store that does not answer, which
// clients retry — never 500; and the client's error matches
// keyservice.ErrUnavailable.
func TestStoreOutageIs503(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) Store) {
		st := open(t)
		srv := newTestServer(t, st)
		alice := srv.member(t, "alice")
		srv.member(t, "bob")
		s, err := alice.mgr.Create(context.Background(), "messaging:outage", []string{"bob"})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		tok := userToken(t, "alice")
		for _, tc := range []struct{ method, path string }{
			{"GET", "/v1/users/alice/cards"},
			{"POST", "/v1/cards/lookup"},
			{"GET", "/v1/sessions?channel_cid=messaging:outage"},
			{"GET", "/v1/sessions/" + s.ID().String() + "/head"},
			{"GET", "/v1/sessions/" + s.ID().String() + "/log"},
			{"GET", "/v1/sessions/" + s.ID().String() + "/grants"},
			{"DELETE", "/v1/sessions/" + s.ID().String()},
			{"GET", "/readyz"},
		} {
			var body any
			if tc.path == "/v1/cards/lookup" {
				body = map[string]any{"user_ids": []string{"alice"}}
			}
			r := request(t, srv, tc.method, tc.path, tok, body)
			if r.status != http.StatusServiceUnavailable || r.err.Code != keyservice.CodeUnavailable {
				t.Errorf("%s %s with the store down: %d %s, want 503 %s", tc.method, tc.path, r.status, r.err.Code, keyservice.CodeUnavailable)
			}
		}
		c := srv.client(t, "alice")
		_, err = c.Head(context.Background(), s.ID())
		if !errors.Is(err, keyservice.ErrUnavailable) || errors.Is(err, session.ErrUnknownSession) {
			t.Errorf("the client's error: %v, want ErrUnavailable", err)
		}
	})
}
