// Package backend is the app backend's half of Veil's two-man-rule recovery.
//
// The app's backend keeps a random 32-byte twoManRuleKey per user in a
// [KeyStore] (in memory for tests, SQLite or PostgreSQL with
// [OpenKeyStore]) and, for a user it has already authenticated, asks the
// SSKS to challenge the user's email or phone ([Backend.StartChallenge]).
// It returns the resulting [twoman.Session] to the user's device, which then
// answers the challenge with the code the user received. The backend never
// sees that code, and the SSKS never sees the twoManRuleKey: neither can
// recover an identity alone.
//
// The device's side is package [github.com/veilchat/veil/twoman]; the SSKS
// is package [github.com/veilchat/veil/twoman/ssks].
package backend
