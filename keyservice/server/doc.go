// Package server is Veil's key service: the directory of users' public
// cards and the store of encrypted session grants, with the access rules of
// sessions. It never sees a private key or an epoch key in the clear: cards
// are public, grants are age files only their grantee opens, and clients
// verify everything they receive (signed cards, pinning, signed grants).
//
// [Handler] is an [http.Handler] serving a versioned JSON API under /v1, plus
// /healthz and Prometheus /metrics; mount it in an existing Go server or run
// it with `veil serve`. Its Go client and error codes are in package
// [github.com/veilchat/veil/keyservice], which devices and bots import
// without linking this package, its database drivers or its metrics.
//
// Storage is a [Store]: [OpenStore] opens SQLite (modernc.org/sqlite, pure Go,
// WAL; the embedded default, DSN "sqlite:///path/keys.db") or PostgreSQL
// (pgx; DSN "postgres://…"), for deployments with several stateless
// replicas. Both pass the conformance suite of package
// [github.com/veilchat/veil/keyservice/server/storetest].
//
// # API
//
//	PUT    /v1/users/{user}/cards          publish the caller's card (first, or chained to the latest)
//	GET    /v1/users/{user}/cards          a user's card history
//	POST   /v1/cards/lookup                newest cards of up to 1,000 users
//	POST   /v1/sessions                    create a session with its epoch-0 grants (Idempotency-Key)
//	GET    /v1/sessions?channel_cid=…      the session of a channel
//	GET    /v1/sessions/{id}               epoch and members (members, service); pages: ?limit=&after=
//	GET    /v1/sessions/{id}/grants        the caller's grants, every epoch (members); ?limit=&after_epoch=
//	POST   /v1/sessions/{id}/members       add members at the current epoch (members)
//	POST   /v1/sessions/{id}/rotate        new epoch, optionally removing members (admins)
//	PUT    /v1/sessions/{id}/admins/{user} grant or take the admin right (admins)
//	DELETE /v1/sessions/{id}               delete a session (admins, service)
//
// Errors are JSON {"error": {"code": "...", "message": "..."}} with the
// stable codes of the keyservice package's Code constants (for example
// [keyservice.CodeForbidden]), which its [keyservice.APIError] carries.
//
// User IDs (in paths, bodies and tokens) follow the rule of cards: 1 to 255
// bytes of UTF-8 without control characters. Channel CIDs are 1 to 1,024
// bytes of UTF-8 without NUL, and an Idempotency-Key is 1 to 255 bytes of
// UTF-8 without control characters. Anything else is refused with 400 (401
// in a token) before it reaches the store.
//
// # Authentication
//
// Requests carry a JWT ([Auth]): HS256 or Ed25519 tokens of the app backend
// with the user ID in "user_id" or "sub", service tokens with "role":
// "service", and optionally Stream user tokens verified with the Stream API
// secret, so one token serves Stream and Veil. Several keys may be active at
// once to rotate them.
package server
