package memberlog

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/veilchat/veil/identity"
)

// TestFixtureReplays: a reader replaying the fixture log reaches, record by
// record, the States its signers computed, and those are what the records
// say: roster and roles, epoch, readers R(e) and commitments.
func TestFixtureReplays(t *testing.T) {
	f := newFixture(t)
	want := []struct {
		roles   []string
		epoch   uint32
		readers []string
	}{
		{[]string{"alice:admin", "bob:member", "carol:member"}, 0, []string{"alice", "bob", "carol"}},
		{[]string{"alice:admin", "bob:member", "carol:member", "dave:member"}, 0, []string{"alice", "bob", "carol", "dave"}},
		{[]string{"alice:admin", "bob:member", "carol:member", "dave:member", "erin:member"}, 1, []string{"alice", "bob", "carol", "dave", "erin"}},
		{[]string{"alice:admin", "bob:admin", "carol:member", "dave:member", "erin:member"}, 1, []string{"alice", "bob", "carol", "dave", "erin"}},
		{[]string{"alice:admin", "bob:admin", "dave:member", "erin:member"}, 2, []string{"alice", "bob", "dave", "erin"}},
		{[]string{"alice:admin", "bob:admin", "dave:member", "erin:member"}, 3, []string{"alice", "bob", "dave", "erin"}},
		{[]string{"alice:admin", "bob:admin", "dave:member"}, 3, []string{"alice", "bob", "dave", "erin"}},
		{[]string{"alice:admin", "bob:member", "dave:member", "frank:member"}, 4, []string{"alice", "bob", "dave", "frank"}},
		{[]string{"bob:member", "dave:admin", "frank:member"}, 5, []string{"bob", "dave", "frank"}},
	}
	if len(want) != len(f.records) {
		t.Fatalf("%d expectations for %d records", len(want), len(f.records))
	}
	id := SessionIDOf(f.records[0])
	var got []*State
	var views []view
	s, err := Verify(f.records[0], id, f.dir.cards)
	for i := range f.records {
		if i > 0 {
			s, err = s.Apply(f.records[i], f.dir.cards)
		}
		if err != nil {
			t.Fatalf("%s: %v", fixtureNames[i], err)
		}
		got, views = append(got, s), append(views, viewOf(s))
		if diff := cmp.Diff(viewOf(f.states[i]), viewOf(s)); diff != "" {
			t.Errorf("%s: the reader's State differs from the signer's (-signer +reader):\n%s", fixtureNames[i], diff)
		}
		if diff := cmp.Diff(want[i].roles, roles(s)); diff != "" {
			t.Errorf("%s: roster (-want +got):\n%s", fixtureNames[i], diff)
		}
		if diff := cmp.Diff(want[i].readers, s.Readers()); diff != "" {
			t.Errorf("%s: readers (-want +got):\n%s", fixtureNames[i], diff)
		}
		if s.Epoch() != want[i].epoch || s.Seq() != uint32(i) || s.Head() != Hash(f.records[i]) || s.ID() != id {
			t.Errorf("%s: epoch %d seq %d, want %d and %d, head and ID of the log", fixtureNames[i], s.Epoch(), s.Seq(), want[i].epoch, i)
		}
		for e := range s.Epoch() + 1 {
			if !s.CheckCommitment(e, commitment(e)) || s.CheckCommitment(e, commitment(e+1)) {
				t.Errorf("%s: the commitment of epoch %d is not the signed one", fixtureNames[i], e)
			}
		}
		if _, ok := s.Commitment(s.Epoch() + 1); ok || s.CheckCommitment(s.Epoch()+1, [HashSize]byte{}) {
			t.Errorf("%s: a commitment for an epoch the log has not reached", fixtureNames[i])
		}
		if s.ChannelCID() != "messaging:general" || s.Creator() != "alice" || s.Policy() != DefaultPolicy {
			t.Errorf("%s: the genesis's channel, creator or policy changed", fixtureNames[i])
		}
	}
	if m, ok := got[8].Member("dave"); !ok || m.Role != RoleAdmin || m.Anchor != anchor(t, "dave") {
		t.Errorf("Member(dave) = %+v, %v; want dave, admin, his anchor", m, ok)
	}
	if _, ok := got[8].Member("alice"); ok {
		t.Error("Member(alice) found after her removal")
	}
	// States are immutable: applying later records changed no earlier one.
	for i, s := range got {
		if diff := cmp.Diff(views[i], viewOf(s)); diff != "" {
			t.Errorf("%s: the State changed after later records (-then +now):\n%s", fixtureNames[i], diff)
		}
	}
}

