package streamtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"
	"github.com/golang-jwt/jwt/v5"
)

// call sends a request over HTTP as a Stream SDK other than the Go one
// would (the JavaScript SDK's bodies), with the given token, and decodes
// the JSON answer.
func call(t *testing.T, s *Server, method, path, tok, body string) (int, map[string]any) {
	t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req, err := http.NewRequest(method, s.URL+path+sep+"api_key="+s.APIKey(), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Stream-Auth-Type", "jwt")
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Stream-Client", "stream-chat-js-v9.49.0-node")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %v", method, path, err)
	}
	return resp.StatusCode, out
}

func serverToken(s *Server) string { return signed(s, jwt.MapClaims{"server": true}) }

// TestAppSettings: GetAppSettings returns what UpdateAppSettings set;
// before_message_send_hook_attempt_timeout_ms, which stream-chat-go cannot
// send, is set as the JavaScript SDK sends it and refused outside 0–5000;
// app settings need server-side auth.
func TestAppSettings(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	c := s.Client()
	hook, webhook := "https://hooks.example/before-send", "https://hooks.example/events"
	settings := stream.NewAppSettings().SetWebhookURL(webhook)
	settings.BeforeMessageSendHookURL = &hook
	if _, err := c.UpdateAppSettings(ctx, settings); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetAppSettings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.App.WebhookURL == nil || *got.App.WebhookURL != webhook || got.App.BeforeMessageSendHookURL == nil || *got.App.BeforeMessageSendHookURL != hook {
		t.Fatalf("GetAppSettings: webhook_url %v, before_message_send_hook_url %v", got.App.WebhookURL, got.App.BeforeMessageSendHookURL)
	}
	// A later update that leaves a setting out keeps it.
	if _, err := c.UpdateAppSettings(ctx, stream.NewAppSettings().SetDisableAuth(false)); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.GetAppSettings(ctx); got.App.WebhookURL == nil || *got.App.WebhookURL != webhook {
		t.Fatalf("an update without webhook_url removed it: %v", got.App.WebhookURL)
	}

	srv := serverToken(s)
	if st, out := call(t, s, "PATCH", "/app", srv, `{"before_message_send_hook_attempt_timeout_ms":2000}`); st != 200 {
		t.Fatalf("timeout 2000: %d %v", st, out)
	}
	if _, out := call(t, s, "GET", "/app", srv, ""); out["app"].(map[string]any)["before_message_send_hook_attempt_timeout_ms"] != 2000.0 {
		t.Fatalf("GET /app: %v", out["app"])
	}
	s.mu.Lock()
	_, timeout := s.hookSettings()
	s.mu.Unlock()
	if timeout != 2*time.Second {
		t.Fatalf("hook timeout %v, want 2s", timeout)
	}
	for _, tc := range []struct{ body, reason string }{
		{`{"before_message_send_hook_attempt_timeout_ms":5001}`, "above Stream's maximum of 5000"},
		{`{"before_message_send_hook_attempt_timeout_ms":-1}`, "negative"},
		{`{"before_message_send_hook_attempt_timeout_ms":1.5}`, "not an integer"},
		{`{"before_message_send_hook_attempt_timeout_ms":"100"}`, "not a number"},
		{`{"before_message_send_hook_url":42}`, "a URL that is not a string"},
	} {
		if st, out := call(t, s, "PATCH", "/app", srv, tc.body); st != 400 || out["code"] != 4.0 {
			t.Errorf("%s: HTTP %d %v, want code 4 (%s)", tc.body, st, out, tc.reason)
		}
	}
	// null removes a setting: the timeout is back to Stream's default.
	call(t, s, "PATCH", "/app", srv, `{"before_message_send_hook_attempt_timeout_ms":null}`)
	s.mu.Lock()
	_, timeout = s.hookSettings()
	s.mu.Unlock()
	if timeout != 1500*time.Millisecond {
		t.Fatalf("default hook timeout %v, want 1.5s", timeout)
	}

	user, _ := c.CreateToken("alice", time.Time{})
	for _, m := range []string{"GET", "PATCH"} {
		if st, out := call(t, s, m, "/app", user, `{"before_message_send_hook_url":"https://evil.example"}`); st != 403 || out["code"] != 17.0 {
			t.Errorf("%s /app with a user token: HTTP %d %v, want 403 code 17", m, st, out)
		}
	}
	if got, _ := c.GetAppSettings(ctx); *got.App.BeforeMessageSendHookURL != hook {
		t.Fatalf("a user token changed the hook URL to %s", *got.App.BeforeMessageSendHookURL)
	}
}

// TestWebhookURLFromAppSettings: events go to the webhook_url set with
// UpdateAppSettings, with Stream's headers, verified here as a receiver
// must (hmac.Equal); clearing the setting stops them.
func TestWebhookURLFromAppSettings(t *testing.T) {
	t.Parallel()
	s := NewTestServer(t, Config{})
	type delivery struct {
		header http.Header
		body   []byte
	}
	got := make(chan delivery, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- delivery{r.Header.Clone(), body}
	}))
	defer receiver.Close()
	c := s.Client()
	if _, err := c.UpdateAppSettings(ctx, stream.NewAppSettings().SetWebhookURL(receiver.URL)); err != nil {
		t.Fatal(err)
	}
	created, _ := c.CreateChannelWithMembers(ctx, "messaging", "app-hooks", "alice", "alice")
	if _, err := created.Channel.SendMessage(ctx, &stream.Message{Text: "hi"}, "alice"); err != nil {
		t.Fatal(err)
	}
	var d delivery
	select {
	case d = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no event arrived")
	}
	mac := hmac.New(sha256.New, []byte(s.APISecret()))
	mac.Write(d.body)
	sig, _ := hex.DecodeString(d.header.Get("X-Signature"))
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	var ev struct{ Type string }
	json.Unmarshal(d.body, &ev)
	switch {
	case !hmac.Equal(sig, mac.Sum(nil)):
		t.Error("X-Signature does not verify")
	case d.header.Get("X-Api-Key") != s.APIKey():
		t.Errorf("X-Api-Key %q", d.header.Get("X-Api-Key"))
	case d.header.Get("X-Webhook-Attempt") != "1":
		t.Errorf("X-Webhook-Attempt %q, want 1", d.header.Get("X-Webhook-Attempt"))
	case !uuid.MatchString(d.header.Get("X-Webhook-Id")):
		t.Errorf("X-Webhook-Id %q is not a UUID", d.header.Get("X-Webhook-Id"))
	case ev.Type != "message.new":
		t.Errorf("event %q, want message.new", ev.Type)
	}
	call(t, s, "PATCH", "/app", serverToken(s), `{"webhook_url":""}`)
	created.Channel.SendMessage(ctx, &stream.Message{Text: "unheard"}, "alice")
	select {
	case d := <-got:
		t.Fatalf("an event arrived after webhook_url was cleared: %s", d.body)
	case <-time.After(100 * time.Millisecond):
	}
}
