package streamadapter_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/streamadapter"
	"github.com/veilchat/veil/streamadapter/streamtest"
)

// TestBot is a bot on Stream's webhook: alice writes to it in an encrypted
// channel, it decrypts her message from the signed message.new event and
// answers in the channel, encrypted; alice reads the answer.
func TestBot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	alice, bot := e.user("alice"), e.user("bot")

	var calls, answered atomic.Int32
	events := make(chan *streamadapter.Event, 64)
	replies := make(chan error, 4)
	hook := httptest.NewServer(bot.WebhookHandler(e.stream.APISecret(), func(ctx context.Context, ev *streamadapter.Event) {
		calls.Add(1)
		select {
		case events <- ev:
		default:
			t.Errorf("event %s not recorded", ev.Type)
		}
		if ev.Type != stream.EventMessageNew || ev.FromSelf() || ev.Message == nil || ev.Message.Status != streamadapter.StatusDecrypted {
			return
		}
		// A bot that answered itself would loop: the test fails, but
		// stops.
		if answered.Add(1) > 3 {
			return
		}
		typ, id, _ := strings.Cut(ev.CID, ":")
		ch, err := bot.Channel(ctx, typ, id)
		if err == nil {
			_, err = ch.SendMessage(ctx, &stream.Message{Text: "you said: " + ev.Message.Text, QuotedMessageID: ev.Message.ID})
		}
		select {
		case replies <- err:
		default:
		}
	}))
	t.Cleanup(hook.Close)
	if _, err := e.stream.Client().UpdateAppSettings(ctx, stream.NewAppSettings().SetWebhookURL(hook.URL)); err != nil {
		t.Fatal(err)
	}

	ach, err := alice.CreateChannel(ctx, "messaging", "support", []string{"bot"})
	if err != nil {
		t.Fatal(err)
	}
	secret := "my card number is 4111 1111 1111 1111"
	sent := mustSend(t, ach, &stream.Message{Text: secret})

	select {
	case err := <-replies:
		if err != nil {
			t.Fatalf("the bot could not answer: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the bot did not answer")
	}

	// The bot saw alice's message decrypted, then its own answer, as its
	// own: a bot that did not skip it would answer itself.
	var mine, theirs *streamadapter.Event
	for deadline := time.After(20 * time.Second); mine == nil; {
		select {
		case ev := <-events:
			switch {
			case ev.Type != stream.EventMessageNew:
			case ev.FromSelf():
				mine = ev
			default:
				theirs = ev
			}
		case <-deadline:
			t.Fatal("the bot's own message.new never arrived")
		}
	}
	if theirs == nil || theirs.Message.ID != sent.ID || theirs.Message.Text != secret || theirs.CID != "messaging:support" ||
		sender(theirs.Message.Message) != "alice" {
		t.Fatalf("alice's message.new: %+v", theirs)
	}
	if strings.Contains(theirs.Raw.Message.Text, "4111") {
		t.Fatal("the raw event holds the plaintext: Stream sent it")
	}
	if mine.Message.Status != streamadapter.StatusDecrypted || mine.Message.Text != "you said: "+secret {
		t.Fatalf("the bot's own message: %v %q %v", mine.Message.Status, mine.Message.Text, mine.Message.Err)
	}

	// alice reads the answer decrypted.
	q, err := ach.Query(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var answer *streamadapter.Message
	for _, m := range q.Messages {
		if sender(m.Message) == "bot" {
			answer = m
		}
	}
	if answer == nil || answer.Status != streamadapter.StatusDecrypted || answer.Text != "you said: "+secret || answer.QuotedMessageID != sent.ID {
		t.Fatalf("the bot's answer as alice reads it: %+v", answer)
	}

	// Stream saw neither text, in its store or in the webhook bodies.
	snap := e.stream.Snapshot()
	for _, s := range []string{"4111 1111", "you said"} {
		if where := snap.Find([]byte(s)); len(where) > 0 {
			t.Errorf("Stream holds %q at %v", s, where)
		}
	}

	// A call whose signature does not verify is refused, and the bot never
	// sees it: the body of a genuine call, signed wrong.
	var body []byte
	for _, b := range snap.Webhooks {
		if bytes.Contains(b, []byte(sent.ID)) && bytes.Contains(b, []byte(`"message.new"`)) {
			body = b
		}
	}
	if body == nil {
		t.Fatal("no message.new body in the snapshot")
	}
	before := calls.Load()
	for _, sig := range []string{"", strings.Repeat("0", 64), "not hex", "deadbeef"} {
		req, _ := http.NewRequest(http.MethodPost, hook.URL, bytes.NewReader(body))
		if sig != "" {
			req.Header.Set("X-Signature", sig)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("signature %q: HTTP %d, want 401", sig, resp.StatusCode)
		}
	}
	if got := calls.Load(); got != before {
		t.Fatalf("the callback ran %d times for unsigned calls", got-before)
	}
}

func sender(m *stream.Message) string {
	if m.User != nil {
		return m.User.ID
	}
	return m.UserID
}

// TestGuard wires Guard as the emulator's before-message-send hook: it
// bounces plaintext and other sessions' envelopes in an encrypted channel,
// passes the adapter's messages, and leaves plaintext channels alone.
func TestGuard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, streamtest.Config{})
	alice, bob := e.user("alice"), e.user("bob")
	guard := httptest.NewServer(streamadapter.Guard(e.stream.APISecret()))
	t.Cleanup(guard.Close)
	sc := e.stream.Client()
	settings := stream.NewAppSettings()
	settings.BeforeMessageSendHookURL = &guard.URL
	if _, err := sc.UpdateAppSettings(ctx, settings); err != nil {
		t.Fatal(err)
	}

	ach, err := alice.CreateChannel(ctx, "messaging", "vault", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	och, err := alice.CreateChannel(ctx, "messaging", "elsewhere", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	sealed := mustSend(t, ach, &stream.Message{Text: "the vault code is 1234"})
	elsewhere := mustSend(t, och, &stream.Message{Text: "another channel's secret"})

	bounced := []struct {
		name   string
		msg    *stream.Message
		want   string
		reason string
	}{
		{name: "plaintext", msg: &stream.Message{Text: "the vault code is 5678"}, want: "not sealed",
			reason: "a client that sends through stream-chat-go alone"},
		{name: "plaintext marked encrypted", msg: &stream.Message{Text: "the vault code is 5678", ExtraData: map[string]any{"veil_encrypted": true}}, want: "not sealed",
			reason: "the marker alone proves nothing"},
		{name: "other session's envelope", msg: &stream.Message{Text: elsewhere.Message.Text, ExtraData: map[string]any{"veil_encrypted": true}}, want: "another session",
			reason: "an envelope pasted from another channel"},
		{name: "envelope with a plaintext attachment", msg: &stream.Message{Text: sealed.Message.Text, ExtraData: map[string]any{"veil_encrypted": true},
			Attachments: []*stream.Attachment{{Type: "file", AssetURL: "https://cdn.example/plans.pdf", Title: "vault-plans.pdf"}}}, want: "attachment",
			reason: "a Stream attachment outside the envelope"},
	}
	for _, tt := range bounced {
		resp, err := ach.Stream().SendMessage(ctx, tt.msg, "alice")
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if resp.Message.Type != stream.MessageTypeError || !strings.HasPrefix(resp.Message.Text, streamadapter.GuardText) || !strings.Contains(resp.Message.Text, tt.want) {
			t.Errorf("%s: answered %q %q, want a bounce for %q: %s", tt.name, resp.Message.Type, resp.Message.Text, tt.want, tt.reason)
		}
	}

	// A plaintext channel is not the guard's business.
	if _, err := sc.CreateChannel(ctx, "messaging", "lobby", "alice", &stream.ChannelRequest{Members: []string{"alice", "bob"}}); err != nil {
		t.Fatal(err)
	}
	lobby, err := sc.Channel("messaging", "lobby").SendMessage(ctx, &stream.Message{Text: "hello lobby"}, "alice")
	if err != nil || lobby.Message.Type == stream.MessageTypeError {
		t.Fatalf("plaintext channel: %+v %v", lobby, err)
	}

	// Stream stored the sealed message and the lobby's, nothing bounced.
	var vault []string
	for _, m := range e.stream.Snapshot().Messages {
		if m.CID == "messaging:vault" {
			vault = append(vault, m.ID)
		}
		for _, v := range m.Versions {
			if text, _ := v["text"].(string); strings.Contains(text, "5678") || (m.CID == "messaging:vault" && text == elsewhere.Message.Text) {
				t.Errorf("Stream stored a bounced message: %s %q", m.ID, text)
			}
		}
	}
	if len(vault) != 1 || vault[0] != sealed.ID {
		t.Fatalf("messages stored in the vault: %v, want only %s", vault, sealed.ID)
	}
	bch, err := bob.Channel(ctx, "messaging", "vault")
	if err != nil {
		t.Fatal(err)
	}
	q, err := bch.Query(ctx, nil)
	if err != nil || len(q.Messages) != 1 || q.Messages[0].Text != "the vault code is 1234" {
		t.Fatalf("bob reads %+v %v", q, err)
	}
}
