package redact

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

// Placeholder is what a Secret prints in place of its bytes.
const Placeholder = "REDACTED"

// Format writes s under every verb: quoted under %q, as it is under every
// other (%v, %+v, %#v, %s, %x, %d...), ignoring flags, width and precision.
// s must already be free of secrets. It is how a type that describes
// itself without its secrets implements fmt.Formatter, so that no verb
// falls through to fmt's printing of its fields.
func Format(f fmt.State, verb rune, s string) {
	if verb == 'q' {
		s = strconv.Quote(s)
	}
	io.WriteString(f, s)
}

// Name is the name of a secret type, such as "twoman.RuleKey". Its methods
// are what the type's own methods return: a type delegates its String,
// GoString, Format, LogValue and MarshalJSON to its Name, and so prints as
// "twoman.RuleKey(REDACTED)" and refuses to marshal, like every other.
type Name string

// String returns the placeholder "<name>(REDACTED)".
func (n Name) String() string { return string(n) + "(" + Placeholder + ")" }

// GoString returns the same placeholder as String.
func (n Name) GoString() string { return n.String() }

// Format writes the placeholder under every verb (see [Format]).
func (n Name) Format(f fmt.State, verb rune) { Format(f, verb, n.String()) }

// LogValue returns the placeholder as a string value.
func (n Name) LogValue() slog.Value { return slog.StringValue(n.String()) }

// MarshalJSON refuses: a secret reaches JSON only through an explicit
// method of its type (Bytes, Reveal, Export), never as a side effect of
// marshalling a struct that holds it. The error names the type only.
func (n Name) MarshalJSON() ([]byte, error) {
	return nil, errors.New(string(n) + " is a secret and is not marshalled implicitly")
}

// Secret is a secret byte string of any length in a configuration: an HMAC
// secret, an API key, a password. It prints as REDACTED (unset for the
// zero value) under every fmt verb and in slog, marshals to the JSON
// string "REDACTED" (null when unset) so that a configuration can still be
// logged as JSON, and gives its bytes only to Reveal. Its bytes sit behind
// a pointer, so that fmt, printing a struct that holds a Secret in an
// unexported field (where it calls no method), shows an address.
//
// The zero value holds no secret. A Secret is immutable: copies share the
// bytes, and it is safe for concurrent use.
type Secret struct{ b *[]byte }

// New returns a Secret holding a copy of b; an empty b gives the zero
// Secret. The caller may clear b afterwards.
func New(b []byte) Secret {
	if len(b) == 0 {
		return Secret{}
	}
	c := bytes.Clone(b)
	return Secret{&c}
}

// Reveal returns a copy of the secret's bytes (nil for the zero value), for
// the one place that uses them: an HMAC, a comparison, a request header.
func (s Secret) Reveal() []byte {
	if s.b == nil {
		return nil
	}
	return bytes.Clone(*s.b)
}

// Len returns the length of the secret in bytes.
func (s Secret) Len() int {
	if s.b == nil {
		return 0
	}
	return len(*s.b)
}

// IsZero reports whether s holds no secret.
func (s Secret) IsZero() bool { return s.b == nil }

// String returns "REDACTED", or "unset" for the zero value.
func (s Secret) String() string {
	if s.b == nil {
		return "unset"
	}
	return Placeholder
}

// GoString returns the same text as String.
func (s Secret) GoString() string { return s.String() }

// Format writes String under every verb (see [Format]).
func (s Secret) Format(f fmt.State, verb rune) { Format(f, verb, s.String()) }

// LogValue returns String as a string value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON writes the JSON string "REDACTED", or null for the zero
// value, never the secret.
func (s Secret) MarshalJSON() ([]byte, error) {
	if s.b == nil {
		return []byte("null"), nil
	}
	return []byte(`"` + Placeholder + `"`), nil
}
