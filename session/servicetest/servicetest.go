package servicetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/session"
)

// MaxGrantsPerCall is the most grants, or users, Run sends in one call. An
// implementation may page its answers by as few (run the key service with
// Config.MaxMembersPerCall set to it) so that Run sees members and grants
// come over several pages.
const MaxGrantsPerCall = 3

// Directory is a session.Directory that also publishes its user's card
// history, as e2ee.Publisher asks. *session.MemoryDirectory and
// *keyservice.Client are ones.
type Directory interface {
	session.Directory
	PublishHistory(ctx context.Context, cards []*identity.Card) error
}

// Env is one implementation under test, as its users see it. It must be
// new and empty: no card, no session.
type Env struct {
	// Service returns the Service acting as userID.
	Service func(userID string) session.Service
	// Directory returns the Directory acting as userID; Run publishes
	// only userID's own cards through it.
	Directory func(userID string) Directory
}

// Run runs the conformance suite. newEnv must return a new, empty Env for
// each call and release it when t ends (t.Cleanup); Run calls it from
// parallel subtests, once per subtest.
func Run(t *testing.T, newEnv func(t *testing.T) Env) {
	tests := []struct {
		name string
		fn   func(t *testing.T, f *fixture)
	}{
		{"Create", testCreate},
		{"Lookup", testLookup},
		{"Reads", testReads},
		{"Paging", testPaging},
		{"Extend", testExtend},
		{"Rotate", testRotate},
		{"SetAdmin", testSetAdmin},
		{"Delete", testDelete},
		{"RaceCreate", testRaceCreate},
		{"RaceExtend", testRaceExtend},
		{"RaceRotate", testRaceRotate},
		{"Directory", testDirectory},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newFixture(t, newEnv(t)))
		})
	}
}

// The cast. Every user but ghost has a published card.
const (
	alice   = "alice"   // creates the sessions, so is their admin
	bob     = "bob"     // a member of every session
	carol   = "carol"   // joins in some cases
	dave    = "dave"    // joins in some cases
	mallory = "mallory" // never a member
	ghost   = "ghost"   // has no card
)

var cast = []string{alice, bob, carol, dave, mallory}

var (
	ctx = context.Background()
	// unknownID is a session no test creates.
	unknownID = session.ID{0xde, 0xad, 0xbe, 0xef}
	// errRefused, as a case's want, asks for an error that is not
	// ErrConflict, since reloading and retrying cannot help; no sentinel
	// is promised.
	errRefused = errors.New("servicetest: an error other than ErrConflict")
	// created is the creation time of every card.
	created = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
)

var (
	peopleMu sync.Mutex
	people   = map[string]*identity.Identity{}
)

