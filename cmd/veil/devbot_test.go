package main

import (
	"context"
	"strings"
	"testing"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/streamadapter"
	"github.com/veilchat/veil/streamadapter/streamtest"
)

// TestDevBot starts veil dev --bot and talks to the bot as a user of the
// stack configured by what veil dev printed: alice creates an encrypted
// channel with the bot and writes; the bot answers, encrypted, and alice
// reads the answer decrypted; the emulator holds neither text.
func TestDevBot(t *testing.T) {
	ctx := context.Background()
	emus := make(chan *streamtest.Server, 1)
	devStarted = func(st *devStack) { emus <- st.emu }
	defer func() { devStarted = nil }()
	start := time.Now()
	env, comments, stderr, stop := startDevInProcess(t, "--bot")
	emu := <-emus

	var botID string
	for _, c := range comments {
		if rest, ok := strings.CutPrefix(c, "# Bot: user ID "); ok {
			botID, _, _ = strings.Cut(rest, " ")
		}
	}
	if botID == "" {
		t.Fatalf("veil dev --bot printed no bot user ID: %q", comments)
	}

	// alice, configured by the environment veil dev printed.
	sc, err := stream.NewClient(env["STREAM_KEY"], env["STREAM_SECRET"])
	if err != nil {
		t.Fatal(err)
	}
	sc.BaseURL = env["STREAM_CHAT_URL"]
	if _, err := sc.UpsertUser(ctx, &stream.User{ID: "alice"}); err != nil {
		t.Fatal(err)
	}
	tok, err := server.UserToken([]byte(env["VEIL_JWT_SECRET"]), "", "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: env["VEIL_KEYSERVICE_URL"], Token: keyservice.StaticToken(tok)})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := streamadapter.New(ctx, streamadapter.Config{Stream: sc, Veil: e2ee.Config{UserID: "alice", KeyService: ks}})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := alice.CreateChannel(ctx, "messaging", "alice-and-the-bot", []string{botID})
	if err != nil {
		t.Fatal(err)
	}
	secret := "the safe's code is 31-17-42"
	sent, err := ch.SendMessage(ctx, &stream.Message{Text: secret})
	if err != nil {
		t.Fatal(err)
	}

	var answer *streamadapter.Message
	for deadline := time.Now().Add(10 * time.Second); answer == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the bot did not answer within 10 s; veil dev's log:\n%s", stderr.String())
		}
		q, err := ch.Query(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range q.Messages {
			if m.User != nil && m.User.ID == botID && m.QuotedMessageID == sent.ID {
				answer = m
			}
		}
	}
	if answer.Status != streamadapter.StatusDecrypted || answer.Text != "you said: "+secret {
		t.Fatalf("the bot's answer as alice reads it: %v %q %v", answer.Status, answer.Text, answer.Err)
	}
	for _, plain := range []string{"31-17-42", "you said"} {
		if where := emu.Snapshot().Find([]byte(plain)); len(where) > 0 {
			t.Errorf("the emulator holds %q at %v", plain, where)
		}
	}
	if code := stop(); code != 0 {
		t.Fatalf("veil dev exited %d:\n%s", code, stderr.String())
	}
	t.Logf("veil dev --bot started, answered and stopped in %v", time.Since(start).Round(time.Millisecond))
}
