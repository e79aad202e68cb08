package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
)

type world struct {
	dir MemoryDirectory
	svc MemoryService
}

func (w *world) user(t testing.TB, name string) *Manager {
	t.Helper()
	id := newIdentity(t, name, identity.KindX25519)
	if err := w.dir.Publish(id.Card()); err != nil {
		t.Fatal(err)
	}
	w.svc.Directory = &w.dir
	m, err := NewManager(Config{Identity: id, Service: w.svc.As(name), Directory: &w.dir, Rand: testrand.New("rand-" + name)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func ctxFor(sender, msgID string) Binding {
	return Binding{ChannelCID: cid, MessageID: msgID, SenderID: sender}
}

func seal(t *testing.T, m *Manager, id ID, msgID, text string) string {
	t.Helper()
	out, err := m.SealText(context.Background(), id, ctxFor(m.Identity().UserID(), msgID), []byte(text), 5000)
	if err != nil {
		t.Fatalf("%s seals %s: %v", m.Identity().UserID(), msgID, err)
	}
	return out
}

func open(m *Manager, sender, msgID, text string) (string, error) {
	b, err := m.OpenText(context.Background(), text, ctxFor(sender, msgID))
	return string(b), err
}

func TestManagerLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob, carol, dave := w.user(t, "alice"), w.user(t, "bob"), w.user(t, "carol"), w.user(t, "dave")

	s, err := alice.Create(ctx, cid, []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	m1 := seal(t, alice, s.ID(), "m1", "hello all")
	for _, m := range []*Manager{bob, carol} {
		if got, err := open(m, "alice", "m1", m1); err != nil || got != "hello all" {
			t.Fatalf("%s: %q, %v", m.Identity().UserID(), got, err)
		}
	}
	if _, err := open(dave, "alice", "m1", m1); !errors.Is(err, ErrForbidden) {
		t.Fatalf("non-member dave: err = %v, want ErrForbidden", err)
	}

	// A second creator does not adopt the existing session silently.
	var exists *SessionExistsError
	if _, err := bob.Create(ctx, cid, []string{"alice"}); !errors.As(err, &exists) || exists.ID != s.ID() {
		t.Fatalf("second Create: %v; want a *SessionExistsError naming %s", err, s.ID())
	}
	if got, err := bob.OpenSession(ctx, s.ID(), cid); err != nil || got.ID() != s.ID() {
		t.Fatalf("OpenSession: %v, %v", got, err)
	}

	// Extend: dave joins and reads the current epoch's history. Adding
	// needs an admin under the default policy.
	if err := bob.Extend(ctx, s.ID(), []string{"dave"}, false); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a member added someone: %v, want ErrForbidden", err)
	}
	if err := alice.Extend(ctx, s.ID(), []string{"dave"}, false); err != nil {
		t.Fatal(err)
	}
	if got, err := open(dave, "alice", "m1", m1); err != nil || got != "hello all" {
		t.Fatalf("dave after extend: %q, %v", got, err)
	}

	// Revoke carol: a new epoch that carol never gets. Any member may
	// remove under the default policy.
	if err := dave.Revoke(ctx, s.ID(), []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	// bob's cached session is at epoch 0: sealing must notice the rotation.
	m2 := seal(t, bob, s.ID(), "m2", "without carol")
	if h := header(t, m2); h.Epoch != 1 {
		t.Fatalf("bob sealed under epoch %d after the rotation, want 1", h.Epoch)
	}
	for _, m := range []*Manager{alice, dave} {
		if got, err := open(m, "bob", "m2", m2); err != nil || got != "without carol" {
			t.Fatalf("%s: %q, %v", m.Identity().UserID(), got, err)
		}
	}
	if _, err := open(carol, "bob", "m2", m2); !errors.Is(err, ErrForbidden) {
		t.Fatalf("removed carol: err = %v, want ErrForbidden", err)
	}
	// carol kept every key she had: her cached session still cannot open it.
	cs, _ := carol.Retrieve(ctx, s.ID())
	if _, err := cs.OpenText(m2, ctxFor("bob", "m2"), bob.Identity().Card()); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("carol's old keys opened a post-removal message: %v", err)
	}
	// Old messages stay readable for current members.
	if got, err := open(alice, "alice", "m1", m1); err != nil || got != "hello all" {
		t.Fatalf("alice re-reads m1: %q, %v", got, err)
	}

	// Hide history: eve joins through a new epoch and cannot read epoch 1.
	eve := w.user(t, "eve")
	if err := alice.Extend(ctx, s.ID(), []string{"eve"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := open(eve, "bob", "m2", m2); !errors.Is(err, ErrUnknownEpoch) {
		t.Fatalf("eve read history she should not see: %v", err)
	}
	m3 := seal(t, dave, s.ID(), "m3", "welcome eve")
	if got, err := open(eve, "dave", "m3", m3); err != nil || got != "welcome eve" {
		t.Fatalf("eve: %q, %v", got, err)
	}

	// Rotation for the same members keeps everyone in.
	if err := alice.Rotate(ctx, s.ID()); err != nil {
		t.Fatal(err)
	}
	m4 := seal(t, eve, s.ID(), "m4", "epoch 3")
	if h := header(t, m4); h.Epoch != 3 {
		t.Fatalf("epoch %d, want 3", h.Epoch)
	}
	if got, err := open(bob, "eve", "m4", m4); err != nil || got != "epoch 3" {
		t.Fatalf("bob: %q, %v", got, err)
	}

	// ForChannel finds the session through the channel.
	fs, err := dave.ForChannel(ctx, cid)
	if err != nil || fs.ID() != s.ID() {
		t.Fatalf("ForChannel: %v %v", fs, err)
	}
}

func header(t *testing.T, text string) Header {
	t.Helper()
	env, err := DecodeText(text)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHeader(env)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestManagerForgedSenderAndKeySubstitution(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob := w.user(t, "alice"), w.user(t, "bob")
	s, err := alice.Create(ctx, cid, []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	m1 := seal(t, bob, s.ID(), "m1", "from bob")
	if _, err := open(alice, "alice", "m1", m1); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("bob's envelope claimed as alice's: err = %v, want ErrDecrypt", err)
	}
	if _, err := open(alice, "bob", "m1", m1); err != nil {
		t.Fatal(err)
	}

	// A directory that swaps bob's card for an impostor's: alice has pinned
	// the real one, so she refuses to wrap keys for it.
	evil := &substituting{Directory: &w.dir, user: "bob", card: impostor(t, "bob").Card()}
	m, err := NewManager(Config{Identity: alice.Identity(), Service: w.svc.As("alice"), Directory: evil, Pins: alice.pins})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Rotate(ctx, s.ID())
	var kc *identity.KeyChangeError
	if !errors.As(err, &kc) || kc.UserID != "bob" {
		t.Fatalf("rotation over a substituted card: err = %v, want *KeyChangeError for bob", err)
	}
}

type substituting struct {
	Directory
	user string
	card *identity.Card
}

func (d *substituting) Latest(ctx context.Context, users []string) (map[string]*identity.Card, error) {
	out, err := d.Directory.Latest(ctx, users)
	if _, ok := out[d.user]; ok {
		out[d.user] = d.card
	}
	return out, err
}

func (d *substituting) History(ctx context.Context, user string) ([]*identity.Card, error) {
	if user == d.user {
		return []*identity.Card{d.card}, nil
	}
	return d.Directory.History(ctx, user)
}

func TestManagerRotatedSender(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob := w.user(t, "alice"), w.user(t, "bob")
	s, _ := alice.Create(ctx, cid, []string{"bob"})
	old := seal(t, bob, s.ID(), "m1", "gen 0")
	if _, err := open(alice, "bob", "m1", old); err != nil {
		t.Fatal(err)
	}
	// bob rotates his keys and publishes the chained card.
	bob1, err := bob.Identity().Rotate(testrand.New("bob1"), identity.Options{Created: created})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.dir.Publish(bob1.Card()); err != nil {
		t.Fatal(err)
	}
	nb, _ := NewManager(Config{Identity: bob1, Service: w.svc.As("bob"), Directory: &w.dir})
	fresh := seal(t, nb, s.ID(), "m2", "gen 1")
	for _, c := range []struct{ id, text, want string }{{"m1", old, "gen 0"}, {"m2", fresh, "gen 1"}} {
		if got, err := open(alice, "bob", c.id, c.text); err != nil || got != c.want {
			t.Fatalf("%s: %q, %v", c.id, got, err)
		}
	}
	// The rotated identity still opens grants made for generation 0.
	if _, err := nb.Retrieve(ctx, s.ID()); err != nil {
		t.Fatalf("bob's gen-1 identity cannot open his gen-0 grant: %v", err)
	}
}

// TestManagerConcurrentCreateOneWins: members creating one channel's
// session at once: exactly one succeeds, every other gets a
// *SessionExistsError naming the winner's session, and can open it.
func TestManagerConcurrentCreateOneWins(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	users := make([]*Manager, 6)
	names := make([]string, len(users))
	for i := range users {
		names[i] = fmt.Sprintf("u%d", i)
		users[i] = w.user(t, names[i])
	}
	ids := make([]ID, len(users))
	errs := make([]error, len(users))
	var wg sync.WaitGroup
	for i, m := range users {
		wg.Go(func() {
			s, err := m.Create(ctx, cid, names)
			if err == nil {
				ids[i] = s.ID()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	var winner ID
	wins := 0
	for i, err := range errs {
		if err == nil {
			wins++
			winner = ids[i]
		}
	}
	if wins != 1 {
		t.Fatalf("%d creators succeeded, want 1: %v", wins, errs)
	}
	for i, err := range errs {
		var exists *SessionExistsError
		if err != nil && (!errors.As(err, &exists) || exists.ID != winner) {
			t.Fatalf("creator %d: %v, want a *SessionExistsError naming %s", i, err, winner)
		}
		if _, err := users[i].OpenSession(ctx, winner, cid); err != nil {
			t.Fatalf("creator %d opens the winner's session: %v", i, err)
		}
	}
}

func TestManagerCacheBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice := w.user(t, "alice")
	alice.cfg.CacheSize = 2
	for i := range 5 {
		if _, err := alice.Create(ctx, fmt.Sprintf("messaging:c%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := alice.lru.Len(); n != 2 || len(alice.byID) != 2 {
		t.Fatalf("cache holds %d sessions (%d indexed), want 2", n, len(alice.byID))
	}
	// Evicted sessions come back from the service.
	if _, err := alice.ForChannel(ctx, "messaging:c0"); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryDirectoryRules(t *testing.T) {
	t.Parallel()
	var d MemoryDirectory
	a0 := newIdentity(t, "alice", identity.KindX25519)
	a1, _ := a0.Rotate(testrand.New("a1"), identity.Options{Created: created})
	if err := d.Publish(a1.Card()); !errors.Is(err, ErrConflict) {
		t.Errorf("first card of generation 1: %v", err)
	}
	if err := d.PublishHistory(context.Background(), a1.Cards()); err != nil {
		t.Fatal(err)
	}
	if err := d.Publish(impostor(t, "alice").Card()); !errors.Is(err, ErrConflict) {
		t.Errorf("unchained card: %v", err)
	}
	if h, _ := d.History(context.Background(), "alice"); len(h) != 2 {
		t.Errorf("history has %d cards", len(h))
	}
	if _, err := d.History(context.Background(), "nobody"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("unknown user: %v", err)
	}
}
