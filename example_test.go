package veil_test

import (
	"fmt"
	"log"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/session"
)

// Example seals a message for a channel's session and opens it, with the
// packages used directly (session.Manager does the bookkeeping for real
// applications, and e2ee.Client on top of it).
func Example() {
	alice, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	s, err := session.New(nil, "messaging:general")
	if err != nil {
		log.Fatal(err)
	}
	msg := session.Binding{ChannelCID: "messaging:general", MessageID: "m1", SenderID: "alice"}

	text, err := s.SealText(alice, msg, []byte("hi bob"), 5000)
	if err != nil {
		log.Fatal(err)
	}
	plain, err := s.OpenText(text, msg, alice.Card())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", plain)

	msg.MessageID = "m2" // replayed under another message ID
	_, err = s.OpenText(text, msg, alice.Card())
	fmt.Println(err)
	// Output:
	// hi bob
	// session: message cannot be decrypted or authenticated
}
