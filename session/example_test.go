package session_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/session"
)

func Example() {
	ctx := context.Background()
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	newUser := func(name string) *session.Manager {
		id, _ := identity.Generate(nil, name, identity.Options{})
		dir.Publish(id.Card())
		m, _ := session.NewManager(session.Config{Identity: id, Service: svc.As(name), Directory: &dir})
		return m
	}
	alice, bob, carol := newUser("alice"), newUser("bob"), newUser("carol")

	// Alice creates the channel's session for the three of them.
	s, _ := alice.Create(ctx, "messaging:general", []string{"bob", "carol"})
	msg := session.Binding{ChannelCID: "messaging:general", MessageID: "m1", SenderID: "alice"}
	text, _ := alice.SealText(ctx, s.ID(), msg, []byte("hello"), 5000)

	// Bob retrieves the session from his grant and reads it.
	plain, err := bob.OpenText(ctx, text, msg)
	fmt.Println(string(plain), err)

	// Alice removes Carol: the session rotates to epoch 1.
	alice.Revoke(ctx, s.ID(), []string{"carol"})
	msg2 := session.Binding{ChannelCID: "messaging:general", MessageID: "m2", SenderID: "alice"}
	text2, _ := alice.SealText(ctx, s.ID(), msg2, []byte("carol is gone"), 5000)
	plain, err = bob.OpenText(ctx, text2, msg2)
	fmt.Println(string(plain), err)
	_, err = carol.OpenText(ctx, text2, msg2)
	fmt.Println(errors.Is(err, session.ErrForbidden) || errors.Is(err, session.ErrUnknownEpoch))
	fmt.Println(session.MaxPlaintext(5000))
	// Output:
	// hello <nil>
	// carol is gone <nil>
	// true
	// 3583
}
