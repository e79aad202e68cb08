package session

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/internal/testrand"
)

// lyingService is a Service that rewrites what the honest one answers, as
// a malicious key service would.
type lyingService struct {
	Service
	log    func([][]byte) [][]byte
	head   func(Head) Head
	grants func([]GrantRecord) []GrantRecord
}

func (l *lyingService) Log(ctx context.Context, id ID, from uint32) ([][]byte, error) {
	recs, err := l.Service.Log(ctx, id, 0)
	if err == nil && l.log != nil {
		recs = l.log(recs)
	}
	if err != nil || int(from) >= len(recs) {
		return nil, err
	}
	return recs[from:], nil
}

func (l *lyingService) Head(ctx context.Context, id ID) (Head, error) {
	if l.log != nil {
		recs, err := l.Log(ctx, id, 0)
		if err != nil || len(recs) == 0 {
			return Head{}, err
		}
		return Head{Seq: uint32(len(recs) - 1), Hash: memberlog.Hash(recs[len(recs)-1])}, nil
	}
	h, err := l.Service.Head(ctx, id)
	if err == nil && l.head != nil {
		h = l.head(h)
	}
	return h, err
}

func (l *lyingService) Grants(ctx context.Context, id ID) ([]GrantRecord, error) {
	g, err := l.Service.Grants(ctx, id)
	if err == nil && l.grants != nil {
		g = l.grants(g)
	}
	return g, err
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

// as returns a manager for m's identity, pins and floors over svc, with app
// as its Config.Members (nil: none) and policy for what it creates.
func as(t *testing.T, w *world, m *Manager, svc Service, app *appMembers, policy Policy) *Manager {
	t.Helper()
	cfg := Config{Identity: m.Identity(), Service: svc, Directory: &w.dir, Pins: m.pins, Floors: m.floors,
		Rand: testrand.New("as-" + m.Identity().UserID()), Policy: policy}
	if app != nil {
		cfg.Members = app.list
	}
	nm, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return nm
}

// TestServiceCannotAddReader plays a key service (or Stream, acting as any
// user there) that tries to give a reader of its own an epoch key: every
// attempt fails with a clear error, and sealing stays on the honest key.
func TestServiceCannotAddReader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob := w.user(t, "alice"), w.user(t, "bob")
	mallory := newIdentity(t, "mallory", identity.KindX25519) // an agent user the attacker registered
	if err := w.dir.Publish(mallory.Card()); err != nil {
		t.Fatal(err)
	}
	s, err := alice.Create(ctx, cid, []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	honest, _ := w.svc.As("alice").Log(ctx, s.ID(), 0)
	genesis := honest[0]
	st, err := memberlog.Verify(genesis, [memberlog.IDSize]byte(s.ID()), func(u string, a memberlog.Anchor, gen uint32) ([]*identity.Card, error) {
		h, err := w.dir.History(ctx, u)
		if err != nil {
			return nil, err
		}
		return h[a.Generation : gen+1], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	chosen, _ := ParseEpochKey([]byte("0123456789abcdef0123456789abcdef"))
	evil, _ := FromKeys(nil, s.ID(), cid, map[uint32]EpochKey{0: chosen, 1: chosen})
	evilGrant := func(granter *identity.Identity, n uint32) GrantRecord {
		g, err := NewGrant(granter, bob.Identity().Card(), evil, n)
		if err != nil {
			t.Fatal(err)
		}
		return GrantRecord{Grantee: "bob", Epoch: n, Grant: g}
	}
	// A record adding mallory, signed by mallory: she is no member.
	addMallory := forgeChange(t, st, mallory, []memberlog.Op{{Kind: memberlog.OpAdd,
		Member: memberlog.Member{UserID: "mallory", Anchor: memberlog.AnchorOf(mallory.Card()), Role: memberlog.RoleAdmin}}}, false, [32]byte{})
	// A rotation signed by mallory to a key she chose.
	rotateByMallory := forgeChange(t, st, mallory, nil, true, commitmentOf(chosen))

	tests := []struct {
		name, reason string
		svc          *lyingService
		want         error
	}{
		{"record signed by a non-member", "an add must be signed by a member the log authorizes",
			&lyingService{Service: w.svc.As("bob"), log: func(r [][]byte) [][]byte { return append(r, addMallory) }}, ErrInvalidLog},
		{"rotation signed by a non-member", "a new epoch's commitment is only as good as its signer",
			&lyingService{Service: w.svc.As("bob"), log: func(r [][]byte) [][]byte { return append(r, rotateByMallory) },
				grants: func(g []GrantRecord) []GrantRecord { return append(g, evilGrant(mallory, 1)) }}, ErrInvalidLog},
		{"substituted key for epoch 0", "a grant's key must match the commitment the creator signed",
			&lyingService{Service: w.svc.As("bob"), grants: func([]GrantRecord) []GrantRecord { return []GrantRecord{evilGrant(mallory, 0)} }}, ErrKeyConflict},
		{"substituted key signed by a member", "even a member's signature cannot make another key epoch 0's",
			&lyingService{Service: w.svc.As("bob"), grants: func([]GrantRecord) []GrantRecord { return []GrantRecord{evilGrant(alice.Identity(), 0)} }}, ErrKeyConflict},
		{"another session's genesis", "a log whose genesis does not hash to the session ID is not that session",
			&lyingService{Service: w.svc.As("bob"), log: func(r [][]byte) [][]byte {
				g := slices.Clone(r[0])
				g[len(g)-1] ^= 1
				return [][]byte{g}
			}}, ErrInvalidLog},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reader := as(t, &w, bob, tc.svc, nil, 0)
			_, err := reader.OpenSession(ctx, s.ID(), cid)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v (%s)", err, tc.want, tc.reason)
			}
		})
	}
}

