package session

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"filippo.io/age"
	"github.com/google/go-cmp/cmp"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
)

func fixedLookup(cards ...*identity.Card) CardLookup {
	return func(user string, gen uint32) (*identity.Card, error) {
		for _, c := range cards {
			if c.UserID() == user && c.Generation() == gen {
				return c, nil
			}
		}
		return nil, ErrUnknownUser
	}
}

func TestGrantRoundTrip(t *testing.T) {
	t.Parallel()
	for _, kind := range []identity.Kind{identity.KindHybrid, identity.KindX25519} {
		alice := newIdentity(t, "alice", kind)
		bob := newIdentity(t, "bob", kind)
		s, _ := newSession(t, "s", cid).Rotate()
		raw, err := NewGrant(alice, bob.Card(), s, 1)
		if err != nil {
			t.Fatal(err)
		}
		g, err := OpenGrant(raw, bob, fixedLookup(alice.Card()))
		if err != nil {
			t.Fatalf("%v: OpenGrant: %v", kind, err)
		}
		k1, _ := s.Key(1)
		want := Grant{SessionID: s.ID(), Epoch: 1, ChannelCID: cid, Grantee: "bob", Granter: "alice", Key: k1}
		if diff := cmp.Diff(want, *g, cmp.Comparer(EpochKey.Equal)); diff != "" {
			t.Errorf("%v: grant (-want +got):\n%s", kind, diff)
		}
		// A standard age file: age itself opens it with bob's identity.
		r, err := age.Decrypt(bytes.NewReader(raw), bob)
		if err != nil {
			t.Fatalf("%v: age.Decrypt: %v", kind, err)
		}
		if body, _ := io.ReadAll(r); !bytes.Contains(body, k1.Bytes()) {
			t.Errorf("%v: the age payload does not carry the key", kind)
		}
		if _, err := NewGrant(alice, bob.Card(), s, 7); !errors.Is(err, ErrUnknownEpoch) {
			t.Errorf("grant for an epoch the session lacks: %v", err)
		}
	}
}

func TestGrantRejects(t *testing.T) {
	t.Parallel()
	alice := newIdentity(t, "alice", identity.KindX25519)
	bob := newIdentity(t, "bob", identity.KindX25519)
	carol := newIdentity(t, "carol", identity.KindX25519)
	s := newSession(t, "s", cid)
	raw, _ := NewGrant(alice, bob.Card(), s, 0)
	forCarol, _ := NewGrant(alice, carol.Card(), s, 0)
	// carol re-wraps her grant's payload for bob: right key, wrong grantee.
	payload := func() []byte {
		r, _ := age.Decrypt(bytes.NewReader(forCarol), carol)
		b, _ := io.ReadAll(r)
		return b
	}()
	wrap := func(payload []byte, to ...age.Recipient) []byte {
		var b bytes.Buffer
		w, _ := age.Encrypt(&b, to...)
		w.Write(payload)
		w.Close()
		return b.Bytes()
	}
	rewrapped := wrap(payload, bob.Card().Recipient())
	// bob's own payload, re-wrapped for bob alone (opens) and for bob and
	// carol in one file (must not: a grant has one stanza).
	bobPayload := func() []byte {
		r, _ := age.Decrypt(bytes.NewReader(raw), bob)
		b, _ := io.ReadAll(r)
		return b
	}()
	if _, err := OpenGrant(wrap(bobPayload, bob.Card().Recipient()), bob, fixedLookup(alice.Card())); err != nil {
		t.Fatalf("a re-wrapped one-stanza grant: %v", err)
	}
	lookupErr := errors.New("directory down")
	tests := []struct {
		name, reason string
		grant        []byte
		lookup       CardLookup
		want         error
	}{
		{"wrong granter card", "the signature must be alice's", raw, fixedLookup(impostor(t, "alice").Card()), ErrDecrypt},
		{"for another grantee", "a grant names its grantee", rewrapped, fixedLookup(alice.Card()), ErrDecrypt},
		{"two stanzas", "a grant is wrapped for one member only", wrap(bobPayload, bob.Card().Recipient(), carol.Card().Recipient()), fixedLookup(alice.Card()), ErrDecrypt},
		{"two stanzas, mine second", "the stanza count is checked, not the order", wrap(bobPayload, carol.Card().Recipient(), bob.Card().Recipient()), fixedLookup(alice.Card()), ErrDecrypt},
		{"not for me", "carol's grant does not open for bob", forCarol, fixedLookup(alice.Card()), ErrDecrypt},
		{"lookup fails", "lookup errors are returned as they are", raw, func(string, uint32) (*identity.Card, error) { return nil, lookupErr }, lookupErr},
		{"oversize", "input is bounded", make([]byte, MaxGrantSize+1), fixedLookup(alice.Card()), ErrDecrypt},
	}
	for _, tc := range tests {
		if _, err := OpenGrant(tc.grant, bob, tc.lookup); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v; %s", tc.name, err, tc.want, tc.reason)
		}
	}
	for i := range raw {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		if g, err := OpenGrant(b, bob, fixedLookup(alice.Card())); !errors.Is(err, ErrDecrypt) || g != nil {
			t.Fatalf("byte %d of %d flipped: err = %v, want ErrDecrypt", i, len(raw), err)
		}
	}
	for n := 0; n < len(raw); n += 7 {
		if _, err := OpenGrant(raw[:n], bob, fixedLookup(alice.Card())); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("truncated to %d: err = %v", n, err)
		}
	}
}