// TestPolicyAllows: every action the policy table (membership-log notes §3)
// allows is accepted by the reader, and leads signer and reader to the same
// State, with the roster, epoch and readers the action means.
func TestPolicyAllows(t *testing.T) {
	m := func(name string, role Role) Member { return member(t, name, role) }
	tests := []struct {
		name, reason string
		policy       Policy
		members      []Member // besides alice, the creator and an admin
		steps        []step
		roles        []string
		epoch        uint32
		readers      []string
	}{
		{
			name: "admin adds with history", reason: "an added user reads the current epoch",
			policy: DefaultPolicy, members: []Member{m("bob", RoleMember)},
			steps: []step{{"alice", []Op{add(t, "dave", RoleMember)}, false}},
			roles: []string{"alice:admin", "bob:member", "dave:member"}, epoch: 0, readers: []string{"alice", "bob", "dave"},
		},
		{
			name: "admin adds without history", reason: "a new epoch hides the past from the added user",
			policy: DefaultPolicy, members: []Member{m("bob", RoleMember)},
			steps: []step{{"alice", []Op{add(t, "dave", RoleMember)}, true}},
			roles: []string{"alice:admin", "bob:member", "dave:member"}, epoch: 1, readers: []string{"alice", "bob", "dave"},
		},
		{
			name: "admin adds an admin", reason: "admins may grow the admins",
			policy: DefaultPolicy, members: []Member{m("bob", RoleMember)},
			steps: []step{{"alice", []Op{add(t, "dave", RoleAdmin)}, false}},
			roles: []string{"alice:admin", "bob:member", "dave:admin"}, epoch: 0, readers: []string{"alice", "bob", "dave"},
		},
		{
			name: "admin promotes", reason: "role changes are for admins",
			policy: 0, members: []Member{m("bob", RoleMember)},
			steps: []step{{"alice", []Op{setRole("bob", RoleAdmin)}, false}},
			roles: []string{"alice:admin", "bob:admin"}, epoch: 0, readers: []string{"alice", "bob"},
		},
		{
			name: "admin demotes another admin", reason: "role changes are for admins",
			policy: DefaultPolicy, members: []Member{m("bob", RoleAdmin)},
			steps: []step{{"alice", []Op{setRole("bob", RoleMember)}, false}},
			roles: []string{"alice:admin", "bob:member"}, epoch: 0, readers: []string{"alice", "bob"},
		},
		{
			name: "admin demotes itself while another admin remains", reason: "one admin is enough",
			policy: DefaultPolicy, members: []Member{m("bob", RoleAdmin)},
			steps: []step{{"alice", []Op{setRole("alice", RoleMember)}, false}},
			roles: []string{"alice:member", "bob:admin"}, epoch: 0, readers: []string{"alice", "bob"},
		},
		{
			name: "member adds with history under MembersAdd", reason: "the policy lets members add",
			policy: MembersAdd, members: []Member{m("bob", RoleMember)},
			steps: []step{{"bob", []Op{add(t, "dave", RoleMember)}, false}},
			roles: []string{"alice:admin", "bob:member", "dave:member"}, epoch: 0, readers: []string{"alice", "bob", "dave"},
		},
		{
			name: "member adds without history under MembersAdd", reason: "the policy lets members add, with a new epoch too",
			policy: MembersAdd, members: []Member{m("bob", RoleMember)},
			steps: []step{{"bob", []Op{add(t, "dave", RoleMember), add(t, "erin", RoleMember)}, true}},
			roles: []string{"alice:admin", "bob:member", "dave:member", "erin:member"}, epoch: 1, readers: []string{"alice", "bob", "dave", "erin"},
		},
		{
			name: "member removes a member under MembersRemove", reason: "the default policy lets members cut a departed user off",
			policy: DefaultPolicy, members: []Member{m("bob", RoleMember), m("carol", RoleMember)},
			steps: []step{{"bob", []Op{remove("carol")}, true}},
			roles: []string{"alice:admin", "bob:member"}, epoch: 1, readers: []string{"alice", "bob"},
		},
		{
			name: "member removes one of two admins", reason: "MembersRemove covers admins; one admin remains",
			policy: DefaultPolicy, members: []Member{m("bob", RoleMember), m("dave", RoleAdmin)},
			steps: []step{{"bob", []Op{remove("dave")}, true}},
			roles: []string{"alice:admin", "bob:member"}, epoch: 1, readers: []string{"alice", "bob"},
		},
		{
			name: "member removes the last admin and promotes itself", reason: "the forced promotion",
			policy: DefaultPolicy, members: []Member{m("bob", RoleMember), m("carol", RoleMember)},
			steps: []step{{"bob", []Op{remove("alice"), setRole("bob", RoleAdmin)}, true}},
			roles: []string{"bob:admin", "carol:member"}, epoch: 1, readers: []string{"bob", "carol"},
		},
		{
			name: "member removes the last admin and promotes another", reason: "the forced promotion may name any remaining member",
			policy: DefaultPolicy, members: []Member{m("bob", RoleMember), m("carol", RoleMember)},
			steps: []step{{"bob", []Op{remove("alice"), setRole("carol", RoleAdmin)}, true}},
			roles: []string{"bob:member", "carol:admin"}, epoch: 1, readers: []string{"bob", "carol"},
		},
		{
			name: "admin removes under policy 0", reason: "the policy restricts members, never admins",
			policy: 0, members: []Member{m("bob", RoleMember), m("carol", RoleMember)},
			steps: []step{{"alice", []Op{remove("bob"), remove("carol")}, true}},
			roles: []string{"alice:admin"}, epoch: 1, readers: []string{"alice"},
		},
		{
			name: "member rotates under policy 0", reason: "any member may rotate: it only shrinks readers",
			policy: 0, members: []Member{m("bob", RoleMember)},
			steps: []step{{"bob", nil, true}, {"bob", nil, true}},
			roles: []string{"alice:admin", "bob:member"}, epoch: 2, readers: []string{"alice", "bob"},
		},
		{
			name: "member leaves", reason: "a leaver holds the current key, so stays a reader until a new epoch",
			policy: 0, members: []Member{m("bob", RoleMember), m("carol", RoleMember)},
			steps: []step{{"bob", []Op{remove("bob")}, false}},
			roles: []string{"alice:admin", "carol:member"}, epoch: 0, readers: []string{"alice", "bob", "carol"},
		},
		{
			name: "member leaves, then a member rotates", reason: "a new epoch resets the readers to the roster",
			policy: 0, members: []Member{m("bob", RoleMember), m("carol", RoleMember)},
			steps: []step{{"bob", []Op{remove("bob")}, false}, {"carol", nil, true}},
			roles: []string{"alice:admin", "carol:member"}, epoch: 1, readers: []string{"alice", "carol"},
		},
		{
			name: "admin leaves while another admin remains", reason: "leaving is for everyone",
			policy: DefaultPolicy, members: []Member{m("bob", RoleAdmin)},
			steps: []step{{"alice", []Op{remove("alice")}, false}},
			roles: []string{"bob:admin"}, epoch: 0, readers: []string{"alice", "bob"},
		},
		{
			name: "a leaver re-added with history", reason: "a user who is still a reader is listed once",
			policy: DefaultPolicy, members: []Member{m("bob", RoleMember), m("carol", RoleMember)},
			steps: []step{{"bob", []Op{remove("bob")}, false}, {"alice", []Op{add(t, "bob", RoleMember)}, false}},
			roles: []string{"alice:admin", "bob:member", "carol:member"}, epoch: 0, readers: []string{"alice", "bob", "carol"},
		},
		{
			name: "adds with history, then a new epoch", reason: "added readers become the roster's",
			policy: DefaultPolicy, members: []Member{m("bob", RoleMember)},
			steps: []step{{"alice", []Op{add(t, "dave", RoleMember)}, false}, {"bob", []Op{remove("dave")}, true}},
			roles: []string{"alice:admin", "bob:member"}, epoch: 1, readers: []string{"alice", "bob"},
		},
		{
			name: "a removed member re-added", reason: "removal is not forever: an admin may re-add",
			policy: DefaultPolicy, members: []Member{m("bob", RoleMember)},
			steps: []step{{"alice", []Op{remove("bob")}, true}, {"alice", []Op{add(t, "bob@2", RoleMember)}, false}},
			roles: []string{"alice:admin", "bob:member"}, epoch: 1, readers: []string{"alice", "bob"},
		},
		{
			name: "several ops in one record", reason: "ops apply in user order, the rules on the result",
			policy: DefaultPolicy, members: []Member{m("bob", RoleMember), m("carol", RoleAdmin)},
			steps: []step{{"alice", []Op{remove("bob"), setRole("carol", RoleMember), add(t, "dave", RoleAdmin), add(t, "erin", RoleMember)}, true}},
			roles: []string{"alice:admin", "carol:member", "dave:admin", "erin:member"}, epoch: 1, readers: []string{"alice", "carol", "dave", "erin"},
		},
		{
			name: "actor signs with a later card generation", reason: "a key rotation chaining from the anchor keeps the member's rights",
			policy: DefaultPolicy, members: []Member{m("bob", RoleMember), m("carol", RoleMember)},
			steps: []step{{"bob@1", []Op{remove("carol")}, true}, {"bob@2", nil, true}},
			roles: []string{"alice:admin", "bob:member"}, epoch: 2, readers: []string{"alice", "bob"},
		},
		{
			name: "actor anchored at a later generation", reason: "the chain starts at the anchor, not at generation 0",
			policy: DefaultPolicy, members: []Member{m("bob@1", RoleMember)},
			steps: []step{{"bob@1", nil, true}, {"bob@2", nil, true}},
			roles: []string{"alice:admin", "bob:member"}, epoch: 2, readers: []string{"alice", "bob"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			genesis, s := newSession(t, "alice", tc.policy, tc.members...)
			records := [][]byte{genesis}
			for _, st := range tc.steps {
				var raw []byte
				raw, s = next(t, s, st)
				records = append(records, raw)
			}
			v, err := replay(records, s.ID(), honest(t).cards)
			if err != nil {
				t.Fatalf("refused: %v; %s", err, tc.reason)
			}
			if diff := cmp.Diff(viewOf(s), viewOf(v)); diff != "" {
				t.Errorf("the reader's State differs from the signer's (-signer +reader):\n%s", diff)
			}
			if diff := cmp.Diff(tc.roles, roles(v)); diff != "" {
				t.Errorf("roster (-want +got):\n%s\n%s", diff, tc.reason)
			}
			if diff := cmp.Diff(tc.readers, v.Readers()); diff != "" {
				t.Errorf("readers (-want +got):\n%s\n%s", diff, tc.reason)
			}
			if v.Epoch() != tc.epoch {
				t.Errorf("epoch %d, want %d; %s", v.Epoch(), tc.epoch, tc.reason)
			}
			for e := range v.Epoch() + 1 {
				if !v.CheckCommitment(e, commitment(e)) {
					t.Errorf("epoch %d: not the commitment its record signed", e)
				}
			}
		})
	}
}

