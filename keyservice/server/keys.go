package server

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// ParseEd25519PublicKey parses an Ed25519 public key — the key that checks
// the app backend's EdDSA tokens — in the forms key tools write: a PEM
// block "PUBLIC KEY" holding a SubjectPublicKeyInfo (what `openssl pkey
// -pubout` writes), the same DER in standard base64 (the PEM's body on one
// line), or the raw 32-byte key in standard base64 (what Go's
// ed25519.PublicKey encodes to). Surrounding white space is ignored. Its
// errors do not quote the input.
func ParseEd25519PublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	var der []byte
	if strings.HasPrefix(s, "-----BEGIN") {
		block, rest := pem.Decode([]byte(s))
		if block == nil || len(strings.TrimSpace(string(rest))) != 0 {
			return nil, errors.New("keyservice: not one PEM block")
		}
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("keyservice: a PEM %q block, want \"PUBLIC KEY\"", block.Type)
		}
		der = block.Bytes
	} else {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, errors.New("keyservice: neither PEM nor standard base64")
		}
		if len(b) == ed25519.PublicKeySize {
			return ed25519.PublicKey(b), nil
		}
		der = b
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errors.New("keyservice: not a SubjectPublicKeyInfo (nor 32 raw bytes)")
	}
	k, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("keyservice: a %T public key, want Ed25519", pub)
	}
	return k, nil
}

// checkKeys refuses keys no token could use as meant: an HS256 secret
// under 32 bytes, an Ed25519 key of the wrong size, a key with neither or
// both, and two keys with one ID (a token naming it would be checked with
// either, and the rotation the IDs exist for would be ambiguous).
func checkKeys(keys []Key) error {
	ids := map[string]bool{}
	for i, k := range keys {
		hs, ed := !k.HS256.IsZero(), k.Ed25519 != nil
		switch {
		case hs == ed:
			return fmt.Errorf("keyservice: key %d must have an HS256 secret or an Ed25519 key, not both nor neither", i+1)
		case hs && k.HS256.Len() < 32:
			return errors.New("keyservice: HS256 keys must be at least 32 bytes")
		case ed && len(k.Ed25519) != ed25519.PublicKeySize:
			return fmt.Errorf("keyservice: key %d: an Ed25519 public key is %d bytes", i+1, ed25519.PublicKeySize)
		case k.ID != "" && ids[k.ID]:
			return fmt.Errorf("keyservice: two keys have the key ID %q", k.ID)
		}
		ids[k.ID] = k.ID != ""
	}
	return nil
}
