// Package memberlog is the membership log of a Veil session: a hash-chained
// sequence of signed records — a genesis signed by the session's creator,
// then changes (add, remove with a new epoch, rotate, role changes) each
// signed by its actor — that every client replays and verifies, so that
// neither Stream nor the key service can add a reader, substitute an epoch
// key or hide a removal.
//
// The package is pure (no I/O): clients (package session) and the key
// service (package keyservice/server) run the same rules, so the service's
// access control equals what clients compute, while clients never trust the
// service. The byte layouts, the rules and the reader's checks are specified
// in docs/PROTOCOL.md §10.
package memberlog
