// Command veil is Veil's command line: it serves the key service or the
// SSKS, runs a local development stack, and holds the tools around
// identities and the objects of the protocol.
//
//	veil serve [--ssks] [flags]        serve the key service (or the SSKS)
//	veil dev [flags]                   key service, SSKS and Stream emulator on loopback
//	veil streamtest [flags]            serve a local Stream Chat emulation
//	veil keygen --user ID --out FILE   generate an identity (passphrase-protected on request)
//	veil inspect [FILE | - | veil1:…]  show the public fields of an envelope, grant,
//	                                   card, membership-log record, export or attachment
//	veil verify CARD THEIRS            the safety number of two cards
//	veil verify --keyservice URL --user ID CARD
//	                                   the safety number of a user's directory card
//	veil token --user ID               a key-service user token signed with
//	                                   VEIL_JWT_SECRET, for trying the stack from a shell
//	veil version, veil --version       the version of veil, Go and the protocol
//	veil help [command]                show help
//
// Each command documents its flags and environment variables with --help.
// A mistake on the command line (an unknown flag, a missing value) prints one
// line naming the flag and the fix, and exits with status 2; a failure exits
// with status 1. inspect, keygen and verify never print a private key, an
// epoch key or a message.
package main
