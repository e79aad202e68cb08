// Package twoman recovers a user's Veil identity on a new device under the
// two-man rule, and keeps password-protected backups.
//
// Three parties, none of which can recover an identity alone:
//
//   - the app's backend (package [github.com/veilchat/veil/twoman/backend])
//     keeps a random 32-byte twoManRuleKey ([RuleKey]) per user in its own
//     store and gives it to the user's authenticated devices;
//   - the SSKS (package [github.com/veilchat/veil/twoman/ssks], the Secure
//     Key Storage Service, run by another party) keeps the identity
//     encrypted under a key derived from the twoManRuleKey, and releases it
//     only to whoever answers a one-time code it sends to the user's email
//     or phone;
//   - the user's device ([Client], this package) encrypts before upload and
//     decrypts after retrieval.
//
// The flow: the app's backend calls the backend package's
// Backend.StartChallenge for its logged-in user; the SSKS sends the user a
// code; the device calls [Client.SaveIdentity] (at sign-up, or after a key
// rotation) or [Client.RetrieveIdentity] (on a new device) with the
// [Session] the backend returned and the code the user typed. The backend
// never sees the code; the SSKS never sees the twoManRuleKey.
//
// Codes have at least 8 digits from crypto/rand, are stored only as keyed
// hashes, expire (10 minutes by default), are single use, and a session
// dies after 5 wrong answers; challenges are rate-limited per user and per
// factor; factor values are stored as keyed hashes. docs/RECOVERY.md works
// out what an attacker can achieve against these limits.
//
// Password backups ([Client.SavePassword], [Client.RetrievePassword],
// [Client.ChangePassword]) derive a lookup secret and an encryption key from
// the passphrase with Argon2id ([PasswordParams], stored with the backup and
// bounded) under a salt drawn from crypto/rand at every save; the SSKS
// checks the lookup secret and locks the backup after repeated failures.
//
// This package is what a device links: it imports no database driver, no
// metrics and no server code. [APIError] carries the SSKS's stable error
// codes (the Code constants) and matches this package's sentinels
// ([ErrNotFound], [ErrWrongPassphrase], ...) with [errors.Is].
package twoman
