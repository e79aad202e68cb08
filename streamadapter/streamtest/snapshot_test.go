package streamtest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"
)

// TestSnapshotHoldsEverySentByte sends a unique marker through every route
// that stores data, and each through the hooks, and finds every one in
// the snapshot where Stream would keep it: earlier versions of edited and
// soft-deleted messages, truncated messages and soft-deleted channels
// included, and the bodies the webhook and the before-message-send hook
// received.
func TestSnapshotHoldsEverySentByte(t *testing.T) {
	t.Parallel()
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte("refuse-me")) {
			io.WriteString(w, `{"message":{"type":"error","text":"refused"}}`)
		}
	}))
	defer receiver.Close()
	s := NewTestServer(t, Config{Now: ticking()})
	c := s.Client()
	srv := serverToken(s)
	run := fmt.Sprint(time.Now().UnixNano())
	marker := func(name string) string { return "mk-" + name + "-" + run }
	must := func(step string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	rawOK := func(step, method, path, body string) {
		t.Helper()
		if code, out := call(t, s, method, path, srv, body); code != 200 {
			t.Fatalf("%s: HTTP %d %v", step, code, out)
		}
	}

	settings := stream.NewAppSettings().SetWebhookURL(receiver.URL + "/events?tag=" + marker("app-setting"))
	settings.BeforeMessageSendHookURL = &receiver.URL
	_, err := c.UpdateAppSettings(ctx, settings)
	must("app settings", err)
	_, err = c.UpsertUsers(ctx, &stream.User{ID: "alice", Name: marker("user-name")}, &stream.User{ID: "bob", ExtraData: map[string]any{"bio": marker("user-custom")}},
		&stream.User{ID: "carol"}, &stream.User{ID: "dave"})
	must("upsert users", err)
	_, err = c.PartialUpdateUsers(ctx, []stream.PartialUserUpdate{{ID: "carol", Set: map[string]any{"profile.city": marker("user-partial")}}})
	must("partial update user", err)

	created, err := c.CreateChannel(ctx, "messaging", "general", "alice", &stream.ChannelRequest{Members: []string{"alice", "bob"}, Invites: []string{"dave"},
		ExtraData: map[string]any{"topic": marker("channel-create")}})
	must("create channel", err)
	ch := created.Channel
	other, _ := c.CreateChannelWithMembers(ctx, "messaging", "other", "alice", "alice")
	_, err = other.Channel.Update(ctx, map[string]any{"name": marker("channel-update")}, &stream.Message{Text: marker("update-system-message"), User: &stream.User{ID: "alice"}})
	must("update channel", err)
	_, err = ch.PartialUpdate(ctx, stream.PartialUpdate{Set: map[string]any{"veil.session": marker("channel-partial")}})
	must("partial update channel", err)
	_, err = ch.AddMembers(ctx, []string{"carol"}, stream.AddMembersWithMessage(&stream.Message{Text: marker("add-members-message"), User: &stream.User{ID: "alice"}}))
	must("add members", err)
	_, err = ch.InviteMembersWithMessage(ctx, []string{"eve"}, &stream.Message{Text: marker("invite-message"), User: &stream.User{ID: "alice"}})
	must("invite", err)
	_, err = ch.AcceptInvite(ctx, "dave", &stream.Message{Text: marker("accept-message"), User: &stream.User{ID: "dave"}})
	must("accept invite", err)

	_, err = ch.SendMessage(ctx, &stream.Message{Text: marker("message-text"), ExtraData: map[string]any{"id": "m1", "veil": map[string]any{"sealed": marker("message-custom")}},
		Attachments: []*stream.Attachment{{Type: "file", Title: marker("attachment")}}}, "alice")
	must("send", err)
	_, err = ch.SendMessage(ctx, &stream.Message{Text: marker("reply-text"), ParentID: "m1", ExtraData: map[string]any{"id": "r1"}}, "bob")
	must("reply", err)
	_, err = ch.SendMessage(ctx, &stream.Message{Text: marker("pending-text"), ExtraData: map[string]any{"id": "p1"}}, "alice",
		stream.MessagePending, stream.MessagePendingMessageMetadata(map[string]string{"note": marker("pending-metadata")}))
	must("pending message", err)
	bounced, err := ch.SendMessage(ctx, &stream.Message{Text: marker("refuse-me"), ExtraData: map[string]any{"id": "refused"}}, "alice")
	if err != nil || bounced.Message.Type != "error" {
		t.Fatalf("a message the hook refuses: %+v %v", bounced, err)
	}
	_, err = ch.SendMessage(ctx, &stream.Message{Text: marker("before-edit"), ExtraData: map[string]any{"id": "e1"}}, "alice")
	must("send e1", err)
	_, err = c.UpdateMessage(ctx, &stream.Message{Text: marker("after-edit"), UserID: "alice"}, "e1")
	must("update message", err)
	_, err = c.PartialUpdateMessage(ctx, "e1", &stream.MessagePartialUpdateRequest{UserID: "alice", PartialUpdate: stream.PartialUpdate{Set: map[string]any{"note": marker("message-partial")}}})
	must("partial update message", err)
	_, err = ch.SendMessage(ctx, &stream.Message{Text: marker("soft-deleted"), ExtraData: map[string]any{"id": "d1"}}, "alice")
	must("send d1", err)
	_, err = c.DeleteMessage(ctx, "d1")
	must("soft delete", err)

	f, err := ch.SendFile(ctx, stream.SendFileRequest{Reader: strings.NewReader(marker("file-bytes")), FileName: "a.bin", User: &stream.User{ID: "alice"}})
	must("upload file", err)
	img, err := ch.SendImage(ctx, stream.SendFileRequest{Reader: strings.NewReader(marker("image-bytes")), FileName: "a.png", User: &stream.User{ID: "alice"}})
	must("upload image", err)

	truncated, _ := c.CreateChannelWithMembers(ctx, "messaging", "truncated", "alice", "alice")
	_, err = truncated.Channel.SendMessage(ctx, &stream.Message{Text: marker("truncated-away"), ExtraData: map[string]any{"id": "t1"}}, "alice")
	must("send t1", err)
	_, err = truncated.Channel.Truncate(ctx, stream.TruncateWithMessage(&stream.Message{Text: marker("truncate-message"), User: &stream.User{ID: "alice"}}))
	must("truncate", err)
	gone, _ := c.CreateChannel(ctx, "messaging", "gone", "alice", &stream.ChannelRequest{Members: []string{"alice"}, ExtraData: map[string]any{"topic": marker("deleted-channel")}})
	_, err = gone.Channel.SendMessage(ctx, &stream.Message{Text: marker("deleted-channel-message"), ExtraData: map[string]any{"id": "g1"}}, "alice")
	must("send g1", err)
	_, err = gone.Channel.Delete(ctx)
	must("soft delete channel", err)
	// As the JavaScript SDK sends them.
	rawOK("js create", "POST", "/channels/messaging/js/query", `{"data":{"created_by_id":"alice","members":["alice"],"motto":"`+marker("js-channel")+`"},"state":true}`)
	rawOK("js send", "POST", "/channels/messaging/js/message", `{"message":{"id":"js1","text":"`+marker("js-message")+`","user_id":"alice"}}`)
	rawOK("js partial update", "PUT", "/messages/js1", `{"set":{"text":"`+marker("js-edit")+`"},"user":{"id":"alice"}}`)

	time.Sleep(100 * time.Millisecond) // let queued events go out; the snapshot records them when queued anyway
	sn := s.Snapshot()
	tests := []struct {
		marker, where, reason string
	}{
		{"app-setting", "app/webhook_url", "app settings"},
		{"user-name", "users/alice/name", "upsert"},
		{"user-custom", "users/bob/bio", "upsert, custom data"},
		{"user-partial", "users/carol/profile/city", "partial user update"},
		{"channel-create", "channels/0/channel/topic", "channel creation"},
		{"channel-update", "channels/1/channel/name", "channel update"},
		{"update-system-message", "messages/", "the system message of a channel update"},
		{"channel-partial", "channels/0/channel/veil/session", "partial channel update"},
		{"add-members-message", "messages/", "the system message of added members"},
		{"invite-message", "messages/", "the system message of invites"},
		{"accept-message", "messages/", "the system message of an accepted invite"},
		{"message-text", "messages/m1/versions/0/text", "a message"},
		{"message-custom", "messages/m1/versions/0/veil/sealed", "a message's custom data"},
		{"attachment", "messages/m1/versions/0/attachments/0/title", "an attachment"},
		{"reply-text", "messages/r1/versions/0/text", "a reply"},
		{"pending-text", "messages/p1/versions/0/text", "a pending message"},
		{"pending-metadata", "messages/p1/pending_message_metadata", "pending metadata"},
		{"refuse-me", "webhooks/", "a message the hook refused reached the hook"},
		{"before-edit", "messages/e1/versions/0/text", "the version an update replaced"},
		{"after-edit", "messages/e1/versions/1/text", "the version an update produced"},
		{"message-partial", "messages/e1/versions/2/note", "the version a partial update produced"},
		{"soft-deleted", "messages/d1/versions/0/text", "a soft-deleted message's text"},
		{"file-bytes", "files/" + f.File, "an uploaded file"},
		{"image-bytes", "files/" + img.File, "an uploaded image"},
		{"truncated-away", "messages/t1/versions/0/text", "a message hidden by a truncation"},
		{"truncate-message", "messages/", "a truncation's system message"},
		{"deleted-channel", "channels/", "a soft-deleted channel's data"},
		{"deleted-channel-message", "messages/g1/versions/0/text", "a soft-deleted channel's message"},
		{"js-channel", "channels/", "a channel created as the JavaScript SDK creates one"},
		{"js-message", "messages/js1/versions/0/text", "a message sent as the JavaScript SDK sends one"},
		{"js-edit", "messages/js1/versions/1/text", "a partial update sent as the JavaScript SDK sends one"},
	}
	for _, tc := range tests {
		paths := sn.Find([]byte(marker(tc.marker)))
		found := false
		for _, p := range paths {
			found = found || strings.HasPrefix(p, tc.where)
		}
		if !found {
			t.Errorf("%s: found at %v, want under %s (%s)", tc.marker, paths, tc.where, tc.reason)
		}
	}
	// Every message marker also went out in a webhook body.
	for _, m := range []string{"message-text", "after-edit", "truncate-message", "add-members-message"} {
		if !slicesHasPrefix(sn.Find([]byte(marker(m))), "webhooks/") {
			t.Errorf("%s is in no webhook body", m)
		}
	}
	if paths := sn.Find([]byte("mk-never-sent-" + run)); len(paths) != 0 {
		t.Errorf("a marker never sent is found at %v", paths)
	}
	hidden := map[string]bool{}
	for _, m := range sn.Messages {
		hidden[m.ID] = m.Hidden
	}
	if !hidden["t1"] || !hidden["g1"] || hidden["m1"] {
		t.Errorf("hidden: truncated %v, in a deleted channel %v, live %v", hidden["t1"], hidden["g1"], hidden["m1"])
	}
}

