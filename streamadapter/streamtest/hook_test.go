package streamtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"
)

// hookCall is what the before-message-send hook received.
type hookCall struct {
	header http.Header
	body   map[string]any
	signed bool // X-Signature verified with hmac.Equal
}

// hookServer is a before-message-send hook that verifies each call's
// signature as a receiver must and answers with answer.
func hookServer(t *testing.T, secret string, answer func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, func() []hookCall) {
	var mu sync.Mutex
	var calls []hookCall
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(raw)
		sig, err := hex.DecodeString(r.Header.Get("X-Signature"))
		var body map[string]any
		json.Unmarshal(raw, &body)
		mu.Lock()
		calls = append(calls, hookCall{r.Header.Clone(), body, err == nil && hmac.Equal(sig, mac.Sum(nil))})
		mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []hookCall {
		mu.Lock()
		defer mu.Unlock()
		return append([]hookCall(nil), calls...)
	}
}

// TestBeforeMessageSendHook: the hook configured in the app settings gets
// Stream's body and headers, and its answer is applied as Stream
// documents: an empty answer accepts, a message rewrites (only the
// rewritable and custom fields), a message of type "error" bounces the
// message back to its sender unstored; a hook that times out, answers
// outside 2xx or answers something that is not a message is ignored
// (Stream fails open) and the message is stored as sent.
func TestBeforeMessageSendHook(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request)
		// what the sender gets back, and whether it is stored
		wantType, wantText string
		wantExtra          map[string]any
		stored             bool
		reason             string
	}{
		{name: "accept", answer: func(w http.ResponseWriter, r *http.Request) {},
			wantType: "regular", wantText: "veil1:AAAA", stored: true, reason: "an empty 200 accepts the message unchanged"},
		{name: "accept without a message", answer: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{}`) },
			wantType: "regular", wantText: "veil1:AAAA", stored: true, reason: "an answer without a message accepts it unchanged"},
		{name: "rewrite", answer: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"message":{"text":"[scrubbed]","checked":true,"user_id":"mallory","id":"forged","created_at":"2000-01-01T00:00:00Z"}}`)
		}, wantType: "regular", wantText: "[scrubbed]", wantExtra: map[string]any{"checked": true}, stored: true,
			reason: "text and custom fields are rewritten; user_id, id and created_at are Stream's and are ignored"},
		{name: "reject", answer: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"message":{"type":"error","text":"encrypted channels refuse plaintext"}}`)
		}, wantType: "error", wantText: "encrypted channels refuse plaintext", stored: false,
			reason: "a message of type error bounces: the sender gets it back, nothing is stored"},
		{name: "timeout", answer: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			io.WriteString(w, `{"message":{"type":"error","text":"too late"}}`)
		}, wantType: "regular", wantText: "veil1:AAAA", stored: true, reason: "past the attempt timeout Stream stores the message as sent"},
		{name: "server error", answer: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"message":{"type":"error","text":"refused"}}`)
		}, wantType: "regular", wantText: "veil1:AAAA", stored: true, reason: "a non-2xx answer is ignored, even one carrying a rejection"},
		{name: "bad answer", answer: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"message": "type error`) },
			wantType: "regular", wantText: "veil1:AAAA", stored: true, reason: "an answer that is not JSON is ignored"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			secret := "hook-secret-" + tc.name
			s := NewTestServer(t, Config{APISecret: NewSecret([]byte(secret))})
			hook, calls := hookServer(t, secret, tc.answer)
			c := s.Client()
			c.UpsertUser(ctx, &stream.User{ID: "alice", Name: "Alice"})
			created, err := c.CreateChannel(ctx, "messaging", "hooked", "alice", &stream.ChannelRequest{Members: []string{"alice"}, ExtraData: map[string]any{"session_id": "s1"}})
			if err != nil {
				t.Fatal(err)
			}
			settings := stream.NewAppSettings()
			settings.BeforeMessageSendHookURL = &hook.URL
			if _, err := c.UpdateAppSettings(ctx, settings); err != nil {
				t.Fatal(err)
			}
			// The longest attempt timeout, except where the timeout is what
			// is tested: a loaded machine may take more than 100 ms to
			// answer from another goroutine.
			timeout := 5000
			if tc.name == "timeout" {
				timeout = 100
			}
			call(t, s, "PATCH", "/app", serverToken(s), fmt.Sprintf(`{"before_message_send_hook_attempt_timeout_ms":%d}`, timeout))

			start := time.Now()
			sent, err := created.Channel.SendMessage(ctx, &stream.Message{Text: "veil1:AAAA", ExtraData: map[string]any{"id": "m1", "veil": map[string]any{"v": 1.0}}}, "alice")
			if err != nil {
				t.Fatalf("send: %v (%s)", err, tc.reason)
			}
			if elapsed := time.Since(start); timeout == 100 && elapsed > 3*time.Second {
				t.Fatalf("the send took %v: the attempt timeout of 100 ms was not applied", elapsed)
			}
			m := sent.Message
			if string(m.Type) != tc.wantType || m.Text != tc.wantText || m.ID != "m1" || m.User == nil || m.User.ID != "alice" {
				t.Fatalf("sender got type %q text %q id %q user %v; want type %q text %q (%s)", m.Type, m.Text, m.ID, m.User, tc.wantType, tc.wantText, tc.reason)
			}
			for k, v := range tc.wantExtra {
				if m.ExtraData[k] != v {
					t.Errorf("%s = %v, want %v (%s)", k, m.ExtraData[k], v, tc.reason)
				}
			}
			_, err = c.GetMessage(ctx, "m1")
			if stored := err == nil; stored != tc.stored {
				t.Fatalf("stored = %v, want %v (%s)", stored, tc.stored, tc.reason)
			}
			if tc.stored {
				if g, _ := c.GetMessage(ctx, "m1"); g.Message.Text != tc.wantText || g.Message.CreatedAt.Year() == 2000 {
					t.Errorf("stored text %q created %v (%s)", g.Message.Text, g.Message.CreatedAt, tc.reason)
				}
			}

			got := calls()
			if tc.name == "timeout" && len(got) == 0 {
				return // cut before the hook's handler ran: nothing more to check
			}
			if len(got) != 1 {
				t.Fatalf("%d hook calls, want 1 (Stream makes a single attempt)", len(got))
			}
			h := got[0]
			msg, _ := h.body["message"].(map[string]any)
			user, _ := h.body["user"].(map[string]any)
			ch, _ := h.body["channel"].(map[string]any)
			info, _ := h.body["request_info"].(map[string]any)
			switch {
			case !h.signed:
				t.Error("X-Signature does not verify under the app secret")
			case h.header.Get("X-Api-Key") != s.APIKey() || h.header.Get("X-Webhook-Attempt") != "1" || h.header.Get("X-Webhook-Id") == "":
				t.Errorf("headers: %v", h.header)
			case msg["text"] != "veil1:AAAA" || msg["id"] != "m1" || msg["html"] != "" || msg["type"] != "regular" || msg["veil"] == nil || msg["user_id"] != nil:
				t.Errorf("message in the hook body: %v", msg)
			case user["id"] != "alice" || user["name"] != "Alice":
				t.Errorf("user in the hook body: %v", user)
			case ch["cid"] != "messaging:hooked" || ch["session_id"] != "s1":
				t.Errorf("channel in the hook body: %v", ch)
			case info["type"] != "server" || !strings.HasPrefix(fmt.Sprint(info["sdk"]), "stream-go-client-") || info["ip"] == "":
				t.Errorf("request_info in the hook body: %v", info)
			}
			// The channel shows the message only if it was stored.
			q, _ := c.CreateChannel(ctx, "messaging", "hooked", "alice", nil)
			if n := len(q.Channel.Messages); n != map[bool]int{true: 1, false: 0}[tc.stored] {
				t.Errorf("the channel shows %d messages (%s)", n, tc.reason)
			}
		})
	}
}

