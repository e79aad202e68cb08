// Command veil is Veil's command line: it serves the key service or the
// SSKS, and holds the tools around them.
//
//	veil serve [--ssks] [flags]     serve the key service (or the SSKS)
//	veil streamtest [flags]         serve a local Stream Chat emulation
//	veil help [command]             show help
//
// Each command documents its flags and environment variables with --help.
package main
