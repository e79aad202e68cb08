package identity_test

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
)

func Example() {
	// Real programs pass nil (crypto/rand) and the zero Options; the fixed
	// randomness and time make the fingerprint below reproducible.
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	alice, err := identity.Generate(testrand.New("alice"), "alice", identity.Options{Created: created})
	if err != nil {
		log.Fatal(err)
	}
	bob, err := identity.Generate(testrand.New("bob"), "bob", identity.Options{Created: created, Kind: identity.KindX25519})
	if err != nil {
		log.Fatal(err)
	}

	// The card is what the directory publishes; anyone can parse and check it.
	card, err := identity.ParseCard(alice.Card().Marshal())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(card.UserID(), card.Generation(), card.Kind())

	// Both users compute the same safety number, whatever the order.
	sn := identity.ComputeSafetyNumber(alice.Card(), bob.Card())
	fmt.Println(sn.Equal(identity.ComputeSafetyNumber(bob.Card(), alice.Card())), len(sn.Digits()))

	// Bob pins Alice's card on first use; her rotated card chains to it.
	var pins identity.MemoryPins
	if err := identity.Check(&pins, alice.Card(), nil); err != nil {
		log.Fatal(err)
	}
	alice2, err := alice.Rotate(testrand.New("alice-2"), identity.Options{Created: created})
	if err != nil {
		log.Fatal(err)
	}
	if err := identity.Check(&pins, alice2.Card(), alice2.Cards()); err != nil {
		log.Fatal(err)
	}

	// A card that is not chained to the pin is a key change.
	mallory, err := identity.Generate(testrand.New("mallory"), "alice", identity.Options{Created: created})
	if err != nil {
		log.Fatal(err)
	}
	var kc *identity.KeyChangeError
	fmt.Println(errors.As(identity.Check(&pins, mallory.Card(), nil), &kc))

	// Secrets redact themselves.
	fmt.Printf("%v\n", alice2)
	// Output:
	// alice 0 hybrid
	// true 60
	// true
	// identity.Identity("alice" gen 1 c6d7e3e82599eef79554929c94fb801506618a9c4fba26bc987f7410a7742251, keys REDACTED)
}

func ExampleGenerate() {
	// nil reads from crypto/rand; the zero Options make a post-quantum
	// hybrid key with the current time.
	id, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id.UserID(), id.Generation(), id.Card().Kind())

	_, err = identity.Generate(nil, "bad\nuser", identity.Options{})
	fmt.Println(errors.Is(err, identity.ErrInvalidUserID))
	// Output:
	// alice 0 hybrid
	// true
}

func ExampleParseCard() {
	id, err := identity.Generate(nil, "alice", identity.Options{Kind: identity.KindX25519})
	if err != nil {
		log.Fatal(err)
	}
	// The bytes a directory serves: the card checks its own signature.
	card, err := identity.ParseCard(id.Card().Marshal())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(card.UserID(), card.Kind(), card.Equal(id.Card()))

	tampered := id.Card().Marshal()
	tampered[len(tampered)-1] ^= 1
	_, err = identity.ParseCard(tampered)
	fmt.Println(err)
	// Output:
	// alice x25519 true
	// identity: invalid card
}

func ExampleIdentity_Export() {
	id, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	// The text is a secret, and an age identity file at the same time.
	text := id.Export()
	defer clear(text)
	first, _, _ := bytes.Cut(text, []byte("\n"))
	fmt.Println(string(first))
	// Output: # Veil identity of user "alice", 1 generation(s). This file is a secret key.
}

func ExampleImport() {
	id, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	back, err := identity.Import(id.Export())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(back.UserID(), back.Equal(id))

	_, err = identity.Import([]byte("not an identity"))
	fmt.Println(err)
	// Output:
	// alice true
	// identity: invalid exported identity
}

