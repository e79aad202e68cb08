// Command quickstart tells Veil's whole story in one process, with nothing
// to install or configure:
//
//	go run ./examples/quickstart
//
// alice, bob and carol sign up; alice saves her identity under the two-man
// rule; she creates an encrypted Stream channel with bob, and they talk,
// reply in a thread and share a file, printed side by side as Stream stores
// them and as the members read them; carol joins with the history; bob is
// removed and cannot read what follows; alice loses her device, recovers
// her identity on a new one with the code emailed to her, and reads the
// history.
//
// Every service runs in the process: the Stream emulator (package
// streamtest), the key service on SQLite in a temporary directory and the
// SSKS (its codes handed to the program instead of emailed), both served
// over loopback HTTP, and the app backend with its half of the two-man
// rule. With STREAM_KEY and STREAM_SECRET set (and STREAM_CHAT_URL, for
// another API address) it runs on that Stream app instead, under user and
// channel IDs unique to the run, and deletes its channel at the end.
//
// The transcript shows public values only (fingerprints, session IDs,
// ciphertext): never a key, a token or a one-time code.
package main
