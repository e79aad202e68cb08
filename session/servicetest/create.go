package servicetest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/session"
)

// nonceOffset is where a genesis's nonce starts: after the version and
// record type bytes (docs/PROTOCOL.md §10.2).
const nonceOffset = 2

func testCreate(t *testing.T, f *fixture) {
	base := f.create(t, alice, bob)
	base.mustMatch(t)
	// fresh returns an honest genesis by alice, with bob, for a new
	// channel.
	fresh := func(t *testing.T) gen { return f.genesis(t, alice, f.channel(), bob) }
	withGrants := func(g gen, grants ...session.GrantRecord) gen {
		g.grants = grants
		return g
	}
	sized := func(user string, n int) session.GrantRecord {
		g := f.grants(0, user)[0]
		g.Grant = append(g.Grant, bytes.Repeat([]byte{'a'}, n-len(g.Grant))...)
		return g
	}
	tests := []struct {
		name   string
		caller string
		build  func(t *testing.T) gen
		want   error // ErrSessionExists: a *SessionExistsError naming base
		reason string
	}{
		{"creator with members", alice, fresh, nil,
			"the creator stores its genesis with one epoch-0 grant per member"},
		{"creator alone", alice, func(t *testing.T) gen { return f.genesis(t, alice, f.channel()) }, nil,
			"a session may start with its creator only"},
		{"the same genesis again", alice, func(*testing.T) gen { return base.genesis },
			nil, "a creator that lost the answer retries; the channel's session is that genesis's"},
		{"the same genesis again, by a member", bob, func(*testing.T) gen { return base.genesis },
			session.ErrForbidden, "only the creator stores its genesis, even again"},
		{"a member sends the genesis", bob, fresh, session.ErrForbidden,
			"the caller must be the genesis's creator"},
		{"an outsider sends the genesis", mallory, fresh, session.ErrForbidden,
			"the caller must be the genesis's creator"},
		{"creator without a card", ghost, func(t *testing.T) gen { return f.genesis(t, ghost, f.channel()) }, session.ErrUnknownUser,
			"no card to verify the signature with: publish one first"},
		{"unpublished card generation", alice, func(t *testing.T) gen { return f.genesis(t, "alice@1", f.channel(), bob) },
			session.ErrUnknownUser, "the signer's card of that generation is not in the directory"},
		{"impostor's card", alice, func(t *testing.T) gen { return f.genesis(t, "alice-impostor", f.channel(), bob) },
			session.ErrInvalidLog, "signed with a card that is not the one the directory has for alice"},
		{"bad signature", alice, func(t *testing.T) gen {
			g := fresh(t)
			g.raw = flip(g.raw, len(g.raw)-1)
			return g
		}, session.ErrInvalidLog, "the signature covers the genesis"},
		{"tampered nonce", alice, func(t *testing.T) gen {
			g := fresh(t)
			g.raw = flip(g.raw, nonceOffset)
			return g
		}, session.ErrInvalidLog, "the signature covers every byte (CreateTampered tries them all)"},
		{"a change record", alice, func(t *testing.T) gen {
			return gen{raw: base.next(t, alice, true).raw, grants: f.grants(1, alice, bob)}
		}, session.ErrInvalidLog, "a session starts with a genesis"},
		{"not a record", alice, func(*testing.T) gen { return gen{raw: []byte("not a record"), grants: f.grants(0, alice)} },
			session.ErrInvalidLog, "garbage does not parse"},
		{"empty", alice, func(*testing.T) gen { return gen{grants: f.grants(0, alice)} }, session.ErrInvalidLog,
			"no record at all"},
		{"no grants", alice, func(t *testing.T) gen { return withGrants(fresh(t)) }, session.ErrInvalidGrants,
			"every member needs its epoch-0 grant"},
		{"a member's grant missing", alice, func(t *testing.T) gen { return withGrants(fresh(t), f.grants(0, alice)...) },
			session.ErrInvalidGrants, "bob would be a member without the key"},
		{"a grant for a non-member", alice, func(t *testing.T) gen { return withGrants(fresh(t), f.grants(0, alice, bob, carol)...) },
			session.ErrInvalidGrants, "carol is not in the genesis: the log does not give her the key"},
		{"a non-member's grant instead of a member's", alice, func(t *testing.T) gen {
			return withGrants(fresh(t), f.grants(0, alice, carol)...)
		}, session.ErrInvalidGrants, "the right count is not enough: the grantees must be the members"},
		{"two grants for one member", alice, func(t *testing.T) gen {
			return withGrants(fresh(t), f.grants(0, alice, bob, bob)...)
		}, session.ErrInvalidGrants, "one grant per member"},
		{"a duplicate instead of a member's grant", alice, func(t *testing.T) gen {
			return withGrants(fresh(t), f.grants(0, alice, alice)...)
		}, session.ErrInvalidGrants, "the right count with a duplicate leaves bob without the key"},
		{"grants for epoch 1", alice, func(t *testing.T) gen { return withGrants(fresh(t), f.grants(1, alice, bob)...) },
			session.ErrInvalidGrants, "a genesis starts epoch 0"},
		{"oversize grant", alice, func(t *testing.T) gen {
			return withGrants(fresh(t), f.grants(0, alice)[0], sized(bob, session.MaxGrantSize+1))
		}, session.ErrInvalidGrants, "grants are at most session.MaxGrantSize bytes"},
		{"grant of the largest size", alice, func(t *testing.T) gen {
			return withGrants(fresh(t), f.grants(0, alice)[0], sized(bob, session.MaxGrantSize))
		}, nil, "session.MaxGrantSize bytes are allowed"},
		{"empty grant", alice, func(t *testing.T) gen {
			g := fresh(t)
			g.grants[1].Grant = []byte{}
			return g
		}, session.ErrInvalidGrants, "a grant without bytes carries no key"},
		{"channel taken, another creator", bob, func(t *testing.T) gen { return f.genesis(t, bob, base.cid, alice) },
			session.ErrSessionExists, "a channel has one session: the caller learns which, to open it"},
		{"channel taken, another genesis by its creator", alice, func(t *testing.T) gen { return f.genesis(t, alice, base.cid, bob) },
			session.ErrSessionExists, "a new genesis is a new session, even from the same creator"},
		{"channel taken, another user's genesis", bob, func(t *testing.T) gen { return f.genesis(t, mallory, base.cid) },
			session.ErrForbidden, "rights come before the channel's state"},
		{"channel taken, bad grants", bob, func(t *testing.T) gen { return withGrants(f.genesis(t, bob, base.cid)) },
			session.ErrInvalidGrants, "a request is judged whole before the channel's state"},
		{"channel taken, invalid genesis", alice, func(t *testing.T) gen {
			g := f.genesis(t, alice, base.cid, bob)
			g.raw = flip(g.raw, len(g.raw)-1)
			return g
		}, session.ErrInvalidLog, "a request is judged whole before the channel's state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := tt.build(t)
			err := f.createAs(t, tt.caller, g)
			if !is(err, tt.want) {
				t.Fatalf("Create = %v, want %v (%s)", err, tt.want, tt.reason)
			}
			if tt.want == session.ErrSessionExists {
				var e *session.SessionExistsError
				if !errors.As(err, &e) || e.ID != base.id || e.ChannelCID != base.cid {
					t.Errorf("Create = %#v, want a *SessionExistsError naming session %v of %q (%s)", err, base.id, base.cid, tt.reason)
				}
			}
			if d := base.diff(t); d != "" {
				t.Errorf("the channel's existing session after Create (-want +got) (%s)\n%s", tt.reason, d)
			}
			id := session.ID(memberlog.SessionIDOf(g.raw))
			if err == nil {
				if id != base.id {
					if d := newSess(f, g).diff(t); d != "" {
						t.Errorf("the new session (-want +got) (%s)\n%s", tt.reason, d)
					}
				}
				return
			}
			if id == base.id {
				return
			}
			if _, err := f.as(tt.caller).Head(t.Context(), id); !errors.Is(err, session.ErrUnknownSession) {
				t.Errorf("Head of the refused genesis's session: %v, want ErrUnknownSession (%s)", err, tt.reason)
			}
			if g.cid != "" && g.cid != base.cid {
				if got, err := f.as(tt.caller).Lookup(t.Context(), g.cid); !errors.Is(err, session.ErrUnknownSession) {
					t.Errorf("Lookup of the refused genesis's channel: %v, %v; want ErrUnknownSession (%s)", got, err, tt.reason)
				}
			}
		})
	}
}

