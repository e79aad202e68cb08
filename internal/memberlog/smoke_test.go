package memberlog

import (
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
)

func TestSmoke(t *testing.T) {
	ids := map[string]*identity.Identity{}
	for _, u := range []string{"alice", "bob", "carol"} {
		id, err := identity.Generate(testrand.New(u), u, identity.Options{Kind: identity.KindX25519})
		if err != nil {
			t.Fatal(err)
		}
		ids[u] = id
	}
	cards := func(u string, a Anchor, gen uint32) ([]*identity.Card, error) {
		return ids[u].Cards()[a.Generation : gen+1], nil
	}
	g, s0, err := NewGenesis(ids["alice"], ids["alice"].Card(), "messaging:x",
		[]Member{{UserID: "bob", Anchor: AnchorOf(ids["bob"].Card())}}, DefaultPolicy, [32]byte{1}, [16]byte{2}, 1)
	if err != nil {
		t.Fatal(err)
	}
	v0, err := Verify(g, SessionIDOf(g), cards)
	if err != nil {
		t.Fatal(err)
	}
	if v0.Head() != s0.Head() || len(v0.Members()) != 2 {
		t.Fatal("state mismatch")
	}
	c1, s1, err := s0.NewChange(ids["alice"], []Op{{Kind: OpAdd, Member: Member{UserID: "carol", Anchor: AnchorOf(ids["carol"].Card())}}}, false, [32]byte{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	c2, s2, err := s1.NewChange(ids["bob"], []Op{{Kind: OpRemove, Member: Member{UserID: "carol"}}}, true, [32]byte{3}, 3)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := v0.Apply(c1, cards)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := v1.Apply(c2, cards)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Head() != s2.Head() || v2.Epoch() != 1 || len(v2.Readers()) != 2 || !v2.CheckCommitment(1, [32]byte{3}) {
		t.Fatalf("state after: epoch %d readers %v", v2.Epoch(), v2.Readers())
	}
	if _, _, err := s1.NewChange(ids["bob"], []Op{{Kind: OpAdd, Member: Member{UserID: "dave"}}}, false, [32]byte{}, 3); err == nil {
		t.Fatal("a member added someone under the default policy")
	}
	if _, err := v0.Apply(c2, cards); err == nil {
		t.Fatal("a skipped record was accepted")
	}
}
