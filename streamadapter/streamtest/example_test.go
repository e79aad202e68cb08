package streamtest_test

import (
	"context"
	"fmt"
	"log"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/streamadapter/streamtest"
)

func Example() {
	ctx := context.Background()
	srv := streamtest.NewServer(streamtest.Config{})
	defer srv.Close()

	// Any stream-chat-go client works against it: srv.Client() is one, or
	// stream.NewClient(srv.APIKey(), srv.APISecret()) with BaseURL = srv.URL.
	client := srv.Client()
	if _, err := client.UpsertUser(ctx, &stream.User{ID: "alice"}); err != nil {
		log.Fatal(err)
	}
	ch, err := client.CreateChannelWithMembers(ctx, "messaging", "general", "alice", "alice")
	if err != nil {
		log.Fatal(err)
	}
	resp, err := ch.Channel.SendMessage(ctx, &stream.Message{Text: "hello", ExtraData: map[string]any{"id": "m1"}}, "alice")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %q\n", resp.Message.ID, resp.Message.HTML)
	// Output: m1 "<p>hello</p>\n"
}
