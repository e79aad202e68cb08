package e2ee

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/session"
)

func TestStatePersistsAcrossRestarts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	key, _ := ParseStateKey(bytes.Repeat([]byte{7}, StateKeySize))
	store := &FileStore{Path: filepath.Join(t.TempDir(), "bot.state")}
	cfg := Config{UserID: "bot", Service: svc.As("bot"), Directory: &dir, Publisher: &dir, State: store, StateKey: key, Kind: identity.KindX25519}
	bot, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := New(ctx, Config{UserID: "alice", Service: svc.As("alice"), Directory: &dir, Publisher: &dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateSession(ctx, "messaging:c", []string{"bot"}); err != nil {
		t.Fatal(err)
	}
	msg := session.Binding{ChannelCID: "messaging:c", MessageID: "m1", SenderID: "alice"}
	text, err := alice.Encrypt(ctx, msg, []byte("persisted?"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bot.Decrypt(ctx, msg, text); err != nil {
		t.Fatal(err)
	}

	// The state file holds no key material in the clear.
	raw, _ := os.ReadFile(store.Path)
	if bytes.Contains(raw, []byte("AGE-SECRET-KEY")) || bytes.Contains(raw, []byte("veil-identity")) {
		t.Fatal("the state file is not encrypted")
	}
	if fi, _ := os.Stat(store.Path); fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}

	// A restarted bot (new process: new manager, empty caches) keeps its
	// identity and its pins.
	again, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Identity().Equal(bot.Identity()) {
		t.Fatal("the restarted client has another identity")
	}
	if p, _ := again.Pins().Pinned("alice"); p == nil {
		t.Fatal("pins were not persisted")
	}
	if got, err := again.Decrypt(ctx, msg, text); err != nil || string(got) != "persisted?" {
		t.Fatalf("restarted bot: %q, %v", got, err)
	}
	// The session keys were persisted too: a restarted bot reads without
	// fetching its grants again.
	offline := cfg
	offline.Service = noGrants{svc.As("bot")}
	third, err := New(ctx, offline)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := third.Decrypt(ctx, msg, text); err != nil || string(got) != "persisted?" {
		t.Fatalf("restarted bot without grant fetches: %q, %v", got, err)
	}

	wrong := cfg
	wrong.StateKey, _ = ParseStateKey(bytes.Repeat([]byte{8}, StateKeySize))
	if _, err := New(ctx, wrong); !errors.Is(err, ErrStateKey) {
		t.Fatalf("wrong state key: %v, want ErrStateKey", err)
	}
	other := cfg
	other.UserID = "mallory"
	if _, err := New(ctx, other); err == nil {
		t.Fatal("state of another user accepted")
	}
	raw[len(raw)-1] ^= 1
	os.WriteFile(store.Path, raw, 0o600)
	if _, err := New(ctx, cfg); !errors.Is(err, ErrStateKey) {
		t.Fatalf("tampered state: %v, want ErrStateKey", err)
	}
}

func TestRotateIdentityKeepsHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	newC := func(u string) *Client {
		c, err := New(ctx, Config{UserID: u, Service: svc.As(u), Directory: &dir, Publisher: &dir, Kind: identity.KindX25519})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice, bob := newC("alice"), newC("bob")
	s, err := alice.CreateSession(ctx, "messaging:c", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.OpenChannel(ctx, "messaging:c", s.ID()); err != nil {
		t.Fatal(err)
	}
	m1 := session.Binding{ChannelCID: "messaging:c", MessageID: "m1", SenderID: "bob"}
	old, _ := bob.Encrypt(ctx, m1, []byte("before rotation"))
	if err := bob.RotateIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	m2 := session.Binding{ChannelCID: "messaging:c", MessageID: "m2", SenderID: "bob"}
	fresh, err := bob.Encrypt(ctx, m2, []byte("after rotation"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		msg  session.Binding
		text string
	}{{m1, old}, {m2, fresh}} {
		if _, err := alice.Decrypt(ctx, c.msg, c.text); err != nil {
			t.Fatalf("%s: %v", c.msg.MessageID, err)
		}
		if _, err := bob.Decrypt(ctx, c.msg, c.text); err != nil {
			t.Fatalf("bob re-reads %s: %v", c.msg.MessageID, err)
		}
	}
	if _, err := bob.Encrypt(ctx, session.Binding{ChannelCID: "messaging:c", MessageID: "x", SenderID: "alice"}, nil); err == nil {
		t.Fatal("Encrypt as another sender accepted")
	}
	var tl *session.TooLongError
	if _, err := bob.Encrypt(ctx, m2, make([]byte, 4000)); !errors.As(err, &tl) {
		t.Fatalf("oversize message: %v", err)
	}
}

// noGrants is a session.Service whose grant fetches fail.
type noGrants struct{ session.Service }

func (noGrants) Grants(context.Context, session.ID) ([]session.GrantRecord, error) {
	return nil, errors.New("grants unavailable")
}

// TestMembersReachesTheManager: Config.Members gates the manager's
// rotations — a member the application does not list gets no new key.
func TestMembersReachesTheManager(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	for _, u := range []string{"bob", "carol"} {
		if _, err := New(ctx, Config{UserID: u, Service: svc.As(u), Directory: &dir, Publisher: &dir, Kind: identity.KindX25519}); err != nil {
			t.Fatal(err)
		}
	}
	app := []string{"alice", "bob"} // carol left the Stream channel
	alice, err := New(ctx, Config{UserID: "alice", Service: svc.As("alice"), Directory: &dir, Publisher: &dir, Kind: identity.KindX25519,
		Members: func(context.Context, string) ([]string, error) { return app, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateSession(ctx, "messaging:c", []string{"bob", "carol"}); !errors.Is(err, session.ErrNotMember) {
		t.Fatalf("creating a session with carol, whom the application does not list: %v, want session.ErrNotMember", err)
	}
	if _, err := alice.CreateSession(ctx, "messaging:c", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
}

// TestRotateIdentityRetiresOldKeys: RotateIdentity re-signs the sessions
// the state keeps with the new generation, so a reader that already
// trusts it accepts the records the old one signed, and readers refuse
// what the retired generation signs afterwards.
func TestRotateIdentityRetiresOldKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	newC := func(u string) *Client {
		c, err := New(ctx, Config{UserID: u, Service: svc.As(u), Directory: &dir, Publisher: &dir, Kind: identity.KindX25519})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice, bob, carol := newC("alice"), newC("bob"), newC("carol")
	s, err := alice.CreateSession(ctx, "messaging:c", []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.OpenChannel(ctx, "messaging:c", s.ID()); err != nil {
		t.Fatal(err)
	}
	if err := bob.Manager().Rotate(ctx, s.ID()); err != nil { // a record bob's generation 0 signs
		t.Fatal(err)
	}
	if err := bob.RotateIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := alice.Manager().Info(ctx, s.ID())
	if err != nil || info.Seq != 2 || info.Epoch != 2 {
		t.Fatalf("after RotateIdentity: %+v, %v; want bob's rotation signed with generation 1 (record 2, epoch 2)", info, err)
	}
	// carol trusts bob's generation 1 before she ever verified the log.
	if _, err := carol.Manager().Card(ctx, "bob", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.OpenChannel(ctx, "messaging:c", s.ID()); err != nil {
		t.Fatalf("a reader trusting bob's generation 1: %v", err)
	}
}
