package memberlog

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/veilchat/veil/identity"
)

func rep(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// TestChangeLayout pins the byte layout of a change record, field by field,
// independently of the encoder.
func TestChangeLayout(t *testing.T) {
	c := &Change{
		SessionID: [IDSize]byte(rep(0x11, IDSize)), Seq: 3, Prev: [HashSize]byte(rep(0x22, HashSize)),
		Actor: "bob", ActorGen: 2, Time: 0x0102030405060708, NewEpoch: true, Epoch: 5,
		Commitment: [HashSize]byte(rep(0x33, HashSize)),
		Ops: []Op{
			{Kind: OpAdd, Member: Member{UserID: "carol", Anchor: Anchor{Generation: 1, Fingerprint: [HashSize]byte(rep(0x44, HashSize))}, Role: RoleAdmin}},
			remove("dave"),
			setRole("erin", RoleAdmin),
		},
		RosterDigest: [HashSize]byte(rep(0x55, HashSize)),
	}
	want := slices.Concat(
		[]byte{0x01},             // version
		[]byte{0x02},             // type: change
		rep(0x11, 16),            // session ID
		[]byte{0, 0, 0, 3},       // u32 seq
		rep(0x22, 32),            // prev: the previous record's hash
		[]byte{3}, []byte("bob"), // len8 actor ‖ actor
		[]byte{0, 0, 0, 2},             // u32 actor generation
		[]byte{1, 2, 3, 4, 5, 6, 7, 8}, // u64 time
		[]byte{0x01},                   // flags: new epoch
		[]byte{0, 0, 0, 5},             // u32 epoch in force afterwards
		rep(0x33, 32),                  // commitment, present iff new epoch
		[]byte{0, 3},                   // u16 number of operations
		[]byte{0x01},                   // op: add
		[]byte{5}, []byte("carol"),     //   len8 user ‖ user
		[]byte{0, 0, 0, 1},        //   u32 anchor generation
		rep(0x44, 32),             //   anchor fingerprint
		[]byte{0x01},              //   role: admin
		[]byte{0x02},              // op: remove
		[]byte{4}, []byte("dave"), //   len8 user ‖ user
		[]byte{0x03},              // op: role
		[]byte{4}, []byte("erin"), //   len8 user ‖ user
		[]byte{0x01},  //   role: admin
		rep(0x55, 32), // roster digest after the record
	)
	got, err := c.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("marshal:\n got %x\nwant %x", got, want)
	}
	r, err := Parse(append(want, rep(0x66, SignatureSize)...))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if diff := cmp.Diff(c, r.Change); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	if !bytes.Equal(encodeChange(c, flagNewEpoch), want) {
		t.Error("the tests' raw encoder disagrees with the layout")
	}
}

// TestGenesisLayout pins the byte layout of a genesis record.
func TestGenesisLayout(t *testing.T) {
	g := &Genesis{
		Nonce: [NonceSize]byte(rep(0x11, NonceSize)), ChannelCID: "m:c", Creator: "al", CreatorGen: 2,
		Time: 9, Policy: MembersAdd | MembersRemove, Commitment: [HashSize]byte(rep(0x22, HashSize)),
		Members: []Member{
			{UserID: "al", Anchor: Anchor{Generation: 2, Fingerprint: [HashSize]byte(rep(0x33, HashSize))}, Role: RoleAdmin},
			{UserID: "bo", Anchor: Anchor{Generation: 0, Fingerprint: [HashSize]byte(rep(0x44, HashSize))}, Role: RoleMember},
		},
	}
	want := slices.Concat(
		[]byte{0x01},                // version
		[]byte{0x01},                // type: genesis
		rep(0x11, 16),               // nonce
		[]byte{0, 3}, []byte("m:c"), // len16 channel CID ‖ CID
		[]byte{2}, []byte("al"), // len8 creator ‖ creator
		[]byte{0, 0, 0, 2},                                                       // u32 creator generation
		[]byte{0, 0, 0, 0, 0, 0, 0, 9},                                           // u64 time
		[]byte{0x03},                                                             // policy: members add and remove
		rep(0x22, 32),                                                            // commitment of epoch 0
		[]byte{0, 2},                                                             // u16 number of members
		[]byte{2}, []byte("al"), []byte{0, 0, 0, 2}, rep(0x33, 32), []byte{0x01}, // member entry: admin
		[]byte{2}, []byte("bo"), []byte{0, 0, 0, 0}, rep(0x44, 32), []byte{0x00}, // member entry: member
	)
	got, err := g.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("marshal:\n got %x\nwant %x", got, want)
	}
	raw := append(want, rep(0x66, SignatureSize)...)
	r, err := Parse(raw)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if diff := cmp.Diff(g, r.Genesis); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	if !bytes.Equal(encodeGenesis(g), want) {
		t.Error("the tests' raw encoder disagrees with the layout")
	}

	// Hash, session ID and roster digest, with their labels spelled out.
	h := sha256.Sum256(slices.Concat([]byte("veil/v1/log/record\x00"), raw))
	if Hash(raw) != h || r.Hash != h {
		t.Error("a record's hash is not SHA-256(label ‖ 0x00 ‖ record)")
	}
	if id := SessionIDOf(raw); !bytes.Equal(id[:], h[:IDSize]) {
		t.Error("the session ID is not the first 16 bytes of the genesis hash")
	}
	d := sha256.Sum256(slices.Concat([]byte("veil/v1/log/roster\x00"), []byte{0x03}, []byte{0, 0, 0, 2}, want[len(want)-2*(1+2+4+32+1):]))
	if rosterDigest(g.Policy, g.Members) != d {
		t.Error("the roster digest is not SHA-256(label ‖ 0x00 ‖ policy ‖ u32 n ‖ entries)")
	}
}

