package veil_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/internal/protosign"
	"github.com/veilchat/veil/internal/testrand"
)

// Membership-log vectors (docs/PROTOCOL.md §10): valid chains with the
// state after every record, and invalid records — each after a valid prefix
// of one of the chains — that break one rule each.

type logVectors struct {
	Comment string              `json:"comment"`
	Cards   map[string][]string `json:"cards"` // user → cards, generation 0 first
	Chains  []logChain          `json:"chains"`
	Invalid []logInvalid        `json:"invalid"`
	Pinned  []logPinned         `json:"pinned"`
}

// logPinned is a log read by a reader that trusts, before it verifies any
// of it, newer card generations of some users (§10.4 rule 5): the first
// Prefix records of Chains[Chain], valid by every other rule.
type logPinned struct {
	Comment string            `json:"comment"`
	Chain   int               `json:"chain"`
	Prefix  int               `json:"prefix"`
	Pins    map[string]uint32 `json:"pins"` // user → the newest generation the reader trusts
	Valid   bool              `json:"valid"`
}

type logChain struct {
	Comment    string      `json:"comment"`
	ChannelCID string      `json:"channel_cid"`
	SessionID  string      `json:"session_id"`
	Policy     uint8       `json:"policy"`
	EpochKeys  []string    `json:"epoch_keys"` // epoch n's key, whose commitment the log carries
	Records    []logRecord `json:"records"`
}

type logRecord struct {
	Comment string   `json:"comment"`
	Record  string   `json:"record"`
	Hash    string   `json:"hash"`
	State   logState `json:"state"` // after the record
}

type logState struct {
	Seq          uint32      `json:"seq"`
	Head         string      `json:"head"`
	Epoch        uint32      `json:"epoch"`
	Commitments  []string    `json:"commitments"` // c[0..epoch]
	Roster       []logMember `json:"roster"`
	Readers      []string    `json:"readers"` // R(epoch)
	RosterDigest string      `json:"roster_digest"`
	// Signed is, per user who signed a record so far, the newest card
	// generation it signed one with (older ones are retired, §10.4).
	Signed map[string]uint32 `json:"signed"`
	// MinGenerations is, per epoch 0..epoch, Signed as it was when the
	// epoch began: the oldest generation of each user that may sign the
	// epoch's envelopes and grants (users absent: 0).
	MinGenerations []map[string]uint32 `json:"min_generations"`
}

type logMember struct {
	UserID            string `json:"user_id"`
	AnchorGeneration  uint32 `json:"anchor_generation"`
	AnchorFingerprint string `json:"anchor_fingerprint"`
	Role              string `json:"role"`
}

// logInvalid is a log a reader must reject: the first Prefix records of
// Chains[Chain], then Record (if any). A reader that held Floor before
// (§10.4 rule 4) checks the log against it.
type logInvalid struct {
	Comment    string              `json:"comment"`
	Chain      int                 `json:"chain"`
	Prefix     int                 `json:"prefix"`
	SessionID  string              `json:"session_id,omitempty"`  // prefix 0: what the reader took from the channel
	ChannelCID string              `json:"channel_cid,omitempty"` // prefix 0: the channel's CID
	Record     string              `json:"record,omitempty"`
	Cards      map[string][]string `json:"cards,omitempty"` // replace these users' cards in the directory
	Floor      *logFloor           `json:"floor,omitempty"`
}

type logFloor struct {
	Seq  uint32 `json:"seq"`
	Head string `json:"head"`
}

const logLabel = "veil/v1/log"

// logUsers are the identities of the log vectors, one per generation:
// users[u][g] signs with generation g.
type logUsers map[string][]*identity.Identity

