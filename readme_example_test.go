package veil_test

// The code tour of README.md. Its Go blocks are runs of lines of this file
// (TestReadmeSnippets checks it), so the README's code compiles and runs.

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/streamadapter"
	"github.com/veilchat/veil/streamadapter/streamtest"
)

// readmeServices starts what an app already runs, in process: Stream (its
// emulator) and a key service on a temporary SQLite file. It returns the
// stream-chat-go client the app backend makes with its key and secret, and
// a function that connects a user's device to the key service with the
// token the app backend issues.
func readmeServices() (sc *stream.Client, keys func(userID string) *keyservice.Client, stop func()) {
	ctx := context.Background()
	secret := []byte("the key service's HS256 secret, 32 bytes or more")
	emulator := streamtest.NewServer(streamtest.Config{})
	dir, err := os.MkdirTemp("", "veil-readme")
	check(err)
	store, err := server.OpenStore(ctx, filepath.Join(dir, "keys.db"))
	check(err)
	h, err := server.NewHandler(server.Config{Store: store, Auth: server.Auth{Keys: []server.Key{{HS256: server.NewSecret(secret)}}}})
	check(err)
	ks := httptest.NewServer(h)
	keys = func(userID string) *keyservice.Client {
		_, err := emulator.Client().UpsertUser(ctx, &stream.User{ID: userID}) // the app's sign-up
		check(err)
		token, err := server.UserToken(secret, "", userID, time.Hour)
		check(err)
		c, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: ks.URL, Token: keyservice.StaticToken(token)})
		check(err)
		return c
	}
	return emulator.Client(), keys, func() { ks.Close(); store.Close(); emulator.Close(); os.RemoveAll(dir) }
}

// check stops the example on an error.
func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// Example_stream is README.md's code tour: an encrypted Stream channel
// through package streamadapter.
func Example_stream() {
	ctx := context.Background()
	sc, keys, stop := readmeServices()
	defer stop()

	// A Veil user acting on Stream: stream-chat-go's client and the user's keys.
	alice, err := streamadapter.New(ctx, streamadapter.Config{
		Stream: sc, // stream.NewClient(apiKey, apiSecret)
		Veil:   e2ee.Config{UserID: "alice", KeyService: keys("alice")},
	})
	check(err)
	bob, err := streamadapter.New(ctx, streamadapter.Config{Stream: sc, Veil: e2ee.Config{UserID: "bob", KeyService: keys("bob")}})
	check(err)

	// The Stream channel, its Veil session, and the session's ID in session_id.
	ch, err := alice.CreateChannel(ctx, "messaging", "plans", []string{"bob"})
	check(err)
	// The text is sealed before it leaves; a file is encrypted as it uploads.
	sent, err := ch.SendMessage(ctx, &stream.Message{Text: "Hello bob"})
	check(err)
	fmt.Println("Stream stores", sent.Message.Text[:6]+"…")
	file, err := ch.UploadFile(ctx, strings.NewReader("%PDF- the plans"), "plans.pdf", "")
	check(err)
	_, err = ch.SendMessage(ctx, &stream.Message{Text: "The plans"}, streamadapter.Attach(file))
	check(err)

	// bob opens the channel by its session_id; each message comes with a status.
	bobs, err := bob.Channel(ctx, "messaging", "plans")
	check(err)
	page, err := bobs.Query(ctx, nil)
	check(err)
	for _, m := range page.Messages {
		fmt.Println(m.Status, m.Text, len(m.Attachments))
	}

	// Removing bob rotates the session's key, then removes him on Stream.
	check(ch.RemoveMembers(ctx, []string{"bob"}))
	_, err = ch.SendMessage(ctx, &stream.Message{Text: "bob is gone"})
	check(err)
	page, err = bobs.Query(ctx, nil)
	check(err)
	last := page.Messages[len(page.Messages)-1]
	fmt.Println(last.Status, last.Reason())
	// Output:
	// Stream stores veil1:…
	// decrypted Hello bob 0
	// decrypted The plans 1
	// failed streamadapter: not (or no longer) a member of the session
}

// TestReadmeSnippets checks that every Go block of README.md is a run of
// lines of this file (leading tabs aside), so that the README's code is
// code that compiles and runs.
func TestReadmeSnippets(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("readme_example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	file := trimTabs(strings.Split(string(src), "\n"))
	blocks := 0
	for rest := string(readme); ; {
		_, after, ok := strings.Cut(rest, "```go\n")
		if !ok {
			break
		}
		block, tail, ok := strings.Cut(after, "```")
		if !ok {
			t.Fatal("README.md: a Go block is not closed")
		}
		rest = tail
		blocks++
		lines := trimTabs(strings.Split(strings.TrimSuffix(block, "\n"), "\n"))
		if !containsRun(file, lines) {
			t.Errorf("README.md: this Go block is not in readme_example_test.go:\n%s", block)
		}
	}
	if blocks == 0 {
		t.Fatal("README.md has no Go block: the check found nothing to check")
	}
}

func trimTabs(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.TrimLeft(l, "\t")
	}
	return out
}

// containsRun reports whether run occurs in lines as consecutive lines.
func containsRun(lines, run []string) bool {
	for i := 0; i+len(run) <= len(lines); i++ {
		match := true
		for j := range run {
			if lines[i+j] != run[j] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
