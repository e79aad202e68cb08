package memberlog_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/internal/testrand"
)

// users generates the example's identities. Real ones come from
// identity.Generate(nil, ...), with crypto/rand.
func users(names ...string) (map[string]*identity.Identity, error) {
	out := map[string]*identity.Identity{}
	for _, name := range names {
		id, err := identity.Generate(testrand.New(name), name, identity.Options{Kind: identity.KindX25519, Created: time.Unix(1_700_000_000, 0)})
		if err != nil {
			return nil, err
		}
		out[name] = id
	}
	return out, nil
}

// directory is a CardSource over the users' own card histories. A real one
// asks the key service: the State checks whatever it answers.
func directory(ids map[string]*identity.Identity) memberlog.CardSource {
	return func(userID string, anchor memberlog.Anchor, gen uint32) ([]*identity.Card, error) {
		id, ok := ids[userID]
		if !ok || gen >= uint32(len(id.Cards())) || anchor.Generation > gen {
			return nil, fmt.Errorf("no card of %q at generation %d", userID, gen)
		}
		return id.Cards()[anchor.Generation : gen+1], nil
	}
}

// Alice creates a session with Bob; a reader verifies the genesis against
// the session ID that Stream stores.
func ExampleNewGenesis() {
	ids, err := users("alice", "bob")
	if err != nil {
		fmt.Println(err)
		return
	}
	alice, bob := ids["alice"], ids["bob"]
	var nonce [memberlog.NonceSize]byte
	rand.Read(nonce[:])
	var commitment [memberlog.HashSize]byte // of epoch 0's key: package session computes it
	genesis, _, err := memberlog.NewGenesis(alice, alice.Card(), "messaging:general",
		[]memberlog.Member{{UserID: "bob", Anchor: memberlog.AnchorOf(bob.Card()), Role: memberlog.RoleMember}},
		memberlog.DefaultPolicy, commitment, nonce, uint64(time.Now().Unix()))
	if err != nil {
		fmt.Println(err)
		return
	}

	s, err := memberlog.Verify(genesis, memberlog.SessionIDOf(genesis), directory(ids))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range s.Members() {
		fmt.Println(m.UserID, m.Role)
	}
	fmt.Println("epoch", s.Epoch(), "readers", s.Readers())
	// Output:
	// alice admin
	// bob member
	// epoch 0 readers [alice bob]
}

// Bob, a member, removes Carol with a new epoch, as the default policy lets
// every member do; a reader applies his record and refuses one Carol
// signed on the head before it.
func ExampleState_Apply() {
	ids, err := users("alice", "bob", "carol")
	if err != nil {
		fmt.Println(err)
		return
	}
	cards := directory(ids)
	var members []memberlog.Member
	for _, name := range []string{"bob", "carol"} {
		members = append(members, memberlog.Member{UserID: name, Anchor: memberlog.AnchorOf(ids[name].Card())})
	}
	var nonce [memberlog.NonceSize]byte
	rand.Read(nonce[:])
	genesis, s0, err := memberlog.NewGenesis(ids["alice"], ids["alice"].Card(), "messaging:general", members, memberlog.DefaultPolicy, [memberlog.HashSize]byte{}, nonce, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	removal, _, err := s0.NewChange(ids["bob"], []memberlog.Op{{Kind: memberlog.OpRemove, Member: memberlog.Member{UserID: "carol"}}}, true, [memberlog.HashSize]byte{1}, 2)
	if err != nil {
		fmt.Println(err)
		return
	}
	rotation, _, err := s0.NewChange(ids["carol"], nil, true, [memberlog.HashSize]byte{2}, 2)
	if err != nil {
		fmt.Println(err)
		return
	}

	reader, err := memberlog.Verify(genesis, memberlog.SessionIDOf(genesis), cards)
	if err != nil {
		fmt.Println(err)
		return
	}
	reader, err = reader.Apply(removal, cards)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("epoch", reader.Epoch(), "readers", reader.Readers())
	if _, err := reader.Apply(rotation, cards); errors.Is(err, memberlog.ErrInvalid) {
		fmt.Println("refused:", err)
	}
	// Output:
	// epoch 1 readers [alice bob]
	// refused: memberlog: invalid record 2: sequence number 1, want 2
}
