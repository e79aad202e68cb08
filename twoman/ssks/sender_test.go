package ssks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/veilchat/veil/twoman"
)

func TestWebhookSender(t *testing.T) {
	t.Parallel()
	secret := bytes.Repeat([]byte("w"), 32)
	var got webhookBody
	var verified bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		want := WebhookSignature(secret, r.Header.Get("X-Veil-Timestamp"), body)
		verified = hmac.Equal([]byte(want), []byte(r.Header.Get("X-Veil-Signature")))
		json.Unmarshal(body, &got)
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	ch := Challenge{UserID: "alice", Factor: twoman.Factor{Type: twoman.SMS, Value: "+15551234567"}, Code: NewCode("12345678"), Issued: time.Now(), Expires: time.Now().Add(time.Minute)}
	s := &WebhookSender{URL: srv.URL, Secret: NewSecret(secret)}
	if err := s.Send(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	if !verified || got.Code != "12345678" || got.UserID != "alice" || got.Factor.Value != "+15551234567" {
		t.Fatalf("webhook: verified %v, body %+v", verified, got)
	}
	if err := (&WebhookSender{URL: srv.URL + "/fail", Secret: NewSecret(secret)}).Send(context.Background(), ch); err == nil {
		t.Fatal("a 503 answer must fail the send")
	}
	if err := (&WebhookSender{URL: srv.URL, Secret: NewSecret([]byte("short"))}).Send(context.Background(), ch); err == nil {
		t.Fatal("a short secret was accepted")
	}
}

func TestInsecureLogSender(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	s := InsecureLogSender{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	if err := s.Send(context.Background(), Challenge{UserID: "u", Factor: aliceEmail, Code: NewCode("87654321")}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "87654321") || !strings.Contains(buf.String(), "INSECURE") {
		t.Fatalf("log: %s", buf.String())
	}
	if err := (InsecureLogSender{}).Send(context.Background(), Challenge{}); err == nil {
		t.Fatal("no logger must be an error, not a silent drop")
	}
}
