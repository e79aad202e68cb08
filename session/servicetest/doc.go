// Package servicetest is the conformance suite for session.Service and
// session.Directory: every implementation — the key service's client
// (keyservice.Client over keyservice/server.Handler, on SQLite and on
// PostgreSQL) and the in-memory doubles (session.MemoryService,
// session.MemoryDirectory) — must pass Run, so that a test written against
// the doubles says something about the real service.
//
// Where the two once disagreed, the key service's rule is the one written
// down here. The suite checks, with errors.Is against the session
// package's sentinels:
//
//   - Create: the creator becomes admin and every grantee a member since
//     epoch 0; a channel that has a session answers with that session and
//     Created false, storing nothing, whoever asks; a session ID that
//     belongs to another channel is ErrConflict; grants are judged first,
//     even for a channel that has a session (ErrInvalidGrants: none, not
//     for epoch 0, two for one user, none for the creator, a grantee
//     without a published card, not an age file, too large).
//   - Lookup: anyone may find a channel's session; ErrUnknownSession
//     otherwise.
//   - Info and Grants: members only (ErrForbidden for others, removed
//     members included); members sorted by user ID, byte-wise; a member
//     reads its own grants only, every epoch, ascending; paging, if the
//     implementation pages, is invisible.
//   - Extend: any member, at the current epoch; another epoch, or a
//     grantee who is a member already, is ErrConflict; new members are not
//     admins and are members since that epoch.
//   - Rotate: admins only, from the current epoch to the next (grants for
//     any other epoch are ErrConflict); removed users lose the session and
//     their grants; every remaining member needs a grant and no removed user
//     may get one (ErrInvalidGrants); grantees who were not members join
//     since the new epoch.
//   - SetAdmin and Delete: admins only; SetAdmin of a non-member is
//     ErrUnknownUser.
//   - Rights before state: a caller without the right gets ErrForbidden
//     whatever it sends, and an unknown session is ErrUnknownSession for
//     everyone.
//   - A refused call changes nothing, and concurrent callers converge:
//     one session per channel, one winner per epoch, one member added once.
//   - The directory: a user's card history is published generation 0
//     first, republishing is a no-op, a history that differs from the
//     published one is ErrConflict, and a user without a card is
//     ErrUnknownUser (History) or absent (Latest).
//
// Not checked, because only an authenticating implementation can enforce
// it: that a user publishes only its own cards.
//
// Use it from a _test.go file; see the example.
package servicetest
