// Command bot is an end-to-end encrypted bot on Stream, driven by Stream's
// webhook: add it to an encrypted channel and write; it reads your message
// from the webhook call, decrypts it, and answers in the channel, encrypted.
// Stream stores and relays only ciphertext, both ways.
//
// Against the local stack of `veil dev`, in two shells:
//
//	go run ./cmd/veil dev                 # shell 1: prints export lines, keeps running
//	export STREAM_KEY=… …                 # shell 2: paste those lines, then
//	go run ./examples/bot --register
//
// (`veil dev --bot` runs this bot in its own process instead, registered
// already.) Then, as any Veil user of the app, create an encrypted channel
// with the bot (streamadapter.Client.CreateChannel with members
// []string{"veil-bot"}) and send a message: the bot answers "you said: …",
// quoting it. It also answers /help and /fingerprint (its identity's
// fingerprint, to compare out of band).
//
// # Configuration
//
// From the environment `veil dev` prints, which a deployment sets to its
// own values:
//
//	STREAM_KEY, STREAM_SECRET  the Stream app's key and secret
//	STREAM_CHAT_URL            the Stream API's address (default: Stream's)
//	VEIL_KEYSERVICE_URL        the key service
//	VEIL_JWT_SECRET            the HS256 secret the key service verifies user
//	                           tokens with: the bot signs its own, for its
//	                           user ID, valid five minutes (golang-jwt)
//	VEIL_BOT_STATE_KEY         optional: the key of its state, 64 hex digits
//
// and flags: --addr, where it listens for Stream's webhook (default
// 127.0.0.1:8183); --state, the directory of its state (default
// ./veil-bot-state); --user, its Stream user ID (default veil-bot);
// --register, to set the app's webhook_url to the bot (an app has one:
// this replaces any other); --webhook-url, the URL Stream calls (default
// http://ADDR/webhook; on a real Stream app, the bot's public HTTPS
// address behind a proxy).
//
// # Identity
//
// The bot is a Veil user like any other. On its first start it generates
// an identity and publishes its card to the key service; it keeps the
// identity, the cards it trusts and its channels' keys in --state/veil.state,
// encrypted at rest under the state key. That key comes from
// VEIL_BOT_STATE_KEY, or else from --state/state.key, generated on the
// first start with mode 0600 (a file others may read is refused). A key
// beside the state it encrypts protects nothing from whoever can read the
// directory: that is for development; in production, keep the key in a
// secret manager and pass it in VEIL_BOT_STATE_KEY. Losing the state loses
// the identity: restart with a new state and the bot has a new identity,
// which its channels' members see as a key change, and it reads nothing
// sent before.
//
// # What it answers
//
// Stream sends the webhook every event of the app. The bot answers the new
// messages it decrypts — those of channels whose members added it — and
// ignores its own, system messages, plaintext channels and messages it
// cannot open. It answers on a goroutine of its own (Stream's call returns
// at once), at most 16 at a time, and answers a call Stream sends again
// (the same X-Webhook-Id) once. It logs channel and message IDs, never a
// text, a key or a token.
//
// The bot lives in package echobot, which `veil dev --bot` also runs; run
// is this program, testable in-process.
package main
