package protosign_test

import (
	"fmt"
	"log"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/protosign"
)

func Example() {
	alice, err := identity.Generate(nil, "alice", identity.Options{Kind: identity.KindX25519})
	if err != nil {
		log.Fatal(err)
	}
	msg := []byte("a grant payload")
	sig := protosign.Sign(alice, "veil/v1/grant", msg)
	fmt.Println(protosign.Reserved("veil/v1/grant"), alice.Card().Verify("veil/v1/grant", msg, sig))
	// Output: true true
}
