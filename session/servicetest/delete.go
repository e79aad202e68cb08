package servicetest

import (
	"errors"
	"testing"

	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/session"
)

func testDelete(t *testing.T, f *fixture) {
	bobForcedAdmin := func(t *testing.T, s *sess) {
		s.do(t, bob, true, remove(alice), setRole(bob, memberlog.RoleAdmin))
	}
	tests := []struct {
		name    string
		setup   setup
		caller  string
		unknown bool
		want    error
		reason  string
	}{
		{"creator", nil, alice, false, nil, "the creator is an admin"},
		{"promoted admin", bobAdmin, bob, false, nil, "roles are the log's: bob is an admin now"},
		{"admin by forced promotion", bobForcedAdmin, bob, false, nil, "bob promoted himself removing the last admin"},
		{"member", nil, bob, false, session.ErrForbidden, "admins only"},
		{"demoted admin", aliceDemoted, alice, false, session.ErrForbidden, "roles are the log's: alice is a member now"},
		{"removed admin", aliceRemoved, alice, false, session.ErrForbidden, "a removed admin is an outsider"},
		{"admin who left", aliceLeft, alice, false, session.ErrForbidden, "an admin who left is an outsider"},
		{"outsider", nil, mallory, false, session.ErrForbidden, "not a member"},
		{"unknown session", nil, alice, true, session.ErrUnknownSession, "no such session"},
		{"unknown session, outsider", nil, mallory, true, session.ErrUnknownSession,
			"an unknown session is unknown to everyone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := f.create(t, alice, bob, carol)
			if tt.setup != nil {
				tt.setup(t, s)
			}
			s.mustMatch(t)
			target := s.id
			if tt.unknown {
				target = unknownID
			}
			// A record the caller could append, prepared before the
			// session goes.
			var next step
			if _, member := s.st.Member(tt.caller); member {
				next = s.next(t, tt.caller, true)
			}
			err := f.as(tt.caller).Delete(t.Context(), target)
			if !is(err, tt.want) {
				t.Fatalf("Delete = %v, want %v (%s)", err, tt.want, tt.reason)
			}
			s.deleted = err == nil && !tt.unknown
			if d := s.diff(t); d != "" {
				t.Errorf("the session after Delete (-want +got) (%s)\n%s", tt.reason, d)
			}
			if !s.deleted {
				return
			}
			if err := f.appendAs(t, tt.caller, s.id, next); !errors.Is(err, session.ErrUnknownSession) {
				t.Errorf("Append after Delete = %v, want ErrUnknownSession (%s)", err, tt.reason)
			}
			if err := f.as(tt.caller).Delete(t.Context(), s.id); !errors.Is(err, session.ErrUnknownSession) {
				t.Errorf("Delete after Delete = %v, want ErrUnknownSession (%s)", err, tt.reason)
			}
			// The channel is free again.
			again := f.genesis(t, carol, s.cid, bob)
			if err := f.createAs(t, carol, again); err != nil {
				t.Fatalf("Create on the channel after Delete: %v (%s)", err, tt.reason)
			}
			if d := newSess(f, again).diff(t); d != "" {
				t.Errorf("the channel's new session (-want +got) (%s)\n%s", tt.reason, d)
			}
		})
	}
}