// TestBeforeMessageSendHookClientSide: a message sent with a user token, as
// the JavaScript SDK sends it, reaches the hook as a client request with
// the x-stream-ext header's value; the sender is the token's user.
func TestBeforeMessageSendHookClientSide(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	hook, calls := hookServer(t, s.APISecret(), func(w http.ResponseWriter, r *http.Request) {})
	c := s.Client()
	c.CreateChannelWithMembers(ctx, "messaging", "js", "bob", "bob")
	call(t, s, "PATCH", "/app", serverToken(s), `{"before_message_send_hook_url":"`+hook.URL+`"}`)
	tok, _ := c.CreateToken("bob", time.Time{})
	req, _ := http.NewRequest("POST", s.URL+"/channels/messaging/js/message?api_key="+s.APIKey(), strings.NewReader(`{"message":{"text":"hi","id":"js-1"}}`))
	req.Header.Set("Stream-Auth-Type", "jwt")
	req.Header.Set("Authorization", tok)
	req.Header.Set("X-Stream-Ext", "device-id=123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := calls()
	if resp.StatusCode != 200 || len(got) != 1 {
		t.Fatalf("HTTP %d, %d hook calls", resp.StatusCode, len(got))
	}
	info := got[0].body["request_info"].(map[string]any)
	if info["type"] != "client" || info["ext"] != "device-id=123" || got[0].body["user"].(map[string]any)["id"] != "bob" {
		t.Fatalf("hook body: %v", got[0].body)
	}
	if m, err := c.GetMessage(ctx, "js-1"); err != nil || m.Message.User.ID != "bob" {
		t.Fatalf("stored message: %+v %v", m, err)
	}
}