// TestRulesRefuse: records that parse and carry a valid signature, but that
// their actor may not sign, or that do not follow the log, are refused with
// the reason.
func TestRulesRefuse(t *testing.T) {
	f := newFixture(t)
	dir := f.dir
	s0 := f.states[0] // alice admin; bob, carol members; default policy
	_, sAdd := newSession(t, "alice", MembersAdd|MembersRemove, member(t, "bob", RoleMember), member(t, "carol", RoleMember))
	_, sNone := newSession(t, "alice", 0, member(t, "bob", RoleMember), member(t, "carol", RoleMember))
	_, sTwo := newSession(t, "alice", DefaultPolicy, member(t, "bob", RoleAdmin), member(t, "carol", RoleMember))
	_, sSolo := newSession(t, "alice", DefaultPolicy)
	_, sBob1 := newSession(t, "alice", DefaultPolicy, member(t, "bob@1", RoleMember))
	alice := signer(t, "alice")
	other, _, err := NewGenesis(alice, alice.Card(), "messaging:general", []Member{member(t, "bob", RoleMember), member(t, "carol", RoleMember)}, DefaultPolicy, commitment(0), nonce("another"), 1)
	if err != nil {
		t.Fatal(err)
	}
	otherState, err := Verify(other, SessionIDOf(other), dir.cards)
	if err != nil {
		t.Fatal(err)
	}
	otherNext, _ := next(t, otherState, step{"alice", nil, true})

	afterAddDave := func(s *State) []Member {
		_, n := next(t, s, step{"alice", []Op{add(t, "dave", RoleMember)}, false})
		return n.Members()
	}
	bob, bob2, impostor1 := signer(t, "bob").Card(), signer(t, "bob@2").Cards(), signer(t, "impostor@1").Cards()
	dropFirst := func(user string, a Anchor, gen uint32) ([]*identity.Card, error) {
		c, err := dir.cards(user, a, gen)
		if err != nil {
			return nil, err
		}
		return c[1:], nil
	}
	lastRepeated := func(user string, a Anchor, gen uint32) ([]*identity.Card, error) {
		c, err := dir.cards(user, a, gen)
		if err != nil {
			return nil, err
		}
		c = slices.Clone(c)
		c[len(c)-1] = c[len(c)-2]
		return c, nil
	}
	sigOf := func(raw []byte) []byte { return raw[len(raw)-SignatureSize:] }
	addDave := []Op{add(t, "dave", RoleMember)}
	tests := []struct {
		name, reason string
		parent       *State
		raw          []byte
		cards        CardSource // nil: the honest directory
		want         string
	}{
		// Who signs.
		{"signed by a non-member", "only members change a session", s0, forge(t, s0, "mallory", nil, true, nil), nil, `"mallory", who is not a member`},
		{"signed by a removed member", "removal takes away every right", f.states[4], forge(t, f.states[4], "carol", nil, true, nil), nil, `"carol", who is not a member`},
		{"signed by a member who left", "leaving takes away every right", f.states[6], forge(t, f.states[6], "erin", nil, true, nil), nil, `"erin", who is not a member`},
		{"signed by another member than the actor", "the actor's key must sign", s0, forge(t, s0, "bob", nil, true, func(c *Change) { c.Actor = "alice"; c.ActorGen = 0 }), nil, "bad signature"},
		{"signature of another record", "a signature covers its record", s0, append(bytes.Clone(f.records[1][:len(f.records[1])-SignatureSize]), sigOf(forge(t, s0, "alice", addDave, false, nil))...), nil, "bad signature"},
		// What a member who is not an admin may do.
		{"member adds under the default policy", "growth is for admins by default", s0, forge(t, s0, "bob", addDave, false, nil), nil, "policy does not allow"},
		{"member adds without history under the default policy", "a new epoch does not make an add legal", s0, forge(t, s0, "bob", addDave, true, nil), nil, "policy does not allow"},
		{"member adds an admin under MembersAdd", "MembersAdd adds members, not admins", sAdd, forge(t, sAdd, "bob", []Op{add(t, "dave", RoleAdmin)}, false, nil), nil, "adds an admin"},
		{"member demotes an admin", "role changes are for admins", sTwo, forge(t, sTwo, "carol", []Op{setRole("bob", RoleMember)}, false, nil), nil, "demotes"},
		{"member promotes while an admin remains", "the only promotion a member signs is the forced one", s0, forge(t, s0, "bob", []Op{setRole("carol", RoleAdmin)}, false, nil), nil, "promotes someone while an admin remains"},
		{"member promotes itself while an admin remains", "the only promotion a member signs is the forced one", s0, forge(t, s0, "bob", []Op{setRole("bob", RoleAdmin)}, false, nil), nil, "promotes someone while an admin remains"},
		{"member removes an admin and promotes while another admin remains", "no promotion is forced while an admin remains", sTwo, forge(t, sTwo, "carol", []Op{remove("alice"), setRole("carol", RoleAdmin)}, true, nil), nil, "promotes someone while an admin remains"},
		{"member removes the last admin and promotes two", "the forced promotion is one", s0, forge(t, s0, "bob", []Op{remove("alice"), setRole("bob", RoleAdmin), setRole("carol", RoleAdmin)}, true, nil), nil, "promotes someone while an admin remains"},
		{"member removes the last admin without promotion", "a session keeps an admin", s0, forge(t, s0, "bob", []Op{remove("alice")}, true, nil), nil, "no admin would remain"},
		{"member removes under policy 0", "without MembersRemove only admins remove", sNone, forge(t, sNone, "bob", []Op{remove("carol")}, true, nil), nil, "policy does not allow"},
		// Leaving and removing.
		{"leave with a removal", "a leaver does nothing else", s0, forge(t, s0, "bob", []Op{remove("bob"), remove("carol")}, true, nil), nil, "leaves does nothing else"},
		{"leave with an add", "a leaver does nothing else", s0, forge(t, s0, "alice", []Op{remove("alice"), add(t, "dave", RoleAdmin)}, false, nil), nil, "leaves does nothing else"},
		{"leave with a new epoch", "a leaver must not rotate: it would hold the new key", s0, forge(t, s0, "bob", []Op{remove("bob")}, true, nil), nil, "leaves does nothing else"},
		{"removal without a new epoch", "a removed user holds the current key", s0, forge(t, s0, "alice", []Op{remove("bob")}, false, nil), nil, "without a new epoch"},
		{"last admin leaves", "a session keeps an admin", s0, forge(t, s0, "alice", []Op{remove("alice")}, false, nil), nil, "no admin would remain"},
		{"last admin demotes itself", "a session keeps an admin", s0, forge(t, s0, "alice", []Op{setRole("alice", RoleMember)}, false, nil), nil, "no admin would remain"},
		{"last member leaves", "a session keeps a member", sSolo, forge(t, sSolo, "alice", []Op{remove("alice")}, false, nil), nil, "a roster has 1 to"},
		{"adds a member", "a user is in the roster once", s0, forge(t, s0, "alice", []Op{add(t, "bob", RoleMember)}, false, nil), nil, "already a member"},
		{"removes a non-member", "nothing to remove", s0, forge(t, s0, "alice", []Op{remove("dave")}, true, nil), nil, `removes "dave", who is not a member`},
		{"sets the role of a non-member", "nothing to change", s0, forge(t, s0, "alice", []Op{setRole("dave", RoleAdmin)}, false, nil), nil, `role of "dave", who is not a member`},
		{"sets a role already held", "every op changes something", s0, forge(t, s0, "alice", []Op{setRole("bob", RoleMember)}, false, nil), nil, "already has"},
		// Epochs and digests.
		{"new epoch, same epoch number", "a new epoch is the next number", s0, forge(t, s0, "alice", nil, true, func(c *Change) { c.Epoch = 0 }), nil, "epoch 0, want 1"},
		{"new epoch, epoch number skipped", "a new epoch is the next number", s0, forge(t, s0, "alice", nil, true, func(c *Change) { c.Epoch = 2 }), nil, "epoch 2, want 1"},
		{"no new epoch, epoch number advanced", "the epoch changes with the flag only", s0, forge(t, s0, "alice", addDave, false, func(c *Change) { c.Epoch = 1 }), nil, "epoch 1, want 0"},
		{"roster digest zero", "every signer signs the resulting roster", s0, forge(t, s0, "alice", addDave, false, func(c *Change) { c.RosterDigest = [HashSize]byte{} }), nil, "roster digest"},
		{"roster digest before the ops", "the digest is of the roster after the record", s0, forge(t, s0, "alice", addDave, false, func(c *Change) { c.RosterDigest = rosterDigest(s0.Policy(), s0.Members()) }), nil, "roster digest"},
		{"roster digest under another policy", "the digest covers the policy", s0, forge(t, s0, "alice", addDave, false, func(c *Change) { c.RosterDigest = rosterDigest(MembersAdd, afterAddDave(s0)) }), nil, "roster digest"},
		{"roster digest with another anchor", "the digest covers the anchors", s0, forge(t, s0, "alice", []Op{{Kind: OpAdd, Member: Member{UserID: "dave", Anchor: anchor(t, "erin")}}}, false, func(c *Change) { c.RosterDigest = rosterDigest(s0.Policy(), afterAddDave(s0)) }), nil, "roster digest"},
		// The chain.
		{"another session's record", "records bind their session", s0, otherNext, nil, "another session's record"},
		{"session ID altered", "records bind their session", s0, forge(t, s0, "alice", nil, true, func(c *Change) { c.SessionID[0] ^= 1 }), nil, "another session's record"},
		{"wrong prev", "a record names the head it follows", s0, forge(t, s0, "alice", nil, true, func(c *Change) { c.Prev[31] ^= 1 }), nil, "does not follow the head"},
		{"prev of an earlier record", "a record names the head it follows", f.states[1], forge(t, f.states[1], "alice", nil, true, func(c *Change) { c.Prev = f.states[0].Head() }), nil, "does not follow the head"},
		{"sequence number ahead", "records are consecutive", s0, forge(t, s0, "alice", nil, true, func(c *Change) { c.Seq = 2 }), nil, "sequence number 2, want 1"},
		{"a record replayed", "a record applies once", f.states[1], f.records[1], nil, "sequence number 1, want 2"},
		{"a second genesis", "a log has one genesis", s0, f.records[0], nil, "a second genesis"},
		// The signer's cards.
		{"card generation older than the anchor", "the anchor is the oldest card that counts", sBob1, forge(t, sBob1, "bob", nil, true, nil), nil, "older than the signer's anchor"},
		{"generation retired by the signer's own record", "a record signed with a generation retires the older ones: a leaked old key signs nothing after", f.states[4], forge(t, f.states[4], "bob@1", nil, true, nil), nil, "retired by a record it signed with generation 2"},
		{"generation 0 retired, though the anchor", "the anchor bounds from below, the signer's newest record too", f.states[4], forge(t, f.states[4], "bob", nil, true, nil), nil, "retired by a record it signed with generation 2"},
		{"substituted card with the member's user ID", "a card counts only from the anchor the adder verified", s0, forge(t, s0, "impostor", nil, true, nil), dir.with("bob", signer(t, "impostor").Card()).cards, "do not start at its anchor"},
		{"directory substitutes the signer's card", "the directory is untrusted", s0, forge(t, s0, "bob", nil, true, nil), dir.with("bob", signer(t, "impostor").Card()).cards, "do not start at its anchor"},
		{"impostor's card spliced after the anchor", "later cards must chain from the anchor", s0, forge(t, s0, "impostor@1", nil, true, nil), dir.with("bob", bob, impostor1[1]).cards, "do not chain from its anchor"},
		{"directory leaves out the anchor", "the chain starts at the anchor", s0, forge(t, s0, "bob@2", nil, true, nil), dropFirst, "do not start at its anchor"},
		{"directory returns another generation last", "the signing card has the record's generation", s0, forge(t, s0, "bob@2", nil, true, nil), lastRepeated, "not its cards of that generation"},
		{"card of another user with the same keys", "a card is a user's only under its user ID", s0, forge(t, s0, "bob", nil, true, nil), dir.with("bob", signer(t, "twin").Card()).cards, "not its cards of that generation"},
		{"card chain of other generations", "the directory's chain must be the anchor's", s0, forge(t, s0, "bob@2", nil, true, nil), dir.with("bob", bob2[0], bob2[2], bob2[2]).cards, "do not chain from its anchor"},
		{"actor generation no card can have", "refused before the directory is asked", s0, forge(t, s0, "bob@2", nil, true, func(c *Change) { c.ActorGen = identity.MaxGenerations }), nil, "generation no card has"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cards := tc.cards
			if cards == nil {
				cards = dir.cards
			}
			s, err := tc.parent.Apply(tc.raw, cards)
			if s != nil {
				t.Error("Apply returned a State with an error")
			}
			checkInvalid(t, err, tc.want, tc.reason)
			var e *Error
			if errors.As(err, &e) && e.Seq != int64(tc.parent.Seq())+1 {
				t.Errorf("Error.Seq = %d, want the record's position %d", e.Seq, tc.parent.Seq()+1)
			}
		})
	}
}

