// Package veil is the root of Veil, end-to-end encryption for GetStream.io
// Chat in Go. Messages in a Stream channel are readable by the channel's
// members and nobody else: not Stream, not the operators of Veil's key
// service. This package holds no code: it documents the module and runs the
// known-answer vectors of docs/PROTOCOL.md (testdata/vectors) in its tests.
//
// # Packages, in the order to read them
//
// The cryptography, which does no I/O:
//
//   - [github.com/veilchat/veil/identity]: a user's keys (Ed25519 signing,
//     age encryption, post-quantum hybrid by default), public cards, key
//     rotation, trust on first use, safety numbers, export and passphrase
//     backups.
//   - [github.com/veilchat/veil/session]: encryption sessions bound to a
//     channel, signed and padded message envelopes, key grants as age files,
//     streamed attachment encryption, and the Manager that creates,
//     retrieves, extends, revokes and rotates sessions.
//
// What an application or a bot links:
//
//   - [github.com/veilchat/veil/e2ee]: the SDK's entry point, a Client for
//     one user with its identity, session manager, trust pins and encrypted
//     local state.
//   - [github.com/veilchat/veil/keyservice]: the key service's Go client and
//     its error codes; it plugs into the session manager over HTTP.
//   - [github.com/veilchat/veil/twoman]: the device's client of two-man-rule
//     recovery and password backups.
//   - [github.com/veilchat/veil/streamadapter]: encrypted Stream channels
//     through stream-chat-go/v6, for bots, backends and Go clients: sending
//     seals, reading opens, members follow both Stream and the session.
//
// The services, each run by its own party:
//
//   - [github.com/veilchat/veil/keyservice/server]: the key service, an
//     http.Handler with SQLite and PostgreSQL stores and JWT authentication.
//   - [github.com/veilchat/veil/keyservice/server/storetest]: the
//     conformance suite every key service store passes.
//   - [github.com/veilchat/veil/twoman/backend]: the app backend's half of
//     recovery, which holds each user's twoManRuleKey and starts challenges.
//   - [github.com/veilchat/veil/twoman/ssks]: the Secure Key Storage Service,
//     an http.Handler that keeps encrypted identities and sends one-time
//     codes.
//
// Tools:
//
//   - [github.com/veilchat/veil/streamadapter/streamtest]: a local server
//     speaking Stream Chat's REST API to stream-chat-go/v6, for tests and
//     offline development.
//   - [github.com/veilchat/veil/cmd/veil]: the veil command, which serves the
//     key service or the SSKS (veil serve), runs the whole stack on loopback
//     for development (veil dev) or the Stream emulation alone (veil
//     streamtest), and generates identities, decodes the protocol's objects,
//     compares safety numbers and prints development tokens (veil keygen,
//     inspect, verify, token).
//
// examples/quickstart runs the whole story on Stream in one program, with
// nothing to configure; examples/recovery shows the two-man rule and
// password backups; examples/bot is an encrypted bot driven by Stream's
// webhook, and examples/backend the app backend (tokens, sign-up,
// two-man-rule challenges, the key service embedded), both run against the
// local stack of `veil dev`. README.md's code tour is this package's
// Example_stream.
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
// within an epoch, hiding metadata. SECURITY.md lists the limitations;
// docs/PROTOCOL.md specifies every byte; testdata/vectors holds known-answer
// vectors.
package veil