// TestParseRoundTrip: every record of a valid log parses to exactly one
// kind, re-encodes to its bytes, and owns its copy of them.
func TestParseRoundTrip(t *testing.T) {
	f := newFixture(t)
	for i, raw := range f.records {
		r := parsed(t, raw)
		var body []byte
		var err error
		if (r.Genesis != nil) == (r.Change != nil) {
			t.Fatalf("%s: Genesis %v, Change %v: want exactly one", fixtureNames[i], r.Genesis != nil, r.Change != nil)
		}
		if (i == 0) != (r.Genesis != nil) {
			t.Errorf("%s: parsed as the wrong record type", fixtureNames[i])
		}
		if r.Genesis != nil {
			body, err = r.Genesis.marshal()
			if !bytes.Equal(encodeGenesis(r.Genesis), body) {
				t.Errorf("%s: the tests' raw encoder disagrees with marshal", fixtureNames[i])
			}
		} else {
			body, err = r.Change.marshal()
			flags := uint8(0)
			if r.Change.NewEpoch {
				flags = flagNewEpoch
			}
			if !bytes.Equal(encodeChange(r.Change, flags), body) {
				t.Errorf("%s: the tests' raw encoder disagrees with marshal", fixtureNames[i])
			}
		}
		if err != nil || !bytes.Equal(append(body, r.Signature[:]...), raw) {
			t.Errorf("%s: does not re-encode to its bytes (%v)", fixtureNames[i], err)
		}
		if r.Hash != Hash(raw) || r.Hash != f.states[i].Head() {
			t.Errorf("%s: Hash is not the hash of the record", fixtureNames[i])
		}
		c := bytes.Clone(raw)
		r = parsed(t, c)
		c[0] ^= 0xff
		if !bytes.Equal(r.Raw, raw) {
			t.Errorf("%s: Raw aliases the caller's buffer", fixtureNames[i])
		}
	}
}

// TestParseTruncated: no prefix of a record, and no record with a byte
// appended, parses.
func TestParseTruncated(t *testing.T) {
	f := newFixture(t)
	for i, raw := range f.records {
		for n := range len(raw) {
			if _, err := Parse(raw[:n]); err == nil {
				t.Errorf("%s: the first %d of %d bytes parsed", fixtureNames[i], n, len(raw))
			} else {
				checkInvalid(t, err, "", fmt.Sprintf("%s cut to %d bytes", fixtureNames[i], n))
			}
		}
		_, err := Parse(append(bytes.Clone(raw), 0))
		checkInvalid(t, err, "trailing bytes", fixtureNames[i]+" with a byte appended")
	}
}

