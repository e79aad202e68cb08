package streamadapter_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/streamadapter"
	"github.com/veilchat/veil/streamadapter/streamtest"
)

// tokenSecret signs the key service's user tokens: the app backend holds
// it and issues each user a token (see docs/DEPLOY.md for EdDSA tokens,
// the production choice).
var tokenSecret = []byte("an HS256 secret of at least 32 bytes!")

// services starts what a real deployment already runs: Stream (here its
// emulator) and the key service (here on a temporary SQLite file). It
// returns the stream-chat-go client the app backend holds, and a function
// that connects a user's client to the key service with the token the app
// backend issues.
func services() (sc *stream.Client, keys func(user string) *keyservice.Client, stop func()) {
	ctx := context.Background()
	emulator := streamtest.NewServer(streamtest.Config{})
	dir, err := os.MkdirTemp("", "keys")
	if err != nil {
		log.Fatal(err)
	}
	store, err := server.OpenStore(ctx, filepath.Join(dir, "keys.db"))
	if err != nil {
		log.Fatal(err)
	}
	h, err := server.NewHandler(server.Config{Store: store, Auth: server.Auth{Keys: []server.Key{{HS256: server.NewSecret(tokenSecret)}}}})
	if err != nil {
		log.Fatal(err)
	}
	ks := httptest.NewServer(h)
	keys = func(user string) *keyservice.Client {
		tok, err := server.UserToken(tokenSecret, "", user, time.Hour)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := emulator.Client().UpsertUser(ctx, &stream.User{ID: user}); err != nil {
			log.Fatal(err)
		}
		c, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: ks.URL, Token: keyservice.StaticToken(tok)})
		if err != nil {
			log.Fatal(err)
		}
		return c
	}
	return emulator.Client(), keys, func() { ks.Close(); store.Close(); emulator.Close(); os.RemoveAll(dir) }
}

// The whole flow: an encrypted channel, messages, a thread reply, a quote,
// an edit and a file; a member added with history, one without; a member
// removed.
func Example() {
	ctx := context.Background()
	sc, keys, stop := services()
	defer stop()

	// Each user is a Veil identity acting on Stream.
	join := func(user string) *streamadapter.Client {
		c, err := streamadapter.New(ctx, streamadapter.Config{Stream: sc, Veil: e2ee.Config{UserID: user, KeyService: keys(user)}})
		if err != nil {
			log.Fatal(err)
		}
		return c
	}
	alice, bob, carol, dave := join("alice"), join("bob"), join("carol"), join("dave")

	// alice creates the channel; bob opens it by its session_id.
	general, err := alice.CreateChannel(ctx, "messaging", "general", []string{"bob"})
	if err != nil {
		log.Fatal(err)
	}
	bobs, err := bob.Channel(ctx, "messaging", "general")
	if err != nil {
		log.Fatal(err)
	}

	hello, err := general.SendMessage(ctx, &stream.Message{Text: "Hello bob"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := bobs.SendMessage(ctx, &stream.Message{Text: "Hi! In a thread", ParentID: hello.ID}); err != nil {
		log.Fatal(err)
	}
	if _, err := bobs.SendMessage(ctx, &stream.Message{Text: "Quoting you", QuotedMessageID: hello.ID}); err != nil {
		log.Fatal(err)
	}
	if _, err := general.UpdateMessage(ctx, hello.ID, &stream.Message{Text: "Hello bob (edited)"}); err != nil {
		log.Fatal(err)
	}
	file, err := general.UploadFile(ctx, bytes.NewReader([]byte("%PDF- the plans")), "plans.pdf", "")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := general.SendMessage(ctx, &stream.Message{Text: "The plans"}, streamadapter.Attach(file)); err != nil {
		log.Fatal(err)
	}

	// carol joins with the history, dave without; then bob is removed.
	if err := general.AddMembers(ctx, []string{"carol"}); err != nil {
		log.Fatal(err)
	}
	if err := general.AddMembers(ctx, []string{"dave"}, streamadapter.HideHistory()); err != nil {
		log.Fatal(err)
	}
	if err := general.RemoveMembers(ctx, []string{"bob"}); err != nil {
		log.Fatal(err)
	}
	if _, err := general.SendMessage(ctx, &stream.Message{Text: "bob is gone"}); err != nil {
		log.Fatal(err)
	}

	// Each reads the channel: one status per message, oldest first.
	for _, reader := range []*streamadapter.Client{carol, dave, bob} {
		ch, err := reader.Channel(ctx, "messaging", "general")
		if errors.Is(err, streamadapter.ErrRemoved) {
			ch = bobs // bob is no longer a member; he reads with his old handle
		} else if err != nil {
			log.Fatal(err)
		}
		page, err := ch.Query(ctx, nil)
		if err != nil {
			log.Fatal(err)
		}
		for _, m := range page.Messages {
			fmt.Printf("%s: %s %q", reader.UserID(), m.Status, m.Text)
			if m.Err != nil {
				fmt.Printf(" (%v)", m.Reason())
			}
			for _, a := range m.Attachments {
				if r, err := reader.OpenAttachment(ctx, a); err == nil {
					body, _ := io.ReadAll(r)
					r.Close()
					fmt.Printf(" + %s %q", a.Name, body)
				}
			}
			fmt.Println()
		}
	}
	// Output:
	// carol: decrypted "Hello bob (edited)"
	// carol: decrypted "Quoting you"
	// carol: decrypted "The plans" + plans.pdf "%PDF- the plans"
	// carol: decrypted "bob is gone"
	// dave: failed "" (streamadapter: no key for the message's epoch)
	// dave: failed "" (streamadapter: no key for the message's epoch)
	// dave: failed "" (streamadapter: no key for the message's epoch)
	// dave: decrypted "bob is gone"
	// bob: decrypted "Hello bob (edited)"
	// bob: decrypted "Quoting you"
	// bob: decrypted "The plans" + plans.pdf "%PDF- the plans"
	// bob: failed "" (streamadapter: not (or no longer) a member of the session)
}
