package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// acceptAll is an SMTP backend that takes any mail, without AUTH.
type acceptAll struct{}

func (acceptAll) NewSession(*smtp.Conn) (smtp.Session, error) { return acceptSession{}, nil }

type acceptSession struct{}

func (acceptSession) Mail(string, *smtp.MailOptions) error { return nil }
func (acceptSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (acceptSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }
func (acceptSession) Reset()                               {}
func (acceptSession) Logout() error                        { return nil }

// startSMTP runs an SMTP server on loopback, with STARTTLS under a
// self-signed certificate for 127.0.0.1 when withTLS, and returns its
// address and the certificate as PEM.
func startSMTP(t *testing.T, withTLS bool) (addr string, certPEM []byte) {
	t.Helper()
	srv := smtp.NewServer(acceptAll{})
	srv.Domain = "127.0.0.1"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	if withTLS {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
		certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), certPEM
}

// TestServeChecksSMTPAtStart: `veil serve --ssks` with SMTP checks the
// server before it listens — STARTTLS with a certificate it trusts, from
// the system or --smtp-ca-file — instead of failing at the first code; and
// a plain-http webhook to another machine is refused.
func TestServeChecksSMTPAtStart(t *testing.T) {
	dir := t.TempDir()
	tlsAddr, certPEM := startSMTP(t, true)
	plainAddr, _ := startSMTP(t, false)
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--ssks", "--create", "--db", filepath.Join(dir, "ssks.db"), "--ssks-app-keys", strings.Repeat("k", 32),
		"--ssks-hash-key", strings.Repeat("ab", 32), "--smtp-from", "codes@veil.test"}
	for _, tc := range []struct {
		args   []string
		code   int
		want   string
		reason string
	}{
		{[]string{"--smtp-addr", plainAddr}, 1, "STARTTLS", "a server without STARTTLS would get codes in clear text"},
		{[]string{"--smtp-addr", tlsAddr}, 1, "STARTTLS", "a certificate the system does not trust"},
		{[]string{"--smtp-addr", tlsAddr, "--smtp-ca-file", filepath.Join(dir, "missing.pem")}, 1, "--smtp-ca-file", "a CA file that is not there"},
		{[]string{"--smtp-addr", tlsAddr, "--smtp-ca-file", ca}, 0, "", "the CA the operator names"},
		{[]string{"--smtp-addr", tlsAddr, "--smtp-ca-file", ca, "--webhook-url", "https://sms.example/send", "--webhook-secret", strings.Repeat("w", 32)}, 0,
			"email by SMTP, SMS by the webhook", "both: routed by factor type"},
		{[]string{"--webhook-url", "http://sms.example/send", "--webhook-secret", strings.Repeat("w", 32)}, 1, "plain http", "codes in clear text across the network"},
		{[]string{"--webhook-url", "http://127.0.0.1:9/send", "--webhook-secret", strings.Repeat("w", 32)}, 0, "", "a gateway on this machine"},
		{[]string{"--webhook-url", "https://sms.example/send", "--webhook-secret", strings.Repeat("w", 32), "--code-digits", "7"}, 1, "--code-digits", "RECOVERY.md's bounds"},
		{[]string{"--webhook-url", "https://sms.example/send", "--webhook-secret", strings.Repeat("w", 32), "--code-digits", "10", "--max-challenges-per-hour", "3"}, 0, "", "the knobs as flags"},
	} {
		code, stderr := serveFor(time.Second, append(base, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("veil serve %v: exit %d, %q; want %d with %q (%s)", tc.args, code, stderr, tc.code, tc.want, tc.reason)
		}
	}
}
