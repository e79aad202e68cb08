package ssks

import (
	"context"
	"testing"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/session"
)

// TestNewDeviceWithE2EE: a user's device saves its e2ee identity through
// the two-man rule; the device is lost; a fresh device recovers the
// identity, builds an e2ee.Client from it, and reads messages sent before.
func TestNewDeviceWithE2EE(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	newClient := func(user string, cfg e2ee.Config) *e2ee.Client {
		cfg.UserID, cfg.Service, cfg.Directory, cfg.Publisher = user, svc.As(user), &dir, &dir
		c, err := e2ee.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice := newClient("alice", e2ee.Config{})
	bob := newClient("bob", e2ee.Config{})
	s1, err := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.client.SaveIdentity(ctx, s1, f.sender.code("alice"), alice.Identity()); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.CreateSession(ctx, "messaging:c", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	msg := session.Binding{ChannelCID: "messaging:c", MessageID: "m1", SenderID: "bob"}
	text, err := bob.Encrypt(ctx, msg, []byte("sent before the loss"))
	if err != nil {
		t.Fatal(err)
	}

	// The new device: empty state, recovered identity.
	s2, _ := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
	id, err := f.client.RetrieveIdentity(ctx, s2, f.sender.code("alice"))
	if err != nil {
		t.Fatal(err)
	}
	fresh := newClient("alice", e2ee.Config{Identity: id})
	got, err := fresh.Decrypt(ctx, msg, text)
	if err != nil || string(got) != "sent before the loss" {
		t.Fatalf("new device: %q, %v", got, err)
	}
}
