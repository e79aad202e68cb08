package servicetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	"golang.org/x/crypto/cryptobyte"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/session"
)

// Sizes an implementation may need to know to run the suite.
const (
	// MaxGrantsPerCall is the most grants Run sends in one call to Create
	// or Append. An implementation that caps grants per call must allow at
	// least this many.
	MaxGrantsPerCall = 4
	// PageSize is the page size to run an implementation that pages its
	// answers with (Log, Grants): Run reads logs and grant lists longer
	// than PageSize, so that paging is exercised and must be invisible.
	PageSize = 2
)

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
// parallel subtests, once per subtest. The Services and Directories it
// returns must be safe for concurrent use.
func Run(t *testing.T, newEnv func(t *testing.T) Env) {
	tests := []struct {
		name string
		fn   func(t *testing.T, f *fixture)
	}{
		{"Create", testCreate},
		{"CreateTampered", testCreateTampered},
		{"Append", testAppend},
		{"Log", testLog},
		{"Head", testHead},
		{"Grants", testGrants},
		{"Lookup", testLookup},
		{"Delete", testDelete},
		{"RaceAppend", testRaceAppend},
		{"RaceCreate", testRaceCreate},
		{"RaceResend", testRaceResend},
		{"Directory", testDirectory},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newFixture(t, newEnv(t)))
		})
	}
}

// The cast. Every user but ghost has a published card (generation 0).
const (
	alice   = "alice"   // creates most sessions, so is their admin
	bob     = "bob"     // a member of most sessions
	carol   = "carol"   // a member of most sessions, the one removed
	dave    = "dave"    // joins in some cases
	mallory = "mallory" // never a member
	ghost   = "ghost"   // has no card
)

// published are the users whose cards every fixture publishes.
var published = []string{alice, bob, carol, dave, mallory}

// readers are the users whose view of a session Run compares with what the
// session should be.
var readers = []string{alice, bob, carol, dave, mallory, ghost}

// The identities Run signs with, by name. A plain name is its user's
// generation 0; "alice@1" is alice's generation 1 (never published);
// "bob@1" is bob's generation 1 (published by one case);
// "alice-impostor" claims the user ID alice with other keys. The erin
// identities serve the Directory test.
var names = map[string]struct{ user, parent string }{
	alice: {alice, ""}, bob: {bob, ""}, carol: {carol, ""}, dave: {dave, ""}, mallory: {mallory, ""}, ghost: {ghost, ""},
	"alice@1": {alice, alice}, "bob@1": {bob, bob}, "alice-impostor": {alice, ""},
	"erin": {"erin", ""}, "erin@1": {"erin", "erin"}, "erin@1-fork": {"erin", "erin"}, "erin-impostor": {"erin", ""},
}

var (
	peopleOnce sync.Once
	people     map[string]*identity.Identity
	peopleErr  error
)

// person returns the identity named name (see names), the same on every
// call.
func person(t *testing.T, name string) *identity.Identity {
	t.Helper()
	peopleOnce.Do(func() { people, peopleErr = makePeople() })
	if peopleErr != nil {
		t.Fatal(peopleErr)
	}
	id, ok := people[name]
	if !ok {
		t.Fatalf("servicetest: no identity %q", name)
	}
	return id
}

// created is the creation time of every card, so that cards are the same
// on every run.
var created = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func makePeople() (map[string]*identity.Identity, error) {
	opts := identity.Options{Kind: identity.KindX25519, Created: created}
	out := make(map[string]*identity.Identity, len(names))
	var build func(name string) error
	build = func(name string) error {
		if out[name] != nil {
			return nil
		}
		n := names[name]
		rnd := testrand.New("servicetest/" + name)
		var (
			id  *identity.Identity
			err error
		)
		if n.parent == "" {
			id, err = identity.Generate(rnd, n.user, opts)
		} else {
			if err := build(n.parent); err != nil {
				return err
			}
			id, err = out[n.parent].Rotate(rnd, opts)
		}
		out[name] = id
		return err
	}
	for name := range names {
		if err := build(name); err != nil {
			return nil, fmt.Errorf("servicetest: generating %s: %w", name, err)
		}
	}
	return out, nil
}

var (
	// unknownID is a session no test creates.
	unknownID = session.ID{0xde, 0xad, 0xbe, 0xef}
	// recordTime is the time every record carries: shown, never checked.
	recordTime = uint64(created.Unix())
	cmpOpts    = cmpopts.EquateEmpty()
)

