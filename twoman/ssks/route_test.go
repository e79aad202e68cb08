package ssks

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/veilchat/veil/twoman"
)

// TestWebhookURLPlainHTTPOnlyToThisMachine: a webhook carries codes, so a
// plain-http URL is accepted only to this machine; anything else must be
// https.
func TestWebhookURLPlainHTTPOnlyToThisMachine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url    string
		ok     bool
		reason string
	}{
		{"https://sms.example/send", true, "TLS to anywhere"},
		{"http://127.0.0.1:9000/send", true, "IPv4 loopback"},
		{"http://127.8.9.10/send", true, "all of 127/8 is loopback"},
		{"http://[::1]:9000/send", true, "IPv6 loopback"},
		{"http://localhost:9000/send", true, "the loopback name"},
		{"http://sms.example/send", false, "codes in clear text across the network"},
		{"http://10.0.0.5/send", false, "a private address is still another machine"},
		{"http://localhost.sms.example/send", false, "a name that only starts like localhost"},
		{"http://0.0.0.0/send", false, "the unspecified address is not loopback"},
	} {
		err := (&WebhookSender{URL: tc.url, Secret: NewSecret(bytes.Repeat([]byte("w"), 32))}).Check()
		if (err == nil) != tc.ok {
			t.Errorf("Check(%s) = %v, want ok %v (%s)", tc.url, err, tc.ok, tc.reason)
		}
	}
}

// recorder is a Sender that records the factor types it was asked to send.
type recorder struct{ got []twoman.FactorType }

func (r *recorder) Send(_ context.Context, c Challenge) error {
	r.got = append(r.got, c.Factor.Type)
	return nil
}

// TestFactorRouter: email codes go to the email sender and SMS codes to
// the SMS sender, never one to the other; a type without a sender fails.
func TestFactorRouter(t *testing.T) {
	t.Parallel()
	email, sms := &recorder{}, &recorder{}
	r := FactorRouter{Email: email, SMS: sms}
	ctx := context.Background()
	for _, f := range []twoman.Factor{{Type: twoman.Email, Value: "a@example.com"}, {Type: twoman.SMS, Value: "+15551234567"}, {Type: twoman.Email, Value: "b@example.com"}} {
		if err := r.Send(ctx, Challenge{Factor: f, Code: NewCode("12345678")}); err != nil {
			t.Fatal(err)
		}
	}
	if len(email.got) != 2 || email.got[0] != twoman.Email || email.got[1] != twoman.Email || len(sms.got) != 1 || sms.got[0] != twoman.SMS {
		t.Fatalf("email sender got %v, SMS sender got %v", email.got, sms.got)
	}
	if err := (FactorRouter{Email: email}).Send(ctx, Challenge{Factor: twoman.Factor{Type: twoman.SMS, Value: "+15551234567"}}); err == nil {
		t.Fatal("an SMS code without an SMS sender was sent")
	}
	if err := (FactorRouter{}).Check(); err == nil {
		t.Fatal("a router without senders passed Check")
	}
	bad := &WebhookSender{URL: "http://sms.example/send", Secret: NewSecret(bytes.Repeat([]byte("w"), 32))}
	if err := (FactorRouter{Email: email, SMS: bad}).Check(); err == nil {
		t.Fatal("Check did not check the SMS sender")
	}
}

// TestSMTPProbe: Probe passes against a server with STARTTLS and a
// certificate the sender trusts, and fails — without sending anything —
// against one whose certificate it does not trust (the system roots do not
// know a self-signed one), one without STARTTLS, and wrong credentials.
func TestSMTPProbe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	box, good := startMailbox(t)
	if err := good.Probe(ctx); err != nil {
		t.Fatalf("Probe against a trusted server: %v", err)
	}
	untrusted := *good
	untrusted.TLSConfig = nil // system roots, and the server name of Addr
	if err := untrusted.Probe(ctx); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("Probe with an untrusted certificate: %v, want a STARTTLS failure", err)
	}
	wrong := *good
	wrong.Password = NewSecret([]byte("wrong"))
	if err := wrong.Probe(ctx); err == nil || !strings.Contains(err.Error(), "AUTH") {
		t.Errorf("Probe with a wrong password: %v, want an AUTH failure", err)
	}
	plain := smtp.NewServer(box)
	plain.Domain = "127.0.0.1"
	plain.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go plain.Serve(ln)
	t.Cleanup(func() { plain.Close() })
	noTLS := &SMTPSender{Addr: ln.Addr().String(), From: "no-reply@veil.test", TLSConfig: &tls.Config{}, Timeout: 5 * time.Second}
	if err := noTLS.Probe(ctx); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("Probe without STARTTLS: %v, want a refusal", err)
	}
	box.mu.Lock()
	defer box.mu.Unlock()
	if len(box.mails) != 0 {
		t.Fatalf("Probe sent %d mails", len(box.mails))
	}
}

// TestWebhookRedirectNotFollowed: a webhook that answers with a redirect
// is a failed send, and the code goes nowhere else. Followed, a 307 or 308
// would post the signed body — code included — to a host the
// configuration does not name, over plain http to another machine as
// readily as to the gateway (an https gateway redirecting to http:// would
// put the code on the network in clear text, past Check's refusal).
func TestWebhookRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
	}))
	t.Cleanup(other.Close)
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/stolen", status)
		}))
		t.Cleanup(gateway.Close)
		ch := Challenge{UserID: "alice", Factor: twoman.Factor{Type: twoman.SMS, Value: "+15551234567"}, Code: NewCode("12345678"), Issued: time.Now(), Expires: time.Now().Add(time.Minute)}
		for _, client := range []*http.Client{nil, {Timeout: 5 * time.Second}} {
			err := (&WebhookSender{URL: gateway.URL, Secret: NewSecret(bytes.Repeat([]byte("w"), 32)), Client: client}).Send(context.Background(), ch)
			if err == nil {
				t.Errorf("a %d answer passed as a delivery (own client %v)", status, client != nil)
			}
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the redirect's target received %d requests: the code left for a host the configuration does not name", n)
	}
}
