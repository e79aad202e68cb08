package e2ee

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/session"
)

// FuzzLoadState: a saved state authenticates under the StateKey, but its
// contents are still parsed by New (identity export, pins, session keys):
// whatever they hold, New returns a client for the configured user or an
// error, and never panics.
func FuzzLoadState(f *testing.F) {
	key := bytes.Repeat([]byte{7}, StateKeySize)
	id, err := identity.Generate(testrand.New("fuzz-state"), "bot", identity.Options{Kind: identity.KindX25519})
	if err != nil {
		f.Fatal(err)
	}
	valid, err := json.Marshal(&state{Version: stateVersion, Identity: id.Export(),
		Sessions: []savedSession{{ID: "00000000000000000000000000000001", ChannelCID: "messaging:c", Keys: map[uint32][]byte{0: make([]byte, 32)}}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte(`{"version":1,"identity":"","pins":[""],"sessions":[{"id":"zz","keys":{"4294967295":""}}]}`))
	f.Add([]byte(`{"version":1,"pins":["AQ=="],"sessions":[{"id":"00000000000000000000000000000000","channel_cid":"","keys":{}}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, plain []byte) {
		var st state
		if json.Unmarshal(plain, &st) != nil {
			return // not a state: sealing it would test nothing beyond openState's own check
		}
		blob, err := sealState(key, "bot", &st)
		if err != nil {
			return
		}
		var dir session.MemoryDirectory
		var svc session.MemoryService
		c, err := New(context.Background(), Config{UserID: "bot", Service: svc.As("bot"), Directory: &dir, Publisher: &dir,
			State: &MemoryStore{blob: blob}, StateKey: key, Kind: identity.KindX25519})
		if err == nil && c.Identity().UserID() != "bot" {
			t.Fatalf("a state loaded as user %q", c.Identity().UserID())
		}
	})
}