// testCreateTampered flips each byte of a genesis in turn: every one is
// refused and stores nothing, then the genesis itself is stored. A flip
// may make the genesis unparsable or its signature wrong (ErrInvalidLog),
// name another creator (ErrForbidden) or another card generation
// (ErrUnknownUser).
func testCreateTampered(t *testing.T, f *fixture) {
	g := f.genesis(t, alice, f.channel(), bob)
	for i := range g.raw {
		bad := g
		bad.raw = flip(g.raw, i)
		err := f.createAs(t, alice, bad)
		if !errors.Is(err, session.ErrInvalidLog) && !errors.Is(err, session.ErrForbidden) && !errors.Is(err, session.ErrUnknownUser) {
			t.Errorf("Create with byte %d flipped = %v, want ErrInvalidLog, ErrForbidden or ErrUnknownUser", i, err)
		}
	}
	if id, err := f.as(alice).Lookup(t.Context(), g.cid); !errors.Is(err, session.ErrUnknownSession) {
		t.Fatalf("Lookup after tampered genesis = %v, %v; want ErrUnknownSession", id, err)
	}
	if err := f.createAs(t, alice, g); err != nil {
		t.Fatalf("Create with the genesis itself: %v", err)
	}
	if d := newSess(f, g).diff(t); d != "" {
		t.Errorf("the session (-want +got)\n%s", d)
	}
}
