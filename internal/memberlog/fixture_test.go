package memberlog

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
)

// t0 is the creation time of every test card, so that cards (and their
// fingerprints) are the same on every run.
var t0 = time.Unix(1_700_000_000, 0)

var (
	signersOnce sync.Once
	signersErr  error
	signers     map[string]*identity.Identity
)

// signer returns a test identity by name. Plain names are users at
// generation 0; "bob@1" and "bob@2" are bob after one and two key
// rotations (sharing bob's earlier cards); "impostor" and "impostor@1"
// claim the user ID "bob" with other keys; "twin" is the user "trudy" with
// bob's generation-0 keys (same fingerprint, other user).
func signer(tb testing.TB, name string) *identity.Identity {
	tb.Helper()
	signersOnce.Do(func() { signers, signersErr = makeSigners() })
	if signersErr != nil {
		tb.Fatal(signersErr)
	}
	id, ok := signers[name]
	if !ok {
		tb.Fatalf("no test identity %q", name)
	}
	return id
}

func makeSigners() (map[string]*identity.Identity, error) {
	opts := func(i int) identity.Options {
		return identity.Options{Kind: identity.KindX25519, Created: t0.Add(time.Duration(i) * time.Hour)}
	}
	out := map[string]*identity.Identity{}
	gen := func(name, user, seed string) error {
		id, err := identity.Generate(testrand.New(seed), user, opts(0))
		out[name] = id
		return err
	}
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin", "frank", "mallory"} {
		if err := gen(u, u, u); err != nil {
			return nil, err
		}
	}
	if err := gen("impostor", "bob", "impostor"); err != nil {
		return nil, err
	}
	if err := gen("twin", "trudy", "bob"); err != nil {
		return nil, err
	}
	rotate := func(to, from string, i int) error {
		id, err := out[from].Rotate(testrand.New(to), opts(i))
		out[to] = id
		return err
	}
	for _, r := range []struct {
		to, from string
		i        int
	}{{"bob@1", "bob", 1}, {"bob@2", "bob@1", 2}, {"impostor@1", "impostor", 1}} {
		if err := rotate(r.to, r.from, r.i); err != nil {
			return nil, err
		}
	}
	if out["twin"].Card().Fingerprint() != out["bob"].Card().Fingerprint() {
		return nil, errors.New("the twin does not share bob's keys")
	}
	return out, nil
}

// anchor returns the anchor of a test identity's current card.
func anchor(tb testing.TB, name string) Anchor { return AnchorOf(signer(tb, name).Card()) }

// member returns a roster entry for a test identity's current card.
func member(tb testing.TB, name string, role Role) Member {
	id := signer(tb, name)
	return Member{UserID: id.UserID(), Anchor: AnchorOf(id.Card()), Role: role}
}

func add(tb testing.TB, name string, role Role) Op {
	return Op{Kind: OpAdd, Member: member(tb, name, role)}
}

func remove(user string) Op { return Op{Kind: OpRemove, Member: Member{UserID: user}} }

func setRole(user string, role Role) Op {
	return Op{Kind: OpRole, Member: Member{UserID: user, Role: role}}
}

// errNoCard is what a directory answers for a card it does not have.
var errNoCard = errors.New("no such card")

// directory is a card directory: every card of each user, generation 0
// first. It answers like an untrusted one would: whatever it holds.
type directory map[string][]*identity.Card

// honest returns the directory of every test user's real cards.
func honest(tb testing.TB) directory {
	d := directory{}
	for _, name := range []string{"alice", "bob@2", "carol", "dave", "erin", "frank", "mallory", "twin"} {
		id := signer(tb, name)
		d[id.UserID()] = id.Cards()
	}
	return d
}

// with returns a copy of d in which user's cards are cards.
func (d directory) with(user string, cards ...*identity.Card) directory {
	out := directory{}
	for u, c := range d {
		out[u] = c
	}
	out[user] = cards
	return out
}