// person returns the identity named seed for user, the same on every call:
// generation 0, unless seed names a rotation ("erin/1" is generation 1 of
// the identity "erin", "erin/1-fork" another generation 1 of it).
func person(t *testing.T, user, seed string) *identity.Identity {
	t.Helper()
	peopleMu.Lock()
	id, ok := people[seed]
	peopleMu.Unlock()
	if ok {
		return id
	}
	var err error
	opts := identity.Options{Kind: identity.KindX25519, Created: created}
	if parent, _, ok := strings.Cut(seed, "/"); ok {
		id, err = person(t, user, parent).Rotate(testrand.New("servicetest-"+seed), opts)
	} else {
		id, err = identity.Generate(testrand.New("servicetest-"+seed), user, opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	peopleMu.Lock()
	defer peopleMu.Unlock()
	if prev, ok := people[seed]; ok {
		return prev // generated meanwhile, from the same seed
	}
	people[seed] = id
	return id
}

// grant returns user's stand-in grant for epoch: an age file header and
// bytes no other (user, epoch) has. The service cannot open grants, so it
// cannot tell.
func grant(user string, epoch uint32) session.GrantRecord {
	return session.GrantRecord{Grantee: user, Epoch: epoch, Grant: fmt.Appendf(nil, "age-encryption.org/v1\n-> servicetest %s %d\n", user, epoch)}
}

func grants(epoch uint32, users ...string) []session.GrantRecord {
	out := make([]session.GrantRecord, len(users))
	for i, u := range users {
		out[i] = grant(u, epoch)
	}
	return out
}

// is reports whether err is what want asks for: nil for nil, errRefused
// for any error but ErrConflict, else errors.Is.
func is(err, want error) bool {
	switch want {
	case nil:
		return err == nil
	case errRefused:
		return err != nil && !errors.Is(err, session.ErrConflict)
	}
	return errors.Is(err, want)
}

type fixture struct {
	env Env
	n   atomic.Int32 // sessions named, for fresh IDs and channels
}

func newFixture(t *testing.T, env Env) *fixture {
	f := &fixture{env: env}
	for _, u := range cast {
		f.publish(t, u)
	}
	return f
}

// publish publishes user's generation 0.
func (f *fixture) publish(t *testing.T, user string) {
	t.Helper()
	if err := f.env.Directory(user).PublishHistory(ctx, person(t, user, user).Cards()); err != nil {
		t.Fatalf("publishing %s's card: %v", user, err)
	}
}

func (f *fixture) as(user string) session.Service { return f.env.Service(user) }

// fresh returns a session ID and a channel no session has.
func (f *fixture) fresh() (session.ID, string) {
	n := f.n.Add(1)
	id := session.ID{0x5e, 0x55}
	id[13], id[14], id[15] = byte(n>>16), byte(n>>8), byte(n)
	return id, fmt.Sprintf("messaging:servicetest-%d", n)
}

// create makes a session with admin as its creator and members, at epoch
// 0.
func (f *fixture) create(t *testing.T, admin string, members ...string) (session.ID, string) {
	t.Helper()
	id, cid := f.fresh()
	res, err := f.as(admin).Create(ctx, id, cid, grants(0, append([]string{admin}, members...)...))
	if err != nil || res != (session.CreateResult{ID: id, Created: true}) {
		t.Fatalf("creating a session: %+v, %v", res, err)
	}
	return id, cid
}

// must fails t if err is not nil; what says what was done.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// state is what a session's members, and the users asked about, see of it.
type state struct {
	Info      session.Info
	Grants    map[string][]session.GrantRecord // each member's own, read as that member
	Forbidden []string                         // users asked about that are refused Info and Grants
}

// snapshot reads session id as its members see it, and checks that others
// (removed members, grantees of refused calls) are refused with
// ErrForbidden.
func (f *fixture) snapshot(t *testing.T, id session.ID, others ...string) state {
	t.Helper()
	var (
		info session.Info
		err  error
	)
	for _, u := range slices.Concat(cast, others) {
		if info, err = f.as(u).Info(ctx, id); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("Info of %v: no user of the cast is a member: %v", id, err)
	}
	st := state{Info: info, Grants: map[string][]session.GrantRecord{}}
	for _, m := range info.Members {
		g, err := f.as(m.UserID).Grants(ctx, id)
		if err != nil {
			t.Fatalf("Grants as member %s: %v", m.UserID, err)
		}
		st.Grants[m.UserID] = g
	}
	for _, u := range others {
		if _, ok := st.Grants[u]; ok || slices.Contains(st.Forbidden, u) {
			continue
		}
		_, gerr := f.as(u).Grants(ctx, id)
		_, ierr := f.as(u).Info(ctx, id)
		if !errors.Is(gerr, session.ErrForbidden) || !errors.Is(ierr, session.ErrForbidden) {
			t.Fatalf("%s, not a member: Grants %v, Info %v; want ErrForbidden from both", u, gerr, ierr)
		}
		st.Forbidden = append(st.Forbidden, u)
	}
	slices.Sort(st.Forbidden)
	return st
}

// clone returns a deep enough copy of s to edit into a wanted state.
func (s state) clone() state {
	c := s
	c.Info.Members = slices.Clone(s.Info.Members)
	c.Grants = make(map[string][]session.GrantRecord, len(s.Grants))
	for u, g := range s.Grants {
		c.Grants[u] = slices.Clone(g)
	}
	c.Forbidden = slices.Clone(s.Forbidden)
	return c
}

// join adds user as a member since epoch, with its grant for epoch.
func (s *state) join(user string, epoch uint32) {
	s.Info.Members = append(s.Info.Members, session.Member{UserID: user, Since: epoch})
	slices.SortFunc(s.Info.Members, func(a, b session.Member) int { return strings.Compare(a.UserID, b.UserID) })
	s.Grants[user] = []session.GrantRecord{grant(user, epoch)}
	s.Forbidden = slices.DeleteFunc(s.Forbidden, func(u string) bool { return u == user })
}

// leave removes user from the members; it is then refused.
func (s *state) leave(user string) {
	s.Info.Members = slices.DeleteFunc(s.Info.Members, func(m session.Member) bool { return m.UserID == user })
	delete(s.Grants, user)
	s.Forbidden = append(s.Forbidden, user)
	slices.Sort(s.Forbidden)
}

func (s *state) member(user string) *session.Member {
	for i := range s.Info.Members {
		if s.Info.Members[i].UserID == user {
			return &s.Info.Members[i]
		}
	}
	return nil
}

var cmpOpts = cmpopts.EquateEmpty()

// setup brings a new session (alice admin, bob member, epoch 0) to the
// state a case needs.
type setup func(t *testing.T, f *fixture, id session.ID)

// atEpoch1 rotates the session to epoch 1 for alice and bob.
func atEpoch1(t *testing.T, f *fixture, id session.ID) {
	must(t, "rotating to epoch 1", f.as(alice).Rotate(ctx, id, nil, grants(1, alice, bob)))
}

// bobRemoved rotates the session to epoch 1 without bob.
func bobRemoved(t *testing.T, f *fixture, id session.ID) {
	must(t, "removing bob", f.as(alice).Rotate(ctx, id, []string{bob}, grants(1, alice)))
}

// bobAdmin makes bob an admin.
func bobAdmin(t *testing.T, f *fixture, id session.ID) {
	must(t, "making bob an admin", f.as(alice).SetAdmin(ctx, id, bob, true))
}

// aliceRemoved makes bob an admin, who then rotates to epoch 1 without
// alice.
func aliceRemoved(t *testing.T, f *fixture, id session.ID) {
	bobAdmin(t, f, id)
	must(t, "removing alice", f.as(bob).Rotate(ctx, id, []string{alice}, grants(1, bob)))
}

// aliceDemoted takes alice's admin right.
func aliceDemoted(t *testing.T, f *fixture, id session.ID) {
	must(t, "demoting alice", f.as(alice).SetAdmin(ctx, id, alice, false))
}

func testCreate(t *testing.T, f *fixture) {
	base, baseCID := f.create(t, alice, bob)
	const (
		fresh = iota // an ID or channel no session has
		taken        // the base session's
		zero         // the zero ID, the empty channel
	)
	tests := []struct {
		name        string
		caller      string
		id, cid     int
		grants      []session.GrantRecord
		want        error
		wantCreated bool // when want is nil; false: the base session answers
		reason      string
	}{
		{"new channel", alice, fresh, fresh, grants(0, alice, bob, carol), nil, true,
			"the creator is admin, every grantee a member since epoch 0"},
		{"creator alone", dave, fresh, fresh, grants(0, dave), nil, true,
			"a session may start with its creator only"},
		{"channel taken, another ID", bob, fresh, taken, grants(0, bob, carol), nil, false,
			"concurrent creators converge on the channel's session, and carol's grant is not stored"},
		{"channel taken, same ID", alice, taken, taken, grants(0, alice, bob), nil, false,
			"a retried create finds its own session"},
		{"channel taken, by an outsider", mallory, fresh, taken, grants(0, mallory), nil, false,
			"anyone may learn a channel's session, and joins nothing by asking"},
		{"ID of another channel", alice, taken, fresh, grants(0, alice), session.ErrConflict, false,
			"a session ID names one channel"},
		{"channel taken, no grant for the creator", bob, fresh, taken, grants(0, carol), session.ErrInvalidGrants, false,
			"grants are judged before the channel"},
		{"no grant for the creator", alice, fresh, fresh, grants(0, bob), session.ErrInvalidGrants, false,
			"the creator must be able to open its session"},
		{"no grants", alice, fresh, fresh, nil, session.ErrInvalidGrants, false,
			"a session without keys"},
		{"two grants for one user", alice, fresh, fresh, grants(0, alice, bob, bob), session.ErrInvalidGrants, false,
			"one grant per member per epoch"},
		{"grants for epoch 1", alice, fresh, fresh, grants(1, alice, bob), session.ErrInvalidGrants, false,
			"a session starts at epoch 0"},
		{"grantee without a card", alice, fresh, fresh, grants(0, alice, ghost), session.ErrInvalidGrants, false,
			"no one can have wrapped a key for a user without a card"},
		{"grant that is not an age file", alice, fresh, fresh,
			[]session.GrantRecord{grant(alice, 0), {Grantee: bob, Epoch: 0, Grant: []byte("sealed")}}, session.ErrInvalidGrants, false,
			"grants are age files"},
		{"empty grant", alice, fresh, fresh,
			[]session.GrantRecord{grant(alice, 0), {Grantee: bob, Epoch: 0}}, session.ErrInvalidGrants, false,
			"an empty grant opens nothing"},
		{"grant too large", alice, fresh, fresh,
			[]session.GrantRecord{grant(alice, 0), {Grantee: bob, Epoch: 0, Grant: append(grant(bob, 0).Grant, make([]byte, session.MaxGrantSize)...)}},
			session.ErrInvalidGrants, false, "grants are at most session.MaxGrantSize bytes"},
		{"zero ID", alice, zero, fresh, grants(0, alice), errRefused, false,
			"the zero ID is no session's"},
		{"empty channel", alice, fresh, zero, grants(0, alice), errRefused, false,
			"a session belongs to a channel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newID, newCID := f.fresh()
			id := map[int]session.ID{fresh: newID, taken: base, zero: {}}[tt.id]
			cid := map[int]string{fresh: newCID, taken: baseCID, zero: ""}[tt.cid]
			others := []string{tt.caller}
			for _, g := range tt.grants {
				others = append(others, g.Grantee)
			}
			before := f.snapshot(t, base, others...)
			res, err := f.as(tt.caller).Create(ctx, id, cid, tt.grants)
			if !is(err, tt.want) {
				t.Fatalf("Create = %+v, %v; want %v (%s)", res, err, tt.want, tt.reason)
			}
			if err == nil {
				want := session.CreateResult{ID: base}
				if tt.wantCreated {
					want = session.CreateResult{ID: id, Created: true}
				}
				if res != want {
					t.Fatalf("Create = %+v, want %+v (%s)", res, want, tt.reason)
				}
			}
			if diff := cmp.Diff(before, f.snapshot(t, base, others...), cmpOpts); diff != "" {
				t.Errorf("the channel's session after Create (-want +got) (%s)\n%s", tt.reason, diff)
			}
			if !tt.wantCreated || err != nil {
				if _, err := f.as(tt.caller).Info(ctx, newID); !errors.Is(err, session.ErrUnknownSession) {
					t.Errorf("Info of the ID asked for: %v, want ErrUnknownSession: nothing is stored (%s)", err, tt.reason)
				}
				if got, err := f.as(tt.caller).Lookup(ctx, newCID); !errors.Is(err, session.ErrUnknownSession) {
					t.Errorf("Lookup of the channel asked for: %v, %v; want ErrUnknownSession: nothing is stored (%s)", got, err, tt.reason)
				}
				return
			}
			want := state{Info: session.Info{ID: id, ChannelCID: cid}, Grants: map[string][]session.GrantRecord{}}
			for _, g := range tt.grants {
				want.join(g.Grantee, 0)
			}
			want.member(tt.caller).Admin = true
			if diff := cmp.Diff(want, f.snapshot(t, id), cmpOpts); diff != "" {
				t.Errorf("new session (-want +got) (%s)\n%s", tt.reason, diff)
			}
			if got, err := f.as(mallory).Lookup(ctx, cid); err != nil || got != id {
				t.Errorf("Lookup of the new channel: %v, %v; want %v", got, err, id)
			}
		})
	}
}

func testLookup(t *testing.T, f *fixture) {
	id, cid := f.create(t, alice, bob)
	_, freeCID := f.fresh()
	tests := []struct {
		name, caller, cid string
		want              error
		reason            string
	}{
		{"admin", alice, cid, nil, "the channel's session"},
		{"member", bob, cid, nil, "the channel's session"},
		{"outsider", mallory, cid, nil, "a channel's session ID is no secret: its channel shows it"},
		{"user without a card", ghost, cid, nil, "looking up needs no card"},
		{"channel without a session", alice, freeCID, session.ErrUnknownSession, "no session"},
		{"empty channel", alice, "", errRefused, "no channel"},
	}
	for _, tt := range tests {
		got, err := f.as(tt.caller).Lookup(ctx, tt.cid)
		if !is(err, tt.want) || (err == nil && got != id) {
			t.Errorf("%s: Lookup = %v, %v; want %v, %v (%s)", tt.name, got, err, id, tt.want, tt.reason)
		}
	}
}

// testReads checks who may read a session at epoch 1 whose history
// involves every kind of user: alice created it, bob was there from the
// start, dave was removed at the rotation to epoch 1, carol joined after
// it, mallory never was a member.
func testReads(t *testing.T, f *fixture) {
	id, cid := f.create(t, alice, bob, dave)
	must(t, "removing dave", f.as(alice).Rotate(ctx, id, []string{dave}, grants(1, alice, bob)))
	must(t, "adding carol", f.as(bob).Extend(ctx, id, grants(1, carol)))
	wantInfo := session.Info{ID: id, ChannelCID: cid, Epoch: 1, Members: []session.Member{
		{UserID: alice, Admin: true}, {UserID: bob}, {UserID: carol, Since: 1},
	}}
	tests := []struct {
		name, caller string
		wantErr      error // of Info and Grants
		wantGrants   []session.GrantRecord
		reason       string
	}{
		{"admin", alice, nil, []session.GrantRecord{grant(alice, 0), grant(alice, 1)}, "every epoch, ascending"},
		{"member", bob, nil, []session.GrantRecord{grant(bob, 0), grant(bob, 1)}, "its own grants, no one else's"},
		{"member since epoch 1", carol, nil, []session.GrantRecord{grant(carol, 1)}, "no grant for an epoch before it joined"},
		{"removed member", dave, session.ErrForbidden, nil, "a removed member reads nothing, not even its old grant"},
		{"outsider", mallory, session.ErrForbidden, nil, "not a member"},
		{"user without a card", ghost, session.ErrForbidden, nil, "not a member"},
	}
	for _, tt := range tests {
		info, err := f.as(tt.caller).Info(ctx, id)
		if !is(err, tt.wantErr) {
			t.Errorf("%s: Info: %v, want %v (%s)", tt.name, err, tt.wantErr, tt.reason)
		} else if err == nil {
			if diff := cmp.Diff(wantInfo, info, cmpOpts); diff != "" {
				t.Errorf("%s: Info (-want +got)\n%s", tt.name, diff)
			}
		}
		got, err := f.as(tt.caller).Grants(ctx, id)
		if !is(err, tt.wantErr) {
			t.Errorf("%s: Grants: %v, want %v (%s)", tt.name, err, tt.wantErr, tt.reason)
		} else if diff := cmp.Diff(tt.wantGrants, got, cmpOpts); diff != "" {
			t.Errorf("%s: Grants (-want +got) (%s)\n%s", tt.name, tt.reason, diff)
		}
		if _, err := f.as(tt.caller).Info(ctx, unknownID); !errors.Is(err, session.ErrUnknownSession) {
			t.Errorf("%s: Info of an unknown session: %v, want ErrUnknownSession", tt.name, err)
		}
		if _, err := f.as(tt.caller).Grants(ctx, unknownID); !errors.Is(err, session.ErrUnknownSession) {
			t.Errorf("%s: Grants of an unknown session: %v, want ErrUnknownSession", tt.name, err)
		}
	}
}

// testPaging reads a session with more members, and a member with more
// grants, than MaxGrantsPerCall: all come back, in order, as from one
// page.
func testPaging(t *testing.T, f *fixture) {
	// Byte-wise order puts "Zoe" first and "m-10" before "m1".
	names := []string{"m1", "m2", "Zoe", "m-10", "m3", "m4", "m5"}
	for _, u := range names {
		f.publish(t, u)
	}
	id, cid := f.create(t, alice, names[:2]...)
	must(t, "extending", f.as(alice).Extend(ctx, id, grants(0, names[2:5]...)))
	must(t, "extending", f.as("m1").Extend(ctx, id, grants(0, names[5:]...)))
	want := session.Info{ID: id, ChannelCID: cid, Members: []session.Member{
		{UserID: "Zoe"}, {UserID: alice, Admin: true}, {UserID: "m-10"}, {UserID: "m1"},
		{UserID: "m2"}, {UserID: "m3"}, {UserID: "m4"}, {UserID: "m5"},
	}}
	for _, u := range []string{alice, "Zoe", "m5"} {
		info, err := f.as(u).Info(ctx, id)
		if err != nil {
			t.Fatalf("Info as %s: %v", u, err)
		}
		if diff := cmp.Diff(want, info, cmpOpts); diff != "" {
			t.Errorf("Info as %s of %d members (-want +got)\n%s", u, len(want.Members), diff)
		}
	}

	id, _ = f.create(t, alice, bob)
	wantGrants := []session.GrantRecord{grant(bob, 0)}
	for e := uint32(1); e <= 7; e++ {
		must(t, "rotating", f.as(alice).Rotate(ctx, id, nil, grants(e, alice, bob)))
		wantGrants = append(wantGrants, grant(bob, e))
	}
	got, err := f.as(bob).Grants(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantGrants, got, cmpOpts); diff != "" {
		t.Errorf("Grants of %d epochs (-want +got)\n%s", len(wantGrants), diff)
	}
}

func testExtend(t *testing.T, f *fixture) {
	tests := []struct {
		name    string
		setup   setup
		caller  string
		unknown bool // act on a session that does not exist
		grants  []session.GrantRecord
		want    error
		reason  string
	}{
		{"member adds a user", nil, bob, false, grants(0, carol), nil,
			"members extend; the newcomer is no admin, a member since the current epoch"},
		{"admin adds users", nil, alice, false, grants(0, carol, dave), nil,
			"several at once"},
		{"at epoch 1", atEpoch1, bob, false, grants(1, carol), nil,
			"the newcomer gets the current epoch, none before"},
		{"new admin adds", bobAdmin, bob, false, grants(0, carol), nil,
			"admins are members"},
		{"stale epoch", atEpoch1, bob, false, grants(0, carol), session.ErrConflict,
			"the session moved on: reload and wrap the current key"},
		{"future epoch", nil, bob, false, grants(1, carol), session.ErrConflict,
			"epoch 1 has not started"},
		{"user is a member", nil, alice, false, grants(0, bob), session.ErrConflict,
			"bob was granted already"},
		{"one user is a member", nil, alice, false, grants(0, carol, bob), session.ErrConflict,
			"one existing member fails the whole call"},
		{"outsider adds itself", nil, mallory, false, grants(0, mallory), session.ErrForbidden,
			"only members extend"},
		{"outsider adds a user", nil, mallory, false, grants(0, carol), session.ErrForbidden,
			"only members extend"},
		{"outsider at another epoch", nil, mallory, false, grants(7, mallory), session.ErrForbidden,
			"rights before the epoch: a non-member learns nothing of it"},
		{"outsider naming a user without a card", nil, mallory, false, grants(0, ghost), session.ErrForbidden,
			"rights before the grants"},
		{"removed member", bobRemoved, bob, false, grants(1, carol), session.ErrForbidden,
			"a removed member is an outsider"},
		{"unknown session", nil, bob, true, grants(0, carol), session.ErrUnknownSession,
			"no such session"},
		{"unknown session, outsider", nil, mallory, true, grants(0, carol), session.ErrUnknownSession,
			"an unknown session is unknown to everyone"},
		{"two grants for one user", nil, bob, false, grants(0, carol, carol), session.ErrInvalidGrants,
			"one grant per member per epoch"},
		{"grants for two epochs", nil, bob, false, append(grants(0, carol), grant(dave, 1)), session.ErrInvalidGrants,
			"one call grants one epoch"},
		{"user without a card", nil, bob, false, grants(0, ghost), session.ErrInvalidGrants,
			"no one can have wrapped a key for a user without a card"},
		{"not an age file", nil, bob, false, []session.GrantRecord{{Grantee: carol, Epoch: 0, Grant: []byte("sealed")}}, session.ErrInvalidGrants,
			"grants are age files"},
		{"no grants", nil, bob, false, nil, session.ErrInvalidGrants,
			"nothing to add"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, _ := f.create(t, alice, bob)
			if tt.setup != nil {
				tt.setup(t, f, id)
			}
			target := id
			if tt.unknown {
				target = unknownID
			}
			others := []string{tt.caller}
			for _, g := range tt.grants {
				others = append(others, g.Grantee)
			}
			before := f.snapshot(t, id, others...)
			err := f.as(tt.caller).Extend(ctx, target, tt.grants)
			if !is(err, tt.want) {
				t.Fatalf("Extend = %v, want %v (%s)", err, tt.want, tt.reason)
			}
			want := before.clone()
			if err == nil {
				for _, g := range tt.grants {
					want.join(g.Grantee, g.Epoch)
				}
			}
			if diff := cmp.Diff(want, f.snapshot(t, id, others...), cmpOpts); diff != "" {
				t.Errorf("session after Extend (-want +got) (%s)\n%s", tt.reason, diff)
			}
		})
	}
}

