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
	"github.com/veilchat/veil/twoman"
)

// mailbox is a go-smtp backend that accepts mail for one user/password.
type mailbox struct {
	mu    sync.Mutex
	mails []string
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

func (s *mailSession) Mail(string, *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
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