// TestParseRefuses: every non-canonical or out-of-bounds encoding is
// refused by Parse, correctly signed or not, with the reason.
func TestParseRefuses(t *testing.T) {
	f := newFixture(t)
	alice := signer(t, "alice")
	g0 := parsed(t, f.records[0]).Genesis
	c7 := parsed(t, f.records[7]).Change // alice: demote bob, add frank, new epoch
	if len(c7.Ops) != 2 || c7.Ops[0].Kind != OpRole || c7.Ops[1].Kind != OpAdd {
		t.Fatalf("fixture record 7 is not a role op then an add: %+v", c7.Ops)
	}
	genesis := func(edit func(g *Genesis)) []byte {
		g := *g0
		g.Members = slices.Clone(g0.Members)
		edit(&g)
		return sign(alice, encodeGenesis(&g))
	}
	change := func(flags uint8, edit func(c *Change)) []byte {
		c := *c7
		c.Ops = slices.Clone(c7.Ops)
		edit(&c)
		return sign(alice, encodeChange(&c, flags))
	}
	ne := uint8(flagNewEpoch)
	manyOps := make([]Op, MaxOps+1)
	for i := range manyOps {
		manyOps[i] = remove(fmt.Sprintf("u%05d", i))
	}
	manyMembers := []Member{g0.Members[0]}
	for i := range MaxRoster {
		manyMembers = append(manyMembers, Member{UserID: fmt.Sprintf("u%05d", i)})
	}
	withByte := func(raw []byte, i int, b byte) []byte {
		raw = bytes.Clone(raw)
		raw[i] = b
		return sign(alice, raw[:len(raw)-SignatureSize])
	}
	tests := []struct {
		name, reason string
		raw          []byte
		want         string
	}{
		{"empty", "nothing is not a record", nil, "truncated"},
		{"version 0", "only version 1 exists", withByte(f.records[7], 0, 0), "unknown version 0"},
		{"version 2", "a future version must not be read as this one", withByte(f.records[7], 0, 2), "unknown version 2"},
		{"type 0", "record types are 1 and 2", withByte(f.records[7], 1, 0), "unknown record type 0"},
		{"type 3 (close)", "close records are not implemented, so must not be accepted as anything", withByte(f.records[7], 1, 3), "unknown record type 3"},
		{"genesis type on a change", "the type byte selects the layout", withByte(f.records[7], 1, typeGenesis), ""},
		{"change type on a genesis", "the type byte selects the layout", withByte(f.records[0], 1, typeChange), ""},
		{"unknown flag bit", "only bit 0 is defined", change(ne|0x02, func(*Change) {}), "unknown flag bits 0x2"},
		{"high flag bit", "only bit 0 is defined", change(ne|0x80, func(*Change) {}), "unknown flag bits 0x80"},
		{"operation 0", "operations are 1 to 3", change(ne, func(c *Change) { c.Ops[0].Kind = 0 }), "unknown operation 0"},
		{"operation 4", "operations are 1 to 3", change(ne, func(c *Change) { c.Ops[0].Kind = 4 }), "unknown operation 4"},
		{"role 2 in an add", "roles are 0 and 1", change(ne, func(c *Change) { c.Ops[1].Member.Role = 2 }), "unknown role 2"},
		{"role 2 in a role op", "roles are 0 and 1", change(ne, func(c *Change) { c.Ops[0].Member.Role = 2 }), "unknown role 2"},
		{"role 0xff in a genesis entry", "roles are 0 and 1", genesis(func(g *Genesis) { g.Members[1].Role = 0xff }), "unknown role 255"},
		{"policy bit 2", "policy bits other than 0 and 1 must be zero", genesis(func(g *Genesis) { g.Policy |= 0x04 }), "unknown policy bits 0x4"},
		{"policy bit 7", "policy bits other than 0 and 1 must be zero", genesis(func(g *Genesis) { g.Policy |= 0x80 }), "unknown policy bits 0x80"},
		{"unsorted members", "one roster, one encoding", genesis(func(g *Genesis) { g.Members[1], g.Members[2] = g.Members[2], g.Members[1] }), "not sorted"},
		{"duplicate member", "a user is in a roster once", genesis(func(g *Genesis) { g.Members[2] = g.Members[1] }), "not sorted"},
		{"duplicate creator entry", "a user is in a roster once", genesis(func(g *Genesis) { g.Members = slices.Insert(g.Members, 0, g.Members[0]) }), "not sorted"},
		{"no members", "a genesis names its creator at least", genesis(func(g *Genesis) { g.Members = nil }), "1 to 10000 members"},
		{"too many members", "bounded before anything is allocated per member", genesis(func(g *Genesis) { g.Members = manyMembers }), "more than 10000 members"},
		{"unsorted ops", "one change, one encoding", change(ne, func(c *Change) { c.Ops[0], c.Ops[1] = c.Ops[1], c.Ops[0] }), "not sorted"},
		{"two ops for one user", "at most one op per user", change(ne, func(c *Change) { c.Ops[1] = remove(c.Ops[0].Member.UserID) }), "not sorted"},
		{"too many ops", "bounded before anything is allocated per op", change(ne, func(c *Change) { c.Ops = manyOps }), "more than 1000 operations"},
		{"sequence number 0", "0 is the genesis", change(ne, func(c *Change) { c.Seq = 0 }), "sequence number of 1 or more"},
		{"epoch 2^20", "epochs are below MaxEpochs", change(ne, func(c *Change) { c.Epoch = MaxEpochs }), "epoch is out of range"},
		{"no op, no new epoch", "a change must change something", change(0, func(c *Change) { c.Ops = nil }), "needs an operation"},
		{"empty channel CID", "a session is bound to a channel", genesis(func(g *Genesis) { g.ChannelCID = "" }), "channel CID"},
		{"channel CID too long", "bounded by MaxChannelCIDLen", genesis(func(g *Genesis) { g.ChannelCID = strings.Repeat("c", MaxChannelCIDLen+1) }), "channel CID"},
		{"channel CID not UTF-8", "CIDs are text", genesis(func(g *Genesis) { g.ChannelCID = "messaging:\xff" }), "channel CID"},
		{"channel CID with NUL", "CIDs are text", genesis(func(g *Genesis) { g.ChannelCID = "messaging:a\x00b" }), "channel CID"},
		{"creator user ID invalid", "the creator is a user", genesis(func(g *Genesis) { g.Creator = "al\nice" }), "creator's user ID"},
		{"creator not an admin", "the creator starts as an admin", genesis(func(g *Genesis) { g.Members[0].Role = RoleMember }), "creator is not an admin"},
		{"creator with another generation", "the creator's entry anchors the card that signs", genesis(func(g *Genesis) { g.CreatorGen = 1 }), "creator is not an admin"},
		{"creator not a member", "the creator is in its roster", genesis(func(g *Genesis) { g.Creator = "zed" }), "creator is not an admin"},
		{"member user ID empty", "a user ID has 1 to 255 bytes", genesis(func(g *Genesis) { g.Members[0] = Member{Role: RoleAdmin} }), "user ID is not valid"},
		{"member anchor generation out of range", "no card has generation MaxGenerations", genesis(func(g *Genesis) { g.Members[1].Anchor.Generation = identity.MaxGenerations }), "anchor generation"},
		{"actor user ID empty", "a change is signed by a user", change(ne, func(c *Change) { c.Actor = "" }), "actor's user ID"},
		{"actor user ID with DEL", "user IDs have no control characters", change(ne, func(c *Change) { c.Actor = "alice\x7f" }), "actor's user ID"},
		{"add user ID invalid", "a user ID has no control characters", change(ne, func(c *Change) { c.Ops[1].Member.UserID = "frank\t" }), "user ID is not valid"},
		{"remove user ID empty", "a user ID has 1 byte at least", change(ne, func(c *Change) { c.Ops = []Op{remove("")} }), "user ID is not valid"},
		{"role user ID not UTF-8", "user IDs are text", change(ne, func(c *Change) { c.Ops = []Op{setRole("\xc3", RoleAdmin)} }), "user ID is not valid"},
		{"add anchor generation out of range", "no card has generation MaxGenerations", change(ne, func(c *Change) { c.Ops[1].Member.Anchor.Generation = identity.MaxGenerations }), "anchor generation"},
		{"change with trailing byte", "one encoding per record", append(bytes.Clone(f.records[7]), 0), "trailing bytes"},
		{"genesis with trailing byte", "one encoding per record", append(bytes.Clone(f.records[0]), 0), "trailing bytes"},
		{"change without signature", "every record is signed", f.records[7][:len(f.records[7])-SignatureSize], "no signature"},
		{"change over 1 MiB", "a change is at most MaxRecordSize", append(bytes.Clone(f.records[7]), make([]byte, MaxRecordSize)...), "larger than 1048576"},
		{"genesis over 4 MiB", "a genesis is at most MaxGenesisSize", append(bytes.Clone(f.records[0]), make([]byte, MaxGenesisSize)...), "larger than 4194304"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse(tc.raw)
			if r != nil {
				t.Errorf("Parse returned a record with an error")
			}
			checkInvalid(t, err, tc.want, tc.reason)
		})
	}
}

// TestParseLargeGenesis: a genesis may exceed a change's size bound, up to
// the full roster with the longest user IDs.
func TestParseLargeGenesis(t *testing.T) {
	if testing.Short() {
		t.Skip("signs a 3 MB record")
	}
	alice := signer(t, "alice")
	members := make([]Member, MaxRoster)
	for i := range members {
		members[i] = Member{UserID: fmt.Sprintf("%05d%s", i, strings.Repeat("u", identity.MaxUserIDLen-5))}
	}
	raw, s, err := NewGenesis(alice, alice.Card(), "messaging:big", members[:MaxRoster-1], DefaultPolicy, commitment(0), nonce("big"), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) <= MaxRecordSize {
		t.Fatalf("the genesis has %d bytes, want more than a change may have", len(raw))
	}
	if _, err := Verify(raw, s.ID(), honest(t).cards); err != nil {
		t.Fatalf("Verify(a genesis of %d members, %d bytes): %v", MaxRoster, len(raw), err)
	}
	if n := len(s.Members()); n != MaxRoster {
		t.Errorf("%d members, want %d", n, MaxRoster)
	}
}
