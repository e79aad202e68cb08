// Package e2ee is Veil's entry point for an application or a bot acting as
// one user. A [Client] holds the user's [identity.Identity], a
// [session.Manager] over the key service, the user's trust pins, and a
// local state store ([StateStore]) that keeps the identity, the pins and
// the keys of the sessions the user was granted and the newest membership-log
// head it verified per session (its floor, never lowered) between runs,
// encrypted at
// rest under [Config.StateKey] (XChaCha20-Poly1305, bound to the user ID).
// [FileStore] keeps the state in one file; [MemoryStore], the default, keeps
// it for the life of the process only.
//
// [New] loads the saved identity, or on first use takes [Config.Identity]
// (an identity recovered or imported on a new device) or generates one
// (post-quantum hybrid by default), saves it, and publishes its card
// history to the key service. Before using a loaded or given identity it
// checks that the key service publishes no newer generation for the user
// ([ErrStateRollback]).
//
// [Client.CreateSession] starts a channel's encryption session (write its ID
// to the channel's session_id); [Client.OpenChannel] opens the session a
// channel's session_id names, after verifying that its signed genesis names
// the channel, and binds the channel to it ([ErrSessionChanged] if the
// channel later names another); [Config.SessionID] lets the client read
// session_id itself. The key service's listing of a channel is never
// trusted. [Client.Encrypt] seals a message for the channel's session and
// returns the text for Stream's text field; [Client.Decrypt] opens a received one. The
// package does not talk to Stream itself: the application sends and reads
// messages with its own Stream client and passes each message's
// [session.Binding] (channel CID, message ID, sender, thread parent, quoted
// message, edit revision).
// [Client.RotateIdentity] moves the user to a new key generation, and
// re-signs every session the state keeps with it, so that readers refuse
// what the retired generation signs from then on.
//
// Losing the state (or its key) loses the identity: back it up with
// [identity.Identity.ExportWithPassphrase], or with the two-man-rule
// recovery or a password backup of package
// [github.com/veilchat/veil/twoman], and hand the recovered identity to
// [Config.Identity] on the new device.
//
// What the state's key cannot tell: an older copy of the state
// authenticates as well as the newest. [New] refuses an older identity, but
// an older state with the same identity silently brings back older pins
// and fewer session keys (see [Config.StateKey] and SECURITY.md).
package e2ee
