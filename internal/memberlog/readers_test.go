package memberlog

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
)

// TestReaders follows R(e) through adds with and without history, leaves
// and rotations (docs/PROTOCOL.md §10.4).
func TestReaders(t *testing.T) {
	ids := map[string]*identity.Identity{}
	for _, u := range []string{"alice", "bob", "carol"} {
		id, err := identity.Generate(testrand.New("readers/"+u), u, identity.Options{Kind: identity.KindX25519})
		if err != nil {
			t.Fatal(err)
		}
		ids[u] = id
	}
	add := func(u string) Op { return Op{Kind: OpAdd, Member: Member{UserID: u, Anchor: AnchorOf(ids[u].Card())}} }
	remove := func(u string) Op { return Op{Kind: OpRemove, Member: Member{UserID: u}} }
	_, s, err := NewGenesis(ids["alice"], ids["alice"].Card(), "messaging:readers",
		[]Member{{UserID: "bob", Anchor: AnchorOf(ids["bob"].Card())}}, DefaultPolicy, [32]byte{1}, [16]byte{2}, 1)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name     string
		actor    string
		ops      []Op
		newEpoch bool
		want     []string
		reason   string
	}{
		{"add with history", "alice", []Op{add("carol")}, false, []string{"alice", "bob", "carol"}, "carol may read the epoch she joins"},
		{"leave", "carol", []Op{remove("carol")}, false, []string{"alice", "bob", "carol"}, "carol still holds the key of the epoch she left"},
		{"re-add with history", "alice", []Op{add("carol")}, false, []string{"alice", "bob", "carol"}, "R(e) is a set: carol is named once"},
		{"rotate", "bob", nil, true, []string{"alice", "bob", "carol"}, "a new epoch starts with the roster"},
		{"leave again", "carol", []Op{remove("carol")}, false, []string{"alice", "bob", "carol"}, "carol holds the key of epoch 1"},
		{"remove", "alice", []Op{remove("bob")}, true, []string{"alice"}, "a removal's new epoch leaves out bob and carol"},
	}
	for i, st := range steps {
		_, next, err := s.NewChange(ids[st.actor], st.ops, st.newEpoch, [32]byte{byte(i + 3)}, uint64(i+2))
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if diff := cmp.Diff(st.want, next.Readers()); diff != "" {
			t.Errorf("%s: readers (-want +got):\n%s\n%s", st.name, diff, st.reason)
		}
		if !slices.IsSorted(next.Readers()) {
			t.Errorf("%s: readers not sorted", st.name)
		}
		s = next
	}
}