// TestGenesisRefused: Verify refuses a genesis that is not this session's,
// not signed by its creator's anchored card, or not a genesis.
func TestGenesisRefused(t *testing.T) {
	f := newFixture(t)
	g0 := parsed(t, f.records[0]).Genesis
	bob := signer(t, "bob")
	reanchored := *g0
	reanchored.Members = slices.Clone(g0.Members)
	reanchored.Members[0].Anchor.Fingerprint[0] ^= 1
	forged := sign(signer(t, "alice"), encodeGenesis(&reanchored))
	notAdmin := *g0
	notAdmin.Members = slices.Clone(g0.Members)
	notAdmin.Members[0].Role = RoleMember
	otherGen := *g0
	otherGen.CreatorGen = 1
	tests := []struct {
		name, reason string
		raw          []byte
		id           [IDSize]byte // zero: the record's own
		cards        CardSource   // nil: the honest directory
		want         string
	}{
		{"another session ID", "Stream's session ID must be this genesis's hash", f.records[0], [IDSize]byte{1}, nil, "does not define this session ID"},
		{"a change first", "a log starts with a genesis", f.records[1], [IDSize]byte{}, nil, "not a genesis"},
		{"signed by another user", "the creator signs its genesis", sign(bob, f.records[0][:len(f.records[0])-SignatureSize]), [IDSize]byte{}, nil, "bad signature"},
		{"creator's entry anchors another card", "the creator's anchor is the card that signs", forged, [IDSize]byte{}, nil, "do not start at its anchor"},
		{"directory substitutes the creator's card", "the directory is untrusted", f.records[0], [IDSize]byte{}, f.dir.with("alice", signer(t, "mallory").Card()).cards, "do not start at its anchor"},
		{"creator not an admin", "a session starts with its creator as admin", sign(signer(t, "alice"), encodeGenesis(&notAdmin)), [IDSize]byte{}, nil, "creator is not an admin"},
		{"creator with another generation", "the creator's entry anchors the card that signs", sign(signer(t, "alice"), encodeGenesis(&otherGen)), [IDSize]byte{}, nil, "creator is not an admin"},
		{"not a record", "garbage is refused before anything else", []byte("genesis"), [IDSize]byte{}, nil, "unknown version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.id
			if want == ([IDSize]byte{}) {
				want = SessionIDOf(tc.raw)
			}
			cards := tc.cards
			if cards == nil {
				cards = f.dir.cards
			}
			s, err := Verify(tc.raw, want, cards)
			if s != nil {
				t.Error("Verify returned a State with an error")
			}
			checkInvalid(t, err, tc.want, tc.reason)
			var e *Error
			if errors.As(err, &e) && e.Seq != 0 {
				t.Errorf("Error.Seq = %d, want 0, the genesis's position", e.Seq)
			}
		})
	}
	// A creator that rotated its keys anchors and signs with its current card.
	bob2 := signer(t, "bob@2")
	raw, s, err := NewGenesis(bob2, bob2.Card(), "messaging:b", nil, DefaultPolicy, commitment(0), nonce("b"), 1)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(raw, s.ID(), f.dir.cards)
	if err != nil {
		t.Fatalf("Verify(genesis by a rotated creator): %v", err)
	}
	if m, _ := v.Member("bob"); m.Anchor.Generation != 2 || m.Role != RoleAdmin {
		t.Errorf("creator entry %+v, want an admin anchored at generation 2", m)
	}
}

