package ssks

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
	"github.com/veilchat/veil/twoman"
)

// mailbox is a go-smtp backend that accepts mail for one user/password.
type mailbox struct {
	mu    sync.Mutex
	mails []string
	froms []string // envelope senders
	rcpts []string
	tls   []bool // whether each mail came over TLS
}

func (m *mailbox) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &mailSession{box: m, conn: c}, nil
}

type mailSession struct {
	box    *mailbox
	conn   *smtp.Conn
	authed bool
	from   string
	rcpt   string
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != "veil" || pass != "s3cret" {
			return errors.New("bad credentials")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error { s.rcpt = to; return nil }

func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.box.mu.Lock()
	s.box.mails = append(s.box.mails, string(b))
	s.box.froms = append(s.box.froms, s.from)
	s.box.rcpts = append(s.box.rcpts, s.rcpt)
	_, tlsOn := s.conn.TLSConnectionState()
	s.box.tls = append(s.box.tls, tlsOn)
	s.box.mu.Unlock()
	return nil
}

func (s *mailSession) Reset()        {}
func (s *mailSession) Logout() error { return nil }

// selfSigned returns a server certificate for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestSMTPSenderOverLoopback(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	lw := &lockedWriter{w: &logs}
	cert, pool := selfSigned(t)
	box := &mailbox{}
	srv := smtp.NewServer(box)
	srv.Domain = "127.0.0.1"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.ErrorLog = log.New(lw, "smtp ", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	// The SSKS, logging to the same buffer, sends through SMTP.
	sender := &SMTPSender{Addr: ln.Addr().String(), From: "no-reply@veil.test", AppName: "Acme Chat",
		Username: "veil", Password: NewSecret([]byte("s3cret")), TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
	f := newFixture(t, func(c *Config) {
		c.Sender = sender
		c.Logger = slog.New(slog.NewJSONHandler(lw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx := context.Background()
	s, err := f.backend.StartChallenge(ctx, "alice", aliceEmail, true)
	if err != nil {
		t.Fatal(err)
	}
	if !s.MustAuthenticate {
		t.Fatal("force_auth did not require the code")
	}
	box.mu.Lock()
	if len(box.mails) != 1 {
		box.mu.Unlock()
		t.Fatalf("%d mails arrived, want 1", len(box.mails))
	}
	mail, rcpt, overTLS := box.mails[0], box.rcpts[0], box.tls[0]
	box.mu.Unlock()
	if !overTLS {
		t.Fatal("the mail was sent without STARTTLS")
	}
	if !strings.Contains(mail, "expires in 10 minutes") {
		t.Fatalf("the mail misstates the expiry:\n%s", mail)
	}
	if rcpt != "alice@example.com" || !strings.Contains(mail, "Subject: Acme Chat verification code") {
		t.Fatalf("mail to %q:\n%s", rcpt, mail)
	}
	i := strings.Index(mail, "verification code is ")
	if i < 0 {
		t.Fatalf("no code in the mail:\n%s", mail)
	}
	code := mail[i+len("verification code is ") : i+len("verification code is ")+8]
	if strings.Trim(code, "0123456789") != "" {
		t.Fatalf("code %q is not 8 digits", code)
	}
	// The code from the mail answers the challenge.
	alice := mustIdentity(t)
	if err := f.client.SaveIdentity(ctx, s, code, alice); err != nil {
		t.Fatalf("the mailed code was refused: %v", err)
	}
	// No log line of the run (the SSKS's and the SMTP server's error log)
	// has the code.
	out := logs.String()
	if strings.Contains(out, code) {
		t.Fatalf("the code %s appears in the logs:\n%s", code, out)
	}
	if !strings.Contains(out, `"route":"POST /v1/challenges"`) {
		t.Fatalf("the SSKS logged nothing (the check would prove nothing):\n%s", out)
	}

	// Without STARTTLS on the server, the sender refuses to send a code in
	// clear text.
	plain := smtp.NewServer(box)
	plain.Domain = "127.0.0.1"
	plain.ErrorLog = log.New(io.Discard, "", 0)
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	go plain.Serve(ln2)
	t.Cleanup(func() { plain.Close() })
	insecure := &SMTPSender{Addr: ln2.Addr().String(), From: "no-reply@veil.test"}
	if err := insecure.Send(ctx, Challenge{UserID: "u", Factor: aliceEmail, Code: NewCode("12345678"), Expires: time.Now().Add(time.Minute)}); err == nil {
		t.Fatal("a code was sent over plaintext SMTP")
	}
}

// rejecting is an SMTP backend that refuses every recipient, quoting the
// address in its reply as most mail servers do.
type rejecting struct{}

func (rejecting) NewSession(*smtp.Conn) (smtp.Session, error) { return rejectingSession{}, nil }

type rejectingSession struct{}

func (rejectingSession) Mail(string, *smtp.MailOptions) error { return nil }
func (rejectingSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + to + ">: Recipient address rejected: User unknown"}
}
func (rejectingSession) Data(io.Reader) error { return nil }
func (rejectingSession) Reset()               {}
func (rejectingSession) Logout() error        { return nil }

// TestFactorValueNeverLogged: a mail server's refusal that quotes the
// recipient reaches neither the SSKS's log nor the sender's error.
func TestFactorValueNeverLogged(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	lw := &lockedWriter{w: &logs}
	cert, pool := selfSigned(t)
	srv := smtp.NewServer(rejecting{})
	srv.Domain = "127.0.0.1"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	sender := &SMTPSender{Addr: ln.Addr().String(), From: "no-reply@veil.test", TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
	const address = "Alice.Secret.Address@example.com"
	err = sender.Send(context.Background(), Challenge{UserID: "alice", Factor: twoman.Factor{Type: twoman.Email, Value: address}, Code: NewCode("12345678"), Expires: time.Now().Add(time.Minute)})
	if err == nil || strings.Contains(strings.ToLower(err.Error()), "secret.address") || !strings.Contains(err.Error(), "550") {
		t.Fatalf("sender error %v: want the status code without the address", err)
	}
	f := newFixture(t, func(c *Config) {
		c.Sender = sender
		c.Logger = slog.New(slog.NewJSONHandler(lw, nil))
	})
	if _, err := f.backend.StartChallenge(context.Background(), "alice", twoman.Factor{Type: twoman.Email, Value: address}, false); err == nil {
		t.Fatal("the challenge succeeded although the mail was refused")
	}
	out := logs.String()
	if !strings.Contains(out, "sending a code failed") {
		t.Fatalf("the failure was not logged (the check would prove nothing):\n%s", out)
	}
	if strings.Contains(strings.ToLower(out), "secret.address") {
		t.Fatalf("the factor value is in the SSKS log:\n%s", out)
	}
}

// TestRedact: the log redaction of sender errors, whatever the case.
func TestRedact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, secret, want, reason string }{
		{"550 <Bob@Example.com> rejected", "bob@example.com", "550 <[redacted]> rejected", "case differs"},
		{"a bob@x.io b bob@x.io", "bob@x.io", "a [redacted] b [redacted]", "every occurrence"},
		{"nothing here", "bob@x.io", "nothing here", "no occurrence"},
		{"İstanbul bob@x.io", "bob@x.io", "[redacted]", "case folding changes lengths: drop the text"},
	} {
		if got := redact(tc.in, tc.secret); got != tc.want {
			t.Errorf("redact(%q, %q) = %q, want %q (%s)", tc.in, tc.secret, got, tc.want, tc.reason)
		}
	}
}

// startMailbox runs an SMTP server with STARTTLS that accepts mail from
// user veil, password s3cret, and returns a sender configured for it.
func startMailbox(t *testing.T) (*mailbox, *SMTPSender) {
	t.Helper()
	cert, pool := selfSigned(t)
	box := &mailbox{}
	srv := smtp.NewServer(box)
	srv.Domain = "127.0.0.1"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return box, &SMTPSender{Addr: ln.Addr().String(), From: "no-reply@veil.test", Username: "veil", Password: NewSecret([]byte("s3cret")),
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
}

// TestSMTPCompose: the composed message, byte for byte, for a fixed clock
// and randomness.
func TestSMTPCompose(t *testing.T) {
	t.Parallel()
	issued := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ch := Challenge{UserID: "alice", Factor: aliceEmail, Code: NewCode("12345678"), Issued: issued, Expires: issued.Add(10 * time.Minute)}
	for _, tc := range []struct {
		name, from, app   string
		wantFrom, subject string
		reason            string
	}{
		{"plain", "no-reply@veil.test", "Acme Chat", "<no-reply@veil.test>", "Acme Chat verification code", "an ASCII name stays as it is"},
		{"default name", "no-reply@veil.test", "", "<no-reply@veil.test>", "Veil verification code", "an empty AppName is Veil"},
		{"display name", "Acme <no-reply@veil.test>", "Acme", `"Acme" <no-reply@veil.test>`, "Acme verification code", "the envelope gets the bare address, the header the name too"},
		{"non-ASCII", "no-reply@veil.test", "Café", "<no-reply@veil.test>", "=?utf-8?q?Caf=C3=A9_verification_code?=", "a header is ASCII: other text is an encoded word"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &SMTPSender{Addr: "mail.veil.test:587", From: tc.from, AppName: tc.app}
			m, err := s.compose(ch, issued, bytes.NewReader(bytes.Repeat([]byte{0xab}, 12)))
			if err != nil {
				t.Fatalf("compose: %v (%s)", err, tc.reason)
			}
			name := tc.app
			if name == "" {
				name = "Veil"
			}
			want := "From: " + tc.wantFrom + "\r\n" +
				"To: alice@example.com\r\n" +
				"Subject: " + tc.subject + "\r\n" +
				"Date: Mon, 01 Jun 2026 12:00:00 +0000\r\n" +
				"Message-ID: <abababababababababababab@veil.test>\r\n" +
				"MIME-Version: 1.0\r\n" +
				"Content-Type: text/plain; charset=utf-8\r\n" +
				"Content-Transfer-Encoding: 8bit\r\n" +
				"\r\n" +
				"Your " + name + " verification code is 12345678\r\n" +
				"\r\n" +
				"It expires in 10 minutes. If you did not ask to recover your\r\n" +
				"account on a new device, ignore this message and do not share the code.\r\n"
			if diff := cmp.Diff(want, string(m.data)); diff != "" {
				t.Errorf("message (-want +got) (%s):\n%s", tc.reason, diff)
			}
			if m.from != "no-reply@veil.test" || m.to != "alice@example.com" {
				t.Errorf("envelope %q -> %q, want no-reply@veil.test -> alice@example.com (%s)", m.from, m.to, tc.reason)
			}
		})
	}
}

// TestSMTPHeaderInjection: a value with a line break never reaches a
// header. NewHandler refuses the configuration, and Send refuses too
// (the fields may change after NewHandler): no mail leaves.
func TestSMTPHeaderInjection(t *testing.T) {
	t.Parallel()
	box, good := startMailbox(t)
	store := openTestStore(t)
	ch := Challenge{UserID: "alice", Factor: aliceEmail, Code: NewCode("12345678"), Issued: time.Now(), Expires: time.Now().Add(time.Minute)}
	for _, tc := range []struct {
		name, field string
		mutate      func(*SMTPSender)
		reason      string
	}{
		{"AppName CRLF", "AppName", func(s *SMTPSender) { s.AppName = "Acme\r\nBcc: eve@evil.test" }, "the subject would end and a Bcc header begin"},
		{"AppName LF", "AppName", func(s *SMTPSender) { s.AppName = "Acme\nBcc: eve@evil.test" }, "many servers take a bare LF as a line end"},
		{"AppName CR", "AppName", func(s *SMTPSender) { s.AppName = "Acme\rBcc: eve@evil.test" }, "and some a bare CR"},
		{"AppName NUL", "AppName", func(s *SMTPSender) { s.AppName = "Acme\x00" }, "no control character belongs in a header"},
		{"From CRLF", "From", func(s *SMTPSender) { s.From = "no-reply@veil.test\r\nBcc: eve@evil.test" }, "the From header would end early"},
		{"From encoded CRLF", "From", func(s *SMTPSender) { s.From = "=?utf-8?q?Acme=0D=0ABcc:_eve@evil.test?= <no-reply@veil.test>" }, "an encoded word decodes to a line break"},
		{"From two addresses", "From", func(s *SMTPSender) { s.From = "a@veil.test, eve@evil.test" }, "From is one address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := *good
			tc.mutate(&s)
			_, err := NewHandler(Config{Store: store, AppKeys: []Secret{NewSecret(appKey)}, HashKey: NewSecret(bytes.Repeat([]byte("h"), 32)), Sender: &s})
			if err == nil || !strings.Contains(err.Error(), "SMTPSender."+tc.field) {
				t.Errorf("NewHandler: %v, want an error naming SMTPSender.%s (%s)", err, tc.field, tc.reason)
			}
			if err := s.Send(context.Background(), ch); err == nil || !strings.Contains(err.Error(), "SMTPSender."+tc.field) {
				t.Errorf("Send: %v, want an error naming SMTPSender.%s (%s)", err, tc.field, tc.reason)
			}
		})
	}
	t.Cleanup(func() {
		box.mu.Lock()
		defer box.mu.Unlock()
		if len(box.mails) != 0 {
			t.Errorf("%d header-injected mails were sent", len(box.mails))
		}
	})
}

// TestSMTPDeliver: deliver sends the composed bytes as they are, to the
// envelope addresses, and gives up when the caller's context ends.
func TestSMTPDeliver(t *testing.T) {
	t.Parallel()
	box, s := startMailbox(t)
	data := []byte("Subject: hello\r\n\r\nbody\r\n.leading dot\r\n")
	if err := s.deliver(context.Background(), outgoing{from: "no-reply@veil.test", to: "bob@example.com", data: data}); err != nil {
		t.Fatal(err)
	}
	box.mu.Lock()
	got := struct{ From, To, Mail string }{box.froms[0], box.rcpts[0], box.mails[0]}
	box.mu.Unlock()
	want := struct{ From, To, Mail string }{"no-reply@veil.test", "bob@example.com", string(data)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}

	// A server that accepts the connection and never greets: the caller's
	// cancellation ends the wait, long before the 30 s default timeout.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	})
	silent := &SMTPSender{Addr: ln.Addr().String(), From: "no-reply@veil.test"}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	if err := silent.deliver(ctx, outgoing{from: "no-reply@veil.test", to: "bob@example.com", data: data}); err == nil {
		t.Fatal("a silent server took the mail")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("deliver waited %v after its context was cancelled", d)
	}
}
