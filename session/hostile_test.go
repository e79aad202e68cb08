package session

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
)

// lyingService is a Service that rewrites what the honest one answers, as
// a malicious key service would.
type lyingService struct {
	Service
	info   func(Info) Info
	grants func([]GrantRecord) []GrantRecord
	sent   []GrantRecord // grants of the rotations it was sent
}

func (l *lyingService) Info(ctx context.Context, id ID) (Info, error) {
	i, err := l.Service.Info(ctx, id)
	if err == nil && l.info != nil {
		i = l.info(i)
	}
	return i, err
}

func (l *lyingService) Grants(ctx context.Context, id ID) ([]GrantRecord, error) {
	g, err := l.Service.Grants(ctx, id)
	if err == nil && l.grants != nil {
		g = l.grants(g)
	}
	return g, err
}

func (l *lyingService) Rotate(ctx context.Context, id ID, remove []string, grants []GrantRecord) error {
	l.sent = append(l.sent, grants...)
	return l.Service.Rotate(ctx, id, remove, grants)
}

// appMembers is the application's view of a channel's members (Stream's).
type appMembers struct {
	mu    sync.Mutex
	users []string
}

func (a *appMembers) list(context.Context, string) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.users), nil
}

func (a *appMembers) remove(u string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.users = slices.DeleteFunc(a.users, func(x string) bool { return x == u })
}

// as returns a manager for m's identity and pins over svc, with app as its
// Config.Members (nil: none).
func as(t *testing.T, w *world, m *Manager, svc Service, app *appMembers) *Manager {
	t.Helper()
	cfg := Config{Identity: m.Identity(), Service: svc, Directory: &w.dir, Pins: m.pins, Rand: testrand.New("as-" + m.Identity().UserID())}
	if app != nil {
		cfg.Members = app.list
	}
	nm, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return nm
}

// injectEpoch makes a lying service for reader that announces epoch n of
// s with a key of the attacker's choosing, granted by granter.
func injectEpoch(t *testing.T, w *world, reader *Manager, granter *identity.Identity, s *Session, n uint32) (*lyingService, *Session) {
	t.Helper()
	chosen, _ := ParseEpochKey([]byte("0123456789abcdef0123456789abcdef"))
	evil, err := FromKeys(nil, s.ID(), cid, map[uint32]EpochKey{n: chosen})
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGrant(granter, reader.Identity().Card(), evil, n)
	if err != nil {
		t.Fatal(err)
	}
	name := reader.Identity().UserID()
	return &lyingService{Service: w.svc.As(name),
		info: func(i Info) Info { i.Epoch = n; return i },
		grants: func(gs []GrantRecord) []GrantRecord {
			return append(gs, GrantRecord{Grantee: name, Epoch: n, Grant: g})
		},
	}, evil
}

