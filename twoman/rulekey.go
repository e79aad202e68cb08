package twoman

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// RuleKey is a user's twoManRuleKey: 32 random bytes the app backend keeps
// and hands to the user's authenticated devices. With the SSKS's encrypted
// identity (released only after the user's one-time code) it recovers the
// identity; alone it recovers nothing. It redacts itself under fmt and slog.
type RuleKey struct{ k [KeySize]byte }

// NewRuleKey returns a random key (rand nil means crypto/rand).
func NewRuleKey(rnd io.Reader) (RuleKey, error) {
	var k RuleKey
	if rnd == nil {
		rnd = rand.Reader
	}
	if _, err := io.ReadFull(rnd, k.k[:]); err != nil {
		return RuleKey{}, err
	}
	return k, nil
}

// ParseRuleKey returns the key whose bytes are b ([KeySize] bytes).
func ParseRuleKey(b []byte) (RuleKey, error) {
	var k RuleKey
	if len(b) != KeySize {
		return RuleKey{}, fmt.Errorf("twoman: a twoManRuleKey is %d bytes", KeySize)
	}
	copy(k.k[:], b)
	return k, nil
}

// Bytes returns a copy of the key, to send to the user's device over the
// app's authenticated API.
func (k RuleKey) Bytes() []byte { return bytes.Clone(k.k[:]) }

// Equal reports in constant time whether two keys are equal.
func (k RuleKey) Equal(o RuleKey) bool { return subtle.ConstantTimeCompare(k.k[:], o.k[:]) == 1 }

// String returns a redacted placeholder.
func (k RuleKey) String() string { return "twoman.RuleKey(REDACTED)" }

// GoString returns a redacted placeholder.
func (k RuleKey) GoString() string { return k.String() }

// Format prints a redacted placeholder under every verb.
func (k RuleKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue implements [slog.LogValuer] with a redacted placeholder.
func (k RuleKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalJSON refuses: a key reaches JSON only through an explicit Bytes.
func (k RuleKey) MarshalJSON() ([]byte, error) {
	return nil, errors.New("twoman: RuleKey is not serialized implicitly; use Bytes")
}
