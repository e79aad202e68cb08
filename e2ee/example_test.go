package e2ee_test

import (
	"context"
	"fmt"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/session"
)

func Example() {
	ctx := context.Background()
	// In production: Config.KeyService = a *keyservice.Client, and a
	// FileStore with a StateKey kept in a secret manager.
	var dir session.MemoryDirectory
	var svc session.MemoryService
	newClient := func(user string) *e2ee.Client {
		c, err := e2ee.New(ctx, e2ee.Config{UserID: user, Service: svc.As(user), Directory: &dir, Publisher: &dir})
		if err != nil {
			panic(err)
		}
		return c
	}
	alice, bob := newClient("alice"), newClient("bob")

	if _, err := alice.CreateSession(ctx, "messaging:support", []string{"bob"}); err != nil {
		panic(err)
	}
	msg := session.Binding{ChannelCID: "messaging:support", MessageID: "m-1", SenderID: "alice"}
	text, _ := alice.Encrypt(ctx, msg, []byte("my order is late"))
	plain, err := bob.Decrypt(ctx, msg, text)
	fmt.Println(string(plain), err)
	// Output: my order is late <nil>
}