func (d directory) cards(user string, a Anchor, gen uint32) ([]*identity.Card, error) {
	all := d[user]
	if a.Generation > gen || int64(gen) >= int64(len(all)) {
		return nil, fmt.Errorf("%q generation %d: %w", user, gen, errNoCard)
	}
	return all[a.Generation : gen+1], nil
}

// commitment is the test key commitment of an epoch.
func commitment(epoch uint32) [HashSize]byte {
	return sha256.Sum256(fmt.Appendf(nil, "epoch %d", epoch))
}

// nonce returns a genesis nonce drawn from a named deterministic stream.
func nonce(seed string) [NonceSize]byte {
	var n [NonceSize]byte
	testrand.New(seed).Read(n[:])
	return n
}

// newSession creates a session by the test identity creator with members
// (creator excluded) and policy, and returns its genesis and State.
func newSession(tb testing.TB, creator string, policy Policy, members ...Member) ([]byte, *State) {
	tb.Helper()
	id := signer(tb, creator)
	raw, s, err := NewGenesis(id, id.Card(), "messaging:general", members, policy, commitment(0), nonce("nonce "+creator), 1)
	if err != nil {
		tb.Fatalf("NewGenesis: %v", err)
	}
	return raw, s
}

// step is one honest change: actor signs ops, with a new epoch or not.
type step struct {
	actor    string
	ops      []Op
	newEpoch bool
}

// next signs st as the record after s, with the test commitment of the
// epoch it starts.
func next(tb testing.TB, s *State, st step) ([]byte, *State) {
	tb.Helper()
	raw, n, err := s.NewChange(signer(tb, st.actor), st.ops, st.newEpoch, commitment(s.Epoch()+1), uint64(s.Seq())+2)
	if err != nil {
		tb.Fatalf("NewChange(%s, %v): %v", st.actor, st.ops, err)
	}
	return raw, n
}

// fixture is a valid log with one record of every kind:
//
//	0 genesis: alice (admin) creates with bob and carol, default policy
//	1 alice adds dave with history
//	2 alice adds erin without history (epoch 1)
//	3 alice promotes bob
//	4 bob, signing with his generation 2 (anchored at 0), removes carol (epoch 2)
//	5 dave rotates (epoch 3)
//	6 erin leaves
//	7 alice demotes bob and adds frank with history, with a new epoch (epoch 4)
//	8 dave removes alice, the last admin, and promotes himself (epoch 5)
type fixture struct {
	dir     directory
	records [][]byte // records[0] is the genesis
	states  []*State // states[i] is the State after records[i]
}

func fixtureSteps(tb testing.TB) []step {
	return []step{
		{"alice", []Op{add(tb, "dave", RoleMember)}, false},
		{"alice", []Op{add(tb, "erin", RoleMember)}, true},
		{"alice", []Op{setRole("bob", RoleAdmin)}, false},
		{"bob@2", []Op{remove("carol")}, true},
		{"dave", nil, true},
		{"erin", []Op{remove("erin")}, false},
		{"alice", []Op{setRole("bob", RoleMember), add(tb, "frank", RoleMember)}, true},
		{"dave", []Op{remove("alice"), setRole("dave", RoleAdmin)}, true},
	}
}

// fixtureNames names the records of the fixture for failure messages.
var fixtureNames = []string{
	"genesis", "add with history", "add without history", "promote",
	"remove by a rotated key", "rotate", "leave", "demote and add with a new epoch", "forced promotion",
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	f := &fixture{dir: honest(tb)}
	raw, s := newSession(tb, "alice", DefaultPolicy, member(tb, "bob", RoleMember), member(tb, "carol", RoleMember))
	f.records, f.states = append(f.records, raw), append(f.states, s)
	for _, st := range fixtureSteps(tb) {
		raw, s = next(tb, s, st)
		f.records, f.states = append(f.records, raw), append(f.states, s)
	}
	return f
}