func testRotate(t *testing.T, f *fixture) {
	tests := []struct {
		name    string
		setup   setup
		caller  string
		unknown bool
		remove  []string
		grants  []session.GrantRecord
		want    error
		reason  string
	}{
		{"same members", nil, alice, false, nil, grants(1, alice, bob), nil,
			"a new epoch for everyone"},
		{"remove a member", nil, alice, false, []string{bob}, grants(1, alice), nil,
			"bob loses the session and every grant he had"},
		{"add a member", nil, alice, false, nil, grants(1, alice, bob, carol), nil,
			"carol joins since the new epoch (history hidden)"},
		{"remove one, add one", nil, alice, false, []string{bob}, grants(1, alice, carol), nil,
			"both in one step"},
		{"remove a non-member", nil, alice, false, []string{mallory}, grants(1, alice, bob), nil,
			"removing someone who is not there changes nothing more"},
		{"admin removes itself", bobAdmin, alice, false, []string{alice}, grants(1, bob), nil,
			"the service lets an admin leave; keeping another admin is the caller's business"},
		{"from epoch 1", atEpoch1, alice, false, nil, grants(2, alice, bob), nil,
			"epochs follow each other"},
		{"new admin", bobAdmin, bob, false, nil, grants(1, alice, bob), nil,
			"an admin named by SetAdmin rotates"},
		{"member", nil, bob, false, nil, grants(1, alice, bob), session.ErrForbidden,
			"rotation needs the admin right"},
		{"member with wrong grants", nil, bob, false, nil, grants(1, ghost), session.ErrForbidden,
			"rights before grants: only admins learn who lacks a grant"},
		{"member at a stale epoch", atEpoch1, bob, false, nil, grants(1, alice, bob), session.ErrForbidden,
			"rights before the epoch"},
		{"outsider", nil, mallory, false, []string{alice, bob}, grants(1, mallory), session.ErrForbidden,
			"an outsider cannot take a session over"},
		{"removed admin", aliceRemoved, alice, false, []string{bob}, grants(2, alice), session.ErrForbidden,
			"a removed admin is an outsider"},
		{"demoted admin", aliceDemoted, alice, false, nil, grants(1, alice, bob), session.ErrForbidden,
			"SetAdmin false takes the right"},
		{"unknown session", nil, alice, true, nil, grants(1, alice, bob), session.ErrUnknownSession,
			"no such session"},
		{"stale epoch", atEpoch1, alice, false, nil, grants(1, alice, bob), session.ErrConflict,
			"another admin rotated first: reload and retry"},
		{"skipped epoch", nil, alice, false, nil, grants(2, alice, bob), session.ErrConflict,
			"epoch 1 comes after epoch 0"},
		{"member left without a grant", nil, alice, false, nil, grants(1, alice), session.ErrInvalidGrants,
			"every remaining member gets the new epoch"},
		{"grant for a removed member", nil, alice, false, []string{bob}, grants(1, alice, bob), session.ErrInvalidGrants,
			"a removed member must not get the new key"},
		{"two grants for one user", nil, alice, false, nil, grants(1, alice, bob, bob), session.ErrInvalidGrants,
			"one grant per member per epoch"},
		{"grants for two epochs", nil, alice, false, nil, append(grants(1, alice), grant(bob, 2)), session.ErrInvalidGrants,
			"one call grants one epoch"},
		{"user without a card", nil, alice, false, nil, grants(1, alice, bob, ghost), session.ErrInvalidGrants,
			"no one can have wrapped a key for a user without a card"},
		{"grants for epoch 0", nil, alice, false, nil, grants(0, alice, bob), session.ErrInvalidGrants,
			"no rotation leads to epoch 0"},
		{"no grants", nil, alice, false, []string{bob}, nil, session.ErrInvalidGrants,
			"a session without members"},
		{"past the last epoch", nil, alice, false, nil, grants(session.MaxEpochs, alice, bob), errRefused,
			"epochs end at session.MaxEpochs-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, _ := f.create(t, alice, bob)
			if tt.setup != nil {
				tt.setup(t, f, id)
			}
			target := id
			if tt.unknown {
				target = unknownID
			}
			others := append([]string{tt.caller}, tt.remove...)
			for _, g := range tt.grants {
				others = append(others, g.Grantee)
			}
			before := f.snapshot(t, id, others...)
			err := f.as(tt.caller).Rotate(ctx, target, tt.remove, tt.grants)
			if !is(err, tt.want) {
				t.Fatalf("Rotate = %v, want %v (%s)", err, tt.want, tt.reason)
			}
			want := before.clone()
			if err == nil {
				next := tt.grants[0].Epoch
				want.Info.Epoch = next
				for _, u := range tt.remove {
					if want.member(u) != nil {
						want.leave(u)
					}
				}
				for _, g := range tt.grants {
					if want.member(g.Grantee) == nil {
						want.join(g.Grantee, next)
					} else {
						want.Grants[g.Grantee] = append(want.Grants[g.Grantee], g)
					}
				}
			}
			if diff := cmp.Diff(want, f.snapshot(t, id, others...), cmpOpts); diff != "" {
				t.Errorf("session after Rotate (-want +got) (%s)\n%s", tt.reason, diff)
			}
		})
	}
}

