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
	//
	// Commands:
	//   serve        serve the key service, or the SSKS with --ssks
	//   streamtest   serve a local emulation of Stream Chat's API
	//
	// Run 'veil <command> --help' for a command's flags.
}
