package ssks

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/veilchat/veil/twoman"
)

// TestStoreOutageIs503: with the database down (closed under the running
// handler), the SSKS answers 503 unavailable, the code its API documents
// for a store that does not answer, not 500; the backend's and the
// device's errors match twoman.ErrUnavailable.
func TestStoreOutageIs503(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	if !errors.Is(err, twoman.ErrUnavailable) || apiCode(err) != twoman.CodeUnavailable {
		t.Errorf("starting a challenge with the store down: %v, want %s", err, twoman.CodeUnavailable)
	}
	for path, body := range map[string]string{
		"/v1/password/params":   `{"user_id":"alice"}`,
		"/v1/password/retrieve": `{"user_id":"alice","lookup":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
	} {
		resp, err := http.Post(f.srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("POST %s with the store down: %d, want 503", path, resp.StatusCode)
		}
	}
	resp, err := http.Get(f.srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the store down: %d, want 503", resp.StatusCode)
	}
}
