package e2ee

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/session"
)

// FuzzOpenStateBlob feeds the raw state file (what FileStore.Load reads
// from disk, before any authentication) to openState and New: no panic;
// a blob opens only to the state that was sealed (sealing draws a random
// nonce, so each fuzzing process has its own valid blob: the check is on
// the contents), other inputs fail with ErrStateKey, and New never returns
// a client with another identity.
func FuzzOpenStateBlob(f *testing.F) {
	key := bytes.Repeat([]byte{7}, StateKeySize)
	id, err := identity.Generate(testrand.New("fuzz-state-blob"), "bot", identity.Options{Kind: identity.KindX25519})
	if err != nil {
		f.Fatal(err)
	}
	valid, err := sealState(key, "bot", &state{Version: stateVersion, Identity: id.Export(),
		Sessions: []savedSession{{ID: "00000000000000000000000000000001", ChannelCID: "messaging:c", Keys: map[uint32][]byte{0: make([]byte, 32)}}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add(valid[:25])
	f.Add(append([]byte{2}, valid[1:]...))
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, blob []byte) {
		st, err := openState(key, "bot", blob)
		if err == nil {
			if !bytes.Equal(st.Identity, id.Export()) || len(st.Sessions) != 1 || st.Sessions[0].ChannelCID != "messaging:c" {
				t.Fatalf("a blob opened to a state that was never sealed")
			}
		} else if !errors.Is(err, ErrStateKey) {
			t.Fatalf("unexpected error %v", err)
		}
		var dir session.MemoryDirectory
		var svc session.MemoryService
		c, err := New(context.Background(), Config{UserID: "bot", Service: svc.As("bot"), Directory: &dir, Publisher: &dir,
			State: &MemoryStore{blob: blob}, StateKey: key, Kind: identity.KindX25519})
		if err == nil && blob != nil && !c.Identity().Equal(id) {
			t.Fatalf("New loaded an identity that was never saved")
		}
		if err == nil && c.Identity().UserID() != "bot" {
			t.Fatalf("a state loaded as user %q", c.Identity().UserID())
		}
	})
}