type fixture struct {
	env Env
	n   atomic.Uint64 // makes channels, nonces, commitments and grants unique
}

func newFixture(t *testing.T, env Env) *fixture {
	f := &fixture{env: env}
	for _, u := range published {
		f.publish(t, u)
	}
	return f
}

// publish publishes the card history of the identity named name, through
// its user's Directory.
func (f *fixture) publish(t *testing.T, name string) {
	t.Helper()
	id := person(t, name)
	if err := f.env.Directory(id.UserID()).PublishHistory(t.Context(), id.Cards()); err != nil {
		t.Fatalf("publishing the cards of %s: %v", name, err)
	}
}

func (f *fixture) as(user string) session.Service { return f.env.Service(user) }

// unique returns a number no other call on f returns.
func (f *fixture) unique() uint64 { return f.n.Add(1) }

// channel returns a channel no session has.
func (f *fixture) channel() string { return fmt.Sprintf("messaging:servicetest-%d", f.unique()) }

// commitment returns a stand-in key commitment. The service cannot check
// commitments, so any 32 bytes will do; unique ones make every record
// unique.
func (f *fixture) commitment() [memberlog.HashSize]byte {
	return sha256.Sum256(fmt.Appendf(nil, "servicetest commitment %d", f.unique()))
}

// grants returns stand-in grants for users at epoch: an age header and
// bytes no other call's grants have. The service cannot open grants, so
// it cannot tell.
func (f *fixture) grants(epoch uint32, users ...string) []session.GrantRecord {
	n := f.unique()
	out := make([]session.GrantRecord, len(users))
	for i, u := range users {
		out[i] = session.GrantRecord{Grantee: u, Epoch: epoch,
			Grant: fmt.Appendf(nil, "age-encryption.org/v1\n-> servicetest %s %d %d\n", u, epoch, n)}
	}
	return out
}

// createAs sends a genesis as caller.
func (f *fixture) createAs(t *testing.T, caller string, g gen) error {
	t.Helper()
	if len(g.grants) > MaxGrantsPerCall {
		t.Fatalf("servicetest: %d grants in one call, more than MaxGrantsPerCall", len(g.grants))
	}
	return f.as(caller).Create(t.Context(), g.raw, g.grants)
}

// appendAs sends a step to session id as caller.
func (f *fixture) appendAs(t *testing.T, caller string, id session.ID, st step) error {
	t.Helper()
	if len(st.grants) > MaxGrantsPerCall {
		t.Fatalf("servicetest: %d grants in one call, more than MaxGrantsPerCall", len(st.grants))
	}
	return f.as(caller).Append(t.Context(), id, st.raw, st.grants)
}

// gen is a genesis as Run sends it: its bytes and grants, and the state it
// starts when valid.
type gen struct {
	cid    string // the channel it is for; "" if none
	raw    []byte
	grants []session.GrantRecord
	st     *memberlog.State // nil: not a valid genesis
}

// genesis returns the genesis of a session for cid signed by the identity
// named signer, with members (by identity name, at their current card),
// and the grants an honest creator sends with it.
func (f *fixture) genesis(t *testing.T, signer, cid string, members ...string) gen {
	t.Helper()
	creator := person(t, signer)
	var ms []memberlog.Member
	for _, m := range members {
		ms = append(ms, memberlog.Member{UserID: person(t, m).UserID(), Anchor: memberlog.AnchorOf(person(t, m).Card())})
	}
	var nonce [memberlog.NonceSize]byte
	testrand.New(fmt.Sprintf("servicetest nonce %d", f.unique())).Read(nonce[:])
	raw, st, err := memberlog.NewGenesis(creator, creator.Card(), cid, ms, memberlog.DefaultPolicy, f.commitment(), nonce, recordTime)
	if err != nil {
		t.Fatalf("servicetest: signing a genesis: %v", err)
	}
	return gen{cid: cid, raw: raw, grants: f.grants(0, userIDs(st.Members())...), st: st}
}

func userIDs(ms []memberlog.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.UserID
	}
	return out
}

// sess is a session Run created, and what the service should hold of it.
type sess struct {
	f       *fixture
	id      session.ID
	cid     string
	genesis gen
	records [][]byte
	states  []*memberlog.State // the state after each record
	st      *memberlog.State   // the last of states
	grants  map[string][]session.GrantRecord
	steps   []step // appended: steps[i] is record i+1
	deleted bool
}