// TestCardSourceErrors: a directory that cannot answer fails the record
// with its error, not as an invalid record: the record may be fine.
func TestCardSourceErrors(t *testing.T) {
	f := newFixture(t)
	short := f.dir.with("bob", signer(t, "bob").Card())
	if _, err := f.states[3].Apply(f.records[4], short.cards); !errors.Is(err, errNoCard) || errors.Is(err, ErrInvalid) {
		t.Errorf("Apply with the signer's card missing: err = %v, want the directory's error", err)
	}
	if _, err := Verify(f.records[0], f.states[0].ID(), directory{}.cards); !errors.Is(err, errNoCard) || errors.Is(err, ErrInvalid) {
		t.Errorf("Verify with the creator's card missing: err = %v, want the directory's error", err)
	}
	calls := 0
	counting := func(user string, a Anchor, gen uint32) ([]*identity.Card, error) {
		calls++
		return f.dir.cards(user, a, gen)
	}
	bad := forge(t, f.states[0], "alice", nil, true, func(c *Change) { c.ActorGen = 1 << 31 })
	if _, err := f.states[0].Apply(bad, counting); !errors.Is(err, ErrInvalid) || calls != 0 {
		t.Errorf("actor generation 2^31: err = %v after %d directory calls, want ErrInvalid before any", err, calls)
	}
}