func testSetAdmin(t *testing.T, f *fixture) {
	tests := []struct {
		name    string
		setup   setup
		caller  string
		unknown bool
		user    string
		admin   bool
		want    error
		reason  string
	}{
		{"admin names an admin", nil, alice, false, bob, true, nil, "admins name admins"},
		{"admin steps down", nil, alice, false, alice, false, nil, "an admin may give up the right"},
		{"admin takes the right back", bobAdmin, alice, false, bob, false, nil, "and take it"},
		{"admin names an admin twice", bobAdmin, alice, false, bob, true, nil, "setting the flag it has is no error"},
		{"new admin names an admin", bobAdmin, bob, false, alice, true, nil, "a named admin has every right"},
		{"member names itself", nil, bob, false, bob, true, session.ErrForbidden, "members cannot promote themselves"},
		{"member demotes the admin", nil, bob, false, alice, false, session.ErrForbidden, "nor demote admins"},
		{"outsider", nil, mallory, false, mallory, true, session.ErrForbidden, "not a member"},
		{"outsider naming a non-member", nil, mallory, false, carol, true, session.ErrForbidden, "rights before the user"},
		{"demoted admin", aliceDemoted, alice, false, alice, true, session.ErrForbidden, "the right is gone"},
		{"removed admin", aliceRemoved, alice, false, alice, true, session.ErrForbidden, "a removed admin is an outsider"},
		{"non-member", nil, alice, false, carol, true, session.ErrUnknownUser, "only members can be admins"},
		{"removed member", bobRemoved, alice, false, bob, true, session.ErrUnknownUser, "bob is no member any more"},
		{"unknown session", nil, alice, true, bob, true, session.ErrUnknownSession, "no such session"},
		{"unknown session, outsider", nil, mallory, true, bob, true, session.ErrUnknownSession, "an unknown session is unknown to everyone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, _ := f.create(t, alice, bob)
			if tt.setup != nil {
				tt.setup(t, f, id)
			}
			target := id
			if tt.unknown {
				target = unknownID
			}
			others := []string{tt.caller, tt.user}
			before := f.snapshot(t, id, others...)
			err := f.as(tt.caller).SetAdmin(ctx, target, tt.user, tt.admin)
			if !is(err, tt.want) {
				t.Fatalf("SetAdmin = %v, want %v (%s)", err, tt.want, tt.reason)
			}
			want := before.clone()
			if err == nil {
				want.member(tt.user).Admin = tt.admin
			}
			if diff := cmp.Diff(want, f.snapshot(t, id, others...), cmpOpts); diff != "" {
				t.Errorf("session after SetAdmin (-want +got) (%s)\n%s", tt.reason, diff)
			}
		})
	}
}

