// Package echobot is the bot of examples/bot: a member of encrypted Stream
// channels that reads what it is sent through Stream's webhook and answers,
// encrypted, in the same channel. It is a package of its own so that
// `veil dev --bot` runs the same bot in its process; a real bot would keep
// this code in its main package.
//
// The bot is an ordinary Veil user (a streamadapter.Client): it has an
// identity of its own, kept in a state file encrypted at rest, and reads
// only the channels whose members added it. Stream delivers every event of
// the app to the webhook; the bot answers the new messages it can decrypt
// — those of the channels it is a member of — and ignores the rest.
//
// It answers
//
//	/help          what it does
//	/fingerprint   its identity's fingerprint, to compare out of band
//	anything else  "you said: " and the text
//
// Nothing it logs holds a message's text or a key: only channel and message
// IDs, and the reasons messages did not open.
package echobot
