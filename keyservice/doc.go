// Package keyservice is the Go client of Veil's key service: the directory of
// users' public cards and the store of sessions — their membership logs and
// encrypted grants — with the access rules the logs give. The service never
// sees a private key or an epoch key in the clear: cards are public, grants
// are age files only their grantee opens, and this client's callers verify
// everything they receive (signed cards, pinning, signed log records,
// signed grants).
//
// [Client] implements [session.Service] and [session.Directory], so a
// [session.Manager] (and the e2ee package's Client) works over HTTP.
// [APIError] carries the service's stable error codes (the Code constants)
// and matches both this package's sentinels ([ErrNotFound], [ErrForbidden],
// ...) and the session package's ([session.ErrForbidden],
// [session.ErrConflict], [session.ErrInvalidLog], ...) with [errors.Is],
// and Create returns a [*session.SessionExistsError] when the channel has
// another session, so a [session.Manager] behaves the same over HTTP as
// over [session.MemoryService].
//
// The service itself (HTTP handler, SQLite and PostgreSQL stores,
// authentication) is package [github.com/veilchat/veil/keyservice/server].
// This package imports no database driver, metrics or token-signing code: a
// device or a bot links only what it needs to talk to the service.
package keyservice
