package memberlog

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse: no panic; a record that parses re-encodes, through the
// signing-independent marshal, to its own bytes, and parses again to the
// same record.
func FuzzParse(f *testing.F) {
	fx := newFixture(f)
	for _, raw := range fx.records {
		f.Add(raw)
		f.Add(raw[:len(raw)-SignatureSize])
		f.Add(append(bytes.Clone(raw), 0))
	}
	f.Add([]byte{})
	f.Add([]byte{Version, typeChange})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			var e *Error
			if r != nil || !errors.As(err, &e) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse = %v, %v: want nil and a *Error", r, err)
			}
			return
		}
		var body []byte
		switch {
		case r.Genesis != nil && r.Change == nil:
			body, err = r.Genesis.marshal()
		case r.Change != nil && r.Genesis == nil:
			body, err = r.Change.marshal()
		default:
			t.Fatal("a record is exactly one of a genesis and a change")
		}
		if err != nil {
			t.Fatalf("a parsed record does not marshal: %v", err)
		}
		if !bytes.Equal(append(body, r.Signature[:]...), b) {
			t.Fatal("a parsed record does not re-encode to its bytes")
		}
		if !bytes.Equal(r.Raw, b) || !bytes.Equal(r.signed(), body) || r.Hash != Hash(b) {
			t.Fatal("Raw, signed bytes or Hash are not the record's")
		}
		if _, err := Parse(body); err == nil {
			t.Fatal("a record without its signature parsed")
		}
		again, err := Parse(slices.Concat(body, r.Signature[:]))
		if err != nil {
			t.Fatalf("re-encoded record: %v", err)
		}
		if diff := cmp.Diff(r, again); diff != "" {
			t.Fatalf("re-parse (-first +second):\n%s", diff)
		}
	})
}

// fuzzParent is the State FuzzApply appends to: fixture record 3, with
// alice and bob admins, carol, dave and erin members, at epoch 1.
const fuzzParent = 3

// FuzzApply: no panic on any bytes as the next record of a valid log; a
// record that is accepted leads to a consistent State, and changes nothing
// in its parent.
func FuzzApply(f *testing.F) {
	fx := newFixture(f)
	parent := fx.states[fuzzParent]
	f.Add(fx.records[fuzzParent+1])
	for _, st := range []step{
		{"alice", nil, true},
		{"carol", []Op{remove("carol")}, false},
		{"alice", []Op{add(f, "frank", RoleAdmin), remove("carol"), setRole("dave", RoleAdmin)}, true},
		{"carol", []Op{remove("alice"), remove("bob"), setRole("carol", RoleAdmin)}, true},
	} {
		raw, _ := next(f, parent, st)
		if _, err := parent.Apply(raw, fx.dir.cards); err != nil {
			f.Fatalf("a valid seed is refused: %v", err)
		}
		f.Add(raw)
	}
	f.Add(fx.records[fuzzParent])
	f.Add(fx.records[0])
	before := viewOf(parent)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parent.Apply(b, fx.dir.cards)
		if diff := cmp.Diff(before, viewOf(parent)); diff != "" {
			t.Fatalf("Apply changed its parent (-before +after):\n%s", diff)
		}
		if err != nil {
			if s != nil || !(errors.Is(err, ErrInvalid) || errors.Is(err, errNoCard)) {
				t.Fatalf("Apply = %v, %v: want nil and ErrInvalid or the directory's error", s, err)
			}
			return
		}
		checkNext(t, parent, s, b)
		again, err := parent.Apply(b, fx.dir.cards)
		if err != nil {
			t.Fatalf("an accepted record refused the second time: %v", err)
		}
		if diff := cmp.Diff(viewOf(s), viewOf(again)); diff != "" {
			t.Fatalf("one record, two States (-first +second):\n%s", diff)
		}
	})
}

