package e2ee

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/session"
)

var fuzzStateKey = bytes.Repeat([]byte{7}, StateKeySize)

// fuzzState returns an identity of user "bot" and a state holding it and
// one session, as the fuzz targets' valid input.
func fuzzState(f *testing.F) (*identity.Identity, *state) {
	id, err := fuzzIdentity(time.Unix(1_700_000_000, 0))
	if err != nil {
		f.Fatal(err)
	}
	return id, &state{Version: stateVersion, Identity: id.Export(),
		Sessions: []savedSession{{ID: "00000000000000000000000000000001", ChannelCID: "messaging:c", Keys: map[uint32][]byte{0: make([]byte, 32)}}}}
}

// fuzzIdentity is the identity of the fuzz targets' state, created at the
// given time.
func fuzzIdentity(created time.Time) (*identity.Identity, error) {
	return identity.Generate(testrand.New("fuzz-state"), "bot", identity.Options{Kind: identity.KindX25519, Created: created})
}

// isFuzzIdentity reports whether got is the fuzz targets' identity. Its
// creation time is not compared: the fuzzing cache keeps blobs sealed by
// earlier versions of the fixture, whose identities had other creation
// times; every other byte must match.
func isFuzzIdentity(got *identity.Identity) bool {
	if got == nil || got.Generation() != 0 {
		return false
	}
	want, err := fuzzIdentity(got.Card().Created())
	return err == nil && got.Equal(want)
}

// loadAsBot runs New for user "bot" over a state store holding blob.
func loadAsBot(blob []byte) (*Client, error) {
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	return New(context.Background(), Config{UserID: "bot", Service: svc.As("bot"), Directory: &dir, Publisher: &dir,
		State: &MemoryStore{blob: blob}, StateKey: mustStateKey(fuzzStateKey), Kind: identity.KindX25519})
}

// FuzzLoadState: a saved state authenticates under the StateKey, but its
// contents are still parsed by New (identity export, pins, session keys):
// whatever they hold, New returns a client for the configured user or an
// error, and never panics.
func FuzzLoadState(f *testing.F) {
	_, st := fuzzState(f)
	valid, err := json.Marshal(st)
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
		blob, err := sealState(fuzzStateKey, "bot", &st)
		if err != nil {
			return
		}
		if c, err := loadAsBot(blob); err == nil && c.Identity().UserID() != "bot" {
			t.Fatalf("a state loaded as user %q", c.Identity().UserID())
		}
	})
}

// FuzzOpenStateBlob feeds the raw state file (what FileStore.Load reads
// from disk, before any authentication) to openState and New: no panic;
// a blob opens only to the state that was sealed (sealing draws a random
// nonce, so each fuzzing process has its own valid blob: the check is on
// the contents), other inputs fail with ErrStateKey, and New never returns
// a client with another identity.
func FuzzOpenStateBlob(f *testing.F) {
	_, st := fuzzState(f)
	key := fuzzStateKey
	valid, err := sealState(key, "bot", st)
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
			got, ierr := identity.Import(st.Identity)
			if ierr != nil || !isFuzzIdentity(got) || len(st.Sessions) != 1 || st.Sessions[0].ChannelCID != "messaging:c" {
				t.Fatalf("a blob opened to a state that was never sealed")
			}
		} else if !errors.Is(err, ErrStateKey) {
			t.Fatalf("unexpected error %v", err)
		}
		c, err := loadAsBot(blob)
		if err == nil && blob != nil && !isFuzzIdentity(c.Identity()) {
			t.Fatalf("New loaded an identity that was never saved")
		}
		if err == nil && c.Identity().UserID() != "bot" {
			t.Fatalf("a state loaded as user %q", c.Identity().UserID())
		}
	})
}

// TestIsFuzzIdentity: the fuzz targets' check accepts their identity at
// any creation time and nothing else.
func TestIsFuzzIdentity(t *testing.T) {
	id, err := fuzzIdentity(time.Unix(1_600_000_000, 0))
	if err != nil || !isFuzzIdentity(id) {
		t.Fatalf("the fixture is not recognized (%v)", err)
	}
	other, err := identity.Generate(testrand.New("other"), "bot", identity.Options{Kind: identity.KindX25519, Created: time.Unix(1_600_000_000, 0)})
	if err != nil || isFuzzIdentity(other) || isFuzzIdentity(nil) {
		t.Fatalf("another identity is accepted (%v)", err)
	}
}
