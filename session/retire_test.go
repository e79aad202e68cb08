package session

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/internal/testrand"
)

// freshReader returns a manager for m's identity over svc that shares m's
// pins but has verified no log (no floor): a new device of m's user that
// restored its pins, or a member opening the session for the first time.
func freshReader(t *testing.T, w *world, m *Manager, svc Service) *Manager {
	t.Helper()
	nm, err := NewManager(Config{Identity: m.Identity(), Service: svc, Directory: &w.dir, Pins: m.pins,
		Rand: testrand.New("fresh-" + m.Identity().UserID())})
	if err != nil {
		t.Fatal(err)
	}
	return nm
}

// rotateIdentity gives m's user a new card generation, published, and
// returns a manager for it that shares m's pins and floors (as e2ee's
// RotateIdentity does), and the retired identity.
func rotateIdentity(t *testing.T, w *world, m *Manager) (*Manager, *identity.Identity) {
	t.Helper()
	old := m.Identity()
	next, err := old.Rotate(testrand.New(old.UserID()+"-next"), identity.Options{Created: created})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.dir.Publish(next.Card()); err != nil {
		t.Fatal(err)
	}
	nm, err := NewManager(Config{Identity: next, Service: w.svc.As(old.UserID()), Directory: &w.dir, Pins: m.pins, Floors: m.floors,
		Rand: testrand.New("rotated-" + old.UserID())})
	if err != nil {
		t.Fatal(err)
	}
	return nm, old
}

