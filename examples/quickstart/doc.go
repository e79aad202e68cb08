// Command quickstart walks through Veil's core in one process: three users
// get identities, share an encrypted session for a channel, exchange sealed
// messages and an encrypted attachment, check each other's safety number,
// and remove a member, who is then locked out of everything sent afterwards.
//
// It uses the in-memory session service and directory, so it needs nothing
// else running:
//
//	go run ./examples/quickstart
package main