// forgeChange signs the next change of st as signer, without checking the
// log's rules: what an attacker holding a key of its own can produce.
func forgeChange(t *testing.T, st *memberlog.State, signer *identity.Identity, ops []memberlog.Op, newEpoch bool, commit [32]byte) []byte {
	t.Helper()
	c := &memberlog.Change{SessionID: st.ID(), Seq: st.Seq() + 1, Prev: st.Head(), Actor: signer.UserID(),
		ActorGen: signer.Generation(), NewEpoch: newEpoch, Epoch: st.Epoch(), Ops: ops, Commitment: commit}
	if newEpoch {
		c.Epoch++
	}
	raw, err := memberlog.SignChange(signer, c)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestSquattingRefused: a user who creates the session of a channel before
// its real creator does not get it adopted: the creator gets a
// SessionExistsError, and members who check the application's member list
// refuse the squatter's session.
func TestSquattingRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob, mallory := w.user(t, "alice"), w.user(t, "bob"), w.user(t, "mallory")
	squat, err := mallory.Create(ctx, cid, []string{"alice", "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Create(ctx, cid, []string{"bob"}); !errors.Is(err, ErrSessionExists) {
		t.Fatalf("creating a squatted channel: %v, want ErrSessionExists", err)
	}
	app := &appMembers{users: []string{"alice", "bob"}}
	reader := as(t, &w, bob, w.svc.As("bob"), app, 0)
	if _, err := reader.ForChannel(ctx, cid); !errors.Is(err, ErrNotMember) {
		t.Fatalf("the squatter's session through the service's lookup: %v, want ErrNotMember", err)
	}
	if _, err := reader.OpenSession(ctx, squat.ID(), cid); !errors.Is(err, ErrNotMember) {
		t.Fatalf("the squatter's session by ID: %v, want ErrNotMember", err)
	}
	if _, err := as(t, &w, bob, w.svc.As("bob"), nil, 0).OpenSession(ctx, squat.ID(), "messaging:other"); !errors.Is(err, ErrWrongChannel) {
		t.Fatalf("a session opened for another channel: %v, want ErrWrongChannel", err)
	}
}

// TestRollbackRefused: after a removal, a service that forgets or hides
// records — whether the Manager was evicted, forgot the session, or is a
// new Manager with the same floors — is caught: ErrRollback, and nothing is
// sealed under the old epoch.
func TestRollbackRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob := w.user(t, "alice"), w.user(t, "bob")
	w.user(t, "carol")
	s, err := alice.Create(ctx, cid, []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	seal(t, bob, s.ID(), "m0", "before")
	if err := alice.Revoke(ctx, s.ID(), []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	seal(t, bob, s.ID(), "m1", "after") // bob's floor is now record 1
	truncated := &lyingService{Service: w.svc.As("bob"), log: func(r [][]byte) [][]byte { return r[:1] }}
	forked := &lyingService{Service: w.svc.As("bob"), head: func(h Head) Head { h.Hash[0] ^= 1; return h }}

	for _, tc := range []struct {
		name, reason string
		reader       func() *Manager
		want         error
	}{
		{"cached, head rolled back", "the head is compared with the verified log", func() *Manager { return as(t, &w, bob, truncated, nil, 0) }, ErrRollback},
		{"forgotten session", "floors outlive the cache", func() *Manager { m := as(t, &w, bob, truncated, nil, 0); m.Forget(s.ID()); return m }, ErrRollback},
		{"another head at the same record", "two histories: a fork", func() *Manager {
			m := as(t, &w, bob, forked, nil, 0)
			if _, err := m.Retrieve(ctx, s.ID()); err != nil {
				t.Fatal(err)
			}
			return m
		}, ErrFork},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.reader()
			_, err := m.SealText(ctx, s.ID(), ctxFor("bob", "m2"), []byte("x"), 5000)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v (%s)", err, tc.want, tc.reason)
			}
		})
	}
	// A 409 on a change does not make the Manager forget its floor.
	if err := bob.Rotate(ctx, s.ID()); err != nil {
		t.Fatal(err)
	}
	if f, ok := bob.floors.Floor(s.ID()); !ok || f.Seq != 2 {
		t.Fatalf("floor after a rotation: %+v %v, want record 2", f, ok)
	}
	stale := as(t, &w, alice, w.svc.As("alice"), nil, 0) // alice's cache: record 1
	stale.Preload(s)
	if err := stale.Rotate(ctx, s.ID()); err != nil {
		t.Fatalf("a change that lost a race is re-planned: %v", err)
	}
}

