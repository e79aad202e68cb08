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
//
// Veil seals a message once under the channel's epoch key and signs it, so
// its cost does not grow with the number of members; what these peers pay
// per member per message, Veil pays once per member per epoch (a grant).
//
// The package is a module of its own so that the peers never enter the
// SDK's dependencies. Run it from this directory:
//
//	go test -run '^$' -bench . -benchtime 500x -count 6
//
// The tests check that every peer round-trips (and, for OpenPGP, verifies
// its signature), so the benchmarks time working code.
package bench
