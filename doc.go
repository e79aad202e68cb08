// Package veil is the root of Veil, end-to-end encryption for GetStream.io
// Chat in Go. Messages in a Stream channel are readable by the channel's
// members and nobody else: not Stream, not the operators of Veil's key
// service.
//
// The packages:
//
//   - identity: a user's keys (Ed25519 signing, age encryption, post-quantum
//     hybrid by default), public cards, key rotation, trust on first use,
//     safety numbers, export and passphrase backups.
//   - session: encryption sessions bound to a channel, signed and padded
//     message envelopes, key grants as age files, streamed attachment
//     encryption, and the Manager that creates, retrieves, extends, revokes
//     and rotates sessions.
//
// # Threat model in brief
//
// Stream and the key service are untrusted for confidentiality: they see
// ciphertext, metadata (who, when, padded sizes) and public cards. Veil
// guarantees, each backed by tests:
//
//   - nobody without a member's keys reads message text or attachments;
//   - a member cannot forge another member's message (per-message Ed25519
//     signatures);
//   - a message cannot be moved to another channel, message ID, sender,
//     thread, session or epoch (all bound as AEAD associated data);
//   - a removed member reads nothing sent after removal, even with every key
//     it ever held (removal rotates to a new epoch);
//   - a key service that substitutes a public key is detected (signed cards,
//     rotations signed by the previous key, pinning, safety numbers);
//   - ciphertexts are key-committing and padded;
//   - secrets never reach logs or fmt output.
//
// Not promised: deniability (messages are signed), post-compromise security
// within an epoch, hiding metadata. docs/PROTOCOL.md specifies every byte;
// testdata/vectors holds known-answer vectors.
package veil