func slicesHasPrefix(paths []string, prefix string) bool {
	for _, p := range paths {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// TestSnapshotIsACopy: changing a snapshot changes nothing in the server;
// a hard-deleted message is gone from it; a marker that JSON escapes is
// found in webhook bodies.
func TestSnapshotIsACopy(t *testing.T) {
	t.Parallel()
	receiver := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer receiver.Close()
	s := NewTestServer(t, Config{WebhookURL: receiver.URL})
	c := s.Client()
	c.UpsertUser(ctx, &stream.User{ID: "alice", ExtraData: map[string]any{"profile": map[string]any{"city": "Lyon"}}})
	created, _ := c.CreateChannelWithMembers(ctx, "messaging", "copy", "alice", "alice")
	escaped := `<&"quoted"> ` + fmt.Sprint(time.Now().UnixNano())
	created.Channel.SendMessage(ctx, &stream.Message{Text: escaped, ExtraData: map[string]any{"id": "kept"}}, "alice")
	created.Channel.SendMessage(ctx, &stream.Message{Text: "erase me", ExtraData: map[string]any{"id": "erased"}}, "alice")
	c.HardDeleteMessage(ctx, "erased")

	sn := s.Snapshot()
	sn.Users["alice"]["profile"].(map[string]any)["city"] = "Paris"
	sn.Messages[0].Versions[0]["text"] = "changed"
	q, _ := c.QueryUsers(ctx, &stream.QueryOption{Filter: map[string]any{"id": "alice"}})
	if q.Users[0].ExtraData["profile"].(map[string]any)["city"] != "Lyon" {
		t.Fatal("changing a snapshot changed a stored user")
	}
	if g, _ := c.GetMessage(ctx, "kept"); g.Message.Text != escaped {
		t.Fatal("changing a snapshot changed a stored message")
	}
	sn = s.Snapshot()
	for _, m := range sn.Messages {
		if m.ID == "erased" {
			t.Fatal("a hard-deleted message is in the snapshot")
		}
	}
	if !slicesHasPrefix(sn.Find([]byte(escaped)), "webhooks/") {
		t.Fatalf("%q, which JSON escapes, is not found in the webhook bodies: %v", escaped, sn.Find([]byte(escaped)))
	}
	if len(sn.Find(nil)) != 0 {
		t.Fatal("an empty needle is found")
	}
}
