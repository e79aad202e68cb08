// Package redact keeps secrets out of fmt, log/slog and encoding/json. Every
// type in Veil that holds key bytes, a one-time code, a password, a token or
// an API key prints through it, so that all of them print the same way.
//
// A method alone does not redact. fmt calls String, GoString or Format only
// on a value it can reach as an interface; a value in an unexported struct
// field (of a caller's struct, or of a Handler that keeps its Config) is
// printed field by field by reflection, whatever methods its type has. A
// pointer field then prints as an address, except under a verb that does
// not fit a pointer (%s, %q), where fmt prints what it points to. So a
// secret-holding type does two things:
//
//   - it keeps its bytes in a [Value], two pointers away, where reflection
//     never reaches them (a [32]byte or a string held by value would print
//     in full, and behind a single pointer under %s);
//   - its String, GoString, Format, LogValue and MarshalJSON print a
//     placeholder, for the positions where a method can be called.
//
// A key or code type delegates its five methods to a [Name]. A
// configuration field holding a secret of any length (an HMAC secret, an
// API key, a password) is a [Secret], which does both by itself, so the
// configuration needs no methods of its own. A type that describes itself
// without its secrets (an identity by its fingerprint) implements
// fmt.Formatter with [Format].
//
// What is not promised: reflection through package unsafe, and the length
// of a Secret, which Len reveals to code that asks.
package redact