// TestInjectedEpochRefused: with Config.Members, a new epoch granted by a
// user the application does not list as a member — a user the key service
// minted, or a removed member — is refused before anything is sealed
// under it.
func TestInjectedEpochRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob, carol := w.user(t, "alice"), w.user(t, "bob"), w.user(t, "carol")
	app := &appMembers{users: []string{"alice", "bob", "carol"}}
	s, err := alice.Create(ctx, cid, []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	// bob trusts carol's card: she was a member.
	if _, err := open(bob, "carol", "x", seal(t, carol, s.ID(), "x", "hi")); err != nil {
		t.Fatal(err)
	}
	minted := newIdentity(t, "operator", identity.KindX25519)
	if err := w.dir.Publish(minted.Card()); err != nil {
		t.Fatal(err)
	}
	if err := alice.Revoke(ctx, s.ID(), []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	app.remove("carol")
	for _, tc := range []struct {
		name    string
		granter *identity.Identity
	}{
		{"granted by a user the key service minted", minted},
		{"granted by a removed member", carol.Identity()},
	} {
		svc, evil := injectEpoch(t, &w, bob, tc.granter, s, 2)
		victim := as(t, &w, bob, svc, app)
		text, err := victim.SealText(ctx, s.ID(), ctxFor("bob", "m"), []byte("secret"), 5000)
		if !errors.Is(err, ErrNotMember) {
			env, _ := DecodeText(text)
			_, oerr := evil.Open(env, ctxFor("bob", "m"), bob.Identity().Card())
			t.Fatalf("%s: SealText err = %v (attacker opens it: %v), want ErrNotMember", tc.name, err, oerr == nil)
		}
	}
	// The legitimate epoch still works for the same manager setup.
	honest := as(t, &w, bob, w.svc.As("bob"), app)
	if _, err := honest.SealText(ctx, s.ID(), ctxFor("bob", "m2"), []byte("fine"), 5000); err != nil {
		t.Fatalf("the honest service: %v", err)
	}
}

// TestRotationWrapsOnlyForAppMembers: with Config.Members, a rotation
// refuses to wrap the new key for a user the key service lists as a member
// but the application does not (one it minted, or one removed earlier).
func TestRotationWrapsOnlyForAppMembers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice := w.user(t, "alice")
	w.user(t, "bob")
	w.user(t, "carol")
	minted := newIdentity(t, "operator", identity.KindX25519)
	if err := w.dir.Publish(minted.Card()); err != nil {
		t.Fatal(err)
	}
	app := &appMembers{users: []string{"alice", "bob", "carol"}}
	s, err := alice.Create(ctx, cid, []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	for _, stranger := range []string{"operator", "dave"} {
		svc := &lyingService{Service: w.svc.As("alice"),
			info: func(i Info) Info { i.Members = append(i.Members, Member{UserID: stranger}); return i }}
		admin := as(t, &w, alice, svc, app)
		if err := admin.Revoke(ctx, s.ID(), []string{"carol"}); !errors.Is(err, ErrNotMember) {
			t.Fatalf("stranger %q listed by the service: Revoke err = %v, want ErrNotMember", stranger, err)
		}
		for _, g := range svc.sent {
			if g.Grantee == stranger {
				t.Fatalf("a grant was made for %q", stranger)
			}
		}
	}
	// Through the honest service the same revocation works.
	if err := as(t, &w, alice, w.svc.As("alice"), app).Revoke(ctx, s.ID(), []string{"carol"}); err != nil {
		t.Fatal(err)
	}
}

// TestEpochRollbackRefused: after a revocation to epoch 1, a service that
// reports epoch 0 again (and serves only its grants) does not make the
// admin seal under the epoch the removed member holds.
func TestEpochRollbackRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice := w.user(t, "alice")
	w.user(t, "bob")
	w.user(t, "carol")
	s, err := alice.Create(ctx, cid, []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Revoke(ctx, s.ID(), []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	alice.cfg.Service = &lyingService{Service: w.svc.As("alice"),
		info: func(i Info) Info { i.Epoch = 0; return i },
		grants: func(gs []GrantRecord) []GrantRecord {
			return slices.DeleteFunc(gs, func(g GrantRecord) bool { return g.Epoch != 0 })
		},
	}
	if text, err := alice.SealText(ctx, s.ID(), ctxFor("alice", "m1"), []byte("carol is gone"), 5000); !errors.Is(err, ErrConflict) {
		t.Fatalf("sealing after the service rolled back: err = %v (epoch %d), want ErrConflict", err, header(t, text).Epoch)
	}
}

// TestFetchKeepsAndProtectsHeldKeys: a refetch through a service that
// omits old grants keeps the keys held, and one that serves another key
// for a held epoch is refused with ErrKeyConflict.
func TestFetchKeepsAndProtectsHeldKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob := w.user(t, "alice"), w.user(t, "bob")
	s, err := alice.Create(ctx, cid, []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	m0 := seal(t, alice, s.ID(), "m0", "epoch 0")
	if _, err := open(bob, "alice", "m0", m0); err != nil {
		t.Fatal(err)
	}
	if err := alice.Rotate(ctx, s.ID()); err != nil {
		t.Fatal(err)
	}
	m1 := seal(t, alice, s.ID(), "m1", "epoch 1")
	bob.cfg.Service = &lyingService{Service: w.svc.As("bob"), grants: func(gs []GrantRecord) []GrantRecord {
		return slices.DeleteFunc(gs, func(g GrantRecord) bool { return g.Epoch == 0 })
	}}
	if _, err := open(bob, "alice", "m1", m1); err != nil {
		t.Fatal(err)
	}
	if got, err := open(bob, "alice", "m0", m0); err != nil || got != "epoch 0" {
		t.Fatalf("after a refetch without epoch 0's grant: %q, %v; the held key must stay", got, err)
	}

	// Another key for the held epoch 1, validly granted by alice.
	other, _ := FromKeys(nil, s.ID(), cid, map[uint32]EpochKey{1: mustKey(t, "another epoch-1 key, 32 bytes!!!")})
	g, err := NewGrant(alice.Identity(), bob.Identity().Card(), other, 1)
	if err != nil {
		t.Fatal(err)
	}
	bob.cfg.Service = &lyingService{Service: w.svc.As("bob"),
		info: func(i Info) Info { i.Epoch = 2; return i },
		grants: func(gs []GrantRecord) []GrantRecord {
			return append(slices.DeleteFunc(gs, func(g GrantRecord) bool { return g.Epoch == 1 }), GrantRecord{Grantee: "bob", Epoch: 1, Grant: g})
		},
	}
	if _, err := bob.SealText(ctx, s.ID(), ctxFor("bob", "m2"), []byte("x"), 5000); !errors.Is(err, ErrKeyConflict) {
		t.Fatalf("a substituted key for a held epoch: err = %v, want ErrKeyConflict", err)
	}
	if got, err := open(bob, "alice", "m1", m1); err != nil || got != "epoch 1" {
		t.Fatalf("the held epoch-1 key after the refused substitution: %q, %v", got, err)
	}
}

func mustKey(t *testing.T, s string) EpochKey {
	t.Helper()
	k, err := ParseEpochKey([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestEpochBounds: epoch numbers stop at MaxEpochs-1; nothing wraps.
func TestEpochBounds(t *testing.T) {
	t.Parallel()
	k := mustKey(t, "0123456789abcdef0123456789abcdef")
	if _, err := FromKeys(nil, ID{1}, cid, map[uint32]EpochKey{^uint32(0): k}); err == nil {
		t.Fatal("FromKeys accepted epoch 2^32-1")
	}
	last, err := FromKeys(nil, ID{1}, cid, map[uint32]EpochKey{MaxEpochs - 1: k})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := last.Rotate(); err == nil {
		t.Fatal("Rotate past the last epoch")
	}
	s, _ := FromKeys(nil, ID{1}, cid, map[uint32]EpochKey{0: k})
	if _, err := s.WithEpoch(MaxEpochs, k); err == nil {
		t.Fatal("WithEpoch accepted epoch MaxEpochs")
	}
}

// TestCardCacheFollowsPins: once the user re-pins a card after checking
// the safety number, a card accepted earlier under another pin no longer
// verifies messages.
func TestCardCacheFollowsPins(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob := w.user(t, "alice"), w.user(t, "bob")
	s, err := alice.Create(ctx, cid, []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	fake := impostor(t, "bob")
	pins := new(identity.MemoryPins)
	m, err := NewManager(Config{Identity: alice.Identity(), Service: w.svc.As("alice"),
		Directory: &substituting{Directory: &w.dir, user: "bob", card: fake.Card()}, Pins: pins})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Card(ctx, "bob", 0); err != nil { // first use pins the impostor
		t.Fatal(err)
	}
	if err := pins.Pin(bob.Identity().Card()); err != nil { // verified out of band
		t.Fatal(err)
	}
	ss, _ := alice.Retrieve(ctx, s.ID())
	forged, _ := ss.SealText(fake, ctxFor("bob", "f1"), []byte("forged"), 5000)
	if got, err := m.OpenText(ctx, forged, ctxFor("bob", "f1")); err == nil {
		t.Fatalf("after re-pinning bob's real card, the impostor's message opens: %q", got)
	}
}

// probePins calls probe on every lookup of a user's pin.
type probePins struct {
	identity.MemoryPins
	probe func(user string)
}

func (p *probePins) Pinned(u string) (*identity.Card, error) {
	p.probe(u)
	return p.MemoryPins.Pinned(u)
}

// TestTrustDecisionsSerialized: every pin lookup of a trust decision (a
// first use that pins, a check that advances a pin) happens under the
// user's trust lock, so two concurrent first uses, served different cards
// by the directory, cannot both pin and accept their card.
func TestTrustDecisionsSerialized(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice := w.user(t, "alice")
	bob := newIdentity(t, "bob", identity.KindX25519)
	if err := w.dir.Publish(bob.Card()); err != nil {
		t.Fatal(err)
	}
	var m *Manager
	var lookups, unlocked int
	pins := &probePins{probe: func(u string) {
		if u != "bob" {
			return
		}
		lookups++
		if l := m.trustLock(u); l.TryLock() {
			l.Unlock()
			unlocked++
		}
	}}
	m, err := NewManager(Config{Identity: alice.Identity(), Service: w.svc.As("alice"), Directory: &w.dir, Pins: pins})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Card(ctx, "bob", 0); err != nil {
		t.Fatal(err)
	}
	m.cards = map[cardKey]trustedCard{} // force the next lookups through the trust path
	if _, err := m.trustedLatest(ctx, []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	// Cache hits look the pin up without the lock; they decide nothing.
	hitLookups := 0
	pins.probe = func(u string) {
		if u == "bob" {
			hitLookups++
		}
	}
	if _, err := m.Card(ctx, "bob", 0); err != nil || hitLookups == 0 {
		t.Fatalf("a cached card: %v, %d pin lookups", err, hitLookups)
	}
	if lookups == 0 || unlocked != 0 {
		t.Fatalf("%d of %d pin lookups in trust decisions ran without the user's trust lock", unlocked, lookups)
	}
}

// countingService counts Grants requests.
type countingService struct {
	Service
	mu     sync.Mutex
	grants int
}

func (c *countingService) Grants(ctx context.Context, id ID) ([]GrantRecord, error) {
	c.mu.Lock()
	c.grants++
	c.mu.Unlock()
	return c.Service.Grants(ctx, id)
}

// TestForgedFutureEpochIsCheap: an envelope whose header names an epoch
// the service has not reached does not make the reader fetch and unwrap
// every grant again.
func TestForgedFutureEpochIsCheap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob := w.user(t, "alice"), w.user(t, "bob")
	s, err := alice.Create(ctx, cid, []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	text := seal(t, alice, s.ID(), "m1", "hello")
	counting := &countingService{Service: w.svc.As("bob")}
	reader := as(t, &w, bob, counting, nil)
	if _, err := open(reader, "alice", "m1", text); err != nil {
		t.Fatal(err)
	}
	before := counting.grants
	env, _ := DecodeText(text)
	env[1+IDSize+3] = 9 // epoch 9
	for range 5 {
		if _, err := reader.OpenText(ctx, EncodeText(env), ctxFor("alice", "m1")); !errors.Is(err, ErrUnknownEpoch) {
			t.Fatalf("a future epoch: err = %v, want ErrUnknownEpoch", err)
		}
	}
	if counting.grants != before {
		t.Fatalf("5 forged envelopes caused %d grant fetches", counting.grants-before)
	}
}

// lookupLiar maps every channel to one session.
type lookupLiar struct {
	Service
	id ID
}

func (l *lookupLiar) Lookup(context.Context, string) (ID, error) { return l.id, nil }

func (l *lookupLiar) Create(ctx context.Context, id ID, channelCID string, grants []GrantRecord) (CreateResult, error) {
	return CreateResult{ID: l.id}, nil
}

// TestChannelMappingChecked: a service that answers a channel's lookup, or
// a create, with the session of another channel is caught by the channel
// CID the grants carry.
func TestChannelMappingChecked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice := w.user(t, "alice")
	w.user(t, "bob")
	other, err := alice.Create(ctx, "messaging:other", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	liar := as(t, &w, alice, &lookupLiar{Service: w.svc.As("alice"), id: other.ID()}, nil)
	if _, err := liar.ForChannel(ctx, cid); !errors.Is(err, ErrConflict) {
		t.Fatalf("ForChannel answered with another channel's session: %v, want ErrConflict", err)
	}
	if _, err := liar.Create(ctx, cid, []string{"bob"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("Create answered with another channel's session: %v, want ErrConflict", err)
	}
}

// TestOldEpochsFromDepartedGranters: with Config.Members, a member that
// fetches a session from scratch accepts the keys of old epochs granted by
// users who have left since; only the current epoch's granter must be a
// member.
func TestOldEpochsFromDepartedGranters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob, carol := w.user(t, "alice"), w.user(t, "bob"), w.user(t, "carol")
	s, err := alice.Create(ctx, cid, []string{"bob", "carol"}) // alice grants epoch 0
	if err != nil {
		t.Fatal(err)
	}
	m0 := seal(t, alice, s.ID(), "m0", "from alice")
	if err := w.svc.As("alice").SetAdmin(ctx, s.ID(), "bob", true); err != nil {
		t.Fatal(err)
	}
	if err := bob.Revoke(ctx, s.ID(), []string{"alice"}); err != nil { // bob grants epoch 1; alice leaves
		t.Fatal(err)
	}
	app := &appMembers{users: []string{"bob", "carol"}}
	restarted := as(t, &w, carol, w.svc.As("carol"), app) // nothing cached
	if got, err := open(restarted, "alice", "m0", m0); err != nil || got != "from alice" {
		t.Fatalf("an epoch-0 message after alice left: %q, %v", got, err)
	}
	if _, err := restarted.SealText(ctx, s.ID(), ctxFor("carol", "m1"), []byte("hi"), 5000); err != nil {
		t.Fatalf("sealing under epoch 1, granted by bob: %v", err)
	}
}
