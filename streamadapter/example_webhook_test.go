package streamadapter_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"strings"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/session"
	"github.com/veilchat/veil/streamadapter"
	"github.com/veilchat/veil/streamadapter/streamtest"
)

// A bot that answers what it is told, in encrypted channels: Stream posts
// each new message to its webhook, the handler decrypts it, and the bot
// answers through its own adapter, encrypted.
func ExampleClient_WebhookHandler() {
	ctx := context.Background()
	st := streamtest.NewServer(streamtest.Config{}) // Stream, for the example
	defer st.Close()
	dir := &session.MemoryDirectory{} // the key service, in memory
	keys := &session.MemoryService{Directory: dir}
	user := func(id string) *streamadapter.Client {
		if _, err := st.Client().UpsertUser(ctx, &stream.User{ID: id}); err != nil {
			log.Fatal(err)
		}
		c, err := streamadapter.New(ctx, streamadapter.Config{Stream: st.Client(),
			Veil: e2ee.Config{UserID: id, Service: keys.As(id), Directory: dir, Publisher: dir}})
		if err != nil {
			log.Fatal(err)
		}
		return c
	}
	alice, bot := user("alice"), user("bot")

	answered := make(chan error, 1)
	hook := httptest.NewServer(bot.WebhookHandler(st.APISecret(), func(ctx context.Context, ev *streamadapter.Event) {
		if ev.Type != stream.EventMessageNew || ev.Message == nil || ev.FromSelf() || ev.Message.Status != streamadapter.StatusDecrypted {
			return
		}
		typ, id, _ := strings.Cut(ev.CID, ":")
		ch, err := bot.Channel(ctx, typ, id)
		if err == nil {
			_, err = ch.SendMessage(ctx, &stream.Message{Text: strings.ToUpper(ev.Message.Text)})
		}
		answered <- err
	}))
	defer hook.Close()
	if _, err := st.Client().UpdateAppSettings(ctx, stream.NewAppSettings().SetWebhookURL(hook.URL)); err != nil {
		log.Fatal(err)
	}

	ch, err := alice.CreateChannel(ctx, "messaging", "shouting", []string{"bot"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := ch.SendMessage(ctx, &stream.Message{Text: "hello, bot"}); err != nil {
		log.Fatal(err)
	}
	if err := <-answered; err != nil {
		log.Fatal(err)
	}
	q, err := ch.Query(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range q.Messages {
		fmt.Printf("%s: %s (%s)\n", m.User.ID, m.Text, m.Status)
	}
	// Output:
	// alice: hello, bot (decrypted)
	// bot: HELLO, BOT (decrypted)
}