// TestRotationRetiresGenerations: after alice rotates her identity, a
// reader that trusts her new generation refuses records her old one signed
// that nothing vouches for, until she re-signs the log; then it accepts
// them, and everyone refuses what the retired key signs afterwards:
// records, and the envelopes and grants of the epochs that follow.
func TestRotationRetiresGenerations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob := w.user(t, "alice"), w.user(t, "bob")
	s, err := alice.Create(ctx, cid, []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	old := seal(t, alice, s.ID(), "m0", "sealed by generation 0")
	if _, err := bob.OpenSession(ctx, s.ID(), cid); err != nil {
		t.Fatal(err)
	}
	alice1, retired := rotateIdentity(t, &w, alice)
	if _, err := bob.Card(ctx, "alice", 1); err != nil { // bob now trusts generation 1
		t.Fatal(err)
	}
	if _, err := freshReader(t, &w, bob, w.svc.As("bob")).OpenSession(ctx, s.ID(), cid); !errors.Is(err, ErrInvalidLog) {
		t.Fatalf("a genesis signed by a retired generation nothing vouches for: %v, want ErrInvalidLog", err)
	}
	// bob verified the genesis before he trusted generation 1: his floor
	// keeps it, even from a log he verifies anew.
	bob.Forget(s.ID())
	if _, err := bob.OpenSession(ctx, s.ID(), cid); err != nil {
		t.Fatalf("a log verified before the rotation: %v", err)
	}
	if err := alice1.RetireGenerations(ctx, s.ID()); err != nil {
		t.Fatal(err)
	}
	info, err := alice1.Info(ctx, s.ID())
	if err != nil || info.Epoch != 1 {
		t.Fatalf("after RetireGenerations: epoch %d, %v; want a rotation to epoch 1", info.Epoch, err)
	}
	if err := alice1.RetireGenerations(ctx, s.ID()); err != nil {
		t.Fatal(err)
	}
	if again, _ := alice1.Info(ctx, s.ID()); again.Seq != info.Seq {
		t.Fatalf("RetireGenerations appended again (record %d, was %d): the log knows generation 1", again.Seq, info.Seq)
	}
	reader := freshReader(t, &w, bob, w.svc.As("bob"))
	if _, err := reader.OpenSession(ctx, s.ID(), cid); err != nil {
		t.Fatalf("a log whose old records generation 1 vouches for: %v", err)
	}
	if got, err := open(reader, "alice", "m0", old); err != nil || got != "sealed by generation 0" {
		t.Fatalf("an envelope of epoch 0 by generation 0: %q, %v", got, err)
	}

	// What the retired key signs now. The service stores it (or Stream
	// acts as alice at one that accepts its tokens).
	recs, err := w.svc.As("bob").Log(ctx, s.ID(), 0)
	if err != nil {
		t.Fatal(err)
	}
	st, err := bob.verifyLog(ctx, s.ID(), nil, recs)
	if err != nil {
		t.Fatal(err)
	}
	mallory := newIdentity(t, "mallory", identity.KindX25519)
	if err := w.dir.Publish(mallory.Card()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.NewChange(retired, nil, true, [32]byte{}, 0); err == nil {
		t.Fatal("NewChange signed with a retired generation")
	}
	forged := forgeValid(t, st, retired, []memberlog.Op{{Kind: memberlog.OpAdd,
		Member: memberlog.Member{UserID: "mallory", Anchor: memberlog.AnchorOf(mallory.Card()), Role: memberlog.RoleAdmin}}})
	svc := &lyingService{Service: w.svc.As("bob"), log: func(r [][]byte) [][]byte { return append(r, forged) }}
	// Even a reader that never pinned generation 1 refuses it: the log
	// shows generation 1 signing before it.
	naive, err := NewManager(Config{Identity: bob.Identity(), Service: svc, Directory: &w.dir, Rand: testrand.New("naive")})
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*Manager{"bob": as(t, &w, bob, svc, nil, 0), "a reader with no pins": naive} {
		if _, err := m.Info(ctx, s.ID()); !errors.Is(err, ErrInvalidLog) {
			t.Errorf("%s: a record signed by a retired generation after its successor signed: %v, want ErrInvalidLog", name, err)
		}
	}

	// An envelope of epoch 1 (begun by generation 1) sealed with
	// generation 0 and the epoch's real key: refused.
	cur, err := alice1.Retrieve(ctx, s.ID())
	if err != nil {
		t.Fatal(err)
	}
	forgedMsg, err := cur.SealText(retired, ctxFor("alice", "m1"), []byte("forged"), 5000)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := open(bob, "alice", "m1", forgedMsg); !errors.Is(err, ErrDecrypt) {
		t.Errorf("an envelope of epoch 1 by retired generation 0: %q, %v; want ErrDecrypt", got, err)
	}
	honest := seal(t, alice1, s.ID(), "m2", "generation 1")
	if got, err := open(bob, "alice", "m2", honest); err != nil || got != "generation 1" {
		t.Errorf("an envelope of epoch 1 by generation 1: %q, %v", got, err)
	}

	// A grant of epoch 1 signed by generation 0, in place of the honest
	// one: refused, so the reader holds no key of epoch 1; alone, it is
	// the error.
	bobCard, err := alice1.Card(ctx, "bob", 0)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGrant(retired, bobCard, cur, 1)
	if err != nil {
		t.Fatal(err)
	}
	forgedGrant := GrantRecord{Grantee: "bob", Epoch: 1, Grant: g}
	withGrant := &lyingService{Service: w.svc.As("bob"), grants: func(gs []GrantRecord) []GrantRecord {
		gs = slices.DeleteFunc(gs, func(g GrantRecord) bool { return g.Epoch == 1 })
		return append(gs, forgedGrant)
	}}
	if got, err := freshReader(t, &w, bob, withGrant).Retrieve(ctx, s.ID()); err != nil || got.HasEpoch(1) {
		t.Errorf("a grant of epoch 1 signed by retired generation 0 beside epoch 0's: %v; want epoch 0's key only", err)
	}
	onlyForged := &lyingService{Service: w.svc.As("bob"), grants: func([]GrantRecord) []GrantRecord { return []GrantRecord{forgedGrant} }}
	if _, err := freshReader(t, &w, bob, onlyForged).Retrieve(ctx, s.ID()); !errors.Is(err, ErrDecrypt) {
		t.Errorf("a grant of epoch 1 signed by retired generation 0, alone: %v, want ErrDecrypt", err)
	}
}

// forgeValid signs the next change of st as signer, adding the members ops
// add (no new epoch), with the roster digest right: a record valid in
// every respect a reader checks but who may sign it, as a holder of a
// leaked key would make it past NewChange's checks.
func forgeValid(t *testing.T, st *memberlog.State, signer *identity.Identity, ops []memberlog.Op) []byte {
	t.Helper()
	roster := st.Members()
	for _, op := range ops {
		roster = append(roster, op.Member)
	}
	c := &memberlog.Change{SessionID: st.ID(), Seq: st.Seq() + 1, Prev: st.Head(), Actor: signer.UserID(), ActorGen: signer.Generation(),
		Epoch: st.Epoch(), Ops: ops, RosterDigest: memberlog.RosterDigest(st.Policy(), roster)}
	raw, err := memberlog.SignChange(signer, c)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestSealRetiresGenerations: a rotated identity's first seal in a
// session whose log has not seen its generation rotates the session first,
// signed with the new generation.
func TestSealRetiresGenerations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob := w.user(t, "alice"), w.user(t, "bob")
	s, err := alice.Create(ctx, cid, []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	bob1, _ := rotateIdentity(t, &w, bob)
	text := seal(t, bob1, s.ID(), "m1", "hello")
	info, err := alice.Info(ctx, s.ID())
	if err != nil || info.Epoch != 1 || info.Seq != 1 {
		t.Fatalf("after bob's first seal with generation 1: %+v, %v; want one rotation", info, err)
	}
	st := alice.cached(s.ID()).log
	if g, ok := st.SignedGeneration("bob"); !ok || g != 1 {
		t.Errorf("the log's generation of bob: %d, %v; want 1", g, ok)
	}
	if got, err := open(alice, "bob", "m1", text); err != nil || got != "hello" {
		t.Errorf("alice opens: %q, %v", got, err)
	}
	seal(t, bob1, s.ID(), "m2", "again")
	if again, _ := alice.Info(ctx, s.ID()); again.Seq != 1 {
		t.Errorf("a second seal rotated again: record %d", again.Seq)
	}
}

// TestRetiredGenerationOfFormerMember: records a former member signed
// with a generation it later retired stay valid for a reader that trusts
// the new one when another member signed after them (the former member
// cannot re-sign); with nothing signed after its own leave, they are
// refused until a member signs.
func TestRetiredGenerationOfFormerMember(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name, reason string
		leaves       bool // alice leaves herself, else bob removes her
	}{
		{"removed", "bob's removal, signed after alice's records, vouches for them", false},
		{"left", "alice's own leave is signed by the generation she retired; bob's rotation vouches for it", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var w world
			alice, bob, carol := w.user(t, "alice"), w.user(t, "bob"), w.user(t, "carol")
			s, err := alice.Create(ctx, cid, []string{"bob", "carol"})
			if err != nil {
				t.Fatal(err)
			}
			if err := alice.SetAdmin(ctx, s.ID(), "bob", true); err != nil {
				t.Fatal(err)
			}
			if tc.leaves {
				if err := alice.Leave(ctx, s.ID()); err != nil {
					t.Fatal(err)
				}
			} else if err := bob.Revoke(ctx, s.ID(), []string{"alice"}); err != nil {
				t.Fatal(err)
			}
			rotateIdentity(t, &w, alice)
			if _, err := carol.Card(ctx, "alice", 1); err != nil {
				t.Fatal(err)
			}
			_, err = freshReader(t, &w, carol, w.svc.As("carol")).OpenSession(ctx, s.ID(), cid)
			if tc.leaves {
				if !errors.Is(err, ErrInvalidLog) {
					t.Fatalf("a leave by a retired generation, nothing signed after: %v, want ErrInvalidLog", err)
				}
				if err := bob.Rotate(ctx, s.ID()); err != nil {
					t.Fatal(err)
				}
				_, err = freshReader(t, &w, carol, w.svc.As("carol")).OpenSession(ctx, s.ID(), cid)
			}
			if err != nil {
				t.Fatalf("%v (%s)", err, tc.reason)
			}
		})
	}
}