func newSess(f *fixture, g gen) *sess {
	s := &sess{f: f, id: session.ID(g.st.ID()), cid: g.st.ChannelCID(), genesis: g, records: [][]byte{g.raw},
		states: []*memberlog.State{g.st}, st: g.st, grants: map[string][]session.GrantRecord{}}
	for _, gr := range g.grants {
		s.grants[gr.Grantee] = append(s.grants[gr.Grantee], gr)
	}
	return s
}

// create makes a session for a new channel, created by creator with
// members, at epoch 0.
func (f *fixture) create(t *testing.T, creator string, members ...string) *sess {
	t.Helper()
	g := f.genesis(t, creator, f.channel(), members...)
	if err := f.createAs(t, creator, g); err != nil {
		t.Fatalf("creating a session: %v", err)
	}
	return newSess(f, g)
}

// step is a change record as Run sends it: its bytes and grants, and the
// state after it when it is a new, valid record of the session.
type step struct {
	raw    []byte
	grants []session.GrantRecord
	after  *memberlog.State // nil: not a new valid next record
}

// lastStep returns the last step appended.
func (s *sess) lastStep() step { return s.steps[len(s.steps)-1] }

// resent returns the step as sent again: nothing new for the session.
func (st step) resent() step {
	st.after = nil
	return st
}

// with returns the step with other grants.
func (st step) with(grants ...session.GrantRecord) step {
	st.grants = grants
	return st
}

// tampered returns the step with the byte at i flipped.
func (st step) tampered(i int) step {
	st.raw = flip(st.raw, i)
	st.after = nil
	return st
}

func flip(b []byte, i int) []byte {
	b = slices.Clone(b)
	b[i] ^= 0x01
	return b
}

// next returns the next record of s signed by the identity named signer,
// built by memberlog's own rules (so it is valid), with the grants an
// honest client sends.
func (s *sess) next(t *testing.T, signer string, newEpoch bool, ops ...memberlog.Op) step {
	t.Helper()
	return s.nextOn(t, s.st, signer, newEpoch, ops...)
}

// nextOn is next on another state of the session than its last.
func (s *sess) nextOn(t *testing.T, on *memberlog.State, signer string, newEpoch bool, ops ...memberlog.Op) step {
	t.Helper()
	raw, after, err := on.NewChange(person(t, signer), ops, newEpoch, s.f.commitment(), recordTime)
	if err != nil {
		t.Fatalf("servicetest: signing a change: %v", err)
	}
	epoch, users := memberlog.GrantsNeeded(on, after)
	return step{raw: raw, grants: s.f.grants(epoch, users...), after: after}
}

// do appends the next record signed by signer, as its user, and records
// it.
func (s *sess) do(t *testing.T, signer string, newEpoch bool, ops ...memberlog.Op) {
	t.Helper()
	st := s.next(t, signer, newEpoch, ops...)
	if err := s.f.appendAs(t, person(t, signer).UserID(), s.id, st); err != nil {
		t.Fatalf("appending a change by %s: %v", signer, err)
	}
	s.apply(st)
}

// apply records an appended step: the log grows, and grants follow the
// rule every implementation keeps. A user keeps its grants while it is a
// member or holds the current epoch's key (a member who left without a
// rotation), and loses them once it is neither.
func (s *sess) apply(st step) {
	s.records = append(s.records, st.raw)
	s.states = append(s.states, st.after)
	s.st = st.after
	s.steps = append(s.steps, st)
	readers := st.after.Readers()
	for u := range s.grants {
		_, member := st.after.Member(u)
		if _, reader := slices.BinarySearch(readers, u); !member && !reader {
			delete(s.grants, u)
		}
	}
	for _, g := range st.grants {
		s.grants[g.Grantee] = append(s.grants[g.Grantee], g)
	}
}

// forge signs a change on s's head that memberlog's rules may refuse: ops
// as given, the epoch, the commitment and the roster digest as an honest
// client computes them, then edit (if not nil) before signing. Its grants
// are those the record would need if it were valid.
func (s *sess) forge(t *testing.T, signer string, newEpoch bool, ops []memberlog.Op, edit func(*memberlog.Change)) step {
	t.Helper()
	id := person(t, signer)
	ops = slices.Clone(ops)
	slices.SortFunc(ops, func(a, b memberlog.Op) int { return strings.Compare(a.Member.UserID, b.Member.UserID) })
	roster, added := applyNaively(s.st.Members(), ops)
	c := &memberlog.Change{SessionID: s.st.ID(), Seq: s.st.Seq() + 1, Prev: s.st.Head(), Actor: id.UserID(),
		ActorGen: id.Generation(), Time: recordTime, NewEpoch: newEpoch, Epoch: s.st.Epoch(), Ops: ops,
		RosterDigest: rosterDigest(s.st.Policy(), roster)}
	if newEpoch {
		c.Epoch++
		c.Commitment = s.f.commitment()
	}
	if edit != nil {
		edit(c)
	}
	raw, err := memberlog.SignChange(id, c)
	if err != nil {
		t.Fatalf("servicetest: forging a change: %v", err)
	}
	users := added
	if newEpoch {
		users = userIDs(roster)
	}
	return step{raw: raw, grants: s.f.grants(c.Epoch, users...)}
}

