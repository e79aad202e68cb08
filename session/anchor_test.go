package session

import (
	"context"
	"testing"

	"github.com/veilchat/veil/identity"
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
