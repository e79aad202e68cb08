package servicetest

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/session"
)

// testLog reads one session's log — alice created it with bob and carol,
// added dave, bob removed carol, alice made bob an admin — from several
// sequence numbers, as several users.
func testLog(t *testing.T, f *fixture) {
	s := f.create(t, alice, bob, carol)
	daveAdded(t, s)
	carolRemoved(t, s)
	bobAdmin(t, s)
	s.mustMatch(t)
	head := uint32(len(s.records) - 1)
	tests := []struct {
		name    string
		caller  string
		unknown bool
		from    uint32
		want    []int // indices of the records, when err is nil
		err     error
		reason  string
	}{
		{"creator from the genesis", alice, false, 0, []int{0, 1, 2, 3}, nil,
			"every record, byte for byte, in order"},
		{"member added later", dave, false, 0, []int{0, 1, 2, 3}, nil,
			"a new member verifies the log from its genesis"},
		{"from a later record", bob, false, 2, []int{2, 3}, nil, "the records from from on"},
		{"from the head", bob, false, head, []int{3}, nil, "the head record alone"},
		{"beyond the head", bob, false, head + 1, nil, nil, "nothing new, which is no error"},
		{"far beyond the head", bob, false, math.MaxUint32, nil, nil, "nothing new, which is no error"},
		{"removed member", carol, false, 0, nil, session.ErrForbidden, "a removed member reads no more"},
		{"outsider", mallory, false, 0, nil, session.ErrForbidden, "members only"},
		{"outsider beyond the head", mallory, false, head + 1, nil, session.ErrForbidden,
			"rights come before the range: the answer must not tell how long the log is"},
		{"user without a card", ghost, false, 0, nil, session.ErrForbidden, "members only"},
		{"unknown session", alice, true, 0, nil, session.ErrUnknownSession, "no such session"},
		{"unknown session, outsider", mallory, true, 0, nil, session.ErrUnknownSession,
			"an unknown session is unknown to everyone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := s.id
			if tt.unknown {
				target = unknownID
			}
			got, err := f.as(tt.caller).Log(t.Context(), target, tt.from)
			if !is(err, tt.err) {
				t.Fatalf("Log(%d) = %d records, %v; want %v (%s)", tt.from, len(got), err, tt.err, tt.reason)
			}
			if err != nil {
				if got != nil {
					t.Errorf("Log(%d) = %d records with an error; want none (%s)", tt.from, len(got), tt.reason)
				}
				return
			}
			var want [][]byte
			for _, i := range tt.want {
				want = append(want, s.records[i])
			}
			if !slices.EqualFunc(got, want, bytes.Equal) {
				t.Errorf("Log(%d) records, by hash (-want +got) (%s)\n%s", tt.from, tt.reason,
					cmp.Diff(hashes(want), hashes(got), cmpOpts))
			}
		})
	}
}

func testHead(t *testing.T, f *fixture) {
	tests := []struct {
		name   string
		setup  setup
		caller string
		err    error
		reason string
	}{
		{"genesis only", nil, alice, nil, "sequence number 0, the genesis's hash"},
		{"member", nil, bob, nil, "every member reads the head"},
		{"after records", then(daveAdded, rotated), dave, nil, "the last record's sequence number and hash"},
		{"after a role change", bobAdmin, carol, nil, "every record moves the head"},
		{"removed member", carolRemoved, carol, session.ErrForbidden, "a removed member reads no more"},
		{"member who left", carolLeft, carol, session.ErrForbidden, "a member who left reads no more"},
		{"outsider", nil, mallory, session.ErrForbidden, "members only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := f.create(t, alice, bob, carol)
			if tt.setup != nil {
				tt.setup(t, s)
			}
			got, err := f.as(tt.caller).Head(t.Context(), s.id)
			if !is(err, tt.err) {
				t.Fatalf("Head = %+v, %v; want %v (%s)", got, err, tt.err, tt.reason)
			}
			if err != nil {
				if got != (session.Head{}) {
					t.Errorf("Head = %+v with an error; want the zero Head (%s)", got, tt.reason)
				}
				return
			}
			last := len(s.records) - 1
			if want := (session.Head{Seq: uint32(last), Hash: memberlog.Hash(s.records[last])}); got != want {
				t.Errorf("Head = %+v, want %+v (%s)", got, want, tt.reason)
			}
		})
	}
	for _, caller := range []string{alice, mallory} {
		if got, err := f.as(caller).Head(t.Context(), unknownID); !errors.Is(err, session.ErrUnknownSession) {
			t.Errorf("Head of an unknown session as %s = %+v, %v; want ErrUnknownSession", caller, got, err)
		}
	}
}

