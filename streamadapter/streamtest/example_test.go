package streamtest_test

import (
	"context"
	"fmt"

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
	client.UpsertUser(ctx, &stream.User{ID: "alice"})
	ch, _ := client.CreateChannelWithMembers(ctx, "messaging", "general", "alice", "alice")
	resp, err := ch.Channel.SendMessage(ctx, &stream.Message{Text: "hello", ExtraData: map[string]any{"id": "m1"}}, "alice")
	fmt.Println(resp.Message.ID, resp.Message.HTML, err)
	// Output: m1 <p>hello</p>
	//  <nil>
}