// TestTamper flips bits in every byte of every record of the fixture: the
// record is refused, by the parser, the rules or the signature.
func TestTamper(t *testing.T) {
	f := newFixture(t)
	for i, raw := range f.records {
		t.Run(fixtureNames[i], func(t *testing.T) {
			t.Parallel()
			for j := range raw {
				for _, mask := range []byte{0x01, 0x80} {
					bad := bytes.Clone(raw)
					bad[j] ^= mask
					var err error
					if i == 0 {
						// Even under the session ID it defines, a tampered
						// genesis is refused.
						_, err = Verify(bad, SessionIDOf(bad), f.dir.cards)
					} else {
						_, err = f.states[i-1].Apply(bad, f.dir.cards)
					}
					if err == nil || !(errors.Is(err, ErrInvalid) || errors.Is(err, errNoCard)) {
						t.Fatalf("byte %d ^ %#02x: err = %v, want ErrInvalid or the directory's error", j, mask, err)
					}
				}
			}
		})
	}
}

// TestOrder: a log replays only in order. Swapping any two records,
// skipping any one, or starting over with the genesis is refused at the
// first record out of place.
func TestOrder(t *testing.T) {
	f := newFixture(t)
	id := SessionIDOf(f.records[0])
	failsAt := func(records [][]byte, at int64, what string) {
		t.Helper()
		_, err := replay(records, id, f.dir.cards)
		var e *Error
		if !errors.As(err, &e) || e.Seq != at {
			t.Errorf("%s: err = %v, want an invalid record at position %d", what, err, at)
		}
	}
	for i := 1; i < len(f.records); i++ {
		for j := i + 1; j < len(f.records); j++ {
			swapped := slices.Clone(f.records)
			swapped[i], swapped[j] = swapped[j], swapped[i]
			failsAt(swapped, int64(i), fmt.Sprintf("records %d and %d swapped", i, j))
		}
		if i < len(f.records)-1 { // without its last record, a log is a valid prefix
			failsAt(slices.Delete(slices.Clone(f.records), i, i+1), int64(i), fmt.Sprintf("record %d skipped", i))
		}
	}
	reversed := slices.Clone(f.records[1:])
	slices.Reverse(reversed)
	failsAt(append([][]byte{f.records[0]}, reversed...), 1, "changes reversed")
	failsAt(append(slices.Clone(f.records), f.records[0]), int64(len(f.records)), "genesis at the end")
	if _, err := replay(f.records[1:], id, f.dir.cards); err == nil {
		t.Error("a log without its genesis verified")
	}
}

