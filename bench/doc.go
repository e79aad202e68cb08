// Package bench compares Veil with the ways a chat application could
// encrypt its messages without it, each measured in the same benchmark loop
// as Veil:
//
//   - age per message: every message is an age file for every member of the
//     channel (X25519 recipients, the cheaper kind). It does not
//     authenticate the sender.
//   - OpenPGP per message: every message is signed by its sender and
//     encrypted to every member with gopenpgp (its default profile:
//     Curve25519 keys, EdDSA signatures).
//   - Megolm, as Matrix runs it (mautrix-go's pure-Go goolm): the sender
//     encrypts every message once under its outbound group session's
//     ratchet and signs it (Ed25519); every member holds an inbound group
//     session made from the session key, which the sender sends to each
//     member's device over Olm once per session.
//
// Veil seals a message once under the channel's epoch key and signs it, so
// its cost does not grow with the number of members; what age and OpenPGP
// pay per member per message, Veil pays once per member per epoch (a
// grant), and Megolm once per member per session (an Olm message).
//
// BenchmarkSeal and BenchmarkOpen time one message; BenchmarkPage a page of
// 100 messages opened by one reader; BenchmarkShare the per-member setup,
// Veil's grants beside Megolm's room keys over Olm. Megolm's reader keeps
// state (its ratchet only moves forward), which BenchmarkPage accounts for:
// see its documentation.
//
// The package is a module of its own so that the peers never enter the
// SDK's dependencies. Run it from this directory:
//
//	go test -run '^$' -bench . -benchtime 3s -count 6
//
// The tests check that every peer round-trips and refuses a modified
// message (for OpenPGP and Megolm, by their signatures), so the benchmarks
// time working code.
package bench
