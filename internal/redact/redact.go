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

// Value holds a secret of type T where fmt cannot print it: two pointers
// away from the struct that holds the Value. One pointer is not enough.
// fmt prints a struct it reaches by reflection (in an unexported field)
// field by field, and a pointer field as an address, except under a verb
// that does not fit a pointer (%s, %q): it then reports the bad verb and
// prints what the pointer points to with %v, so that a *[32]byte shows its
// 32 bytes. Behind a second pointer they show as an address.
//
// A Value has no methods that print: the type that holds it does, through
// a [Name]. The zero value holds nothing.
type Value[T any] struct{ p **T }

// Hold returns a Value holding v. The caller keeps no other reference to
// *v if the secret is to stay where fmt cannot reach it.
func Hold[T any](v *T) Value[T] { return Value[T]{&v} }

// Get returns the held pointer, or nil for the zero value.
func (v Value[T]) Get() *T {
	if v.p == nil {
		return nil
	}
	return *v.p
}

// IsZero reports whether v holds nothing.
func (v Value[T]) IsZero() bool { return v.p == nil }

// Secret is a secret byte string of any length in a configuration: an HMAC
// secret, an API key, a password. It prints as REDACTED (unset for the
// zero value) under every fmt verb and in slog, marshals to the JSON
// string "REDACTED" (null when unset) so that a configuration can still be
// logged as JSON, and gives its bytes only to Reveal. Its bytes sit in a
// [Value], where fmt, printing a struct that holds a Secret in an
// unexported field (where it calls no method), does not reach them.
//
// The zero value holds no secret. A Secret is immutable: copies share the
// bytes, and it is safe for concurrent use.
type Secret struct{ v Value[[]byte] }

// New returns a Secret holding a copy of b; an empty b gives the zero
// Secret. The caller may clear b afterwards.
func New(b []byte) Secret {
	if len(b) == 0 {
		return Secret{}
	}
	c := bytes.Clone(b)
	return Secret{Hold(&c)}
}

// Reveal returns a copy of the secret's bytes (nil for the zero value), for
// the one place that uses them: an HMAC, a comparison, a request header.
func (s Secret) Reveal() []byte {
	if s.v.IsZero() {
		return nil
	}
	return bytes.Clone(*s.v.Get())
}

// Len returns the length of the secret in bytes.
func (s Secret) Len() int {
	if s.v.IsZero() {
		return 0
	}
	return len(*s.v.Get())
}

// IsZero reports whether s holds no secret.
func (s Secret) IsZero() bool { return s.v.IsZero() }

// String returns "REDACTED", or "unset" for the zero value.
func (s Secret) String() string {
	if s.IsZero() {
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
	if s.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + Placeholder + `"`), nil
}
