package servicetest

import (
	"bytes"
	"testing"

	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/session"
)

func testAppend(t *testing.T, f *fixture) {
	admin, member := memberlog.RoleAdmin, memberlog.RoleMember
	// grantsOf returns grants for users at epoch.
	grantsOf := f.grants
	sized := func(g session.GrantRecord, n int) session.GrantRecord {
		g.Grant = append(g.Grant, bytes.Repeat([]byte{'a'}, n-len(g.Grant))...)
		return g
	}
	tests := []struct {
		name    string
		setup   setup
		caller  string
		unknown bool // send to a session no one created
		build   func(t *testing.T, s *sess) step
		want    error
		reason  string
	}{
		// What the log allows.
		{"admin adds with history", nil, alice, false,
			func(t *testing.T, s *sess) step { return s.next(t, alice, false, add(t, dave)) }, nil,
			"the added member gets the current epoch's key"},
		{"admin adds without history", nil, alice, false,
			func(t *testing.T, s *sess) step { return s.next(t, alice, true, add(t, dave)) }, nil,
			"a new epoch, and every member's grant for it"},
		{"member rotates", nil, bob, false,
			func(t *testing.T, s *sess) step { return s.next(t, bob, true) }, nil,
			"any member may start a new epoch"},
		{"member removes", nil, bob, false,
			func(t *testing.T, s *sess) step { return s.next(t, bob, true, remove(carol)) }, nil,
			"the default policy lets members remove, with a new epoch"},
		{"admin promotes", nil, alice, false,
			func(t *testing.T, s *sess) step { return s.next(t, alice, false, setRole(bob, admin)) }, nil,
			"a role change needs no grant"},
		{"promoted admin demotes", bobAdmin, bob, false,
			func(t *testing.T, s *sess) step { return s.next(t, bob, false, setRole(alice, member)) }, nil,
			"roles are the log's: bob is an admin now"},
		{"member leaves", nil, carol, false,
			func(t *testing.T, s *sess) step { return s.next(t, carol, false, remove(carol)) }, nil,
			"leaving needs no new epoch and no grant"},
		{"member removes the last admin", nil, bob, false,
			func(t *testing.T, s *sess) step { return s.next(t, bob, true, remove(alice), setRole(bob, admin)) }, nil,
			"the forced promotion: a removal never waits for an offline admin"},
		{"signed with a newer card", func(t *testing.T, s *sess) { f.publish(t, "bob@1") }, bob, false,
			func(t *testing.T, s *sess) step { return s.next(t, "bob@1", true) }, nil,
			"a member's later cards count when they chain from its anchor"},
		{"the same record again", daveAdded, alice, false,
			func(t *testing.T, s *sess) step { return s.lastStep().resent() }, nil,
			"a client that lost the answer retries"},
		{"the same record again, below the head", then(daveAdded, rotated), alice, false,
			func(t *testing.T, s *sess) step { return s.steps[0].resent() }, nil,
			"a retried record is recognised wherever it is in the log"},
		{"the same record again, after leaving", carolLeft, carol, false,
			func(t *testing.T, s *sess) step { return s.lastStep().resent() }, nil,
			"a retried leave succeeds, though the caller is no member any more"},

		// Who may call.
		{"another member's record", nil, bob, false,
			func(t *testing.T, s *sess) step { return s.next(t, alice, true) }, nil,
			"a member publishes a record the service lost (a restore): the signature and the chain decide, not the sender"},
		{"another member's record again", daveAdded, bob, false,
			func(t *testing.T, s *sess) step { return s.lastStep().resent() }, nil,
			"a member publishing a stored record again learns nothing it did not hold"},
		{"the added user publishes its addition", nil, dave, false,
			func(t *testing.T, s *sess) step { return s.next(t, alice, false, add(t, dave)) }, nil,
			"a user the record makes a member may publish it again, with the grant it holds"},
		{"the removed member publishes its removal", nil, carol, false,
			func(t *testing.T, s *sess) step { return s.next(t, bob, true, remove(carol)) }, nil,
			"a member before the record: publishing it locks itself out, which it cannot undo"},
		{"another member's record with wrong grants", nil, bob, false,
			func(t *testing.T, s *sess) step { return s.next(t, alice, true).with(grantsOf(1, alice, bob)...) },
			session.ErrInvalidGrants, "a record published again needs exactly its grants, as the first time"},
		{"another member's record, not the next", rotated, bob, false,
			func(t *testing.T, s *sess) step { return s.nextOn(t, s.states[0], alice, true) }, session.ErrConflict,
			"a record published again must follow the head"},
		{"a non-member's record again", daveAdded, mallory, false,
			func(t *testing.T, s *sess) step { return s.lastStep().resent() }, session.ErrForbidden,
			"an outsider learns nothing of what the log holds"},
		{"outsider publishes another's addition", nil, mallory, false,
			func(t *testing.T, s *sess) step { return s.next(t, alice, false, add(t, dave)) }, session.ErrForbidden,
			"a record that does not make the caller a member is an outsider's to send"},
		{"outsider publishes a broken addition of itself", nil, mallory, false,
			func(t *testing.T, s *sess) step {
				return s.forge(t, alice, false, []memberlog.Op{add(t, mallory)}, func(c *memberlog.Change) { c.RosterDigest[0] ^= 1 })
			}, session.ErrForbidden, "an outsider's record is refused for its rights before its content"},
		{"outsider sends a member's record", nil, mallory, false,
			func(t *testing.T, s *sess) step { return s.next(t, alice, true) }, session.ErrForbidden,
			"not a member"},
		{"outsider's own record", nil, mallory, false,
			func(t *testing.T, s *sess) step { return s.forge(t, mallory, true, nil, nil) }, session.ErrForbidden,
			"not a member"},
		{"outsider with an oversize grant", nil, mallory, false,
			func(t *testing.T, s *sess) step {
				st := s.next(t, alice, true)
				return st.with(sized(st.grants[0], session.MaxGrantSize+1))
			}, session.ErrForbidden, "rights come before the request's content"},
		{"removed member", carolRemoved, carol, false,
			func(t *testing.T, s *sess) step { return s.forge(t, carol, true, nil, nil) }, session.ErrForbidden,
			"a removed member is an outsider"},
		{"member who left", carolLeft, carol, false,
			func(t *testing.T, s *sess) step { return s.forge(t, carol, true, nil, nil) }, session.ErrForbidden,
			"a member who left is an outsider"},
		{"unknown session", nil, alice, true,
			func(t *testing.T, s *sess) step { return s.next(t, alice, true) }, session.ErrUnknownSession,
			"no such session"},
		{"unknown session, outsider", nil, mallory, true,
			func(t *testing.T, s *sess) step { return s.next(t, alice, true) }, session.ErrUnknownSession,
			"an unknown session is unknown to everyone"},

		// Records that do not follow the head.
		{"stale record", rotated, bob, false,
			func(t *testing.T, s *sess) step { return s.nextOn(t, s.states[0], bob, true) }, session.ErrConflict,
			"alice appended first: reload and retry"},
		{"record from the future", nil, bob, false,
			func(t *testing.T, s *sess) step {
				first := s.next(t, alice, true)
				return s.nextOn(t, first.after, bob, true)
			}, session.ErrConflict, "record 2 on a head at 0: the caller missed one"},

		// Records the log's rules refuse.
		{"member adds", nil, bob, false,
			func(t *testing.T, s *sess) step { return s.forge(t, bob, false, []memberlog.Op{add(t, dave)}, nil) },
			session.ErrInvalidLog, "the default policy lets only admins add"},
		{"removal without a new epoch", nil, alice, false,
			func(t *testing.T, s *sess) step { return s.forge(t, alice, false, []memberlog.Op{remove(carol)}, nil) },
			session.ErrInvalidLog, "a removed member must not keep the current key"},
		{"member promotes itself", nil, bob, false,
			func(t *testing.T, s *sess) step {
				return s.forge(t, bob, false, []memberlog.Op{setRole(bob, admin)}, nil)
			}, session.ErrInvalidLog, "members do not change roles while an admin remains"},
		{"demoted admin adds", aliceDemoted, alice, false,
			func(t *testing.T, s *sess) step { return s.forge(t, alice, false, []memberlog.Op{add(t, dave)}, nil) },
			session.ErrInvalidLog, "roles are the log's: alice is a member now"},
		{"last admin steps down", nil, alice, false,
			func(t *testing.T, s *sess) step {
				return s.forge(t, alice, false, []memberlog.Op{setRole(alice, member)}, nil)
			}, session.ErrInvalidLog, "a session keeps an admin"},
		{"adds a member", nil, alice, false,
			func(t *testing.T, s *sess) step { return s.forge(t, alice, false, []memberlog.Op{add(t, bob)}, nil) },
			session.ErrInvalidLog, "bob is a member already"},
		{"wrong roster digest", nil, alice, false,
			func(t *testing.T, s *sess) step {
				return s.forge(t, alice, false, []memberlog.Op{add(t, dave)}, func(c *memberlog.Change) { c.RosterDigest[0] ^= 1 })
			}, session.ErrInvalidLog, "the digest commits to the roster after the record"},
		{"skipped epoch", nil, alice, false,
			func(t *testing.T, s *sess) step {
				return s.forge(t, alice, true, nil, func(c *memberlog.Change) { c.Epoch++ })
			}, session.ErrInvalidLog, "epoch 1 follows epoch 0"},
		{"bad signature", nil, alice, false,
			func(t *testing.T, s *sess) step { st := s.next(t, alice, true); return st.tampered(len(st.raw) - 1) },
			session.ErrInvalidLog, "the signature covers the record"},
		{"tampered record", nil, alice, false,
			func(t *testing.T, s *sess) step {
				st := s.next(t, alice, true)
				return st.tampered(len(st.raw) - memberlog.SignatureSize - 1) // the roster digest's last byte
			}, session.ErrInvalidLog, "the signature covers every byte"},
		{"impostor's card", nil, alice, false,
			func(t *testing.T, s *sess) step { return s.next(t, "alice-impostor", true) }, session.ErrInvalidLog,
			"signed with a card that does not chain from alice's anchor"},
		{"unpublished card generation", nil, alice, false,
			func(t *testing.T, s *sess) step { return s.next(t, "alice@1", true) }, session.ErrUnknownUser,
			"the signer's card of that generation is not in the directory"},
		{"another session's record", nil, alice, false,
			func(t *testing.T, s *sess) step { return f.create(t, alice, bob, carol).next(t, alice, true) },
			session.ErrInvalidLog, "a record names its session"},
		{"a genesis", nil, alice, false,
			func(t *testing.T, s *sess) step {
				g := f.genesis(t, alice, s.cid, bob, carol)
				return step{raw: g.raw, grants: g.grants}
			}, session.ErrInvalidLog, "a log has one genesis"},
		{"not a record", nil, alice, false,
			func(t *testing.T, s *sess) step { return step{raw: []byte("not a record")} }, session.ErrInvalidLog,
			"garbage does not parse"},

		// Grants that are not exactly those the record needs.
		{"add without its grant", nil, alice, false,
			func(t *testing.T, s *sess) step { return s.next(t, alice, false, add(t, dave)).with() },
			session.ErrInvalidGrants, "dave would be a member without the key"},
		{"add with a member's grant too", nil, alice, false,
			func(t *testing.T, s *sess) step {
				return s.next(t, alice, false, add(t, dave)).with(grantsOf(0, bob, dave)...)
			}, session.ErrInvalidGrants, "bob has the current key: the record gives him nothing"},
		{"add with a grant for the next epoch", nil, alice, false,
			func(t *testing.T, s *sess) step {
				return s.next(t, alice, false, add(t, dave)).with(grantsOf(1, dave)...)
			},
			session.ErrInvalidGrants, "an add with history grants the current epoch"},
		{"rotation without a member's grant", nil, alice, false,
			func(t *testing.T, s *sess) step { return s.next(t, alice, true).with(grantsOf(1, alice, bob)...) },
			session.ErrInvalidGrants, "carol would stay a member without the new key"},
		{"removal with a grant for the removed", nil, alice, false,
			func(t *testing.T, s *sess) step {
				return s.next(t, alice, true, remove(carol)).with(grantsOf(1, alice, bob, carol)...)
			}, session.ErrInvalidGrants, "a removed member must not get the new key"},
		{"rotation with a duplicate instead of a member's grant", nil, alice, false,
			func(t *testing.T, s *sess) step {
				return s.next(t, alice, true).with(grantsOf(1, alice, alice, bob)...)
			},
			session.ErrInvalidGrants, "the right count with a duplicate leaves carol without the key"},
		{"rotation with two grants for one member", nil, alice, false,
			func(t *testing.T, s *sess) step {
				return s.next(t, alice, true).with(grantsOf(1, alice, bob, bob, carol)...)
			}, session.ErrInvalidGrants, "one grant per member per epoch"},
		{"rotation with grants for the old epoch", nil, alice, false,
			func(t *testing.T, s *sess) step {
				return s.next(t, alice, true).with(grantsOf(0, alice, bob, carol)...)
			},
			session.ErrInvalidGrants, "a rotation grants the new epoch"},
		{"role change with a grant", nil, alice, false,
			func(t *testing.T, s *sess) step {
				return s.next(t, alice, false, setRole(bob, admin)).with(grantsOf(0, bob)...)
			}, session.ErrInvalidGrants, "a role change gives no key"},
		{"oversize grant", nil, alice, false,
			func(t *testing.T, s *sess) step {
				st := s.next(t, alice, false, add(t, dave))
				return st.with(sized(st.grants[0], session.MaxGrantSize+1))
			}, session.ErrInvalidGrants, "grants are at most session.MaxGrantSize bytes"},
		{"empty grant", nil, alice, false,
			func(t *testing.T, s *sess) step {
				st := s.next(t, alice, false, add(t, dave))
				g := st.grants[0]
				g.Grant = []byte{}
				return st.with(g)
			}, session.ErrInvalidGrants, "a grant without bytes carries no key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := f.create(t, alice, bob, carol)
			if tt.setup != nil {
				tt.setup(t, s)
			}
			s.mustMatch(t)
			st := tt.build(t, s)
			target := s.id
			if tt.unknown {
				target = unknownID
			}
			err := f.appendAs(t, tt.caller, target, st)
			if !is(err, tt.want) {
				t.Fatalf("Append = %v, want %v (%s)", err, tt.want, tt.reason)
			}
			if err == nil && st.after != nil {
				s.apply(st)
			}
			if d := s.diff(t); d != "" {
				t.Errorf("the session after Append (-want +got) (%s)\n%s", tt.reason, d)
			}
		})
	}
}
