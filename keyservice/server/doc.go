// Package server is Veil's key service: the directory of users' public
// cards, and the store of sessions — each a membership log (a hash-chained
// sequence of signed records, docs/PROTOCOL.md §10) with its encrypted
// grants — with the access rules the log gives. It never sees a private
// key or an epoch key in the clear: cards are public, grants are age files
// only their grantee opens, and clients verify everything they receive
// (signed cards, pinning, signed records, signed grants).
//
// [Handler] is an [http.Handler] serving a versioned JSON API under /v1, plus
// /healthz (live), /readyz (the store answers and its schema is current)
// and Prometheus /metrics; mount it in an existing Go server or run it with
// `veil serve`. Its Go client and error codes are in package
// [github.com/veilchat/veil/keyservice], which devices and bots import
// without linking this package, its database drivers or its metrics.
//
// Storage is a [Store]: [OpenStore] opens SQLite (modernc.org/sqlite, pure Go,
// WAL; the embedded default, DSN "sqlite:///path/keys.db") or PostgreSQL
// (pgx; DSN "postgres://…"), for deployments with several stateless
// replicas. Both pass the conformance suite of package
// [github.com/veilchat/veil/keyservice/server/storetest].
//
// # Sessions
//
// The handler runs the log's own rules before it stores a record
// (memberlog.Accept, the check session.MemoryService runs), rights before
// the request's content: a genesis is stored for its creator, and a
// change for a member — its signer, or another member publishing it again
// — or for a user the change makes a member; then the record must follow
// the log's head, its
// signer's cards (from this directory) must verify it, the change must be
// one the log allows its signer, and it must come with exactly the grants
// it needs — one per member for a new epoch, one per added user
// otherwise. The store then compares the head in the transaction that
// stores the record, its roster and its grants, so of two records sent at
// one head exactly one is stored. A genesis or record sent again by its
// signer (a record also by a member) is answered as the first time, even
// a record that took its signer out of the session (a retried leave).
//
// Publishing again is how a log heals after the service is restored from
// an older backup: members whose clients verified records the backup
// lacks send them back (session.Manager does so on its own), each with
// the grants it needs wrapped again, and the service takes each as it
// took it the first time — the signature and the chain decide, not the
// sender. A record counts against its signer's quota whoever sends it.
// Every stored genesis and change is logged at info ("session created",
// "membership change": the session ID, sequence number, epoch, signer,
// sender if another, users added and removed), and every deletion
// ("session deleted"), for operators to audit. Reads (log, head, grants)
// are for the log's current roster. A user keeps its grants while it is a
// member or holds the current epoch's key (a member who left without a new
// epoch, who needs no new grant if added back before the next one); they
// are deleted once it is neither. The handler keeps
// the verified state of recently used logs in memory (Config.StateCacheBytes)
// and replays the stored records when the store's head is not the cached
// one — never trusting its cache over the store, which other replicas
// write too.
//
// # API
//
//	PUT    /v1/users/{user}/cards          publish the caller's card (first, or chained to the latest)
//	GET    /v1/users/{user}/cards          a user's card history
//	POST   /v1/cards/lookup                newest cards of up to 1,000 users
//	POST   /v1/sessions                    {genesis, grants}: create a session (its signer); 201 {id}, 200 if sent again
//	GET    /v1/sessions?channel_cid=…      the session of a channel (a hint; the channel's session_id decides); 400 for a channel no genesis can name
//	POST   /v1/sessions/{id}/log           {record, grants}: append the next record (a member: its signer or one publishing it again)
//	GET    /v1/sessions/{id}/log           records from ?from= (default 0), in pages: ?limit=, next (members, service)
//	GET    /v1/sessions/{id}/head          {seq, hash} of the last record (members, service)
//	GET    /v1/sessions/{id}/grants        the caller's grants, every epoch (members); pages: ?limit=&after_epoch=
//	DELETE /v1/sessions/{id}               delete a session (its admins, service)
//
// Errors are JSON {"error": {"code": "...", "message": "..."}} with the
// stable codes of the keyservice package's Code constants (for example
// [keyservice.CodeForbidden]), which its [keyservice.APIError] carries.
// session_exists (409) adds "session_id", the channel's session; conflict
// (409) on an append adds "head", {seq, hash}, to reload from. A record
// that does not verify is invalid_log (400), grants that are not exactly
// the ones it needs invalid_grants (400), a caller who is not a member
// forbidden (403), a signer whose card generation the directory lacks
// unknown_user (404). A failing database (any Store error that is none of
// its sentinels) is unavailable (503), which clients retry, never 500.
//
// # Quotas
//
// Each user may create Config.MaxSessionsPerUser sessions (default 10,000)
// and make the service store Config.MaxBytesPerUser bytes (default 64 MiB):
// the records it signed, genesis and changes, plus the grants it uploaded
// with them; cards are not counted. Sessions count creations (deleting
// one gives none back); bytes count what is stored (deleting a session
// frees, for each user, what its records and grants were charged). A
// write past either is refused with quota_exceeded (403,
// [keyservice.ErrQuotaExceeded]) and stores nothing.
// The store counts in a per-user row it updates in the transaction that
// stores the write (see [Quota]), so concurrent writes on several replicas
// over one PostgreSQL database cannot together pass a limit.
//
// User IDs (in paths, bodies and tokens) follow the rule of cards: 1 to 255
// bytes of UTF-8 without control characters. Channel CIDs are 1 to 1,024
// bytes of UTF-8 without NUL. Anything else is refused with 400 (401 in a
// token) before it reaches the store; those inside records are the log's to
// check.
//
// # Serving
//
// The Handler logs one line per request (request ID from X-Request-ID or
// new, client address, route, status, latency, user) and the reason of a
// 401 or 403 at debug, never a token. A route that exists for other
// methods answers 405 with Allow; a body must be application/json (415)
// and name each key once (400 duplicate_key). It caps each client
// address's requests in flight (Config.MaxInFlightPerClient), drops bodies
// uploaded below a minimum rate (Config.MinBodyRate) and bounds the bytes
// of bodies held at once (Config.MaxBodyMemory). Timeouts, header bytes
// and the number of connections belong to the http.Server it is mounted
// in; docs/DEPLOY.md lists what `veil serve` sets.
//
// # Authentication
//
// Requests carry a JWT ([Auth]): HS256 or Ed25519 tokens of the app backend
// with the user ID in "user_id" or "sub", service tokens with "role":
// "service", and optionally Stream user tokens verified with the Stream API
// secret — for reading only: Stream knows that secret and can sign a token
// for any user, so a Stream-signed token never writes (cards, sessions,
// records, deletes; code stream_token_read_only). The recommended setup is a
// backend-issued Ed25519 (EdDSA) token: the key service then holds only the
// public key, and a copy of its configuration lets nobody act as a user.
// Tokens must carry "exp". Several keys may be active at once to rotate them.
package server
