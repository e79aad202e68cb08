package twoman

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"

	"github.com/veilchat/veil/twoman/internal/wire"
	"golang.org/x/crypto/chacha20poly1305"
)

// FactorType is the channel a challenge is sent through.
type FactorType string

const (
	// Email sends the one-time code by email.
	Email FactorType = "email"
	// SMS sends the one-time code by text message.
	SMS FactorType = "sms"
)

// Factor is an authentication factor: where the one-time code goes.
type Factor struct {
	Type  FactorType `json:"type"`
	Value string     `json:"value"` // an email address or a phone number
}

// ErrInvalidFactor is returned for a factor of an unknown type or a value
// that is not a plausible address or number.
var ErrInvalidFactor = errors.New("twoman: invalid authentication factor")

// Normalize returns the factor in canonical form: email addresses trimmed
// and lower-cased, phone numbers reduced to "+" and digits.
func (f Factor) Normalize() (Factor, error) {
	v := strings.TrimSpace(f.Value)
	switch f.Type {
	case Email:
		v = strings.ToLower(v)
		at := strings.LastIndexByte(v, '@')
		if at < 1 || at == len(v)-1 || len(v) > 254 || strings.ContainsAny(v, " \t\r\n<>,;\"") {
			return Factor{}, ErrInvalidFactor
		}
	case SMS:
		var b strings.Builder
		for i, r := range v {
			switch {
			case r == '+' && i == 0:
				b.WriteRune(r)
			case unicode.IsDigit(r) && r < 128:
				b.WriteRune(r)
			case r == ' ' || r == '-' || r == '(' || r == ')' || r == '.':
			default:
				return Factor{}, ErrInvalidFactor
			}
		}
		v = b.String()
		if digits := strings.TrimPrefix(v, "+"); len(digits) < 6 || len(digits) > 15 {
			return Factor{}, ErrInvalidFactor
		}
	default:
		return Factor{}, ErrInvalidFactor
	}
	return Factor{Type: f.Type, Value: v}, nil
}

// Labels of the two-man-rule constructions (see docs/RECOVERY.md).
const (
	labelIdentityKey = "veil/v1/two-man/identity-key"
	labelIdentityAD  = "veil/v1/two-man/identity"
	labelPasswordAD  = "veil/v1/password-backup/identity"
	labelPassword    = "veil/v1/password-backup/salt"
	blobVersion      = 1
)

// KeySize is the size of a twoManRuleKey.
const KeySize = 32

// ErrDecrypt is the one opaque error for an encrypted identity that does
// not open: wrong key, wrong user or factor, or tampering.
var ErrDecrypt = errors.New("twoman: the encrypted identity cannot be decrypted")

// sealBlob encrypts an exported identity: version ‖ nonce ‖
// XChaCha20-Poly1305(key, nonce, plaintext, ad).
func sealBlob(key, plaintext, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = blobVersion
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[1:], plaintext, ad), nil
}

func openBlob(key, blob, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, ErrDecrypt
	}
	if len(blob) < 1+aead.NonceSize()+aead.Overhead() || blob[0] != blobVersion {
		return nil, ErrDecrypt
	}
	n := aead.NonceSize()
	pt, err := aead.Open(nil, blob[1:1+n], blob[1+n:], ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// identityKey derives the identity encryption key from a twoManRuleKey.
func identityKey(twoManRuleKey []byte) ([]byte, error) {
	if len(twoManRuleKey) != KeySize {
		return nil, fmt.Errorf("twoman: twoManRuleKey must be %d bytes", KeySize)
	}
	return hkdf.Key(sha256.New, twoManRuleKey, nil, labelIdentityKey, chacha20poly1305.KeySize)
}

// identityAD binds the user and the (normalized) factor.
func identityAD(label, userID string, f Factor) []byte {
	b := []byte(label)
	b = append(b, 0)
	for _, s := range []string{userID, string(f.Type), f.Value} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	return b
}

// wire returns f as the SSKS API carries it.
func (f Factor) wire() wire.Factor { return wire.Factor{Type: string(f.Type), Value: f.Value} }
