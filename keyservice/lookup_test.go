package keyservice

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/veilchat/veil/session"
)

// TestLookupChannelNoGenesisNames looks up channel CIDs that no genesis
// can name: the Client answers ErrUnknownSession (and ErrNotFound) without
// asking the service, whose HTTP API would refuse them as invalid input,
// so that it answers as session.MemoryService does. Channel CIDs a genesis
// can name are asked.
func TestLookupChannelNoGenesisNames(t *testing.T) {
	t.Parallel()
	id := session.ID{0x5e, 0x55}
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"` + id.String() + `"}`))
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(ClientConfig{BaseURL: srv.URL, Token: StaticToken("token"), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		cid    string
		asks   bool
		reason string
	}{
		{"empty", "", false, "no session has no channel"},
		{"over the longest", strings.Repeat("c", session.MaxChannelCIDLen+1), false, "a genesis names at most session.MaxChannelCIDLen bytes"},
		{"not UTF-8", "messaging:\xff", false, "a genesis names UTF-8"},
		{"NUL", "messaging:a\x00b", false, "a genesis names no NUL"},
		{"the longest", strings.Repeat("c", session.MaxChannelCIDLen), true, "a channel a genesis can name is asked"},
		{"plain", "messaging:general", true, "a channel a genesis can name is asked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := asked.Load()
			got, err := c.Lookup(t.Context(), tt.cid)
			if n := asked.Load() - before; (n == 1) != tt.asks || n > 1 {
				t.Errorf("Lookup sent %d requests; want one if it asks (asks: %v) (%s)", n, tt.asks, tt.reason)
			}
			if tt.asks {
				if err != nil || got != id {
					t.Errorf("Lookup = %v, %v; want %v (%s)", got, err, id, tt.reason)
				}
				return
			}
			if !errors.Is(err, session.ErrUnknownSession) || !errors.Is(err, ErrNotFound) || !got.IsZero() {
				t.Errorf("Lookup = %v, %v; want the zero ID, ErrUnknownSession and ErrNotFound (%s)", got, err, tt.reason)
			}
		})
	}
}