// impostor makes a fresh identity whose card claims user.
func impostor(t *testing.T, user string) *identity.Identity {
	t.Helper()
	id, err := identity.Generate(testrand.New("impostor"), user, identity.Options{Kind: identity.KindX25519, Created: created})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestGrantSizeBound: the largest grant NewGrant can make — a hybrid
// stanza, a channel CID of MaxChannelCIDLen bytes, user IDs of the longest
// length — fits in MaxGrantSize, and opens; one byte more than
// MaxGrantSize is refused before age reads anything.
func TestGrantSizeBound(t *testing.T) {
	t.Parallel()
	long := func(c byte) string { return string(bytes.Repeat([]byte{c}, identity.MaxUserIDLen)) }
	longCID := "messaging:" + string(bytes.Repeat([]byte("c"), MaxChannelCIDLen-len("messaging:")))
	for _, tc := range []struct {
		name     string
		kind     identity.Kind
		granter  string
		grantee  string
		cid      string
		min, max int // the sizes the doc of MaxGrantSize states
	}{
		{"hybrid, short IDs", identity.KindHybrid, "alice", "bob", cid, 1700, 1900},
		{"hybrid, longest IDs", identity.KindHybrid, long('a'), long('b'), longCID, 3322, 3322},
		{"x25519, longest IDs", identity.KindX25519, long('a'), long('b'), longCID, 1, 3322},
	} {
		t.Run(tc.name, func(t *testing.T) {
			granter := newIdentity(t, tc.granter, tc.kind)
			grantee := newIdentity(t, tc.grantee, tc.kind)
			s := newSession(t, "size", tc.cid)
			raw, err := NewGrant(granter, grantee.Card(), s, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) < tc.min || len(raw) > tc.max || len(raw) > MaxGrantSize {
				t.Fatalf("%d bytes; want %d to %d, and at most MaxGrantSize (%d)", len(raw), tc.min, tc.max, MaxGrantSize)
			}
			t.Logf("%d bytes, %d below MaxGrantSize", len(raw), MaxGrantSize-len(raw))
			if _, err := OpenGrant(raw, grantee, fixedLookup(granter.Card())); err != nil {
				t.Fatalf("the largest grant does not open: %v", err)
			}
		})
	}
}
