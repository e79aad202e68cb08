package veil_test

import (
	"fmt"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/session"
)

// Example seals a message for a channel's session and opens it, with the
// packages used directly (session.Manager does the bookkeeping for real
// applications).
func Example() {
	alice, _ := identity.Generate(nil, "alice", identity.Options{})
	s, _ := session.New(nil, "messaging:general")
	msg := session.Binding{ChannelCID: "messaging:general", MessageID: "m1", SenderID: "alice"}

	text, _ := s.SealText(alice, msg, []byte("hi bob"), 5000)
	plain, err := s.OpenText(text, msg, alice.Card())
	fmt.Println(string(plain), err)

	msg.MessageID = "m2" // replayed under another message ID
	_, err = s.OpenText(text, msg, alice.Card())
	fmt.Println(err)
	// Output:
	// hi bob <nil>
	// session: message cannot be decrypted or authenticated
}