// TestTruncatedLog: every prefix of a log verifies, to an earlier head, so
// truncation is not a verification error but a rollback that a caller
// holding the later head (its floor) sees by comparing.
func TestTruncatedLog(t *testing.T) {
	f := newFixture(t)
	floor := f.states[len(f.states)-1]
	for n := 1; n < len(f.records); n++ {
		s, err := replay(f.records[:n], floor.ID(), f.dir.cards)
		if err != nil {
			t.Fatalf("the first %d records: %v", n, err)
		}
		if s.Seq() >= floor.Seq() || s.Head() == floor.Head() || s.Head() != f.states[n-1].Head() {
			t.Errorf("the first %d records: seq %d, want below the floor's %d and the head at %d", n, s.Seq(), floor.Seq(), n-1)
		}
	}
}

// TestFork: two different valid records for one sequence number each apply
// to their parent, to States with the same seq and different heads, which a
// caller comparing heads detects; neither applies after the other.
func TestFork(t *testing.T) {
	f := newFixture(t)
	parent := f.states[2]
	branches := []struct {
		name string
		st   step
	}{
		{"promote", fixtureSteps(t)[2]},
		{"rotate", step{"alice", nil, true}},
		{"same change, signed again", fixtureSteps(t)[2]}, // equivocation: another time, another hash
	}
	var raws [][]byte
	var states []*State
	for i, b := range branches {
		raw, _, err := parent.NewChange(signer(t, b.st.actor), b.st.ops, b.st.newEpoch, commitment(parent.Epoch()+1), uint64(100+i))
		if err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
		raws = append(raws, raw)
	}
	// Readers apply the branches concurrently to one parent: a State is
	// safe for concurrent use.
	states = make([]*State, len(raws))
	errs := make([]error, len(raws))
	var wg sync.WaitGroup
	for i, raw := range raws {
		wg.Go(func() { states[i], errs[i] = parent.Apply(raw, f.dir.cards) })
	}
	wg.Wait()
	for i := range raws {
		if errs[i] != nil {
			t.Fatalf("%s: %v", branches[i].name, errs[i])
		}
		for j := range i {
			a, b := states[j], states[i]
			if a.Seq() != b.Seq() || a.Head() == b.Head() {
				t.Errorf("%s and %s: seq %d/%d, heads equal %v: want one seq, two heads", branches[j].name, branches[i].name, a.Seq(), b.Seq(), a.Head() == b.Head())
			}
			for _, pair := range [][2]int{{i, j}, {j, i}} {
				_, err := states[pair[0]].Apply(raws[pair[1]], f.dir.cards)
				checkInvalid(t, err, "sequence number", fmt.Sprintf("%s after %s: a fork's second branch never follows the first", branches[pair[1]].name, branches[pair[0]].name))
			}
		}
	}
	// The same bytes again are the same record: no fork.
	again, err := parent.Apply(raws[0], f.dir.cards)
	if err != nil || again.Head() != states[0].Head() {
		t.Errorf("the same record applied twice: %v, heads equal %v", err, err == nil && again.Head() == states[0].Head())
	}
	// A record made on one branch does not continue the other.
	onFirst, _ := next(t, states[0], step{"alice", nil, true})
	_, err = states[1].Apply(onFirst, f.dir.cards)
	checkInvalid(t, err, "does not follow the head", "a branch's next record names its own head")
}

