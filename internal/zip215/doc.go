// Package zip215 is Veil's one Ed25519 verification rule: ZIP 215, as
// github.com/hdevalence/ed25519consensus implements it, so that a batch of
// signatures verifies exactly when each of them verifies alone.
//
// A signature R ‖ S verifies under public key A iff S < L, A and R decode as
// curve points (their y coordinate taken modulo p, so non-canonical
// encodings are accepted), and [8][S]B = [8]R + [8][k]A with
// k = SHA-512(R ‖ A ‖ message) mod L. The cofactor 8 makes small-order
// components irrelevant, which is what lets a random linear combination of
// many equations (a batch) decide the same as each equation. The rule, its
// edge cases and its vectors are in docs/PROTOCOL.md §2.
//
// The rule accepts, for a small-order key, one signature of every message:
// whoever verifies signatures for a user must first refuse such keys, as
// [ValidPublicKey] does for identity cards.
package zip215
