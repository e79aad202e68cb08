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

// TestWebhookURLCredentialsNeverLogged: a gateway's credentials in the
// webhook URL's query and user information reach neither the sender's
// error nor the SSKS's log, whether the gateway is unreachable or refuses.
func TestWebhookURLCredentialsNeverLogged(t *testing.T) {
	t.Parallel()
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(refusing.Close)
	// A port nobody listens on: a listener opened and closed.
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	for _, tc := range []struct {
		name, base, want, reason string
	}{
		{"closed port", closedURL, "connection refused", "the *url.Error of a network failure quotes the whole URL"},
		{"non-2xx", refusing.URL, "answered 401", "a refusal names the endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := strings.Replace(tc.base, "http://", "http://gateway:SECRETPASS@", 1) + "/sms?api_key=SECRETKEY&to=x#SECRETFRAG"
			sender := &WebhookSender{URL: u, Secret: NewSecret(bytes.Repeat([]byte("w"), 32))}
			var logs bytes.Buffer
			f := newFixture(t, func(c *Config) {
				c.Sender = sender
				c.Logger = slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs}, nil))
			})
			_, err := f.backend.StartChallenge(context.Background(), "alice", twoman.Factor{Type: twoman.SMS, Value: "+15551234567"}, true)
			if err == nil {
				t.Fatalf("the challenge succeeded although the webhook failed (%s)", tc.reason)
			}
			direct := sender.Send(context.Background(), Challenge{UserID: "alice", Factor: twoman.Factor{Type: twoman.SMS, Value: "+15551234567"}, Code: NewCode("12345678"), Expires: time.Now().Add(time.Minute)})
			if direct == nil || !strings.Contains(direct.Error(), tc.want) || !strings.Contains(direct.Error(), "/sms") {
				t.Fatalf("sender error %v: want %q and the URL's path (%s)", direct, tc.want, tc.reason)
			}
			out := logs.String()
			if !strings.Contains(out, "sending a code failed") || !strings.Contains(out, tc.want) {
				t.Fatalf("the failure was not logged with its cause (the check would prove nothing):\n%s", out)
			}
			for _, text := range []string{out, err.Error(), direct.Error()} {
				if strings.Contains(text, "SECRET") {
					t.Errorf("a URL credential leaked (%s):\n%s", tc.reason, text)
				}
			}
		})
	}
}
