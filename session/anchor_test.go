package session

import (
	"context"
	"errors"
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/internal/testrand"
)

// swappedDirectory is a Directory that serves an impostor's card for one
// user, as a key service substituting a key would.
type swappedDirectory struct {
	Directory
	card *identity.Card
}

func (d *swappedDirectory) Latest(ctx context.Context, users []string) (map[string]*identity.Card, error) {
	out, err := d.Directory.Latest(ctx, users)
	if _, ok := out[d.card.UserID()]; ok {
		out[d.card.UserID()] = d.card
	}
	return out, err
}

func (d *swappedDirectory) History(ctx context.Context, userID string) ([]*identity.Card, error) {
	if userID == d.card.UserID() {
		return []*identity.Card{d.card}, nil
	}
	return d.Directory.History(ctx, userID)
}

// TestRotationWrapsForAnchoredCards: a member who never saw bob's card
// rotates the session; the directory serves an impostor's card for bob. The
// log anchors bob to the card alice verified when she added him, so the new
// epoch's key must not be wrapped for the impostor.
func TestRotationWrapsForAnchoredCards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, _, carol := w.user(t, "alice"), w.user(t, "bob"), w.user(t, "carol")
	s, err := alice.Create(ctx, cid, []string{"bob", "carol"})
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := identity.Generate(testrand.New("impostor-bob"), "bob", identity.Options{Kind: identity.KindX25519, Created: created})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Identity: carol.Identity(), Service: w.svc.As("carol"), Directory: &swappedDirectory{Directory: &w.dir, card: impostor.Card()},
		Rand: testrand.New("carol-rotates")}
	rotator, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rotator.OpenSession(ctx, s.ID(), cid); err != nil {
		t.Fatal(err)
	}
	rotateErr := rotator.Rotate(ctx, s.ID())
	grants, err := w.svc.As("bob").Grants(ctx, s.ID())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range grants {
		if _, err := OpenGrant(g.Grant, impostor, func(u string, gen uint32) (*identity.Card, error) {
			h, err := w.dir.History(ctx, u)
			if err != nil || int(gen) >= len(h) {
				return nil, ErrUnknownUser
			}
			return h[gen], nil
		}); err == nil {
			t.Fatalf("the impostor opened the grant of epoch %d (rotation: %v)", g.Epoch, rotateErr)
		}
	}
	if rotateErr == nil {
		t.Fatal("rotating with an impostor's card for a member succeeded")
	}
}

// TestRetiredGenerationSignsNoRecord: alice rotated her identity, and her
// retired generation-0 key leaked. With a service that stores what it is
// given (or Stream acting as alice at one that accepts its tokens), a
// record signed by the retired key adds mallory as an admin: a reader who
// already trusts alice's generation 1 refuses it (docs/PROTOCOL.md §10.4).
func TestRetiredGenerationSignsNoRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var w world
	alice, bob := w.user(t, "alice"), w.user(t, "bob")
	mallory := newIdentity(t, "mallory", identity.KindX25519)
	if err := w.dir.Publish(mallory.Card()); err != nil {
		t.Fatal(err)
	}
	s, err := alice.Create(ctx, cid, []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	retired := alice.Identity()
	next, err := retired.Rotate(testrand.New("alice-gen1"), identity.Options{Created: created})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.dir.Publish(next.Card()); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Card(ctx, "alice", 1); err != nil { // bob now trusts generation 1
		t.Fatal(err)
	}
	recs, err := w.svc.As("bob").Log(ctx, s.ID(), 0)
	if err != nil {
		t.Fatal(err)
	}
	st, err := memberlog.Verify(recs[0], [memberlog.IDSize]byte(s.ID()), func(u string, a memberlog.Anchor, gen uint32) ([]*identity.Card, error) {
		h, err := w.dir.History(ctx, u)
		if err != nil {
			return nil, err
		}
		return h[a.Generation : gen+1], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := st.NewChange(retired, []memberlog.Op{{Kind: memberlog.OpAdd,
		Member: memberlog.Member{UserID: "mallory", Anchor: memberlog.AnchorOf(mallory.Card()), Role: memberlog.RoleAdmin}}}, false, [32]byte{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	svc := &lyingService{Service: w.svc.As("bob"), log: func(r [][]byte) [][]byte { return append(r, raw) }}
	reader := as(t, &w, bob, svc, nil, 0)
	info, err := reader.Info(ctx, s.ID())
	if !errors.Is(err, ErrInvalidLog) {
		t.Fatalf("a record signed by alice's retired key: err = %v, members %v; want ErrInvalidLog", err, info.Members)
	}
}