// FuzzVerify: no panic on any bytes as a genesis; one that is accepted
// starts a consistent State.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	for _, raw := range fx.records[:2] {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Verify(b, SessionIDOf(b), fx.dir.cards)
		if err != nil {
			if s != nil || !(errors.Is(err, ErrInvalid) || errors.Is(err, errNoCard)) {
				t.Fatalf("Verify = %v, %v: want nil and ErrInvalid or the directory's error", s, err)
			}
			return
		}
		g := parsed(t, b).Genesis
		if s.Seq() != 0 || s.Epoch() != 0 || s.Head() != Hash(b) || s.ID() != SessionIDOf(b) || s.Creator() != g.Creator {
			t.Fatal("a genesis's State is not at its start")
		}
		if !s.CheckCommitment(0, g.Commitment) {
			t.Fatal("epoch 0's commitment is not the genesis's")
		}
		checkRoster(t, s)
		if !slices.Equal(s.Readers(), userIDs(s.Members())) {
			t.Fatal("the readers of epoch 0 are not the roster")
		}
	})
}

func userIDs(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.UserID
	}
	return out
}

// checkRoster fails unless s's roster is sorted, unique, of valid entries,
// bounded, with an admin, and its readers are sorted, unique and include
// the roster.
func checkRoster(t *testing.T, s *State) {
	t.Helper()
	ms := s.Members()
	if len(ms) == 0 || len(ms) > MaxRoster || !ascending(len(ms), func(i int) string { return ms[i].UserID }) {
		t.Fatalf("a roster of %d members, not sorted or not unique", len(ms))
	}
	admins := 0
	for _, m := range ms {
		if err := checkMember(m); err != nil {
			t.Fatalf("roster entry %q: %v", m.UserID, err)
		}
		if m.Role == RoleAdmin {
			admins++
		}
	}
	if admins == 0 {
		t.Fatal("no admin")
	}
	readers := s.Readers()
	if !ascending(len(readers), func(i int) string { return readers[i] }) {
		t.Fatalf("readers %v not sorted or not unique", readers)
	}
	for _, m := range ms {
		if _, ok := slices.BinarySearch(readers, m.UserID); !ok {
			t.Fatalf("member %q is not a reader", m.UserID)
		}
	}
}

// checkNext fails unless s is a consistent State after parent and raw.
func checkNext(t *testing.T, parent, s *State, raw []byte) {
	t.Helper()
	c := parsed(t, raw).Change
	if c == nil {
		t.Fatal("a genesis was applied as a change")
	}
	if s.Seq() != parent.Seq()+1 || s.Head() != Hash(raw) || s.ID() != parent.ID() ||
		s.ChannelCID() != parent.ChannelCID() || s.Creator() != parent.Creator() || s.Policy() != parent.Policy() {
		t.Fatal("seq, head, or what the genesis fixed, is not the record's")
	}
	if _, ok := parent.Member(c.Actor); !ok {
		t.Fatalf("accepted a record by %q, who was not a member", c.Actor)
	}
	checkRoster(t, s)
	if rosterDigest(s.Policy(), s.Members()) != c.RosterDigest {
		t.Fatal("the roster is not the one the record signed")
	}
	switch {
	case c.NewEpoch:
		if s.Epoch() != parent.Epoch()+1 || !s.CheckCommitment(s.Epoch(), c.Commitment) {
			t.Fatal("a new epoch without its number or commitment")
		}
		if !slices.Equal(s.Readers(), userIDs(s.Members())) {
			t.Fatal("the readers of a new epoch are not the roster")
		}
	default:
		if s.Epoch() != parent.Epoch() {
			t.Fatal("the epoch moved without the flag")
		}
		for _, r := range parent.Readers() {
			if _, ok := slices.BinarySearch(s.Readers(), r); !ok {
				t.Fatalf("reader %q lost without a new epoch", r)
			}
		}
	}
	for e := range parent.Epoch() + 1 {
		want, _ := parent.Commitment(e)
		if !s.CheckCommitment(e, want) {
			t.Fatalf("the commitment of epoch %d changed", e)
		}
	}
	for _, m := range parent.Members() {
		if _, ok := s.Member(m.UserID); !ok && !c.NewEpoch && m.UserID != c.Actor {
			t.Fatalf("%q removed without a new epoch, and not by leaving", m.UserID)
		}
	}
}