func testDelete(t *testing.T, f *fixture) {
	tests := []struct {
		name    string
		setup   setup
		caller  string
		unknown bool
		want    error
		reason  string
	}{
		{"admin", nil, alice, false, nil, "admins delete"},
		{"new admin", bobAdmin, bob, false, nil, "a named admin deletes"},
		{"member", nil, bob, false, session.ErrForbidden, "deletion needs the admin right"},
		{"outsider", nil, mallory, false, session.ErrForbidden, "not a member"},
		{"demoted admin", aliceDemoted, alice, false, session.ErrForbidden, "the right is gone"},
		{"removed admin", aliceRemoved, alice, false, session.ErrForbidden, "a removed admin is an outsider"},
		{"unknown session", nil, alice, true, session.ErrUnknownSession, "no such session"},
		{"unknown session, outsider", nil, mallory, true, session.ErrUnknownSession, "an unknown session is unknown to everyone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, cid := f.create(t, alice, bob)
			if tt.setup != nil {
				tt.setup(t, f, id)
			}
			target := id
			if tt.unknown {
				target = unknownID
			}
			before := f.snapshot(t, id, tt.caller)
			err := f.as(tt.caller).Delete(ctx, target)
			if !is(err, tt.want) {
				t.Fatalf("Delete = %v, want %v (%s)", err, tt.want, tt.reason)
			}
			if err != nil {
				if diff := cmp.Diff(before, f.snapshot(t, id, tt.caller), cmpOpts); diff != "" {
					t.Errorf("session after a refused Delete (-want +got) (%s)\n%s", tt.reason, diff)
				}
				return
			}
			for _, u := range []string{alice, bob} {
				if _, err := f.as(u).Info(ctx, id); !errors.Is(err, session.ErrUnknownSession) {
					t.Errorf("Info as %s after Delete: %v, want ErrUnknownSession", u, err)
				}
				if _, err := f.as(u).Grants(ctx, id); !errors.Is(err, session.ErrUnknownSession) {
					t.Errorf("Grants as %s after Delete: %v, want ErrUnknownSession", u, err)
				}
			}
			if got, err := f.as(bob).Lookup(ctx, cid); !errors.Is(err, session.ErrUnknownSession) {
				t.Errorf("Lookup after Delete: %v, %v; want ErrUnknownSession", got, err)
			}
			again, _ := f.fresh()
			if res, err := f.as(bob).Create(ctx, again, cid, grants(0, bob)); err != nil || !res.Created || res.ID != again {
				t.Errorf("Create on the channel after Delete: %+v, %v; want a new session", res, err)
			}
		})
	}
}

