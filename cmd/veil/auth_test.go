package main

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/veilchat/veil/internal/testrand"
)

// TestParseAuth reads --jwt-secret and --jwt-ed25519 entries as DEPLOY.md
// documents them: HS256 secrets as given, a key ID only where the entry
// starts with one, '=' in a secret never taken for a key ID silently, the
// usual Ed25519 key forms, and no key ID twice. No error quotes a secret.
func TestParseAuth(t *testing.T) {
	t.Parallel()
	pub, _, _ := ed25519.GenerateKey(testrand.New("parse-auth"))
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	raw := base64.StdEncoding.EncodeToString(pub) // ends in '='
	spki := base64.StdEncoding.EncodeToString(der)
	secret := "SECRET" + strings.Repeat("s", 34)
	b64 := "SECRETb64" + strings.Repeat("A", 33) + "==" // base64 padding
	type key struct {
		id     string
		hs, ed string // the secret, or the key's base64
	}
	tests := []struct {
		name        string
		hs, ed      string
		want        []key
		errContains string
		reason      string
	}{
		{"plain secret", secret, "", []key{{hs: secret}}, "", "bytes as given"},
		{"secret with kid", "2026=" + secret, "", []key{{id: "2026", hs: secret}}, "", "kid=secret"},
		{"rotation", "2025=" + secret + ",2026=" + secret + "x", "", []key{{id: "2025", hs: secret}, {id: "2026", hs: secret + "x"}}, "", "two keys during a rotation"},
		{"base64 padding", b64, "", []key{{hs: b64}}, "", "openssl rand -base64 ends in '=': not a key ID"},
		{"leading '='", "=" + "ab=cd" + secret, "", []key{{hs: "ab=cd" + secret}}, "", "a secret holding '=' without a key ID"},
		{"'=' read as kid, short", "SECRETab=cdefgh" + strings.Repeat("z", 20), "", nil, "key ID in front", "the split leaves under 32 bytes: said, not swallowed"},
		{"short secret", "SECRET-short", "", nil, "at least 32 bytes", "HS256 needs 32 bytes"},
		{"duplicate kid", "k=" + secret + ",k=" + secret + "y", "", nil, "used twice", "a kid names one key"},
		{"PEM", "", pemKey, []key{{ed: raw}}, "", "openssl pkey -pubout"},
		{"PEM with kid", "", "ed1=" + pemKey, []key{{id: "ed1", ed: raw}}, "", "kid=PEM"},
		{"raw base64", "", raw, []key{{ed: raw}}, "", "32 raw bytes; the '=' is padding"},
		{"raw base64 with kid", "", "ed1=" + raw, []key{{id: "ed1", ed: raw}}, "", "kid=base64"},
		{"SPKI base64", "", spki, []key{{ed: raw}}, "", "the PEM body on one line"},
		{"kid across kinds", "k=" + secret, "k=" + raw, nil, "used twice", "one key ID space for both kinds"},
		{"not a key", "", "SECRET" + raw, nil, "not an Ed25519 public key", "garbage"},
	}
	for _, tt := range tests {
		a, err := parseAuth(tt.hs, tt.ed, "")
		if tt.errContains != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Errorf("%s: %v, want an error with %q (%s)", tt.name, err, tt.errContains, tt.reason)
			} else if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("%s: the error quotes a secret: %v", tt.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v (%s)", tt.name, err, tt.reason)
			continue
		}
		var got []key
		for _, k := range a.Keys {
			g := key{id: k.ID}
			if k.Ed25519 != nil {
				g.ed = base64.StdEncoding.EncodeToString(k.Ed25519)
			} else {
				g.hs = string(k.HS256.Reveal())
			}
			got = append(got, g)
		}
		if len(got) != len(tt.want) {
			t.Errorf("%s: %d keys, want %d (%s)", tt.name, len(got), len(tt.want), tt.reason)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s: key %d is %+v, want %+v (%s)", tt.name, i, got[i], tt.want[i], tt.reason)
			}
		}
	}
}
