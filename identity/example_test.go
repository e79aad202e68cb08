package identity_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
)

func Example() {
	// Real programs pass nil (crypto/rand) and the zero Options.
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	alice, _ := identity.Generate(testrand.New("alice"), "alice", identity.Options{Created: created})
	bob, _ := identity.Generate(testrand.New("bob"), "bob", identity.Options{Created: created, Kind: identity.KindX25519})

	// The card is what the directory publishes; anyone can parse and check it.
	card, err := identity.ParseCard(alice.Card().Marshal())
	fmt.Println(card.UserID(), card.Generation(), card.Kind(), err)

	// Both users compute the same safety number, whatever the order.
	sn := identity.ComputeSafetyNumber(alice.Card(), bob.Card())
	fmt.Println(sn.Equal(identity.ComputeSafetyNumber(bob.Card(), alice.Card())), len(sn.Digits()))

	// Bob pins Alice's card on first use; her rotated card chains to it.
	var pins identity.MemoryPins
	fmt.Println(identity.Check(&pins, alice.Card(), nil))
	alice2, _ := alice.Rotate(testrand.New("alice-2"), identity.Options{Created: created})
	fmt.Println(identity.Check(&pins, alice2.Card(), alice2.Cards()))

	// A card that is not chained to the pin is a key change.
	mallory, _ := identity.Generate(testrand.New("mallory"), "alice", identity.Options{Created: created})
	var kc *identity.KeyChangeError
	fmt.Println(errors.As(identity.Check(&pins, mallory.Card(), nil), &kc))

	// Secrets redact themselves.
	fmt.Printf("%v\n", alice2)
	// Output:
	// alice 0 hybrid <nil>
	// true 60
	// <nil>
	// <nil>
	// true
	// identity.Identity("alice" gen 1 c6d7e3e82599eef79554929c94fb801506618a9c4fba26bc987f7410a7742251, keys REDACTED)
}
