package e2ee_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/session"
)

// keyService stands in for the key service: in production
// Config.KeyService is a *keyservice.Client, which is the Service, the
// Directory and the Publisher at once.
type keyService struct {
	dir session.MemoryDirectory
	svc session.MemoryService
}

func (k *keyService) config(user string) e2ee.Config {
	k.svc.Directory = &k.dir
	return e2ee.Config{UserID: user, Service: k.svc.As(user), Directory: &k.dir, Publisher: &k.dir}
}

func Example() {
	ctx := context.Background()
	var keys keyService
	alice, err := e2ee.New(ctx, keys.config("alice"))
	if err != nil {
		log.Fatal(err)
	}
	bob, err := e2ee.New(ctx, keys.config("bob"))
	if err != nil {
		log.Fatal(err)
	}

	if _, err := alice.CreateSession(ctx, "messaging:support", []string{"bob"}); err != nil {
		log.Fatal(err)
	}
	msg := session.Binding{ChannelCID: "messaging:support", MessageID: "m-1", SenderID: "alice"}
	text, err := alice.Encrypt(ctx, msg, []byte("my order is late"))
	if err != nil {
		log.Fatal(err)
	}
	plain, err := bob.Decrypt(ctx, msg, text)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", plain)
	// Output: my order is late
}

func ExampleNew() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "e2ee")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The state key comes from a secret manager or the OS keychain, never
	// from the state's own storage.
	stateKey, err := e2ee.NewStateKey(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	var keys keyService
	cfg := keys.config("bot")
	cfg.State = &e2ee.FileStore{Path: filepath.Join(dir, "bot.state")}
	cfg.StateKey = stateKey

	// First run: a new identity, saved and published.
	first, err := e2ee.New(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	// A restart loads the same identity from the state.
	again, err := e2ee.New(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(again.Identity().Equal(first.Identity()))

	// Another key does not open the state.
	if cfg.StateKey, err = e2ee.NewStateKey(rand.Reader); err != nil {
		log.Fatal(err)
	}
	_, err = e2ee.New(ctx, cfg)
	fmt.Println(errors.Is(err, e2ee.ErrStateKey))
	// Output:
	// true
	// true
}

func ExampleClient_Encrypt() {
	ctx := context.Background()
	var keys keyService
	bot, err := e2ee.New(ctx, keys.config("bot"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := e2ee.New(ctx, keys.config("alice")); err != nil {
		log.Fatal(err)
	}
	msg := session.Binding{ChannelCID: "messaging:alerts", MessageID: "a-1", SenderID: "bot"}

	// A channel needs a session first.
	_, err = bot.Encrypt(ctx, msg, []byte("disk full"))
	fmt.Println(errors.Is(err, session.ErrUnknownSession))

	if _, err := bot.CreateSession(ctx, "messaging:alerts", []string{"alice"}); err != nil {
		log.Fatal(err)
	}
	text, err := bot.Encrypt(ctx, msg, []byte("disk full"))
	if err != nil {
		log.Fatal(err)
	}
	// Send text as the Stream message's text, with ID msg.MessageID.
	fmt.Println(session.IsText(text))
	// Output:
	// true
	// true
}

func ExampleClient_Decrypt() {
	ctx := context.Background()
	var keys keyService
	alice, err := e2ee.New(ctx, keys.config("alice"))
	if err != nil {
		log.Fatal(err)
	}
	bot, err := e2ee.New(ctx, keys.config("bot"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := alice.CreateSession(ctx, "messaging:support", []string{"bot"}); err != nil {
		log.Fatal(err)
	}
	msg := session.Binding{ChannelCID: "messaging:support", MessageID: "m-1", SenderID: "alice"}
	text, err := alice.Encrypt(ctx, msg, []byte("where is my order?"))
	if err != nil {
		log.Fatal(err)
	}

	// The bot reads the message with the Binding Stream delivered it under.
	plain, err := bot.Decrypt(ctx, msg, text)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", plain)

	// Claimed by another sender, it does not authenticate.
	forged := msg
	forged.SenderID = "bot"
	_, err = bot.Decrypt(ctx, forged, text)
	fmt.Println(errors.Is(err, session.ErrDecrypt))
	// Output:
	// where is my order?
	// true
}

func ExampleClient_RotateIdentity() {
	ctx := context.Background()
	var keys keyService
	alice, err := e2ee.New(ctx, keys.config("alice"))
	if err != nil {
		log.Fatal(err)
	}
	bob, err := e2ee.New(ctx, keys.config("bob"))
	if err != nil {
		log.Fatal(err)
	}
	s, err := alice.CreateSession(ctx, "messaging:team", []string{"bob"})
	if err != nil {
		log.Fatal(err)
	}
	// bob opens the session the channel's session_id names.
	if _, err := bob.OpenChannel(ctx, "messaging:team", s.ID()); err != nil {
		log.Fatal(err)
	}
	old := session.Binding{ChannelCID: "messaging:team", MessageID: "m-1", SenderID: "bob"}
	text, err := bob.Encrypt(ctx, old, []byte("before the rotation"))
	if err != nil {
		log.Fatal(err)
	}

	// Alice moves to a new key generation; the old one stays for old grants.
	if err := alice.RotateIdentity(ctx); err != nil {
		log.Fatal(err)
	}
	plain, err := alice.Decrypt(ctx, old, text)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("generation %d reads %q\n", alice.Identity().Generation(), plain)
	// Output: generation 1 reads "before the rotation"
}
