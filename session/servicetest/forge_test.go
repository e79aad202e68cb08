package servicetest

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/memberlog"
)

// TestForge checks that forge, given operations the log allows, signs the
// record memberlog accepts, with the grants memberlog.GrantsNeeded asks
// for: so a record Run forges to break one rule breaks that rule only.
func TestForge(t *testing.T) {
	t.Parallel()
	cards := func(user string, a memberlog.Anchor, gen uint32) ([]*identity.Card, error) {
		return person(t, user).Cards()[a.Generation : gen+1], nil
	}
	admin := memberlog.RoleAdmin
	tests := []struct {
		name     string
		signer   string
		newEpoch bool
		ops      []memberlog.Op
		reason   string
	}{
		{"add", alice, false, []memberlog.Op{add(t, dave)}, "an add with history"},
		{"add without history", alice, true, []memberlog.Op{add(t, dave)}, "an add with a new epoch"},
		{"removal", bob, true, []memberlog.Op{remove(carol)}, "a member removes another"},
		{"promotion", alice, false, []memberlog.Op{setRole(bob, admin)}, "a role change"},
		{"rotation", carol, true, nil, "no operation"},
		{"leave", carol, false, []memberlog.Op{remove(carol)}, "the actor removes itself"},
		{"forced promotion", bob, true, []memberlog.Op{setRole(bob, admin), remove(alice)},
			"two operations, given out of order"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fixture{}
			s := newSess(f, f.genesis(t, alice, "messaging:forge", bob, carol))
			st := s.forge(t, tt.signer, tt.newEpoch, tt.ops, nil)
			after, err := s.st.Apply(st.raw, cards)
			if err != nil {
				t.Fatalf("Apply(forged record) = %v (%s)", err, tt.reason)
			}
			epoch, users := memberlog.GrantsNeeded(s.st, after)
			var got []string
			for _, g := range st.grants {
				if g.Epoch != epoch {
					t.Errorf("forged grant for %s at epoch %d, want epoch %d (%s)", g.Grantee, g.Epoch, epoch, tt.reason)
				}
				got = append(got, g.Grantee)
			}
			slices.Sort(got)
			if d := cmp.Diff(users, got, cmpOpts); d != "" {
				t.Errorf("forged grants' grantees (-want +got) (%s)\n%s", tt.reason, d)
			}
		})
	}
}
