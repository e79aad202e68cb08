package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/veilchat/veil/internal/testrand"
)

// TestParseEd25519PublicKey: the forms key tools write all give the key;
// anything else is refused without quoting it.
func TestParseEd25519PublicKey(t *testing.T) {
	t.Parallel()
	pub, _, err := ed25519.GenerateKey(testrand.New("ed25519-formats"))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	ec, err := ecdsa.GenerateKey(elliptic.P256(), testrand.New("p256"))
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	tests := []struct {
		name, in string
		ok       bool
		reason   string
	}{
		{"PEM", pemText, true, "openssl pkey -pubout"},
		{"PEM with white space", "\n  " + pemText + "\n", true, "as pasted into an environment file"},
		{"SPKI base64", base64.StdEncoding.EncodeToString(der), true, "the PEM body on one line"},
		{"raw base64", base64.StdEncoding.EncodeToString(pub), true, "32 raw bytes"},
		{"raw base64url", base64.RawURLEncoding.EncodeToString(pub), false, "standard base64 only: one form, not a guess"},
		{"P-256 SPKI", base64.StdEncoding.EncodeToString(ecDER), false, "another algorithm"},
		{"private key PEM", strings.ReplaceAll(pemText, "PUBLIC", "PRIVATE"), false, "a private key has no business here"},
		{"two PEM blocks", pemText + pemText, false, "one key per entry"},
		{"31 bytes", base64.StdEncoding.EncodeToString(pub[:31]), false, "a truncated key"},
		{"garbage", "SECRET-not-a-key", false, "neither form"},
	}
	for _, tt := range tests {
		got, err := ParseEd25519PublicKey(tt.in)
		if tt.ok {
			if err != nil || !bytes.Equal(got, pub) {
				t.Errorf("%s: %x, %v; want the key (%s)", tt.name, got, err, tt.reason)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted (%s)", tt.name, tt.reason)
		} else if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: the error quotes the input: %v", tt.name, err)
		}
	}
}

// TestKeysChecked: NewHandler refuses keys no token could use as meant.
func TestKeysChecked(t *testing.T) {
	t.Parallel()
	pub, _, _ := ed25519.GenerateKey(testrand.New("keys-checked"))
	hs := NewSecret(bytes.Repeat([]byte("s"), 32))
	tests := []struct {
		name   string
		keys   []Key
		ok     bool
		reason string
	}{
		{"one of each", []Key{{ID: "a", HS256: hs}, {ID: "b", Ed25519: pub}}, true, "distinct IDs"},
		{"two without ID", []Key{{HS256: hs}, {Ed25519: pub}}, true, "unnamed keys are all tried"},
		{"duplicate ID", []Key{{ID: "2026", HS256: hs}, {ID: "2026", HS256: NewSecret(bytes.Repeat([]byte("t"), 32))}}, false, "a kid names one key"},
		{"duplicate ID across algorithms", []Key{{ID: "k", HS256: hs}, {ID: "k", Ed25519: pub}}, false, "IDs are one name space"},
		{"short secret", []Key{{HS256: NewSecret([]byte("short"))}}, false, "HS256 secrets are 32 bytes or more"},
		{"short Ed25519 key", []Key{{Ed25519: pub[:31]}}, false, "an Ed25519 key is 32 bytes"},
		{"both", []Key{{HS256: hs, Ed25519: pub}}, false, "a key is one of them"},
		{"neither", []Key{{ID: "x"}}, false, "a key with nothing to check"},
	}
	for _, tt := range tests {
		_, err := NewHandler(Config{Store: stubStore{}, Auth: Auth{Keys: tt.keys}})
		if (err == nil) != tt.ok {
			t.Errorf("%s: NewHandler = %v, want ok %v (%s)", tt.name, err, tt.ok, tt.reason)
		}
	}
}

// stubStore is a Store for handlers that are built and never serve.
type stubStore struct{ Store }