// testGrants reads a user's grants after histories of a session created
// by alice with bob and carol. The grants' bytes are checked against
// every grant sent, by the session's snapshot.
func testGrants(t *testing.T, f *fixture) {
	addedWithoutHistory := func(t *testing.T, s *sess) { s.do(t, alice, true, add(t, dave)) }
	tests := []struct {
		name   string
		setup  setup
		caller string
		want   []uint32 // epochs of the caller's grants, when err is nil
		err    error
		reason string
	}{
		{"creator", nil, alice, []uint32{0}, nil, "the creator's own epoch-0 grant"},
		{"member", nil, bob, []uint32{0}, nil, "its own grant, not the others'"},
		{"every epoch", then(rotated, carolRemoved), bob, []uint32{0, 1, 2}, nil,
			"grants of every epoch the member was given"},
		{"added with history", daveAdded, dave, []uint32{0}, nil, "the current epoch's key"},
		{"added with history, then a rotation", then(daveAdded, rotated), dave, []uint32{0, 1}, nil,
			"and every epoch since"},
		{"added without history", addedWithoutHistory, dave, []uint32{1}, nil,
			"only the new epoch"},
		{"member after an add without history", addedWithoutHistory, alice, []uint32{0, 1}, nil,
			"members get the new epoch too"},
		{"member after a role change", bobAdmin, carol, []uint32{0}, nil, "a role change grants nothing"},
		{"removed member", carolRemoved, carol, nil, session.ErrForbidden, "a removed member reads no more"},
		{"member who left", carolLeft, carol, nil, session.ErrForbidden, "a member who left reads no more"},
		{"back before a rotation", then(carolLeft, carolBack), carol, []uint32{0}, nil,
			"a member who left without a rotation kept the key, so it keeps its grants and the log gives it no new one"},
		{"back after a rotation", then(carolLeft, rotated, carolBack), carol, []uint32{1}, nil,
			"once the epoch moved on without carol her grants went; she gets the current epoch"},
		{"back after a removal", then(carolRemoved, carolBack), carol, []uint32{1}, nil,
			"a removed member's grants went with it"},
		{"outsider", nil, mallory, nil, session.ErrForbidden, "members only"},
		{"user without a card", nil, ghost, nil, session.ErrForbidden, "members only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := f.create(t, alice, bob, carol)
			if tt.setup != nil {
				tt.setup(t, s)
			}
			got, err := f.as(tt.caller).Grants(t.Context(), s.id)
			if !is(err, tt.err) {
				t.Fatalf("Grants = %d grants, %v; want %v (%s)", len(got), err, tt.err, tt.reason)
			}
			if err != nil && got != nil {
				t.Errorf("Grants = %d grants with an error; want none (%s)", len(got), tt.reason)
			}
			var epochs []uint32
			for _, g := range got {
				if g.Grantee != tt.caller {
					t.Errorf("Grants as %s returned %s's grant for epoch %d (%s)", tt.caller, g.Grantee, g.Epoch, tt.reason)
				}
				epochs = append(epochs, g.Epoch)
			}
			slices.Sort(epochs)
			if d := cmp.Diff(tt.want, epochs, cmpOpts); d != "" {
				t.Errorf("epochs of the grants (-want +got) (%s)\n%s", tt.reason, d)
			}
			if d := s.diff(t); d != "" {
				t.Errorf("the session (-want +got) (%s)\n%s", tt.reason, d)
			}
		})
	}
	for _, caller := range []string{alice, mallory} {
		if got, err := f.as(caller).Grants(t.Context(), unknownID); !errors.Is(err, session.ErrUnknownSession) {
			t.Errorf("Grants of an unknown session as %s = %d grants, %v; want ErrUnknownSession", caller, len(got), err)
		}
	}
}

func testLookup(t *testing.T, f *fixture) {
	first := f.create(t, alice, bob, carol)
	second := f.create(t, bob, alice)
	carolRemoved(t, first)
	tests := []struct {
		name   string
		caller string
		cid    string
		want   session.ID
		err    error
		reason string
	}{
		{"member", alice, first.cid, first.id, nil, "the channel's session"},
		{"another channel", alice, second.cid, second.id, nil, "each channel its own session"},
		{"after records", bob, first.cid, first.id, nil, "the ID is the genesis's, whatever follows"},
		{"removed member", carol, first.cid, first.id, nil, "a hint anyone may read: the log says who is in"},
		{"outsider", mallory, first.cid, first.id, nil, "a hint anyone may read: it tells which session to ask to join"},
		{"unknown channel", alice, f.channel(), session.ID{}, session.ErrUnknownSession, "no session for the channel"},
		{"empty channel", alice, "", session.ID{}, session.ErrUnknownSession, "no session has no channel"},
		{"channel too long", alice, strings.Repeat("c", session.MaxChannelCIDLen+1), session.ID{}, session.ErrUnknownSession,
			"no genesis names a channel over session.MaxChannelCIDLen bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.as(tt.caller).Lookup(t.Context(), tt.cid)
			if !is(err, tt.err) || got != tt.want {
				t.Errorf("Lookup(%.40q) = %v, %v; want %v, %v (%s)", tt.cid, got, err, tt.want, tt.err, tt.reason)
			}
		})
	}
}
