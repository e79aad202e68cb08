package e2ee

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/session"
)

// truncating serves a session's log without its last records, as a key
// service that lost or hides them would.
type truncating struct {
	session.Service
	keep int // records kept; 0 serves the honest log
}

func (t *truncating) Log(ctx context.Context, id session.ID, from uint32) ([][]byte, error) {
	recs, err := t.Service.Log(ctx, id, 0)
	if err != nil || t.keep == 0 {
		if err != nil || int(from) >= len(recs) {
			return nil, err
		}
		return recs[from:], nil
	}
	recs = recs[:min(t.keep, len(recs))]
	if int(from) >= len(recs) {
		return nil, nil
	}
	return recs[from:], nil
}

func (t *truncating) Head(ctx context.Context, id session.ID) (session.Head, error) {
	if t.keep == 0 {
		return t.Service.Head(ctx, id)
	}
	return session.Head{Seq: uint32(t.keep - 1)}, nil
}

// TestFloorSurvivesRestart: the newest membership-log head a client
// verified is kept in its encrypted state; a restarted client facing a key
// service that serves an older log refuses it (session.ErrRollback) instead
// of sealing under an epoch a removed member holds.
func TestFloorSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	plain := func(u string) *Client {
		c, err := New(ctx, Config{UserID: u, Service: svc.As(u), Directory: &dir, Publisher: &dir, Kind: identity.KindX25519})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice := plain("alice")
	plain("carol")
	path := filepath.Join(t.TempDir(), "bob.state")
	key := mustStateKey(bytes.Repeat([]byte{9}, StateKeySize))
	lying := &truncating{Service: svc.As("bob")}
	bobCfg := Config{UserID: "bob", Service: lying, Directory: &dir, Publisher: &dir, Kind: identity.KindX25519,
		State: &FileStore{Path: path}, StateKey: key}
	bob, err := New(ctx, bobCfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := alice.CreateSession(ctx, "messaging:c", []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Manager().Revoke(ctx, s.ID(), []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.OpenChannel(ctx, "messaging:c", s.ID()); err != nil {
		t.Fatal(err)
	}
	msg := session.Binding{ChannelCID: "messaging:c", MessageID: "m1", SenderID: "bob"}
	if _, err := bob.Encrypt(ctx, msg, []byte("after carol left")); err != nil {
		t.Fatal(err)
	}
	lying.keep = 1 // only the genesis: carol still a reader of epoch 0
	restarted, err := New(ctx, bobCfg)
	if err != nil {
		t.Fatal(err)
	}
	msg.MessageID = "m2"
	if _, err := restarted.Encrypt(ctx, msg, []byte("x")); !errors.Is(err, session.ErrRollback) {
		t.Fatalf("a restarted client sealing over a rolled-back log: %v, want session.ErrRollback", err)
	}
}

// TestChannelBinding: once the local state binds a channel to the session
// it verified, a channel that names another session (Stream rewriting
// session_id) is refused with ErrSessionChanged, through OpenChannel and
// through Config.SessionID.
func TestChannelBinding(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	var named session.ID // what the channel's session_id says
	newClient := func(u string) *Client {
		c, err := New(ctx, Config{UserID: u, Service: svc.As(u), Directory: &dir, Publisher: &dir, Kind: identity.KindX25519,
			SessionID: func(context.Context, string) (session.ID, error) { return named, nil }})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice, bob, carol, mallory := newClient("alice"), newClient("bob"), newClient("carol"), newClient("mallory")
	s, err := alice.CreateSession(ctx, "messaging:c", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	named = s.ID()
	msg := session.Binding{ChannelCID: "messaging:c", MessageID: "m1", SenderID: "bob"}
	if _, err := bob.Encrypt(ctx, msg, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	// Mallory's session for another channel, which she then names in
	// messaging:c's session_id.
	other, err := mallory.CreateSession(ctx, "messaging:other", []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	named = other.ID()
	msg.MessageID = "m2"
	if _, err := bob.Encrypt(ctx, msg, []byte("x")); !errors.Is(err, ErrSessionChanged) {
		t.Fatalf("sealing after session_id changed: %v, want ErrSessionChanged", err)
	}
	if _, err := bob.OpenChannel(ctx, "messaging:c", other.ID()); !errors.Is(err, ErrSessionChanged) {
		t.Fatalf("OpenChannel with another session: %v, want ErrSessionChanged", err)
	}
	// A client with no binding yet still refuses a session whose genesis
	// names another channel.
	if _, err := carol.OpenChannel(ctx, "messaging:c", other.ID()); !errors.Is(err, session.ErrWrongChannel) {
		t.Fatalf("a session of another channel opened for messaging:c: %v, want session.ErrWrongChannel", err)
	}
}

// TestListingIsNoRootOfTrust: a channel's session as the key service lists
// it — here a squatter's, created before the channel's real creator — is
// never used to seal: without a session bound here or named by
// Config.SessionID, Encrypt refuses.
func TestListingIsNoRootOfTrust(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	newClient := func(u string) *Client {
		c, err := New(ctx, Config{UserID: u, Service: svc.As(u), Directory: &dir, Publisher: &dir, Kind: identity.KindX25519})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	bob, mallory := newClient("bob"), newClient("mallory")
	if _, err := mallory.CreateSession(ctx, "messaging:next", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	msg := session.Binding{ChannelCID: "messaging:next", MessageID: "m1", SenderID: "bob"}
	if _, err := bob.Encrypt(ctx, msg, []byte("secret")); !errors.Is(err, session.ErrUnknownSession) {
		t.Fatalf("sealing through the key service's listing: %v, want session.ErrUnknownSession", err)
	}
}

// TestFetchDoesNotRebind: reading a message of another session whose
// genesis names the channel (after the channel's session was deleted, a
// new creator made one) does not rebind the channel: the client keeps
// sealing for the session it was bound to, or fails, never for the other.
func TestFetchDoesNotRebind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	newClient := func(u string) *Client {
		c, err := New(ctx, Config{UserID: u, Service: svc.As(u), Directory: &dir, Publisher: &dir, Kind: identity.KindX25519})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice, bob, mallory := newClient("alice"), newClient("bob"), newClient("mallory")
	s, err := alice.CreateSession(ctx, "messaging:c", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.OpenChannel(ctx, "messaging:c", s.ID()); err != nil {
		t.Fatal(err)
	}
	if err := svc.As("alice").Delete(ctx, s.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := mallory.CreateSession(ctx, "messaging:c", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	m1 := session.Binding{ChannelCID: "messaging:c", MessageID: "m1", SenderID: "mallory"}
	text, err := mallory.Encrypt(ctx, m1, []byte("read me"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Decrypt(ctx, m1, text); err != nil {
		t.Fatal(err)
	}
	m2 := session.Binding{ChannelCID: "messaging:c", MessageID: "m2", SenderID: "bob"}
	if out, err := bob.Encrypt(ctx, m2, []byte("secret")); err == nil {
		t.Fatalf("bob sealed under another session than the one he bound the channel to: %.20s…", out)
	}
}
