// Command backend is the app backend of Veil's reference architecture
// (docs/STREAM.md): the server an app's devices log in to, which issues
// their Stream and key-service tokens, runs the key service, and holds the
// backend's half of the two-man rule. It never holds a message key or an
// identity.
//
// Against the SSKS and the Stream emulator of `veil dev`:
//
//	go run ./cmd/veil dev                 # shell 1: prints export lines, keeps running
//	export STREAM_KEY=… …                 # shell 2: paste those lines, then
//	go run ./examples/backend --data ./backend-data
//
// # Routes
//
// Every answer is JSON; errors are {"error": {"code": …, "message": …}}.
//
//	POST /v1/signup      {"user_id", "name", "email", "password"}: makes the
//	                     account and the Stream user; 201 with the user's
//	                     tokens, 409 user_exists if the ID is taken
//	POST /v1/tokens      fresh tokens for the logged-in user:
//	                     {"user_id", "stream_token", "keyservice_token",
//	                     "expires_at"}, valid one hour
//	POST /v1/challenge   starts a two-man-rule challenge: the SSKS sends a
//	                     code to the account's email address, and the device
//	                     gets {"user_id", "factor", "session_id", "rule_key"
//	                     (the twoManRuleKey, base64), "must_authenticate",
//	                     "expires_at"}, a twoman.Session to pass with the
//	                     code to twoman.Client.SaveIdentity (at sign-up) or
//	                     RetrieveIdentity (on a new device)
//	GET  /healthz        ok
//	/keyservice/v1/…     the key service: a device's
//	                     keyservice.ClientConfig.BaseURL is the backend's
//	                     URL followed by /keyservice, and its Token returns
//	                     the keyservice_token
//
// /v1/tokens and /v1/challenge take HTTP Basic authentication (user ID and
// password).
//
// # Authentication is a stub
//
// How an app authenticates its users is its own business, and out of this
// example's scope: login.go is a stand-in to replace with the app's login
// (sessions, OAuth, passkeys). It keeps accounts — a user ID, an email
// address it never verifies, and an Argon2id hash of a password — in
// DIR/logins.json and checks HTTP Basic credentials against them. Veil
// needs only two things from it: which user the request is from, and the
// email address the app verified for that user (where recovery codes go:
// the caller never names it).
//
// # Tokens
//
// Stream tokens are signed with the Stream secret (stream-chat-go's
// CreateToken). Key-service tokens are EdDSA JWTs ("user_id", "iat", "exp",
// and a "kid" naming the key) signed with the backend's Ed25519 private
// key; the key service holds only the public key (server.Key{Ed25519: …}),
// so its configuration lets nobody act as a user, and Stream, which knows
// the Stream secret, cannot sign tokens it accepts. The private key is
// --signing-key, a PEM PKCS#8 file as `openssl genpkey -algorithm ed25519`
// writes it, or by default DIR/jwt-ed25519.key, generated on the first
// start (mode 0600; a file others may read is refused). The backend prints
// the public key in the form `veil serve` takes in VEIL_JWT_ED25519_KEYS,
// for a key service run on its own (docs/DEPLOY.md) instead of embedded.
//
// # Data
//
// DIR (--data, default ./veil-backend-data) holds the key service's SQLite
// database (keys.db), the twoManRuleKeys (twoman.db, a database of its own:
// the SSKS, run by another party, has the other half), the logins and the
// signing key. The SSKS is VEIL_SSKS_URL, reached with VEIL_SSKS_APP_KEY.
//
// run is this program, testable in-process.
package main
