// Package identity holds a Veil user's keys and what others need to trust
// them.
//
// An [Identity] is private: per key generation, an Ed25519 signing key and an
// age encryption identity (ML-KEM-768 + X25519 hybrid by default, X25519 by
// option). A [Card] is its public half: user ID, generation, age recipient,
// signing key and creation time, self-signed and, from generation 1 on, also
// signed by the previous generation, so a key rotation ([Identity.Rotate]) is
// provably the same user. Old generations stay in the Identity so that grants
// made for them keep opening; Identity implements [age.Identity] for that.
//
// Trust is on first use: [Pins] stores the first card seen per user and [Check]
// accepts a different card only if a signature chain connects it to the
// pinned one. Otherwise it returns a [*KeyChangeError] and the application shows
// users their [SafetyNumber] (60 digits, or a scannable payload) to compare out
// of band.
//
// Applications sign with [Identity.Sign] under purposes of their own (those
// starting with [ReservedPurposePrefix] belong to the protocol). [Card.Verify]
// checks one signature and [BatchVerifier] many at once, both by the ZIP 215
// rules (docs/PROTOCOL.md §2): a batch accepts exactly the signatures that
// one-at-a-time verification accepts.
//
// Export writes an identity as text that is also an age identity file, so the
// age command line opens grants made for it:
//
//	age --decrypt -i alice.veil-identity grant.age
//
// ExportWithPassphrase wraps that text in an age passphrase (scrypt) file with
// a bounded work factor.
//
// Secret values (Identity) never print their keys: String, GoString, Format
// and LogValue redact them. The package does no I/O; randomness comes from the
// [io.Reader] the caller passes (nil means crypto/rand). Byte layouts and
// domain-separation strings are specified in docs/PROTOCOL.md.
package identity