// applyNaively applies ops to roster without checking any rule, and
// returns the roster after them, sorted, and the users they add.
func applyNaively(roster []memberlog.Member, ops []memberlog.Op) ([]memberlog.Member, []string) {
	var added []string
	for _, op := range ops {
		i := slices.IndexFunc(roster, func(m memberlog.Member) bool { return m.UserID == op.Member.UserID })
		switch {
		case op.Kind == memberlog.OpAdd && i < 0:
			roster = append(roster, op.Member)
			added = append(added, op.Member.UserID)
		case op.Kind == memberlog.OpRemove && i >= 0:
			roster = slices.Delete(roster, i, i+1)
		case op.Kind == memberlog.OpRole && i >= 0:
			roster[i].Role = op.Member.Role
		}
	}
	slices.SortFunc(roster, func(a, b memberlog.Member) int { return strings.Compare(a.UserID, b.UserID) })
	return roster, added
}

// rosterDigest is the roster digest of docs/PROTOCOL.md §10.1, written
// from the specification: SHA-256("veil/v1/log/roster" ‖ 0x00 ‖ u8 policy
// ‖ u32 n ‖ member entries sorted by user ID).
func rosterDigest(policy memberlog.Policy, roster []memberlog.Member) [memberlog.HashSize]byte {
	var b cryptobyte.Builder
	b.AddBytes([]byte("veil/v1/log/roster"))
	b.AddUint8(0)
	b.AddUint8(uint8(policy))
	b.AddUint32(uint32(len(roster)))
	for _, m := range roster {
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.UserID)) })
		b.AddUint32(m.Anchor.Generation)
		b.AddBytes(m.Anchor.Fingerprint[:])
		b.AddUint8(uint8(m.Role))
	}
	return sha256.Sum256(b.BytesOrPanic())
}

// Operations of change records, on the identities named.

func add(t *testing.T, name string) memberlog.Op {
	id := person(t, name)
	return memberlog.Op{Kind: memberlog.OpAdd, Member: memberlog.Member{UserID: id.UserID(), Anchor: memberlog.AnchorOf(id.Card())}}
}

func remove(user string) memberlog.Op {
	return memberlog.Op{Kind: memberlog.OpRemove, Member: memberlog.Member{UserID: user}}
}

func setRole(user string, role memberlog.Role) memberlog.Op {
	return memberlog.Op{Kind: memberlog.OpRole, Member: memberlog.Member{UserID: user, Role: role}}
}

// view is what one user reads of a session. Records are compared by
// their memberlog.Hash, which covers every byte.
type view struct {
	Head      session.Head
	HeadErr   string
	Log       []string
	LogErr    string
	Grants    []session.GrantRecord
	GrantsErr string
}

// snapshot is what every reader reads of a session, and what Lookup says
// of its channel.
type snapshot struct {
	Lookup    session.ID
	LookupErr string
	Views     map[string]view
}

// errName names the sentinel err matches, for comparisons.
func errName(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, session.ErrForbidden):
		return "ErrForbidden"
	case errors.Is(err, session.ErrUnknownSession):
		return "ErrUnknownSession"
	}
	return "unexpected error: " + err.Error()
}

func hashes(records [][]byte) []string {
	out := make([]string, len(records))
	for i, r := range records {
		h := memberlog.Hash(r)
		out[i] = hex.EncodeToString(h[:])
	}
	return out
}

func sortGrants(gs []session.GrantRecord) []session.GrantRecord {
	gs = slices.Clone(gs)
	slices.SortFunc(gs, func(a, b session.GrantRecord) int {
		if a.Epoch != b.Epoch {
			return int(a.Epoch) - int(b.Epoch)
		}
		return strings.Compare(string(a.Grant), string(b.Grant))
	})
	return gs
}

