package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/veilchat/veil/streamadapter/streamtest"
)

const streamtestUsage = `Usage: veil streamtest [--addr 127.0.0.1:3030] [--key K --secret S]

Serves a local emulation of Stream Chat's REST API (see the streamtest
package documentation for what is emulated) until interrupted, and prints the
environment to point any stream-chat-go program at it. The key and the secret
are random when not given.

Flags:
`

func streamtestCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("streamtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:3030", "listen address")
	key := fs.String("key", "", "API key (random when empty)")
	secret := fs.String("secret", "", "API secret (random when empty)")
	fs.Usage = func() {
		fmt.Fprint(stderr, streamtestUsage)
		fs.PrintDefaults()
	}
	if rest, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usagef("streamtest", "streamtest takes flags only, and %d argument(s) are not flags", len(rest))
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	emu := streamtest.NewServer(streamtest.Config{APIKey: *key, APISecret: streamtest.NewSecret([]byte(*secret))})
	defer emu.Close()
	// Serve the emulator's handler on the requested address.
	srv := &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second}
	url := "http://" + ln.Addr().String()
	emu.SetURL(url)
	fmt.Fprintf(stdout, "export STREAM_KEY=%s STREAM_SECRET=%s STREAM_CHAT_URL=%s\n", emu.APIKey(), emu.APISecret(), url)
	return serveUntilSignal(ctx, srv, ln)
}
