package e2ee

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/veilchat/veil/internal/redact"
)

// StateKey is the 32-byte key that encrypts a Client's local state at rest
// (Config.StateKey). Keep it outside the state's storage: a secret manager,
// the OS keychain. It redacts itself under fmt and slog, refuses
// encoding/json, and Bytes is the only way out. Its bytes sit two pointers
// away (a redact.Value), so that fmt, printing a struct that holds a
// StateKey (or a Config) in an unexported field, where it cannot call
// Format, shows an address under every verb, not the key. Keys are
// immutable; copies share the bytes. The zero value is no key.
type StateKey struct {
	k redact.Value[[StateKeySize]byte]
}

// NewStateKey returns a random key read from rand (nil means crypto/rand).
// Store its Bytes in a secret manager and load it with ParseStateKey.
func NewStateKey(rnd io.Reader) (StateKey, error) {
	k := new([StateKeySize]byte)
	if rnd == nil {
		rnd = rand.Reader
	}
	if _, err := io.ReadFull(rnd, k[:]); err != nil {
		return StateKey{}, fmt.Errorf("e2ee: reading randomness: %w", err)
	}
	return StateKey{redact.Hold(k)}, nil
}

// ParseStateKey returns the key whose bytes are b (exactly StateKeySize).
// It copies b: the caller may clear it afterwards.
func ParseStateKey(b []byte) (StateKey, error) {
	if len(b) != StateKeySize {
		return StateKey{}, errors.New("e2ee: a StateKey is 32 bytes")
	}
	k := new([StateKeySize]byte)
	copy(k[:], b)
	return StateKey{redact.Hold(k)}, nil
}

// Bytes returns a copy of the key bytes (nil for the zero value), to store
// in a secret manager. Handle them as a secret.
func (k StateKey) Bytes() []byte {
	if k.k.IsZero() {
		return nil
	}
	return bytes.Clone(k.k.Get()[:])
}

const stateKeyName = redact.Name("e2ee.StateKey")

// String returns a redacted placeholder.
func (k StateKey) String() string { return stateKeyName.String() }

// GoString returns a redacted placeholder.
func (k StateKey) GoString() string { return stateKeyName.GoString() }

// Format prints a redacted placeholder under every verb.
func (k StateKey) Format(f fmt.State, verb rune) { stateKeyName.Format(f, verb) }

// LogValue implements slog.LogValuer with a redacted placeholder.
func (k StateKey) LogValue() slog.Value { return stateKeyName.LogValue() }

// MarshalJSON refuses: a key reaches JSON only through Bytes.
func (k StateKey) MarshalJSON() ([]byte, error) { return stateKeyName.MarshalJSON() }
