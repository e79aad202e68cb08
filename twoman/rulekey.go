package twoman

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"

	"github.com/veilchat/veil/internal/redact"
)

// RuleKey is a user's twoManRuleKey: 32 random bytes the app backend keeps
// and hands to the user's authenticated devices. With the SSKS's encrypted
// identity (released only after the user's one-time code) it recovers the
// identity; alone it recovers nothing. It redacts itself under fmt and
// slog, refuses encoding/json, and Bytes is the only way out. Its bytes sit
// two pointers away (a redact.Value), so that fmt, printing a struct that
// holds a RuleKey in an unexported field (where it cannot call Format),
// shows an address under every verb, not the key. Keys are immutable;
// copies share the bytes. The zero value is not a valid key.
type RuleKey struct{ k redact.Value[[KeySize]byte] }

// NewRuleKey returns a random key (rand nil means crypto/rand).
func NewRuleKey(rnd io.Reader) (RuleKey, error) {
	k := new([KeySize]byte)
	if rnd == nil {
		rnd = rand.Reader
	}
	if _, err := io.ReadFull(rnd, k[:]); err != nil {
		return RuleKey{}, err
	}
	return RuleKey{redact.Hold(k)}, nil
}

// ParseRuleKey returns the key whose bytes are b ([KeySize] bytes).
func ParseRuleKey(b []byte) (RuleKey, error) {
	if len(b) != KeySize {
		return RuleKey{}, fmt.Errorf("twoman: a twoManRuleKey is %d bytes", KeySize)
	}
	k := new([KeySize]byte)
	copy(k[:], b)
	return RuleKey{redact.Hold(k)}, nil
}

// raw returns the key bytes, or nil for the zero value.
func (k RuleKey) raw() []byte {
	if k.k.IsZero() {
		return nil
	}
	return k.k.Get()[:]
}

// Bytes returns a copy of the key (nil for the zero value), to send to the
// user's device over the app's authenticated API.
func (k RuleKey) Bytes() []byte { return bytes.Clone(k.raw()) }

// Equal reports in constant time whether two keys are equal.
func (k RuleKey) Equal(o RuleKey) bool { return subtle.ConstantTimeCompare(k.raw(), o.raw()) == 1 }

const ruleKeyName = redact.Name("twoman.RuleKey")

// String returns a redacted placeholder.
func (k RuleKey) String() string { return ruleKeyName.String() }

// GoString returns a redacted placeholder.
func (k RuleKey) GoString() string { return ruleKeyName.GoString() }

// Format prints a redacted placeholder under every verb.
func (k RuleKey) Format(f fmt.State, verb rune) { ruleKeyName.Format(f, verb) }

// LogValue implements [slog.LogValuer] with a redacted placeholder.
func (k RuleKey) LogValue() slog.Value { return ruleKeyName.LogValue() }

// MarshalJSON refuses: a key reaches JSON only through an explicit Bytes.
func (k RuleKey) MarshalJSON() ([]byte, error) { return ruleKeyName.MarshalJSON() }
