// Package servicetest is the conformance suite for [session.Service] and
// [session.Directory]: every implementation — the key service's client
// over keyservice/server's handler, on SQLite and on PostgreSQL, and the
// in-memory [session.MemoryService] and [session.MemoryDirectory] — must
// pass [Run], so that a test written against the in-memory ones says
// something about the real service.
//
// Run signs real membership-log records (docs/PROTOCOL.md §10) with
// identities it generates from fixed seeds, and publishes their cards
// through the [Env]'s Directory. After each call it reads the session as
// every user — Head, Log from 0, Grants, and Lookup of its channel — and
// compares what it reads with what the session should be; a refused call
// must change nothing. It checks, with errors.Is against the session
// package's sentinels:
//
//   - Create: only the genesis's creator may send it (ErrForbidden, even
//     to send it again). The grants are exactly one for epoch 0 per member
//     of the genesis (ErrInvalidGrants: none, one missing, one for a
//     non-member, two for one user, another epoch, an empty grant, one
//     over session.MaxGrantSize). A genesis that does not parse or verify
//     is ErrInvalidLog: a change record, garbage, a bad signature, any
//     flipped byte, a card other than the one the directory has. A signer
//     whose card of that generation the directory lacks — no card at all,
//     or a newer generation not published — is ErrUnknownUser, as it is
//     from Append. A channel that has a session answers a
//     *session.SessionExistsError naming it (which matches
//     ErrSessionExists), once the request is judged valid. The same
//     genesis sent again by its creator succeeds, concurrently too.
//   - Append: only the record's signer may send it (ErrForbidden), and
//     only a member (ErrForbidden for others, a removed member or one who
//     left included, whatever new record or grants they send: rights come
//     before the request's content). A record that does not follow the head is ErrConflict
//     (someone appended first; also a record from further on). A record
//     the log's rules refuse is ErrInvalidLog: a member adding under the
//     default policy, a removal without a new epoch, a member promoting
//     itself, no admin left, a wrong roster digest, a skipped epoch, a bad
//     signature or byte, an impostor's card, another session's record, a
//     genesis. The grants must be exactly those memberlog.GrantsNeeded
//     names (ErrInvalidGrants). The same record sent again by its signer
//     succeeds wherever it is in the log, even when it took the signer
//     out (a retried leave), and concurrently too.
//   - Log(from): members only; the records from sequence number from on,
//     byte for byte, in order; none, and no error, beyond the head (a
//     non-member is refused whatever from is).
//   - Head: members only; the last record's sequence number and
//     memberlog.Hash.
//   - Grants: members only; the caller's own grants, of every epoch it
//     was given. A user keeps its grants while it is a member or holds the
//     current epoch's key (R(e), docs/PROTOCOL.md §10.4) and loses them
//     once it is neither. So a member who left without a rotation and is
//     added back before the next one has its grants again (the log gives
//     it no new one), and one added back after a removal or a rotation
//     has only the grants given since.
//   - Lookup: anyone may ask; the channel's session, or ErrUnknownSession.
//     A channel CID no genesis can name (empty, or over
//     session.MaxChannelCIDLen bytes) has no session either, so it is
//     ErrUnknownSession too, not an error of its own: the key service's
//     HTTP API refuses such a channel_cid as invalid input (400
//     invalid_request), and its Go client answers ErrUnknownSession
//     without asking.
//   - Delete: admins as the log says (a promoted member may; a demoted,
//     removed or departed admin may not: ErrForbidden). Afterwards the
//     session is unknown to everyone (ErrUnknownSession from every method,
//     Lookup included) and its channel takes a new session.
//   - Every method but Lookup answers ErrUnknownSession for a session no
//     one created, to members and outsiders alike; a refused call returns
//     zero values.
//   - Races: of different records on one head, one is stored and the
//     others get ErrConflict; of geneses for one channel, one is stored
//     and the others get a *session.SessionExistsError naming it.
//   - The directory: a user's card history is published generation 0
//     first, republishing is a no-op, a history that differs from the
//     published one is ErrConflict, and a user without a card is
//     ErrUnknownUser (History) or absent (Latest).
//
// Not promised, so not checked: the order of the grants Grants returns;
// what sending a stored record or genesis again with other grants does;
// whether a user named in a genesis or added by a record needs a published
// card (its anchor is the signer's word, docs/PROTOCOL.md §10.1); what
// sending a deleted session's genesis again does. Not checked, because
// only an authenticating implementation can enforce it: that a user
// publishes only its own cards.
//
// Use it from a _test.go file: see the example.
package servicetest