// TestErrorMessages: an *Error says where the log broke.
func TestErrorMessages(t *testing.T) {
	f := newFixture(t)
	_, err := f.states[2].Apply([]byte{Version}, f.dir.cards)
	var e *Error
	if !errors.As(err, &e) || e.Seq != 3 || err.Error() != "memberlog: invalid record 3: truncated" {
		t.Errorf("Apply(truncated) = %v, want position 3", err)
	}
	if _, err := Parse(nil); err == nil || err.Error() != "memberlog: invalid record: truncated" {
		t.Errorf("Parse(nil) = %v, want an error without position", err)
	}
}

// TestRetiredGenerations: a member who signs a record with a generation
// retires its older ones for the rest of the log — records (Apply,
// NewChange) and, from the next epoch on, envelopes and grants
// (MinGeneration).
func TestRetiredGenerations(t *testing.T) {
	f := newFixture(t)
	if g, ok := f.states[3].SignedGeneration("bob"); ok {
		t.Errorf("before bob signs: SignedGeneration = %d, true; want false", g)
	}
	if g, ok := f.states[4].SignedGeneration("bob"); !ok || g != 2 {
		t.Errorf("after bob@2 signs: SignedGeneration = %d, %v; want 2, true", g, ok)
	}
	if g, ok := f.states[0].SignedGeneration("alice"); !ok || g != 0 {
		t.Errorf("the genesis: SignedGeneration(creator) = %d, %v; want 0, true", g, ok)
	}
	last := f.states[len(f.states)-1]
	for _, tc := range []struct {
		epoch  uint32
		user   string
		want   uint32
		reason string
	}{
		{0, "bob", 0, "epoch 0 began before bob signed"},
		{1, "bob", 0, "epoch 1 began before bob signed"},
		{2, "bob", 2, "bob's record with generation 2 began epoch 2"},
		{5, "bob", 2, "a retired generation stays retired"},
		{5, "carol", 0, "carol signed nothing"},
		{6, "bob", 0, "no epoch 6 yet"},
	} {
		if got := last.MinGeneration(tc.epoch, tc.user); got != tc.want {
			t.Errorf("MinGeneration(%d, %q) = %d, want %d: %s", tc.epoch, tc.user, got, tc.want, tc.reason)
		}
	}
	if _, _, err := f.states[4].NewChange(signer(t, "bob@1"), nil, true, commitment(3), 1); err == nil {
		t.Error("NewChange signed with a retired generation: an honest client must not sign what readers refuse")
	}
	// The older states are unchanged: records before bob's do not see it.
	if g := f.states[3].MinGeneration(1, "bob"); g != 0 {
		t.Errorf("an earlier state changed: MinGeneration = %d", g)
	}
}

// TestCheckPinned: a reader that trusts a newer generation of a user than
// the one that signed the user's last record it verifies refuses the log,
// unless the user is gone and someone else signed after.
func TestCheckPinned(t *testing.T) {
	f := newFixture(t)
	signers := make([]Signer, len(f.states))
	for i, s := range f.states {
		signers[i] = s.LastSigner()
	}
	if want := (Signer{UserID: "bob", Generation: 2}); !cmp.Equal(signers[4], want) {
		t.Fatalf("LastSigner of record 4 = %v, want %v", signers[4], want)
	}
	if want := (Signer{UserID: "alice", Added: []string{"frank"}}); !cmp.Equal(signers[7], want) {
		t.Fatalf("LastSigner of record 7 = %v, want %v", signers[7], want)
	}
	for _, tc := range []struct {
		name, reason string
		upto         int // the fresh records are from..upto
		from         int
		pins         map[string]uint32
		ok           bool
	}{
		{"no pins", "nothing is retired", 8, 0, nil, true},
		{"bob at his signing generation", "bob's last record is signed by the trusted generation", 8, 0, map[string]uint32{"bob": 2}, true},
		{"bob behind", "bob, a member, last signed with generation 2; the reader trusts 3", 8, 0, map[string]uint32{"bob": 3}, false},
		{"alice removed by a member she added", "dave removed alice after her last record, but only alice's generation-0 record 1, which nothing vouches for, made him a member: the holder of her retired key could have added him", 8, 0, map[string]uint32{"alice": 1}, false},
		{"alice removed by a member added before the floor", "dave's add was verified before the pin: his removal of alice vouches for her records", 8, 2, map[string]uint32{"alice": 1}, true},
		{"alice still a member", "before dave removes her, nothing vouches for alice's generation-0 records", 7, 0, map[string]uint32{"alice": 1}, false},
		{"erin left, others signed after", "alice and dave signed after erin's leave", 8, 0, map[string]uint32{"erin": 1}, true},
		{"erin left, nothing after", "erin's leave, by her retired generation, is the last record", 6, 0, map[string]uint32{"erin": 1}, false},
		{"records below the floor", "records verified before the pin are not checked again", 8, 5, map[string]uint32{"bob": 3}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPinned(f.states[tc.upto], signers[tc.from:tc.upto+1], func(u string) (uint32, bool, error) {
				g, ok := tc.pins[u]
				return g, ok, nil
			})
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok = %v: %s", err, tc.ok, tc.reason)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("err = %v, want one matching ErrInvalid", err)
			}
		})
	}
}