func ExampleIdentity_ExportWithPassphrase() {
	id, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	// MinWorkFactor keeps the example fast; 0 means DefaultWorkFactor,
	// about a second of scrypt, which is what a backup should use.
	backup, err := id.ExportWithPassphrase("correct horse battery staple", identity.MinWorkFactor)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(bytes.SplitN(backup, []byte("\n"), 2)[0]))
	// Output: -----BEGIN AGE ENCRYPTED FILE-----
}

func ExampleImportWithPassphrase() {
	id, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	backup, err := id.ExportWithPassphrase("correct horse battery staple", identity.MinWorkFactor)
	if err != nil {
		log.Fatal(err)
	}

	// 0 accepts files up to MaxWorkFactor.
	back, err := identity.ImportWithPassphrase(backup, "correct horse battery staple", 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(back.Equal(id))

	_, err = identity.ImportWithPassphrase(backup, "wrong", 0)
	fmt.Println(errors.Is(err, identity.ErrWrongPassphrase))
	// Output:
	// true
	// true
}

func ExampleIdentity_Rotate() {
	id, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	next, err := id.Rotate(nil, identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	// The new card is signed by the previous generation, so contacts who
	// pinned generation 0 accept it; the old keys stay for old grants.
	fmt.Println(next.Generation(), next.Card().IsSuccessorOf(id.Card()), len(next.Cards()))
	if err := identity.VerifyChain(next.Cards()); err != nil {
		log.Fatal(err)
	}
	// Output: 1 true 2
}

func ExampleComputeSafetyNumber() {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	alice, err := identity.Generate(testrand.New("alice"), "alice", identity.Options{Created: created})
	if err != nil {
		log.Fatal(err)
	}
	bob, err := identity.Generate(testrand.New("bob"), "bob", identity.Options{Created: created})
	if err != nil {
		log.Fatal(err)
	}
	// Alice and Bob each compute it on their device and read it aloud, or
	// one scans the other's Payload as a QR code.
	sn := identity.ComputeSafetyNumber(alice.Card(), bob.Card())
	fmt.Println(sn.MatchPayload(identity.ComputeSafetyNumber(bob.Card(), alice.Card()).Payload()))
	fmt.Println(len(sn.Digits()), len(sn.String()))
	// Output:
	// true
	// 60 71
}

func ExampleCheck() {
	alice, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	var pins identity.MemoryPins

	// First use: the card is pinned.
	if err := identity.Check(&pins, alice.Card(), nil); err != nil {
		log.Fatal(err)
	}

	// Someone else's keys under Alice's name: not chained to the pin.
	impostor, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	err = identity.Check(&pins, impostor.Card(), impostor.Cards())
	var kc *identity.KeyChangeError
	if errors.As(err, &kc) {
		fmt.Println("key change for", kc.UserID, kc.Old.Equal(alice.Card()))
	}
	// Output: key change for alice true
}

func ExampleBatchVerifier() {
	alice, err := identity.Generate(nil, "alice", identity.Options{Kind: identity.KindX25519})
	if err != nil {
		log.Fatal(err)
	}
	bob, err := identity.Generate(nil, "bob", identity.Options{Kind: identity.KindX25519})
	if err != nil {
		log.Fatal(err)
	}
	// A page of signed receipts, one of them claimed by the wrong card.
	type receipt struct {
		by       *identity.Card
		msg, sig []byte
	}
	page := []receipt{
		{alice.Card(), []byte("read 1"), alice.Sign("example/receipt", []byte("read 1"))},
		{bob.Card(), []byte("read 2"), bob.Sign("example/receipt", []byte("read 2"))},
		{bob.Card(), []byte("read 3"), alice.Sign("example/receipt", []byte("read 3"))},
	}
	v := identity.NewBatchVerifier(len(page))
	for _, r := range page {
		v.Add(r.by, "example/receipt", r.msg, r.sig)
	}
	// Verify answers for the whole page; VerifyEach, one batch check and
	// then one check per signature when it fails, says which.
	fmt.Println(v.Verify(), v.VerifyEach())
	// Output: false [true true false]
}