// racers is how many calls the race tests make at once: one per user of
// the cast in testRaceCreate.
const racers = 5

// race runs call for each racer at once and returns the errors.
func race(call func(i int) error) []error {
	errs := make([]error, racers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range racers {
		wg.Go(func() {
			<-start
			errs[i] = call(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner checks that exactly one of errs is nil and the others are
// ErrConflict, and returns the winner.
func oneWinner(t *testing.T, what string, errs []error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Fatalf("%s: racers %d and %d both won", what, winner, i)
		case !errors.Is(err, session.ErrConflict):
			t.Fatalf("%s: racer %d: %v, want nil or ErrConflict", what, i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("%s: no racer won: %v", what, errs)
	}
	return winner
}

// testRaceCreate has every user of the cast create a session for one
// channel at once, each with its own ID: they all get one session, whose
// only member is its creator.
func testRaceCreate(t *testing.T, f *fixture) {
	_, cid := f.fresh()
	ids := make([]session.ID, racers)
	results := make([]session.CreateResult, racers)
	for i := range ids {
		ids[i], _ = f.fresh()
	}
	errs := race(func(i int) error {
		var err error
		results[i], err = f.as(cast[i]).Create(ctx, ids[i], cid, grants(0, cast[i]))
		return err
	})
	winner := -1
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("%s: %v", cast[i], errs[i])
		}
		if res.Created {
			if winner >= 0 {
				t.Fatalf("%s and %s both created a session for the channel", cast[winner], cast[i])
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("no creator created the session: %+v", results)
	}
	for i, res := range results {
		if res.ID != ids[winner] {
			t.Errorf("%s got session %v, the winner %s created %v", cast[i], res.ID, cast[winner], ids[winner])
		}
	}
	want := state{Info: session.Info{ID: ids[winner], ChannelCID: cid}, Grants: map[string][]session.GrantRecord{}}
	want.join(cast[winner], 0)
	want.member(cast[winner]).Admin = true
	for _, u := range cast {
		if u != cast[winner] {
			want.Forbidden = append(want.Forbidden, u)
		}
	}
	slices.Sort(want.Forbidden)
	if diff := cmp.Diff(want, f.snapshot(t, ids[winner], cast...), cmpOpts); diff != "" {
		t.Errorf("the channel's session (-want +got)\n%s", diff)
	}
}

// testRaceExtend has the members add carol at once: she joins once.
func testRaceExtend(t *testing.T, f *fixture) {
	id, _ := f.create(t, alice, bob)
	before := f.snapshot(t, id, carol)
	callers := []string{alice, bob, alice, bob, alice}
	oneWinner(t, "Extend", race(func(i int) error {
		return f.as(callers[i]).Extend(ctx, id, grants(0, carol))
	}))
	want := before.clone()
	want.join(carol, 0)
	if diff := cmp.Diff(want, f.snapshot(t, id, carol), cmpOpts); diff != "" {
		t.Errorf("session after the race (-want +got)\n%s", diff)
	}
}

// testRaceRotate has two admins rotate from epoch 0 at once, each with
// grants of its own: one wins, and the session holds its grants only.
func testRaceRotate(t *testing.T, f *fixture) {
	id, _ := f.create(t, alice, bob)
	bobAdmin(t, f, id)
	before := f.snapshot(t, id)
	callers := []string{alice, bob, alice, bob, alice}
	// Racer i's grants differ from every other racer's in their last
	// bytes.
	mine := func(i int) []session.GrantRecord {
		gs := grants(1, alice, bob)
		for j := range gs {
			gs[j].Grant = fmt.Appendf(gs[j].Grant, "racer %d\n", i)
		}
		return gs
	}
	winner := oneWinner(t, "Rotate", race(func(i int) error {
		return f.as(callers[i]).Rotate(ctx, id, nil, mine(i))
	}))
	want := before.clone()
	want.Info.Epoch = 1
	for _, g := range mine(winner) {
		want.Grants[g.Grantee] = append(want.Grants[g.Grantee], g)
	}
	if diff := cmp.Diff(want, f.snapshot(t, id), cmpOpts); diff != "" {
		t.Errorf("session after the race (-want +got)\n%s", diff)
	}
}

// testDirectory publishes the card histories of erin, a user not in the
// cast, step by step.
func testDirectory(t *testing.T, f *fixture) {
	const erin = "erin"
	e0 := person(t, erin, erin)
	e1 := person(t, erin, erin+"/1")
	fork := person(t, erin, erin+"/1-fork")
	impostor := person(t, erin, "impostor-of-erin")
	dir := f.env.Directory(erin)

	steps := []struct {
		name    string
		publish []*identity.Card
		want    error
		history []*identity.Card // nil: erin has no card
		reason  string
	}{
		{"nothing published", nil, nil, nil, "a user without a card"},
		{"generation 0", e0.Cards(), nil, e0.Cards(), "a user's first card"},
		{"generation 0 again", e0.Cards(), nil, e0.Cards(), "republishing is a no-op"},
		{"another generation 0", impostor.Cards(), session.ErrConflict, e0.Cards(),
			"a card that is not the published one of its generation: another identity claims erin"},
		{"generation 1", e1.Cards(), nil, e1.Cards(), "the history grows by a successor"},
		{"the older history", e0.Cards(), nil, e1.Cards(), "what is published already is skipped"},
		{"another generation 1", fork.Cards(), session.ErrConflict, e1.Cards(),
			"a fork of the history"},
		{"empty history", []*identity.Card{}, nil, e1.Cards(), "nothing to publish"},
	}
	for _, st := range steps {
		if st.publish != nil {
			if err := dir.PublishHistory(ctx, st.publish); !is(err, st.want) {
				t.Fatalf("%s: PublishHistory = %v, want %v (%s)", st.name, err, st.want, st.reason)
			}
		}
		reader := f.env.Directory(mallory)
		h, err := reader.History(ctx, erin)
		if st.history == nil {
			if !errors.Is(err, session.ErrUnknownUser) {
				t.Errorf("%s: History = %d cards, %v; want ErrUnknownUser (%s)", st.name, len(h), err, st.reason)
			}
		} else if err != nil || !sameCards(h, st.history) {
			t.Errorf("%s: History = %d cards, %v; want generations 0 to %d (%s)", st.name, len(h), err, len(st.history)-1, st.reason)
		}
		latest, err := reader.Latest(ctx, []string{erin, alice, ghost})
		want := map[string]*identity.Card{alice: person(t, alice, alice).Card()}
		if st.history != nil {
			want[erin] = st.history[len(st.history)-1]
		}
		if err != nil || !sameLatest(latest, want) {
			t.Errorf("%s: Latest = %v, %v; want %v (%s)", st.name, generations(latest), err, generations(want), st.reason)
		}
	}
}

func sameCards(a, b []*identity.Card) bool {
	return slices.EqualFunc(a, b, func(x, y *identity.Card) bool { return x.Equal(y) })
}

func sameLatest(a, b map[string]*identity.Card) bool {
	if len(a) != len(b) {
		return false
	}
	for u, c := range b {
		if !c.Equal(a[u]) {
			return false
		}
	}
	return true
}

// generations describes a Latest answer: user, generation and
// fingerprint of each card.
func generations(m map[string]*identity.Card) []string {
	var out []string
	for u, c := range m {
		out = append(out, fmt.Sprintf("%s@%d:%s", u, c.Generation(), c.Fingerprint()))
	}
	slices.Sort(out)
	return out
}
