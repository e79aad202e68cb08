package main

import (
	"context"
	"log"
	"os"
)

// The commands, as `veil help` lists them.
func Example() {
	if code := run(context.Background(), []string{"help"}, os.Stdout, os.Stderr); code != 0 {
		log.Fatalf("veil help: exit %d", code)
	}
	// Output:
	// Usage: veil <command> [flags]
	//        veil --version
	//
	// Commands:
	//   dev          run a local stack: key service, SSKS and Stream emulator
	//   inspect      show the public fields of an envelope, grant, card, log record or export
	//   keygen       generate an identity into a file
	//   serve        serve the key service, or the SSKS with --ssks
	//   streamtest   serve a local emulation of Stream Chat's API
	//   token        print a key-service user token signed with VEIL_JWT_SECRET, for trying the key service
	//   verify       show the safety number of two cards, or of a user's directory card
	//   version      print the version of veil, Go and the protocol
	//
	// Run 'veil <command> --help' for a command's flags.
}