func logIdentities(t *testing.T) logUsers {
	users := logUsers{}
	for _, c := range []struct {
		user string
		kind identity.Kind
		gens int
	}{
		{"alice", identity.KindHybrid, 2}, {"bob", identity.KindX25519, 2}, {"carol", identity.KindX25519, 1},
		{"dave", identity.KindX25519, 2}, {"erin", identity.KindX25519, 1}, {"frank", identity.KindX25519, 1},
	} {
		id, err := identity.Generate(testrand.New("vector/log/"+c.user), c.user, identity.Options{Kind: c.kind, Created: vectorTime})
		if err != nil {
			t.Fatal(err)
		}
		users[c.user] = []*identity.Identity{id}
		for g := 1; g < c.gens; g++ {
			id, err = id.Rotate(testrand.New(fmt.Sprintf("vector/log/%s/%d", c.user, g)), identity.Options{Created: vectorTime.Add(time.Duration(g) * 24 * time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			users[c.user] = append(users[c.user], id)
		}
	}
	return users
}

func cardsHex(cards []*identity.Card) []string {
	var out []string
	for _, c := range cards {
		out = append(out, hex.EncodeToString(c.Marshal()))
	}
	return out
}

func member(id *identity.Identity, role memberlog.Role) memberlog.Member {
	return memberlog.Member{UserID: id.UserID(), Anchor: memberlog.AnchorOf(id.Card()), Role: role}
}

func opAdd(id *identity.Identity, role memberlog.Role) memberlog.Op {
	return memberlog.Op{Kind: memberlog.OpAdd, Member: member(id, role)}
}

func opRemove(user string) memberlog.Op {
	return memberlog.Op{Kind: memberlog.OpRemove, Member: memberlog.Member{UserID: user}}
}

func opRole(user string, role memberlog.Role) memberlog.Op {
	return memberlog.Op{Kind: memberlog.OpRole, Member: memberlog.Member{UserID: user, Role: role}}
}

// chainBuilder builds a valid chain with memberlog's own builders.
type chainBuilder struct {
	t       *testing.T
	name    string
	cid     string
	policy  memberlog.Policy
	keys    [][]byte
	chain   logChain
	raws    [][]byte
	signers []*identity.Identity
	states  []*memberlog.State
}

func (b *chainBuilder) time(seq int) uint64 {
	return uint64(vectorTime.Unix()) + 60*uint64(seq)
}

// nextKey returns the key of the next epoch and its commitment (§5).
func (b *chainBuilder) nextKey() [32]byte {
	key := make([]byte, 32)
	testrand.New(fmt.Sprintf("vector/log/%s/epoch/%d", b.name, len(b.keys))).Read(key)
	b.keys = append(b.keys, key)
	b.chain.EpochKeys = append(b.chain.EpochKeys, hex.EncodeToString(key))
	return commitmentOf(key)
}

func commitmentOf(key []byte) [32]byte {
	c, err := hkdf.Key(sha256.New, key, nil, "veil/v1/envelope/commitment", 32)
	if err != nil {
		panic(err)
	}
	return [32]byte(c)
}

func (b *chainBuilder) genesis(comment string, creator *identity.Identity, members ...memberlog.Member) {
	var nonce [memberlog.NonceSize]byte
	testrand.New("vector/log/" + b.name + "/nonce").Read(nonce[:])
	raw, s, err := memberlog.NewGenesis(creator, creator.Card(), b.cid, members, b.policy, b.nextKey(), nonce, b.time(0))
	if err != nil {
		b.t.Fatalf("%s: %v", comment, err)
	}
	id := memberlog.SessionIDOf(raw)
	b.chain = logChain{Comment: b.chain.Comment, ChannelCID: b.cid, SessionID: hex.EncodeToString(id[:]), Policy: uint8(b.policy), EpochKeys: b.chain.EpochKeys}
	b.add(comment, creator, raw, s)
}

func (b *chainBuilder) change(comment string, actor *identity.Identity, newEpoch bool, ops ...memberlog.Op) {
	s := b.states[len(b.states)-1]
	var c [32]byte
	if newEpoch {
		c = b.nextKey()
	}
	raw, next, err := s.NewChange(actor, ops, newEpoch, c, b.time(len(b.raws)))
	if err != nil {
		b.t.Fatalf("%s: %v", comment, err)
	}
	b.add(comment, actor, raw, next)
}

func (b *chainBuilder) add(comment string, signer *identity.Identity, raw []byte, s *memberlog.State) {
	h := memberlog.Hash(raw)
	b.raws = append(b.raws, raw)
	b.signers = append(b.signers, signer)
	b.states = append(b.states, s)
	b.chain.Records = append(b.chain.Records, logRecord{Comment: comment, Record: hex.EncodeToString(raw), Hash: hex.EncodeToString(h[:]), State: stateVector(s)})
}

// stateVector is what a vector records of a State. The roster digest is
// recomputed here from the roster, independently of memberlog.
func stateVector(s *memberlog.State) logState {
	head := s.Head()
	v := logState{Seq: s.Seq(), Head: hex.EncodeToString(head[:]), Epoch: s.Epoch(), Readers: s.Readers()}
	for e := uint32(0); e <= s.Epoch(); e++ {
		c, _ := s.Commitment(e)
		v.Commitments = append(v.Commitments, hex.EncodeToString(c[:]))
	}
	roster := s.Members()
	for _, m := range roster {
		v.Roster = append(v.Roster, logMember{UserID: m.UserID, AnchorGeneration: m.Anchor.Generation,
			AnchorFingerprint: hex.EncodeToString(m.Anchor.Fingerprint[:]), Role: m.Role.String()})
	}
	d := rosterDigestOf(uint8(s.Policy()), roster)
	v.RosterDigest = hex.EncodeToString(d[:])
	v.Signed = map[string]uint32{}
	for _, u := range logUserNames {
		if g, ok := s.SignedGeneration(u); ok {
			v.Signed[u] = g
		}
	}
	for e := uint32(0); e <= s.Epoch(); e++ {
		m := map[string]uint32{}
		for _, u := range logUserNames {
			if g := s.MinGeneration(e, u); g > 0 {
				m[u] = g
			}
		}
		v.MinGenerations = append(v.MinGenerations, m)
	}
	return v
}

// logUserNames are the users of the log vectors.
var logUserNames = []string{"alice", "bob", "carol", "dave", "erin", "frank"}

// ---- an encoder of §10 that writes whatever it is given ----------------

// memberFields is a member entry, or an operation's fields.
type memberFields struct {
	user string
	gen  uint32
	fp   [32]byte
	role byte
}

func (m memberFields) entry() []byte {
	b := append([]byte{byte(len(m.user))}, m.user...)
	b = binary.BigEndian.AppendUint32(b, m.gen)
	b = append(b, m.fp[:]...)
	return append(b, m.role)
}

func fieldsOf(m memberlog.Member) memberFields {
	return memberFields{user: m.UserID, gen: m.Anchor.Generation, fp: m.Anchor.Fingerprint, role: byte(m.Role)}
}

type opFields struct {
	kind byte
	m    memberFields
}

// encode writes an add as kind ‖ member entry, a remove as kind ‖
// len8(user) ‖ user, a role change as kind ‖ len8(user) ‖ user ‖ role, and
// any other kind like an add.
func (o opFields) encode() []byte {
	switch o.kind {
	case 2:
		return append([]byte{o.kind, byte(len(o.m.user))}, o.m.user...)
	case 3:
		return append(append([]byte{o.kind, byte(len(o.m.user))}, o.m.user...), o.m.role)
	}
	return append([]byte{o.kind}, o.m.entry()...)
}

func opsOf(ops []memberlog.Op) []opFields {
	var out []opFields
	for _, op := range ops {
		out = append(out, opFields{kind: byte(op.Kind), m: fieldsOf(op.Member)})
	}
	return out
}

// recordSigner signs as one card: an *identity.Identity (through
// protosign, as identity.Identity.Sign refuses the protocol's purposes), or
// a bare key.
type recordSigner interface {
	Sign(purpose string, msg []byte) []byte
}

func signAs(s recordSigner, purpose string, msg []byte) []byte {
	if id, ok := s.(*identity.Identity); ok {
		return protosign.Sign(id, purpose, msg)
	}
	return s.Sign(purpose, msg)
}

type seedSigner ed25519.PrivateKey

func (s seedSigner) Sign(purpose string, msg []byte) []byte {
	return ed25519.Sign(ed25519.PrivateKey(s), labeled(purpose, msg))
}

// signing says how an encoded body becomes a record.
type signing struct {
	signer recordSigner
	label  string // "": veil/v1/log
	extra  []byte // signed bytes after the body
	after  []byte // unsigned bytes after the signature
}

func (s signing) seal(body []byte) []byte {
	body = append(body, s.extra...)
	label := s.label
	if label == "" {
		label = logLabel
	}
	return append(append(body, signAs(s.signer, label, body)...), s.after...)
}

type genesisFields struct {
	version, typ byte
	nonce        [16]byte
	cid          string
	creator      string
	creatorGen   uint32
	time         uint64
	policy       byte
	commitment   [32]byte
	count        int // -1: len(members)
	members      []memberFields
	signing
}

func (f genesisFields) encode() []byte {
	b := append([]byte{f.version, f.typ}, f.nonce[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(f.cid)))
	b = append(b, f.cid...)
	b = append(b, byte(len(f.creator)))
	b = append(b, f.creator...)
	b = binary.BigEndian.AppendUint32(b, f.creatorGen)
	b = binary.BigEndian.AppendUint64(b, f.time)
	b = append(b, f.policy)
	b = append(b, f.commitment[:]...)
	n := len(f.members)
	if f.count >= 0 {
		n = f.count
	}
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	for _, m := range f.members {
		b = append(b, m.entry()...)
	}
	return f.seal(b)
}

type changeFields struct {
	version, typ byte
	sessionID    [16]byte
	seq          uint32
	prev         [32]byte
	actor        string
	actorGen     uint32
	time         uint64
	flags        byte
	epoch        uint32
	commitment   []byte // written whenever non-nil, whatever the flags say
	count        int    // -1: len(ops)
	ops          []opFields
	digest       *[32]byte // nil: the digest of the roster the ops give (rosterAfter)
	policy       byte
	roster       []memberlog.Member // before the record
	signing
}

func (f changeFields) encode() []byte {
	b := append([]byte{f.version, f.typ}, f.sessionID[:]...)
	b = binary.BigEndian.AppendUint32(b, f.seq)
	b = append(b, f.prev[:]...)
	b = append(b, byte(len(f.actor)))
	b = append(b, f.actor...)
	b = binary.BigEndian.AppendUint32(b, f.actorGen)
	b = binary.BigEndian.AppendUint64(b, f.time)
	b = append(b, f.flags)
	b = binary.BigEndian.AppendUint32(b, f.epoch)
	b = append(b, f.commitment...)
	n := len(f.ops)
	if f.count >= 0 {
		n = f.count
	}
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	for _, op := range f.ops {
		b = append(b, op.encode()...)
	}
	d := f.digest
	if d == nil {
		r := rosterDigestOf(f.policy, rosterAfter(f.roster, f.ops))
		d = &r
	}
	b = append(b, d[:]...)
	return f.seal(b)
}

// rosterAfter applies ops to roster without checking anything.
func rosterAfter(roster []memberlog.Member, ops []opFields) []memberlog.Member {
	out := slices.Clone(roster)
	for _, op := range ops {
		i := slices.IndexFunc(out, func(m memberlog.Member) bool { return m.UserID == op.m.user })
		switch {
		case op.kind == 1 && i < 0:
			out = append(out, memberlog.Member{UserID: op.m.user, Anchor: memberlog.Anchor{Generation: op.m.gen, Fingerprint: op.m.fp}, Role: memberlog.Role(op.m.role)})
		case op.kind == 2 && i >= 0:
			out = slices.Delete(out, i, i+1)
		case op.kind == 3 && i >= 0:
			out[i].Role = memberlog.Role(op.m.role)
		}
	}
	slices.SortFunc(out, func(a, b memberlog.Member) int { return strings.Compare(a.UserID, b.UserID) })
	return out
}

// rosterDigestOf is §10.1's roster digest: SHA-256(label ‖ 0x00 ‖ policy ‖
// u32 n ‖ entries sorted by user ID).
func rosterDigestOf(policy byte, roster []memberlog.Member) [32]byte {
	roster = slices.Clone(roster)
	slices.SortFunc(roster, func(a, b memberlog.Member) int { return strings.Compare(a.UserID, b.UserID) })
	b := labeled("veil/v1/log/roster", []byte{policy})
	b = binary.BigEndian.AppendUint32(b, uint32(len(roster)))
	for _, m := range roster {
		b = append(b, fieldsOf(m).entry()...)
	}
	return sha256.Sum256(b)
}

// nextChange returns the fields of a well-formed next record of s, signed
// by actor's current generation, that does nothing yet: the caller adds
// operations or an epoch.
func nextChange(s *memberlog.State, actor *identity.Identity) changeFields {
	return changeFields{
		version: 1, typ: 2, sessionID: s.ID(), seq: s.Seq() + 1, prev: s.Head(),
		actor: actor.UserID(), actorGen: actor.Generation(), time: uint64(vectorTime.Unix()) + 60*uint64(s.Seq()+1),
		epoch: s.Epoch(), count: -1, policy: uint8(s.Policy()), roster: s.Members(), signing: signing{signer: actor},
	}
}

// strayCommitment is the commitment of the epochs that invalid records (and
// the fork) start: a key no chain uses.
var strayCommitment = commitmentOf(bytes.Repeat([]byte{0xee}, 32))

// newEpoch makes f start the next epoch.
func (f changeFields) newEpoch() changeFields {
	f.flags |= 1
	f.epoch++
	f.commitment = strayCommitment[:]
	return f
}

func (f changeFields) with(ops ...memberlog.Op) changeFields {
	f.ops = append(slices.Clone(f.ops), opsOf(ops)...)
	return f
}

// changeOf returns the fields a parsed change record was encoded from.
func changeOf(c *memberlog.Change, policy byte, roster []memberlog.Member, signer recordSigner) changeFields {
	f := changeFields{version: 1, typ: 2, sessionID: c.SessionID, seq: c.Seq, prev: c.Prev, actor: c.Actor,
		actorGen: c.ActorGen, time: c.Time, epoch: c.Epoch, count: -1, ops: opsOf(c.Ops), policy: policy,
		roster: roster, signing: signing{signer: signer}}
	if c.NewEpoch {
		f.flags, f.commitment = 1, c.Commitment[:]
	}
	return f
}

func genesisOf(g *memberlog.Genesis, signer recordSigner) genesisFields {
	f := genesisFields{version: 1, typ: 1, nonce: g.Nonce, cid: g.ChannelCID, creator: g.Creator, creatorGen: g.CreatorGen,
		time: g.Time, policy: byte(g.Policy), commitment: g.Commitment, count: -1, signing: signing{signer: signer}}
	for _, m := range g.Members {
		f.members = append(f.members, fieldsOf(m))
	}
	return f
}

// ---- the vectors ---------------------------------------------------------

// logCase is an invalid log: reason is what memberlog's error must say
// (empty for the rules this test checks itself: channel CID, floor).
type logCase struct {
	comment string
	chain   int
	prefix  int
	reason  string
	record  []byte
	sid     []byte // prefix 0: the session ID the reader expects (default: the record's)
	cards   map[string][]*identity.Card
	floor   int // ≥ 1: the reader held the state after this record of the chain
}

func memberlogVectors(t *testing.T) *logVectors {
	u := logIdentities(t)
	alice0, alice1 := u["alice"][0], u["alice"][1]
	bob0, bob1 := u["bob"][0], u["bob"][1]
	carol0 := u["carol"][0]
	dave0, dave1 := u["dave"][0], u["dave"][1]
	erin0, frank0 := u["erin"][0], u["frank"][0]
	const M, A = memberlog.RoleMember, memberlog.RoleAdmin

	a := &chainBuilder{t: t, name: "a", cid: "messaging:log-a", policy: memberlog.DefaultPolicy,
		chain: logChain{Comment: "the default policy, MEMBERS_REMOVE: admins add and change roles, every member may remove and rotate"}}
	a.genesis("genesis: alice (generation 0) creates the session with bob and carol as members", alice0, member(bob0, M), member(carol0, M))
	a.change("alice adds dave, anchored at his generation 1, with history: dave joins R(0)", alice0, false, opAdd(dave1, M))
	a.change("alice adds erin without history: epoch 1", alice0, true, opAdd(erin0, M))
	a.change("bob, a member, removes dave with a new epoch (MEMBERS_REMOVE)", bob0, true, opRemove("dave"))
	a.change("carol, a member, rotates: epoch 3, no operation", carol0, true)
	a.change("erin leaves without a new epoch: she stays in R(3), holding its key", erin0, false, opRemove("erin"))
	a.change("alice re-adds erin and adds frank with history: R(3) names erin once", alice0, false, opAdd(erin0, M), opAdd(frank0, M))
	a.change("alice demotes herself and promotes bob in one record: bob is the only admin", alice0, false, opRole("alice", M), opRole("bob", A))
	a.change("forced promotion: carol, a member, removes bob, the last admin, and promotes herself; epoch 4", carol0, true, opRemove("bob"), opRole("carol", A))
	a.change("alice signs with her generation-1 card, which chains from her anchor at generation 0: epoch 5", alice1, true)
	a.change("carol, now admin, re-adds bob as an admin anchored at his generation 1, with history", carol0, false, opAdd(bob1, A))

	b := &chainBuilder{t: t, name: "b", cid: "messaging:log-b", policy: memberlog.MembersAdd | memberlog.MembersRemove,
		chain: logChain{Comment: "policy MEMBERS_ADD | MEMBERS_REMOVE: members add (as members) and remove too"}}
	b.genesis("genesis: bob creates the session with his generation-1 card, his anchor; carol is a member", bob1, member(carol0, M))
	b.change("carol, a member, adds dave with history (MEMBERS_ADD)", carol0, false, opAdd(dave1, M))
	b.change("carol adds erin without history: epoch 1", carol0, true, opAdd(erin0, M))
	b.change("dave rotates, signing with the generation of his anchor: epoch 2", dave1, true)
	b.change("forced promotion of another member: dave removes bob, the last admin, and promotes carol; epoch 3", dave1, true, opRemove("bob"), opRole("carol", A))

	c := &chainBuilder{t: t, name: "c", cid: "messaging:log-c", policy: 0,
		chain: logChain{Comment: "policy 0: only admins add, remove and change roles; every member may rotate and leave"}}
	c.genesis("genesis: frank alone", frank0)
	c.change("frank adds bob and carol with history", frank0, false, opAdd(bob0, M), opAdd(carol0, M))
	c.change("bob, a member, rotates: epoch 1", bob0, true)
	c.change("carol leaves", carol0, false, opRemove("carol"))
	c.change("frank rotates: epoch 2", frank0, true)
	c.change("frank promotes bob: both are admins", frank0, false, opRole("bob", A))
	c.change("bob, an admin, removes frank: epoch 3", bob0, true, opRemove("frank"))

	builders := []*chainBuilder{a, b, c}

	// The encoder above must reproduce every valid record byte for byte.
	for _, cb := range builders {
		for i, raw := range cb.raws {
			r, err := memberlog.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			if i == 0 {
				got = genesisOf(r.Genesis, cb.signers[i]).encode()
			} else {
				prev := cb.states[i-1]
				got = changeOf(r.Change, uint8(prev.Policy()), prev.Members(), cb.signers[i]).encode()
			}
			if !bytes.Equal(got, raw) {
				t.Fatalf("chain %s record %d: the vector encoder does not reproduce memberlog's encoding", cb.name, i)
			}
		}
	}

	// Cards a directory might serve: a forged generation 1 of carol whose
	// successor signature is not by her generation 0, and an impostor
	// generation 0 with another key.
	var forgedSeed, otherSeed [32]byte
	testrand.New("vector/log/carol/forged").Read(forgedSeed[:])
	testrand.New("vector/log/carol/not-generation-0").Read(otherSeed[:])
	carolCard := carol0.Card()
	forged, err := identity.ParseCard(buildCard(cardFields{
		version: 1, kind: 2, generation: 1, created: uint64(carolCard.Created().Unix()), user: "carol",
		seed: forgedSeed[:], recipient: rawRecipient(t, carolCard), prevSeed: otherSeed[:],
	}))
	if err != nil {
		t.Fatal(err)
	}
	carolForged := seedSigner(ed25519.NewKeyFromSeed(forgedSeed[:]))
	impostor, err := identity.Generate(testrand.New("vector/log/carol/impostor"), "carol", identity.Options{Kind: identity.KindX25519, Created: vectorTime})
	if err != nil {
		t.Fatal(err)
	}

	sa := func(i int) *memberlog.State { return a.states[i-1] } // after a prefix of i records of chain a
	g0 := func() genesisFields {
		r, err := memberlog.Parse(a.raws[0])
		if err != nil {
			t.Fatal(err)
		}
		return genesisOf(r.Genesis, alice0)
	}
	var cases []logCase
	bad := func(comment, reason string, chain, prefix int, raw []byte) *logCase {
		cases = append(cases, logCase{comment: comment, reason: reason, chain: chain, prefix: prefix, record: raw})
		return &cases[len(cases)-1]
	}
	rotate := func(s *memberlog.State, actor *identity.Identity) changeFields {
		return nextChange(s, actor).newEpoch()
	}

	// §10.2: one encoding per record.
	{
		f := rotate(sa(1), alice0)
		f.version = 2
		bad("§10.2: a change with version 2", "unknown version", 0, 1, f.encode())
		f = rotate(sa(1), alice0)
		f.typ = 3
		bad("§10.2: record type 3", "unknown record type", 0, 1, f.encode())
		f = rotate(sa(1), alice0)
		f.flags = 0x03
		bad("§10.2: flag bit 1 set beside the new-epoch bit", "unknown flag", 0, 1, f.encode())
		f = nextChange(sa(1), alice0).with(opAdd(frank0, M))
		f.ops[0].kind = 4
		bad("§10.2: operation type 4", "unknown operation", 0, 1, f.encode())
		f = nextChange(sa(1), alice0).with(opAdd(frank0, M))
		f.ops[0].m.role = 2
		bad("§10.1: an add whose member entry has role 2", "unknown role", 0, 1, f.encode())
		f = nextChange(sa(1), alice0).with(opRole("bob", 2))
		bad("§10.2: a role change to role 2", "unknown role", 0, 1, f.encode())
		f = nextChange(sa(1), alice0).with(opAdd(frank0, M), opAdd(erin0, M))
		bad("§10.2: operations not in ascending user ID order (frank before erin)", "not sorted", 0, 1, f.encode())
		f = nextChange(sa(1), alice0).newEpoch().with(opRemove("bob"), opRemove("bob"))
		bad("§10.2: two operations for one user", "not sorted", 0, 1, f.encode())
		f = nextChange(sa(1), alice0).newEpoch().with(opRemove("bob"), opRole("bob", A))
		bad("§10.2: a removal and a role change for one user", "not sorted", 0, 1, f.encode())
		f = rotate(sa(1), alice0)
		f.after = []byte{0}
		bad("§10.2: a trailing byte after the signature", "trailing bytes", 0, 1, f.encode())
		f = rotate(sa(1), alice0)
		f.extra = []byte{0}
		bad("§10.2: a trailing byte before the signature, signed", "trailing bytes", 0, 1, f.encode())
		f = nextChange(sa(1), alice0).with(opAdd(frank0, M))
		f.count = 2
		bad("§10.2: operation count 2 with one operation", "unknown operation", 0, 1, f.encode())
		f = rotate(sa(1), alice0)
		f.flags = 0
		f.epoch = 0
		f.ops = opsOf([]memberlog.Op{opAdd(frank0, M)})
		bad("§10.2: a commitment without the new-epoch flag (read as the operation count)", "more than 1000 operations", 0, 1, f.encode())
		f = nextChange(sa(1), alice0).with(memberlog.Op{Kind: memberlog.OpAdd, Member: memberlog.Member{UserID: "fr\nank", Anchor: memberlog.AnchorOf(frank0.Card())}})
		bad("§10.1: an added user ID with a line feed (§4.2's rule)", "user ID", 0, 1, f.encode())
		f = nextChange(sa(1), alice0).newEpoch().with(opRemove(""))
		bad("§10.1: a removal of the empty user ID", "user ID", 0, 1, f.encode())
		f = nextChange(sa(1), alice0).with(opAdd(frank0, M))
		f.ops[0].m.gen = 1024
		bad("§10.1: an anchor of generation 1,024", "anchor generation", 0, 1, f.encode())
		f = nextChange(sa(1), alice0)
		f.actor, f.actorGen = "ali\x00ce", 0
		f = f.newEpoch()
		bad("§10.1: an actor user ID with NUL", "user ID", 0, 1, f.encode())
	}
	// §10.2: the genesis.
	{
		f := g0()
		f.version = 2
		bad("§10.2: a genesis with version 2", "unknown version", 0, 0, f.encode())
		f = g0()
		f.policy = 0x06
		bad("§10.2: a genesis with unknown policy bit 0x04", "unknown policy bits", 0, 0, f.encode())
		f = g0()
		f.members[0], f.members[1] = f.members[1], f.members[0]
		bad("§10.2: genesis members not in ascending user ID order", "not sorted", 0, 0, f.encode())
		f = g0()
		f.members = append(f.members, f.members[2])
		bad("§10.2: a genesis member listed twice", "not sorted", 0, 0, f.encode())
		f = g0()
		f.members = nil
		bad("§10.2: a genesis with no member", "1 to", 0, 0, f.encode())
		f = g0()
		f.cid = ""
		bad("§10.2: a genesis with an empty channel CID", "channel CID", 0, 0, f.encode())
		f = g0()
		f.cid = "messaging:log\x00a"
		bad("§10.2: a channel CID with NUL", "channel CID", 0, 0, f.encode())
		f = g0()
		f.members[0].role = 0
		bad("§10.2: the creator is not an admin", "the creator is not an admin", 0, 0, f.encode())
		f = g0()
		f.members = f.members[1:]
		bad("§10.2: the creator is not a member", "the creator is not an admin", 0, 0, f.encode())
		f = g0()
		f.creatorGen = 1
		f.signer = alice1
		bad("§10.2: the creator signs with generation 1, its anchor names generation 0", "the creator is not an admin", 0, 0, f.encode())
		f = g0()
		f.count = 4
		bad("§10.2: member count 4 with three entries", "no signature", 0, 0, f.encode())
		f = g0()
		f.after = []byte{0}
		bad("§10.2: a genesis with a trailing byte after the signature", "trailing bytes", 0, 0, f.encode())
	}
	// §10.4 rule 1: the genesis as a reader checks it.
	{
		bad("§10.4 rule 1: the first record is a change", "not a genesis", 0, 0, a.raws[1]).sid = unhex(t, a.chain.SessionID)
		bad("§10.4 rule 1: a valid genesis of another session ID than the channel's", "session ID", 0, 0, a.raws[0]).sid = unhex(t, b.chain.SessionID)
		f := g0()
		f.cid = "messaging:log-other"
		bad("§10.4 rule 1: a valid genesis for another channel", "", 0, 0, f.encode())
		f = g0()
		f.members[0].fp = memberlog.AnchorOf(bob0.Card()).Fingerprint
		bad("§10.4 rule 1: the creator's anchor is not the fingerprint of its card", "anchor", 0, 0, f.encode())
		f = g0()
		f.signer = bob0
		bad("§10.4 rule 1: a genesis signed by another key", "bad signature", 0, 0, f.encode())
		f = g0()
		f.label = "veil/v1/card"
		bad("§10.4 rule 1: a genesis signed under veil/v1/card", "bad signature", 0, 0, f.encode())
	}
	// §10.4 rule 2: the chain.
	{
		f := g0()
		f.nonce[0] ^= 1
		bad("§10.4 rule 2: a second genesis", "a second genesis", 0, 1, f.encode())
		fc := rotate(sa(1), alice0)
		fc.sessionID = [16]byte(unhex(t, b.chain.SessionID))
		bad("§10.4 rule 2: another session's ID", "another session", 0, 1, fc.encode())
		fc = rotate(sa(1), alice0)
		fc.seq = 2
		bad("§10.4 rule 2: sequence number 2 after the genesis", "sequence number", 0, 1, fc.encode())
		fc = rotate(sa(2), alice0)
		fc.seq = 1
		bad("§10.4 rule 2: sequence number 1 again", "sequence number", 0, 2, fc.encode())
		fc = rotate(sa(1), alice0)
		fc.seq = 0
		bad("§10.4 rule 2: a change with sequence number 0", "sequence number", 0, 1, fc.encode())
		fc = rotate(sa(2), alice0)
		fc.prev = memberlog.Hash(a.raws[0])
		bad("§10.4 rule 2: the previous hash names the genesis, not record 1", "does not follow", 0, 2, fc.encode())
		bad("§10.4 rule 2: signed by frank, who is not a member", "not a member", 0, 1, rotate(sa(1), frank0).encode())
		bad("§10.4 rule 2: signed by dave after his removal", "not a member", 0, 4, rotate(sa(4), dave1).encode())
		fc = rotate(sa(1), carol0)
		fc.signer = bob0
		bad("§10.4 rule 2: names carol, signed by bob's key", "bad signature", 0, 1, fc.encode())
		fc = rotate(sa(1), carol0)
		fc.label = "veil/v1/envelope"
		bad("§10.4 rule 2: signed under veil/v1/envelope", "bad signature", 0, 1, fc.encode())
		fc = rotate(sa(1), carol0)
		fc.actorGen = 1
		bad("§10.4 rule 2: carol's generation-0 key signs as generation 1, which she does not have", "cards", 0, 1, fc.encode())
		bad("§10.4 rule 2: dave, anchored at generation 1, signs with generation 0", "older than the signer's anchor", 0, 2, rotate(sa(2), dave0).encode())
		fc = rotate(sa(1), carol0)
		fc.actorGen, fc.signer = 1, carolForged
		bad("§10.4 rule 2: carol's generation 1 does not chain from her anchor (its successor signature is by another key)", "do not chain", 0, 1, fc.encode()).cards =
			map[string][]*identity.Card{"carol": {carolCard, forged}}
		bad("§10.4 rule 2: the directory's generation-0 card of carol is not the one her anchor names", "do not start at its anchor", 0, 1, rotate(sa(1), impostor).encode()).cards =
			map[string][]*identity.Card{"carol": {impostor.Card()}}
	}
	// §10.3: who may do what.
	{
		bad("§10.3: adds bob, who is a member", "already a member", 0, 1, nextChange(sa(1), alice0).with(opAdd(bob0, M)).encode())
		bad("§10.3: removes frank, who is not a member", "not a member", 0, 1, nextChange(sa(1), alice0).newEpoch().with(opRemove("frank")).encode())
		bad("§10.3: changes the role of frank, who is not a member", "not a member", 0, 1, nextChange(sa(1), alice0).with(opRole("frank", A)).encode())
		bad("§10.3: sets bob's role to member, which it is", "already has", 0, 1, nextChange(sa(1), alice0).with(opRole("bob", M)).encode())
		bad("§10.3: an admin removes bob without a new epoch", "without a new epoch", 0, 1, nextChange(sa(1), alice0).with(opRemove("bob")).encode())
		bad("§10.3: alice leaves and promotes bob in one record", "leaves does nothing else", 0, 1, nextChange(sa(1), alice0).with(opRemove("alice"), opRole("bob", A)).encode())
		bad("§10.3: bob leaves with a new epoch", "leaves does nothing else", 0, 1, nextChange(sa(1), bob0).newEpoch().with(opRemove("bob")).encode())
		bad("§10.3: alice, the only admin, leaves", "no admin", 0, 1, nextChange(sa(1), alice0).with(opRemove("alice")).encode())
		bad("§10.3: alice, the only admin, demotes herself", "no admin", 0, 1, nextChange(sa(1), alice0).with(opRole("alice", M)).encode())
		bad("§10.3: the last member leaves", "1 to", 2, 1, nextChange(c.states[0], frank0).with(opRemove("frank")).encode())
		f := nextChange(sa(1), alice0).newEpoch()
		f.epoch = 0
		bad("§10.3: a new epoch numbered like the current one", "epoch 0, want 1", 0, 1, f.encode())
		f = nextChange(sa(1), alice0).newEpoch()
		f.epoch = 2
		bad("§10.3: a new epoch that skips one", "epoch 2, want 1", 0, 1, f.encode())
		f = nextChange(sa(1), alice0).with(opAdd(frank0, M))
		f.epoch = 1
		bad("§10.3: the epoch advances without the new-epoch flag", "epoch 1, want 0", 0, 1, f.encode())
		f = nextChange(sa(1), alice0).with(opAdd(frank0, M))
		d := rosterDigestOf(uint8(sa(1).Policy()), sa(1).Members())
		f.digest = &d
		bad("§10.3: the roster digest of the roster before the record", "roster digest", 0, 1, f.encode())
		f = nextChange(sa(1), alice0).with(opAdd(frank0, M))
		d = rosterDigestOf(0, rosterAfter(f.roster, f.ops))
		f.digest = &d
		bad("§10.3: a roster digest computed with policy 0, not the session's", "roster digest", 0, 1, f.encode())
		bad("§10.3: a change with no operation and no new epoch", "needs an operation", 0, 1, nextChange(sa(1), alice0).encode())
		bad("§10.3: bob, a member, adds frank under MEMBERS_REMOVE", "policy does not allow", 0, 1, nextChange(sa(1), bob0).with(opAdd(frank0, M)).encode())
		bad("§10.3: bob, a member, adds frank without history under MEMBERS_REMOVE", "policy does not allow", 0, 1, nextChange(sa(1), bob0).newEpoch().with(opAdd(frank0, M)).encode())
		bad("§10.3: carol, a member, adds dave as an admin under MEMBERS_ADD", "adds an admin", 1, 1, nextChange(b.states[0], carol0).with(opAdd(dave1, A)).encode())
		bad("§10.3: bob, a member, promotes himself while alice is an admin", "while an admin remains", 0, 1, nextChange(sa(1), bob0).with(opRole("bob", A)).encode())
		bad("§10.3: erin, a member, demotes bob while carol is an admin too", "demotes", 0, 11, nextChange(a.states[10], erin0).with(opRole("bob", M)).encode())
		bad("§10.3: forced promotion of two: carol removes bob and promotes herself and erin", "while an admin remains", 0, 8, nextChange(sa(8), carol0).newEpoch().with(opRemove("bob"), opRole("carol", A), opRole("erin", A)).encode())
		bad("§10.3: carol, a member, removes bob, the last admin, and promotes no one", "no admin", 0, 8, nextChange(sa(8), carol0).newEpoch().with(opRemove("bob")).encode())
		bad("§10.3: bob, a member, removes carol under policy 0", "policy does not allow", 2, 2, nextChange(c.states[1], bob0).newEpoch().with(opRemove("carol")).encode())
	}
	// §10.4 rule 2: retired generations.
	bad("§10.4 rule 2: alice signs with generation 0 after her record 9, signed with generation 1, retired it", "retired", 0, 10, rotate(sa(10), alice0).encode())
	// §10.4 rule 4: the floor.
	{
		fork, _, err := sa(3).NewChange(bob0, nil, true, strayCommitment, a.time(3))
		if err != nil {
			t.Fatal(err)
		}
		bad("§10.4 rule 4: a fork: a valid record 3 (bob rotates) other than the one the reader verified", "", 0, 3, fork).floor = 3
		bad("§10.4 rule 4: a log that ends at record 3 when the reader verified record 5", "", 0, 4, nil).floor = 5
	}

	lv := &logVectors{
		Comment: "docs/PROTOCOL.md §10. Valid chains with the state after each record; invalid logs: the first `prefix` records of chains[chain], then `record`, which breaks the rule the comment names. " +
			"Cards: the directory, user → cards from generation 0; an invalid entry's `cards` replace a user's. A reader trusts the creator's card of the creator generation.",
		Cards: map[string][]string{},
	}
	for user, ids := range u {
		lv.Cards[user] = cardsHex(ids[len(ids)-1].Cards())
	}
	for _, cb := range builders {
		lv.Chains = append(lv.Chains, cb.chain)
	}
	lv.Pinned = []logPinned{
		{"§10.4 rule 5: the reader trusts alice's generation 1; her generation-0 records are followed by record 9, which generation 1 signed", 0, 11, map[string]uint32{"alice": 1}, true},
		{"§10.4 rule 5: the reader trusts alice's generation 1; her last record (7) is signed by generation 0 and she is a member", 0, 9, map[string]uint32{"alice": 1}, false},
		{"§10.4 rule 5: the reader trusts bob's generation 1; his only record (3) is signed by generation 0, and he is a member again", 0, 11, map[string]uint32{"bob": 1}, false},
		{"§10.4 rule 5: the reader trusts bob's generation 1; his record 3 is signed by generation 0, but carol removed him after it (record 8)", 0, 10, map[string]uint32{"bob": 1}, true},
		{"§10.4 rule 5: the reader trusts dave's generation 1, the generation of all his records", 1, 5, map[string]uint32{"dave": 1}, true},
		{"§10.4 rule 5: the reader trusts carol's generation 1; her leave (record 3), signed by generation 0, is the last record", 2, 4, map[string]uint32{"carol": 1}, false},
		{"§10.4 rule 5: the reader trusts carol's generation 1; frank signed after her leave", 2, 5, map[string]uint32{"carol": 1}, true},
		{"§10.4 rule 5: the reader trusts frank's generation 1; every record of his is signed by generation 0 and he is a member", 2, 5, map[string]uint32{"frank": 1}, false},
		{"§10.4 rule 5: the reader trusts frank's generation 1; bob removed him after his last record (5), but bob is a member only through frank's record 1, which nothing vouches for", 2, 7, map[string]uint32{"frank": 1}, false},
		{"§10.4 rule 5: the reader trusts bob's generation 2; dave removed him after his genesis (signed by generation 1), and carol, whom the genesis made a member, added dave", 1, 5, map[string]uint32{"bob": 2}, true},
	}
	for _, p := range lv.Pinned {
		if err := replayPinned(lv, p); (err == nil) != p.Valid {
			t.Errorf("%s: %v, want valid = %v", p.Comment, err, p.Valid)
		}
	}
	for _, c := range cases {
		v := logInvalid{Comment: c.comment, Chain: c.chain, Prefix: c.prefix}
		if c.record != nil {
			v.Record = hex.EncodeToString(c.record)
		}
		if c.prefix == 0 {
			v.ChannelCID = lv.Chains[c.chain].ChannelCID
			sid := memberlog.SessionIDOf(c.record)
			v.SessionID = hex.EncodeToString(sid[:])
			if c.sid != nil {
				v.SessionID = hex.EncodeToString(c.sid)
			}
		}
		if c.cards != nil {
			v.Cards = map[string][]string{}
			for user, cards := range c.cards {
				v.Cards[user] = cardsHex(cards)
			}
		}
		if c.floor > 0 {
			st := lv.Chains[c.chain].Records[c.floor].State
			v.Floor = &logFloor{Seq: st.Seq, Head: st.Head}
		}
		// Each invalid log must fail at its last record, for the reason
		// the case names.
		err := replayLog(lv, v)
		switch {
		case err == nil:
			t.Errorf("%s: accepted", c.comment)
		case errors.Is(err, errPrefix):
			t.Errorf("%s: %v", c.comment, err)
		case !strings.Contains(err.Error(), c.reason):
			t.Errorf("%s: rejected as %q, want %q", c.comment, err, c.reason)
		}
		lv.Invalid = append(lv.Invalid, v)
	}
	return lv
}

func init() {
	extraVectors = append(extraVectors, func(t *testing.T) (string, any) {
		return "memberlog.json", memberlogVectors(t)
	})
}

// ---- the reader -----------------------------------------------------------

var errPrefix = errors.New("the valid prefix was rejected")

// logDirectory returns a memberlog.CardSource over the vectors' cards.
func logDirectory(cards map[string][]string, override map[string][]string) (memberlog.CardSource, error) {
	dir := map[string][]*identity.Card{}
	for _, m := range []map[string][]string{cards, override} {
		for user, hs := range m {
			var cs []*identity.Card
			for _, h := range hs {
				b, err := hex.DecodeString(h)
				if err != nil {
					return nil, err
				}
				c, err := identity.ParseCard(b)
				if err != nil {
					return nil, err
				}
				cs = append(cs, c)
			}
			dir[user] = cs
		}
	}
	return func(user string, a memberlog.Anchor, gen uint32) ([]*identity.Card, error) {
		cs := dir[user]
		if gen < a.Generation || int64(gen) >= int64(len(cs)) {
			return nil, fmt.Errorf("no card of generation %d", gen)
		}
		return cs[a.Generation : gen+1], nil
	}, nil
}

// readGenesis verifies a genesis as a reader that took sid and cid from
// the channel does (§10.4 rule 1).
func readGenesis(raw []byte, sid, cid string, cards memberlog.CardSource) (*memberlog.State, error) {
	id, err := hex.DecodeString(sid)
	if err != nil || len(id) != memberlog.IDSize {
		return nil, fmt.Errorf("bad session ID %q", sid)
	}
	s, err := memberlog.Verify(raw, [memberlog.IDSize]byte(id), cards)
	if err != nil {
		return nil, err
	}
	if s.ChannelCID() != cid {
		return nil, errors.New("the genesis names another channel")
	}
	return s, nil
}

// replayLog reads the log an invalid entry describes, returning why it is
// rejected; errPrefix if the valid prefix already fails.
func replayLog(lv *logVectors, v logInvalid) error {
	cards, err := logDirectory(lv.Cards, v.Cards)
	if err != nil {
		return err
	}
	ch := lv.Chains[v.Chain]
	var raws [][]byte
	for _, r := range ch.Records[:v.Prefix] {
		b, err := hex.DecodeString(r.Record)
		if err != nil {
			return err
		}
		raws = append(raws, b)
	}
	bad := -1
	if v.Record != "" {
		b, err := hex.DecodeString(v.Record)
		if err != nil {
			return err
		}
		bad = len(raws)
		raws = append(raws, b)
	}
	sid, cid := ch.SessionID, ch.ChannelCID
	if v.Prefix == 0 {
		sid, cid = v.SessionID, v.ChannelCID
	}
	var s *memberlog.State
	var heads [][memberlog.HashSize]byte
	for i, raw := range raws {
		if i == 0 {
			s, err = readGenesis(raw, sid, cid, cards)
		} else {
			s, err = s.Apply(raw, cards)
		}
		if err != nil {
			if i != bad {
				return fmt.Errorf("%w: record %d: %v", errPrefix, i, err)
			}
			return err
		}
		heads = append(heads, s.Head())
	}
	if v.Floor != nil {
		return checkFloor(heads, *v.Floor)
	}
	return nil
}

// replayPinned reads a pinned log (§10.4 rule 5): every record is one the
// reader verifies for the first time.
func replayPinned(lv *logVectors, p logPinned) error {
	cards, err := logDirectory(lv.Cards, nil)
	if err != nil {
		return err
	}
	ch := lv.Chains[p.Chain]
	var s *memberlog.State
	var fresh []memberlog.Signer
	for i, r := range ch.Records[:p.Prefix] {
		raw, err := hex.DecodeString(r.Record)
		if err != nil {
			return err
		}
		if i == 0 {
			s, err = readGenesis(raw, ch.SessionID, ch.ChannelCID, cards)
		} else {
			s, err = s.Apply(raw, cards)
		}
		if err != nil {
			return fmt.Errorf("%w: record %d: %v", errPrefix, i, err)
		}
		fresh = append(fresh, s.LastSigner())
	}
	return memberlog.CheckPinned(s, fresh, func(u string) (uint32, bool, error) {
		g, ok := p.Pins[u]
		return g, ok, nil
	})
}

// checkFloor is §10.4 rule 4: a log must reach the floor and have the
// floor's hash at its sequence number.
func checkFloor(heads [][memberlog.HashSize]byte, f logFloor) error {
	if int64(len(heads)) <= int64(f.Seq) {
		return errors.New("the log ends before the floor")
	}
	if h := heads[f.Seq]; hex.EncodeToString(h[:]) != f.Head {
		return errors.New("the log has another record at the floor's sequence number (a fork)")
	}
	return nil
}

// TestVectorsMemberlog replays the stored log vectors: every valid chain
// must give exactly the recorded states, and every invalid log, and every
// copy of a valid record with its lowest or highest bit of one byte
// flipped, must be rejected.
func TestVectorsMemberlog(t *testing.T) {
	var lv logVectors
	readVectors(t, "memberlog.json", &lv)
	cards, err := logDirectory(lv.Cards, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(lv.Chains) == 0 || len(lv.Invalid) == 0 {
		t.Fatal("memberlog.json has no chain or no invalid log")
	}
	for ci, ch := range lv.Chains {
		var s *memberlog.State
		for i, r := range ch.Records {
			raw := unhex(t, r.Record)
			if h := memberlog.Hash(raw); hex.EncodeToString(h[:]) != r.Hash {
				t.Errorf("chain %d record %d: hash differs from the vector", ci, i)
			}
			prev := s
			if i == 0 {
				s, err = readGenesis(raw, ch.SessionID, ch.ChannelCID, cards)
			} else {
				s, err = s.Apply(raw, cards)
			}
			if err != nil {
				t.Fatalf("chain %d record %d (%s): %v", ci, i, r.Comment, err)
			}
			if diff := cmp.Diff(r.State, stateVector(s)); diff != "" {
				t.Errorf("chain %d record %d (%s): state (-vector +replayed):\n%s", ci, i, r.Comment, diff)
			}
			if i > 0 {
				c, err := memberlog.Parse(raw)
				if err != nil || hex.EncodeToString(c.Change.RosterDigest[:]) != r.State.RosterDigest {
					t.Errorf("chain %d record %d: the record's roster digest is not the state's", ci, i)
				}
			}
			for e, k := range ch.EpochKeys {
				if int64(e) <= int64(s.Epoch()) && !s.CheckCommitment(uint32(e), commitmentOf(unhex(t, k))) {
					t.Errorf("chain %d record %d: epoch %d's key does not match its commitment", ci, i, e)
				}
			}
			// Tamper: the lowest and the highest bit of every byte.
			for j := range raw {
				for _, mask := range []byte{0x01, 0x80} {
					bad := bytes.Clone(raw)
					bad[j] ^= mask
					var err error
					if i == 0 {
						_, err = readGenesis(bad, ch.SessionID, ch.ChannelCID, cards)
					} else {
						_, err = prev.Apply(bad, cards)
					}
					if err == nil {
						t.Fatalf("chain %d record %d: accepted with byte %d xor %#02x", ci, i, j, mask)
					}
				}
			}
		}
		if int(s.Epoch())+1 != len(ch.EpochKeys) {
			t.Errorf("chain %d: %d epoch keys for %d epochs", ci, len(ch.EpochKeys), s.Epoch()+1)
		}
	}
	for i, v := range lv.Invalid {
		if !strings.HasPrefix(v.Comment, "§10.") {
			t.Errorf("invalid[%d]: the comment does not name a §10 rule: %q", i, v.Comment)
		}
		err := replayLog(&lv, v)
		if err == nil || errors.Is(err, errPrefix) {
			t.Errorf("invalid[%d] (%s): %v", i, v.Comment, err)
		}
	}
	valid := 0
	for i, p := range lv.Pinned {
		err := replayPinned(&lv, p)
		if errors.Is(err, errPrefix) || (err == nil) != p.Valid {
			t.Errorf("pinned[%d] (%s): %v, want valid = %v", i, p.Comment, err, p.Valid)
		}
		if p.Valid {
			valid++
		}
	}
	if valid == 0 || valid == len(lv.Pinned) {
		t.Errorf("pinned: %d of %d valid; want both kinds", valid, len(lv.Pinned))
	}
}
