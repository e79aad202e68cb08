// Package streamadapter gives Stream Chat channels end-to-end encryption
// through stream-chat-go/v6: sending seals, reading opens, and a channel's
// members are those of both the Stream channel and its Veil session.
//
// A Client is one Veil user on Stream: a stream-chat-go client (made with
// the app's key and secret, acting for the user by ID) and the user's
// e2ee.Client, which New makes with a member list and a session_id read
// from the Stream channel. That makes it what a bot, a service member of
// channels, a Go desktop or CLI client behind a backend, or a test harness
// uses. Its methods mirror stream-chat-go's: ctx first, per-call options.
//
//   - Channels: Client.CreateChannel makes the Stream channel with its
//     members, the Veil session, and writes the session's ID to the
//     channel's session_id (with the marker veil_encrypted); two members
//     creating at once converge on one session. Client.Channel opens an
//     existing one, verifying that its session belongs to it.
//   - Sending: Channel.SendMessage seals the text and the custom fields
//     (all but those named with Public) under a message ID chosen before
//     sealing, binds the thread parent, the quoted message and the
//     revision, turns URL enrichment off, and checks the ID Stream
//     stored. Channel.UpdateMessage re-seals an edit under the next
//     revision. Channel.UploadFile encrypts a file as it uploads it;
//     Client.OpenAttachment decrypts one as it downloads it.
//   - Reading: Channel.Query, Channel.GetMessages, Channel.GetReplies,
//     Client.GetMessage and Client.QueryChannels return each message with a
//     Status — decrypted, plaintext (never trusted) or failed, with a
//     reason matching one of the Err variables — and one bad message
//     never fails a page. A page fetches each session and sender card once,
//     and verifies its signatures in batches on every core.
//   - Members: Channel.AddMembers (history visible, or hidden with
//     HideHistory) and Channel.RemoveMembers, which rotates the session's
//     key before it removes the members on Stream, so that a failure half
//     way never leaves a removed member reading new messages. A member
//     removed on Stream by any other client is rotated out by the next
//     member who sends.
//   - Webhooks: WebhookHandler verifies Stream's signature and hands opened
//     events to a callback; Guard is a before-message-send hook that
//     refuses plaintext in encrypted channels.
//
// What Stream sees of an encrypted channel: members, timing, sizes (padded),
// thread structure, quotes, mentions, reactions, custom fields named
// Public, the uploaded ciphertexts and their URLs. See docs/STREAM.md for
// the reference architecture and what end-to-end encryption costs on
// Stream (search, moderation, push previews, URL previews), and
// docs/PROTOCOL.md §9.1 for the sealed message format.
//
// Its subpackage streamtest is a local Stream server for tests and demos;
// the package example runs the whole flow on it.
package streamadapter
