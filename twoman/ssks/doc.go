// Package ssks is the Secure Key Storage Service of Veil's two-man-rule
// recovery: an [http.Handler] ([Handler]) that keeps each user's identity
// encrypted under a key it never sees, and releases it only to whoever
// answers a one-time code it sends to the user's email or phone.
//
// Codes have at least 8 digits from crypto/rand, are stored only as keyed
// hashes, expire (10 minutes by default), are single use, and a session
// dies after 5 wrong answers; challenges are rate-limited per user and per
// factor; factor values are stored as keyed hashes. It also keeps
// password-protected backups, whose lookup secret it stores as a keyed
// hash and checks, and which it locks after repeated failures; it answers
// a user without a backup as one with a wrong passphrase.
// docs/RECOVERY.md works out what an attacker can achieve against these
// limits.
//
// Codes reach users through a [Sender]: [SMTPSender] (email),
// [WebhookSender] (HMAC-signed JSON for SMS gateways), or, for development
// only, [InsecureLogSender]. Storage is a [Store] on SQLite or PostgreSQL
// ([OpenStore]).
//
// The Handler serves the same way as the key service's (see
// keyservice/server): an access line per request, 405 with Allow, JSON
// bodies only, /healthz, /readyz and /metrics, a cap on each client
// address's requests in flight, a minimum body rate and a bound on the
// bodies held at once; its device endpoints are also rate-limited per
// client address and per user (Config.RateLimit).
//
// The device's client is package [github.com/veilchat/veil/twoman] (which
// also holds the API's error codes and [twoman.APIError]); the app backend's
// half is package [github.com/veilchat/veil/twoman/backend].
package ssks