// TestOwnRetiredGenerationNotVouched: a record forged with the local
// user's own retired key (leaked, replayed by the key service before the
// user re-signs the log) is refused by the user's own client, which would
// otherwise vouch for it with the new generation — making every reader
// that trusts the new generation accept it, and granting the rotation's
// key to whoever the forged record added.
func TestOwnRetiredGenerationNotVouched(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob := w.user(t, "alice"), w.user(t, "bob")
	w.user(t, "mallory")
	s, err := alice.Create(ctx, cid, []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	alice1, retired := rotateIdentity(t, &w, alice)
	// The holder of alice's retired key, with the key service's help,
	// adds mallory in a new epoch before alice re-signs the log.
	leaked, err := NewManager(Config{Identity: retired, Service: w.svc.As("alice"), Directory: &w.dir, Rand: testrand.New("leaked")})
	if err != nil {
		t.Fatal(err)
	}
	if err := leaked.Extend(ctx, s.ID(), []string{"mallory"}, true); err != nil {
		t.Fatal(err)
	}
	before, err := w.svc.As("bob").Head(ctx, s.ID())
	if err != nil {
		t.Fatal(err)
	}
	if err := alice1.RetireGenerations(ctx, s.ID()); !errors.Is(err, ErrInvalidLog) {
		t.Errorf("alice's client re-signed a log her retired key extended: %v, want ErrInvalidLog", err)
	}
	if _, err := alice1.SealText(ctx, s.ID(), ctxFor("alice", "m1"), []byte("hi"), 5000); !errors.Is(err, ErrInvalidLog) {
		t.Errorf("alice's client sealed in a log her retired key extended: %v, want ErrInvalidLog", err)
	}
	if after, _ := w.svc.As("bob").Head(ctx, s.ID()); after.Seq != before.Seq {
		t.Fatalf("alice's new generation signed record %d after the forged one", after.Seq)
	}
	// A reader that trusts generation 1 keeps refusing the forged record.
	if _, err := bob.Card(ctx, "alice", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := freshReader(t, &w, bob, w.svc.As("bob")).OpenSession(ctx, s.ID(), cid); !errors.Is(err, ErrInvalidLog) {
		t.Errorf("a reader trusting generation 1: %v, want ErrInvalidLog", err)
	}
}

// TestRetiredGenerationCannotVouchThroughItsOwnAdd: the holder of an
// admin's retired key adds a member of its own, who then removes the
// admin. The removal is signed after the admin's last record by another
// user, but by one only the unvouched record made a member: a reader that
// trusts the admin's new generation refuses the log instead of taking the
// attacker's member as a reader.
func TestRetiredGenerationCannotVouchThroughItsOwnAdd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob, carol, mallory := w.user(t, "alice"), w.user(t, "bob"), w.user(t, "carol"), w.user(t, "mallory")
	s, err := alice.Create(ctx, cid, []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.OpenSession(ctx, s.ID(), cid); err != nil {
		t.Fatal(err)
	}
	_, retired := rotateIdentity(t, &w, alice)
	if _, err := carol.Card(ctx, "alice", 1); err != nil { // carol trusts generation 1
		t.Fatal(err)
	}
	leaked, err := NewManager(Config{Identity: retired, Service: w.svc.As("alice"), Directory: &w.dir, Rand: testrand.New("leaked")})
	if err != nil {
		t.Fatal(err)
	}
	if err := leaked.Extend(ctx, s.ID(), []string{"mallory"}, true); err != nil {
		t.Fatal(err)
	}
	if err := mallory.Revoke(ctx, s.ID(), []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*Manager{"carol": carol, "carol on a new device": freshReader(t, &w, carol, w.svc.As("carol"))} {
		if info, err := m.Info(ctx, s.ID()); !errors.Is(err, ErrInvalidLog) {
			t.Errorf("%s: a removal by a member only the retired key added vouches for it: %+v, %v; want ErrInvalidLog", name, info.Members, err)
		}
	}
	// A member whose membership does not come from the retired key vouches
	// as before (bob cannot tell the records from honest ones).
	if err := bob.Rotate(ctx, s.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Info(ctx, s.ID()); err != nil {
		t.Errorf("carol after bob signed: %v", err)
	}
}