// replay verifies records as a log of session id and returns the State
// after the last one.
func replay(records [][]byte, id [IDSize]byte, cards CardSource) (*State, error) {
	if len(records) == 0 {
		return nil, errors.New("no records")
	}
	s, err := Verify(records[0], id, cards)
	if err != nil {
		return nil, err
	}
	for _, r := range records[1:] {
		if s, err = s.Apply(r, cards); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// view is what a State shows, for comparisons.
type view struct {
	ID          [IDSize]byte
	ChannelCID  string
	Creator     string
	Policy      Policy
	Seq         uint32
	Head        [HashSize]byte
	Epoch       uint32
	Commitments [][HashSize]byte
	Members     []Member
	Readers     []string
}

func viewOf(s *State) view {
	v := view{ID: s.ID(), ChannelCID: s.ChannelCID(), Creator: s.Creator(), Policy: s.Policy(),
		Seq: s.Seq(), Head: s.Head(), Epoch: s.Epoch(), Members: s.Members(), Readers: s.Readers()}
	for e := uint32(0); ; e++ {
		c, ok := s.Commitment(e)
		if !ok {
			break
		}
		v.Commitments = append(v.Commitments, c)
	}
	return v
}

// roles lists a State's roster as "user:role", in order.
func roles(s *State) []string {
	var out []string
	for _, m := range s.Members() {
		out = append(out, m.UserID+":"+m.Role.String())
	}
	return out
}

// forge builds the change after parent that actor's ops would make with
// newEpoch, with the roster digest of the ops applied without any rule,
// lets edit change any field, and signs it with signer: a record that is
// well formed and correctly signed, so that only the rules can refuse it.
func forge(tb testing.TB, parent *State, signerName string, ops []Op, newEpoch bool, edit func(*Change)) []byte {
	tb.Helper()
	id := signer(tb, signerName)
	roster := slices.Clone(parent.roster)
	for _, op := range ops {
		i, found := slices.BinarySearchFunc(roster, op.Member.UserID, func(m Member, u string) int { return strings.Compare(m.UserID, u) })
		switch {
		case op.Kind == OpAdd && !found:
			roster = slices.Insert(roster, i, op.Member)
		case op.Kind == OpRemove && found:
			roster = slices.Delete(roster, i, i+1)
		case op.Kind == OpRole && found:
			roster[i].Role = op.Member.Role
		}
	}
	c := &Change{SessionID: parent.ID(), Seq: parent.Seq() + 1, Prev: parent.Head(), Actor: id.UserID(),
		ActorGen: id.Generation(), Time: 7, NewEpoch: newEpoch, Epoch: parent.Epoch(), Ops: ops,
		RosterDigest: rosterDigest(parent.Policy(), roster)}
	if newEpoch {
		c.Epoch++
		c.Commitment = commitment(c.Epoch)
	}
	if edit != nil {
		edit(c)
	}
	body, err := c.marshal()
	if err != nil {
		tb.Fatalf("forge: %v", err)
	}
	return sign(id, body)
}

// encodeChange encodes c with flags as given and without any check, so
// that tests can sign records Parse must refuse.
func encodeChange(c *Change, flags uint8) []byte { return c.encode(flags) }

// encodeGenesis encodes g without any check.
func encodeGenesis(g *Genesis) []byte { return g.encode() }

// parsed returns the parsed form of a record the test made.
func parsed(tb testing.TB, raw []byte) *Record {
	tb.Helper()
	r, err := Parse(raw)
	if err != nil {
		tb.Fatalf("Parse(a valid record): %v", err)
	}
	return r
}

// checkInvalid fails unless err is a *Error matching ErrInvalid whose
// reason contains want (any reason when want is empty).
func checkInvalid(t *testing.T, err error, want, reason string) {
	t.Helper()
	var e *Error
	switch {
	case err == nil:
		t.Errorf("accepted; %s", reason)
	case !errors.As(err, &e) || !errors.Is(err, ErrInvalid):
		t.Errorf("err = %v, want a *Error matching ErrInvalid; %s", err, reason)
	case !strings.Contains(e.Reason, want):
		t.Errorf("refused for %q, want a reason containing %q; %s", e.Reason, want, reason)
	}
}