// TestRemovalOnStreamAlone: the application (Stream) drops carol, the log
// still lists her. The next member to seal rotates her out first; with a
// policy that does not let members remove, sealing is refused instead.
func TestRemovalOnStreamAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob, carol := w.user(t, "alice"), w.user(t, "bob"), w.user(t, "carol")
	s, err := alice.Create(ctx, cid, []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	app := &appMembers{users: []string{"alice", "bob", "carol"}}
	b := as(t, &w, bob, w.svc.As("bob"), app, 0)
	app.remove("carol")
	text, err := b.SealText(ctx, s.ID(), ctxFor("bob", "m1"), []byte("carol is out"), 5000)
	if err != nil {
		t.Fatal(err)
	}
	if h := header(t, text); h.Epoch != 1 {
		t.Fatalf("sealed under epoch %d, want 1 (carol rotated out)", h.Epoch)
	}
	if _, err := open(carol, "bob", "m1", text); err == nil {
		t.Fatal("carol, dropped by the application only, read a later message")
	}
	if got, err := open(alice, "bob", "m1", text); err != nil || got != "carol is out" {
		t.Fatalf("alice: %q, %v", got, err)
	}

	// An admins-only session: a member cannot remove, so it refuses to seal.
	var w2 world
	alice2, bob2 := w2.user(t, "alice"), w2.user(t, "bob")
	w2.user(t, "carol")
	strict := as(t, &w2, alice2, w2.svc.As("alice"), nil, PolicyAdminsOnly)
	s2, err := strict.Create(ctx, cid, []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	app2 := &appMembers{users: []string{"alice", "bob"}}
	b2 := as(t, &w2, bob2, w2.svc.As("bob"), app2, 0)
	if _, err := b2.SealText(ctx, s2.ID(), ctxFor("bob", "m1"), []byte("x"), 5000); !errors.Is(err, ErrPendingRemoval) {
		t.Fatalf("member seals with a pending removal: %v, want ErrPendingRemoval", err)
	}
}

// TestRemovalInLogAlone: the log removes carol but the application still
// lists her: what is sealed afterwards is under the new epoch, which she
// never gets.
func TestRemovalInLogAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob, carol := w.user(t, "alice"), w.user(t, "bob"), w.user(t, "carol")
	s, err := alice.Create(ctx, cid, []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Revoke(ctx, s.ID(), []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	app := &appMembers{users: []string{"alice", "bob", "carol"}}
	b := as(t, &w, bob, w.svc.As("bob"), app, 0)
	text, err := b.SealText(ctx, s.ID(), ctxFor("bob", "m1"), []byte("x"), 5000)
	if err != nil {
		t.Fatal(err)
	}
	if h := header(t, text); h.Epoch != 1 {
		t.Fatalf("sealed under epoch %d, want 1", h.Epoch)
	}
	if _, err := open(carol, "bob", "m1", text); err == nil {
		t.Fatal("carol, removed in the log only, read a later message")
	}
}

// TestLeaverRotatedOut: a member who leaves keeps the current key, so the
// next member to seal starts a new epoch first.
func TestLeaverRotatedOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob, carol := w.user(t, "alice"), w.user(t, "bob"), w.user(t, "carol")
	s, err := alice.Create(ctx, cid, []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if err := carol.Leave(ctx, s.ID()); err != nil {
		t.Fatal(err)
	}
	text := seal(t, bob, s.ID(), "m1", "after carol left")
	if h := header(t, text); h.Epoch != 1 {
		t.Fatalf("sealed under epoch %d after a leave, want 1", h.Epoch)
	}
	info, err := alice.Info(ctx, s.ID())
	if err != nil || len(info.Members) != 2 {
		t.Fatalf("Info: %+v, %v", info, err)
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

// countingService counts Grants and Log requests.
type countingService struct {
	Service
	mu          sync.Mutex
	grants, log int
}

func (c *countingService) Grants(ctx context.Context, id ID) ([]GrantRecord, error) {
	c.mu.Lock()
	c.grants++
	c.mu.Unlock()
	return c.Service.Grants(ctx, id)
}

func (c *countingService) Log(ctx context.Context, id ID, from uint32) ([][]byte, error) {
	c.mu.Lock()
	c.log++
	c.mu.Unlock()
	return c.Service.Log(ctx, id, from)
}

// TestForgedFutureEpochIsCheap: an envelope whose header names an epoch
// the log has not reached costs one head request, not a fetch and unwrap of
// every grant.
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
	reader := as(t, &w, bob, counting, nil, 0)
	if _, err := open(reader, "alice", "m1", text); err != nil {
		t.Fatal(err)
	}
	grants, logs := counting.grants, counting.log
	env, _ := DecodeText(text)
	env[1+IDSize+3] = 9 // epoch 9
	for range 5 {
		if _, err := reader.OpenText(ctx, EncodeText(env), ctxFor("alice", "m1")); !errors.Is(err, ErrUnknownEpoch) {
			t.Fatalf("a future epoch: err = %v, want ErrUnknownEpoch", err)
		}
	}
	if counting.grants != grants || counting.log != logs {
		t.Fatalf("5 forged envelopes caused %d grant and %d log fetches", counting.grants-grants, counting.log-logs)
	}
}

// TestEditReplayRefused: a server that replays an older revision of an
// edited message after the reader saw the newer one gets ErrStaleRevision;
// two envelopes for one revision are ErrEquivocation; the same envelope
// opens again.
func TestEditReplayRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob := w.user(t, "alice"), w.user(t, "bob")
	s, err := alice.Create(ctx, cid, []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	sealRev := func(rev uint32, text string) (string, Binding) {
		b := Binding{ChannelCID: cid, MessageID: "m1", SenderID: "alice", Revision: rev}
		out, err := alice.SealText(ctx, s.ID(), b, []byte(text), 5000)
		if err != nil {
			t.Fatal(err)
		}
		return out, b
	}
	v0, b0 := sealRev(0, "helo")
	v1, b1 := sealRev(1, "hello")
	v1b, _ := sealRev(1, "hello!")
	for _, tc := range []struct {
		name, reason string
		text         string
		b            Binding
		want         error
	}{
		{"original", "first sight", v0, b0, nil},
		{"edit", "a newer revision replaces", v1, b1, nil},
		{"same edit again", "re-reading is not an attack", v1, b1, nil},
		{"original replayed", "an older revision after a newer one", v0, b0, ErrStaleRevision},
		{"second version of revision 1", "the sender signed two versions of one revision", v1b, b1, ErrEquivocation},
	} {
		_, err := bob.OpenText(ctx, tc.text, tc.b)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v (%s)", tc.name, err, tc.want, tc.reason)
		}
	}
}

// TestPoisonedGrantLocksNoOneOut: a malicious member who rotates and
// stores, for another member, a grant that does not open to the epoch's
// key (or names a granter with no card) costs that member the epoch it
// created, no more: the member still opens the epochs before it and the
// ones honest members create after, and still seals.
func TestPoisonedGrantLocksNoOneOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	wrongKey := mustKey(t, "0123456789abcdef0123456789abcdef")
	for _, tc := range []struct {
		name, reason string
		poison       func(t *testing.T, carol *identity.Identity, bob *identity.Card, id ID) []byte
	}{
		{"another key", "a grant whose key is not the epoch's is refused, not fatal",
			func(t *testing.T, carol *identity.Identity, bob *identity.Card, id ID) []byte {
				evil, _ := FromKeys(nil, id, cid, map[uint32]EpochKey{1: wrongKey})
				g, err := NewGrant(carol, bob, evil, 1)
				if err != nil {
					t.Fatal(err)
				}
				return g
			}},
		{"unknown granter", "a grant naming a granter the directory does not know is refused, not fatal",
			func(t *testing.T, _ *identity.Identity, bob *identity.Card, id ID) []byte {
				ghost := newIdentity(t, "ghost", identity.KindX25519) // never published
				evil, _ := FromKeys(nil, id, cid, map[uint32]EpochKey{1: wrongKey})
				g, err := NewGrant(ghost, bob, evil, 1)
				if err != nil {
					t.Fatal(err)
				}
				return g
			}},
		{"garbage", "bytes that are no age file are refused, not fatal",
			func(*testing.T, *identity.Identity, *identity.Card, ID) []byte { return []byte("not a grant") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var w world
			alice, bob, carol := w.user(t, "alice"), w.user(t, "bob"), w.user(t, "carol")
			s, err := alice.Create(ctx, cid, []string{"bob", "carol"})
			if err != nil {
				t.Fatal(err)
			}
			m0 := seal(t, alice, s.ID(), "m0", "epoch 0")

			// carol rotates to epoch 1 and poisons bob's grant.
			e, err := carol.fresh(ctx, s.ID(), true)
			if err != nil {
				t.Fatal(err)
			}
			key := mustKey(t, "fedcba9876543210fedcba9876543210")
			raw, _, err := e.log.NewChange(carol.Identity(), nil, true, commitmentOf(key), 0)
			if err != nil {
				t.Fatal(err)
			}
			s1, _ := FromKeys(nil, s.ID(), cid, map[uint32]EpochKey{1: key})
			var grants []GrantRecord
			for _, m := range []*Manager{alice, bob, carol} {
				g := tc.poison(t, carol.Identity(), bob.Identity().Card(), s.ID())
				if m != bob {
					if g, err = NewGrant(carol.Identity(), m.Identity().Card(), s1, 1); err != nil {
						t.Fatal(err)
					}
				}
				grants = append(grants, GrantRecord{Grantee: m.Identity().UserID(), Epoch: 1, Grant: g})
			}
			if err := w.svc.As("carol").Append(ctx, s.ID(), raw, grants); err != nil {
				t.Fatal(err)
			}
			// An honest rotation after it.
			if err := alice.Rotate(ctx, s.ID()); err != nil {
				t.Fatal(err)
			}
			m2 := seal(t, alice, s.ID(), "m2", "epoch 2")
			for _, reader := range []*Manager{bob, freshReader(t, &w, bob, w.svc.As("bob"))} {
				if got, err := open(reader, "alice", "m2", m2); err != nil || got != "epoch 2" {
					t.Errorf("bob opens epoch 2: %q, %v (%s)", got, err, tc.reason)
				}
				if got, err := open(reader, "alice", "m0", m0); err != nil || got != "epoch 0" {
					t.Errorf("bob opens epoch 0: %q, %v (%s)", got, err, tc.reason)
				}
			}
			if _, err := bob.SealText(ctx, s.ID(), ctxFor("bob", "m3"), []byte("still here"), 5000); err != nil {
				t.Errorf("bob seals: %v (%s)", err, tc.reason)
			}
		})
	}
}