// snapshot reads the session as every reader.
func (s *sess) snapshot(t *testing.T) snapshot {
	t.Helper()
	ctx := t.Context()
	var out snapshot
	id, err := s.f.as(mallory).Lookup(ctx, s.cid)
	out.Lookup, out.LookupErr = id, errName(err)
	out.Views = make(map[string]view, len(readers))
	for _, u := range readers {
		svc := s.f.as(u)
		var v view
		h, err := svc.Head(ctx, s.id)
		v.Head, v.HeadErr = h, errName(err)
		log, err := svc.Log(ctx, s.id, 0)
		v.Log, v.LogErr = hashes(log), errName(err)
		gs, err := svc.Grants(ctx, s.id)
		v.Grants, v.GrantsErr = sortGrants(gs), errName(err)
		out.Views[u] = v
	}
	return out
}

// want is what the session's snapshot should be: members read it, others
// are refused with ErrForbidden, and a deleted session is unknown to all.
func (s *sess) want() snapshot {
	out := snapshot{Lookup: s.id, Views: make(map[string]view, len(readers))}
	if s.deleted {
		out.Lookup, out.LookupErr = session.ID{}, "ErrUnknownSession"
	}
	for _, u := range readers {
		_, member := s.st.Member(u)
		switch {
		case s.deleted:
			out.Views[u] = view{HeadErr: "ErrUnknownSession", LogErr: "ErrUnknownSession", GrantsErr: "ErrUnknownSession"}
		case member:
			out.Views[u] = view{Head: session.Head{Seq: s.st.Seq(), Hash: s.st.Head()}, Log: hashes(s.records), Grants: sortGrants(s.grants[u])}
		default:
			out.Views[u] = view{HeadErr: "ErrForbidden", LogErr: "ErrForbidden", GrantsErr: "ErrForbidden"}
		}
	}
	return out
}

// diff returns how the session differs from what it should be, or "".
func (s *sess) diff(t *testing.T) string {
	t.Helper()
	return cmp.Diff(s.want(), s.snapshot(t), cmpOpts)
}

// mustMatch stops the test if the session differs from what it should be
// before a case's call: the case could not say anything.
func (s *sess) mustMatch(t *testing.T) {
	t.Helper()
	if d := s.diff(t); d != "" {
		t.Fatalf("the session before the call (-want +got)\n%s", d)
	}
}

// is reports whether err is what want asks for: nil for nil, else
// errors.Is.
func is(err, want error) bool {
	if want == nil {
		return err == nil
	}
	return errors.Is(err, want)
}

// Setups bring a new session, created by alice with bob and carol as
// members, to the state a case needs.
type setup func(t *testing.T, s *sess)

// then chains setups.
func then(setups ...setup) setup {
	return func(t *testing.T, s *sess) {
		for _, f := range setups {
			f(t, s)
		}
	}
}

// bobAdmin: alice makes bob an admin.
func bobAdmin(t *testing.T, s *sess) { s.do(t, alice, false, setRole(bob, memberlog.RoleAdmin)) }

// aliceDemoted: bob, made admin by alice, demotes her.
func aliceDemoted(t *testing.T, s *sess) {
	bobAdmin(t, s)
	s.do(t, bob, false, setRole(alice, memberlog.RoleMember))
}

// aliceRemoved: bob, made admin by alice, removes her.
func aliceRemoved(t *testing.T, s *sess) {
	bobAdmin(t, s)
	s.do(t, bob, true, remove(alice))
}

// aliceLeft: alice makes bob an admin and leaves.
func aliceLeft(t *testing.T, s *sess) {
	bobAdmin(t, s)
	s.do(t, alice, false, remove(alice))
}

// carolRemoved: bob, a member, removes carol, as the default policy lets
// him.
func carolRemoved(t *testing.T, s *sess) { s.do(t, bob, true, remove(carol)) }

// carolLeft: carol leaves, without a new epoch.
func carolLeft(t *testing.T, s *sess) { s.do(t, carol, false, remove(carol)) }

// carolBack: alice adds carol back, without a new epoch.
func carolBack(t *testing.T, s *sess) { s.do(t, alice, false, add(t, carol)) }

// daveAdded: alice adds dave, without a new epoch (with history).
func daveAdded(t *testing.T, s *sess) { s.do(t, alice, false, add(t, dave)) }

// rotated: alice starts a new epoch.
func rotated(t *testing.T, s *sess) { s.do(t, alice, true) }
