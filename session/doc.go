// Package session implements Veil's encryption sessions: the keys of a
// channel, the envelopes messages travel in, the grants that hand keys to
// members, and streamed attachment encryption.
//
// A [Session] is bound to one Stream channel (its CID) and has a 128-bit
// [ID], which the channel stores in its session_id custom field. Its keys come
// in epochs numbered from 0; removing a member rotates to a new epoch whose
// key only the remaining members receive, so a removed member reads nothing
// sealed afterwards even if it kept every key.
//
// A session's members and epochs are a membership log (docs/PROTOCOL.md
// §10): a genesis signed by the creator — whose hash is the session ID —
// then changes, each signed by a member the log's [Policy] allows to make
// it. A [Manager] verifies every record, accepts an epoch key only if it
// matches the commitment the log signed, keeps the newest head it verified
// as a [Floor] (never lowered: [ErrRollback], [ErrFork]) with the records
// that lead to it ([Records]) — which it publishes again when the Service
// serves an older head of the same log, so that a key service restored
// from a backup heals —, never adopts a
// channel's session silently ([SessionExistsError]), and, with
// [Config.Members], rotates out members the application no longer lists
// before it seals, so that a removal takes effect when either the
// application (Stream) or the log shows it.
//
// A card generation that signs a record of the log retires the signer's
// older ones: the log then refuses their records, and readers their
// envelopes and grants in the epochs that follow; a reader that trusts a
// newer generation than the log shows refuses what the older one signed
// until the newer one signs a record after it. A Manager whose identity
// rotated re-signs a session ([Manager.RetireGenerations]) before it seals
// there.
//
// Seal encrypts a message under the current epoch with XChaCha20-Poly1305,
// binds the message's [Binding] (channel CID, message ID, sender, thread
// parent, quoted message, edit revision) and the header as associated data, pads the plaintext (Padmé),
// commits to the key, and signs everything with the sender's identity.
// [EncodeText] gives the ASCII form stored in Stream's text field, and
// [MaxPlaintext] says how much fits in Stream's 5,000 characters. Every failure
// to open is the one opaque [ErrDecrypt].
//
// A grant ([NewGrant], [OpenGrant]) is one epoch key wrapped for one member's
// card as a standard age file, signed by the granter.
//
// [EncryptStream] and [DecryptStream] encrypt attachments of any size in
// constant memory, in 64 KiB chunks under a per-file key.
//
// [Manager] ties it together over two interfaces, [Service] (where membership
// logs and grants are stored, with access control; the key service implements
// it, and [MemoryService] in memory) and [Directory] (users' cards;
// [MemoryDirectory] in memory): create, open, extend, revoke, rotate, leave,
// seal and open messages.
//
// The package does no I/O of its own. Byte layouts and labels are specified
// in docs/PROTOCOL.md.
package session
