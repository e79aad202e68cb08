package streamadapter_test

// The examples of docs/STREAM.md, the guide to Veil on Stream. Every Go
// block of the guide is a run of lines of this file (TestGuideSnippets
// checks it), so the guide's code compiles and runs here: against the
// Stream emulator, a key service and an SSKS, all in process. In
// production each service runs on its own party's machines.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/session"
	"github.com/veilchat/veil/streamadapter"
	"github.com/veilchat/veil/streamadapter/streamtest"
	"github.com/veilchat/veil/twoman"
	"github.com/veilchat/veil/twoman/backend"
	"github.com/veilchat/veil/twoman/ssks"
)

// appBackend is the app's backend (the article's Messaging API). It holds
// Stream's API secret, the secret that signs key-service tokens, and each
// user's twoManRuleKey; it never holds a message key.
type appBackend struct {
	stream   *stream.Client   // stream.NewClient(apiKey, apiSecret)
	ksSecret []byte           // one of the key service's VEIL_JWT_SECRETS
	recovery *backend.Backend // the backend's half of the two-man rule
}

// SignUp makes the user on Stream and returns the user's Stream token, for
// Stream's client SDKs (the article's getMessagingToken).
func (a *appBackend) SignUp(ctx context.Context, userID string) (string, error) {
	if _, err := a.stream.UpsertUser(ctx, &stream.User{ID: userID, Name: userID}); err != nil {
		return "", err
	}
	return a.stream.CreateToken(userID, time.Now().Add(time.Hour))
}

// KeyServiceToken returns a key-service token for a user the app has
// authenticated.
func (a *appBackend) KeyServiceToken(userID string) (string, error) {
	return server.UserToken(a.ksSecret, "", userID, time.Hour)
}

// StartRecovery has the SSKS send the user a code, and returns the session
// for the user's device (the article's sendChallenge).
func (a *appBackend) StartRecovery(ctx context.Context, userID string, factor twoman.Factor) (*twoman.Session, error) {
	return a.recovery.StartChallenge(ctx, userID, factor, false)
}

// guideWorld is the services of the guide, in process: Stream (the
// emulator), the key service on SQLite, the SSKS on SQLite with a mailbox
// for its codes, and the app's backend.
type guideWorld struct {
	stream        *streamtest.Server
	keyServiceURL string
	ssksURL       string
	app           *appBackend
	inbox         *guideMailbox
	dir           string
	closers       []func()
}

var (
	guideKSSecret = []byte("the key service's HS256 secret, 32 bytes or more")
	guideAppKey   = []byte("8d1f0c4e9a7b2d6f3e5a1c0b9d8e7f6a") // the app's SSKS API key
)

// guideMailbox stands in for the users' email: it keeps each user's last
// code.
type guideMailbox struct {
	mu   sync.Mutex
	last map[string]string
}

func (m *guideMailbox) Send(_ context.Context, c ssks.Challenge) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last[c.UserID] = c.Code.Reveal()
	return nil
}

// code is what the user types after reading the mailbox.
func (m *guideMailbox) code(userID string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last[userID]
}

func startGuide() *guideWorld {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "veil-guide")
	if err != nil {
		log.Fatal(err)
	}
	w := &guideWorld{dir: dir, inbox: &guideMailbox{last: map[string]string{}}}
	w.closers = append(w.closers, func() { os.RemoveAll(dir) })

	w.stream = streamtest.NewServer(streamtest.Config{})
	w.closers = append(w.closers, w.stream.Close)

	keys, err := server.OpenStore(ctx, filepath.Join(dir, "keys.db"))
	if err != nil {
		log.Fatal(err)
	}
	w.closers = append(w.closers, func() { keys.Close() })
	kh, err := server.NewHandler(server.Config{Store: keys, Auth: server.Auth{Keys: []server.Key{{HS256: server.NewSecret(guideKSSecret)}}}})
	if err != nil {
		log.Fatal(err)
	}
	ks := httptest.NewServer(kh)
	w.closers = append(w.closers, ks.Close)
	w.keyServiceURL = ks.URL

	store, err := ssks.OpenStore(ctx, filepath.Join(dir, "ssks.db"))
	if err != nil {
		log.Fatal(err)
	}
	w.closers = append(w.closers, func() { store.Close() })
	sh, err := ssks.NewHandler(ssks.Config{Store: store, AppKeys: []ssks.Secret{ssks.NewSecret(guideAppKey)},
		HashKey: ssks.NewSecret(bytes.Repeat([]byte{9}, 32)), Sender: w.inbox})
	if err != nil {
		log.Fatal(err)
	}
	ss := httptest.NewServer(sh)
	w.closers = append(w.closers, ss.Close)
	w.ssksURL = ss.URL

	rec, err := backend.New(backend.Config{Keys: &backend.MemoryKeyStore{}, SSKSURL: ss.URL, AppKey: backend.NewSecret(guideAppKey)})
	if err != nil {
		log.Fatal(err)
	}
	w.app = &appBackend{stream: w.stream.Client(), ksSecret: guideKSSecret, recovery: rec}
	return w
}

func (w *guideWorld) stop() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
}

// streamClient is a stream-chat-go client for a device: made with the
// app's key and secret, pointed at the emulator.
func (w *guideWorld) streamClient() *stream.Client { return w.stream.Client() }

// deviceDir is a new device's storage.
func (w *guideWorld) deviceDir() string {
	d, err := os.MkdirTemp(w.dir, "device")
	if err != nil {
		log.Fatal(err)
	}
	return d
}

// openDevice starts a user's Veil client on Stream: at sign-up (recovered
// nil: New generates an identity and publishes its card) or on a new device
// (the identity the two-man rule recovered).
func (w *guideWorld) openDevice(ctx context.Context, userID string, stateKey e2ee.StateKey, recovered *identity.Identity) (*streamadapter.Client, error) {
	keys, err := keyservice.NewClient(keyservice.ClientConfig{
		BaseURL: w.keyServiceURL,
		Token: func(context.Context) (string, error) {
			return w.app.KeyServiceToken(userID) // over the app's authenticated API
		},
	})
	if err != nil {
		return nil, err
	}
	return streamadapter.New(ctx, streamadapter.Config{
		Stream: w.streamClient(), // made with the app's key and secret
		Veil: e2ee.Config{
			UserID:     userID,
			KeyService: keys,
			State:      &e2ee.FileStore{Path: filepath.Join(w.deviceDir(), userID+".state")},
			StateKey:   stateKey, // from the OS keychain or a secret manager
			Identity:   recovered,
		},
	})
}

// user signs a user up and opens its first device, for the examples whose
// subject is not sign-up.
func (w *guideWorld) user(ctx context.Context, userID string) *streamadapter.Client {
	if _, err := w.app.SignUp(ctx, userID); err != nil {
		log.Fatal(err)
	}
	stateKey, err := e2ee.NewStateKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	c, err := w.openDevice(ctx, userID, stateKey, nil)
	if err != nil {
		log.Fatal(err)
	}
	return c
}

// renderMessage is what a UI shows for a message of an encrypted channel.
func renderMessage(m *streamadapter.Message) string {
	switch {
	case m.Status == streamadapter.StatusDecrypted:
		return m.Text
	case m.Status == streamadapter.StatusDeleted:
		return "(deleted)"
	case errors.Is(m.Err, streamadapter.ErrPlaintext):
		return "(not encrypted, sender unverified) " + m.Text
	case errors.Is(m.Err, streamadapter.ErrNoKey):
		return "(sent while you were not a member)"
	case errors.Is(m.Err, streamadapter.ErrRemoved):
		return "(you are no longer a member)"
	case errors.Is(m.Err, streamadapter.ErrKeyChanged):
		return "(the sender's keys changed: compare safety numbers)"
	case errors.Is(m.Err, streamadapter.ErrUnavailable):
		return "(not decrypted yet: retrying)"
	default: // ErrTampered, ErrBadSignature, ErrWrongSession, ...
		return "(this message failed verification)"
	}
}

// Sign-up: the backend makes the user on Stream and hands out tokens; the
// device creates its identity and saves it under the two-man rule.
func Example_guideSignUp() {
	ctx := context.Background()
	w := startGuide()
	defer w.stop()

	streamToken, err := w.app.SignUp(ctx, "alice") // for Stream's client SDKs
	if err != nil {
		log.Fatal(err)
	}
	stateKey, err := e2ee.NewStateKey(nil) // keep it in the OS keychain
	if err != nil {
		log.Fatal(err)
	}
	alice, err := w.openDevice(ctx, "alice", stateKey, nil)
	if err != nil {
		log.Fatal(err)
	}

	email := twoman.Factor{Type: twoman.Email, Value: "alice@example.com"}
	s, err := w.app.StartRecovery(ctx, "alice", email) // the SSKS emails alice a code
	if err != nil {
		log.Fatal(err)
	}
	device, err := twoman.NewClient(twoman.ClientConfig{BaseURL: w.ssksURL})
	if err != nil {
		log.Fatal(err)
	}
	code := w.inbox.code("alice") // what alice types
	if err := device.SaveIdentity(ctx, s, code, alice.Veil().Identity()); err != nil {
		log.Fatal(err)
	}

	fmt.Println("Stream token:", streamToken != "")
	fmt.Println("identity of", alice.Veil().Identity().UserID(), "saved")
	// Output:
	// Stream token: true
	// identity of alice saved
}

// An encrypted channel: created with its session, opened by the other
// member, messages sent, replied to, edited and read.
func Example_guideChannel() {
	ctx := context.Background()
	w := startGuide()
	defer w.stop()
	alice, bob := w.user(ctx, "alice"), w.user(ctx, "bob")

	ch, err := alice.CreateChannel(ctx, "messaging", "alice-bob", []string{"bob"})
	if err != nil {
		log.Fatal(err)
	}

	bch, err := bob.Channel(ctx, "messaging", "alice-bob") // verifies the session belongs to the channel
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("session_id:", bch.Stream().ExtraData[streamadapter.FieldSessionID] == ch.SessionID().String())

	hello, err := ch.SendMessage(ctx, &stream.Message{Text: "Lunch at noon?"})
	if err != nil {
		log.Fatal(err)
	}
	_, err = bch.SendMessage(ctx, &stream.Message{Text: "Yes, the usual place", ParentID: hello.ID})
	if err != nil {
		log.Fatal(err)
	}
	_, err = ch.UpdateMessage(ctx, hello.ID, &stream.Message{Text: "Lunch at one?"})
	if err != nil {
		log.Fatal(err)
	}

	page, err := bch.Query(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range page.Messages {
		fmt.Printf("%s (revision %d): %s\n", m.User.ID, m.Revision, renderMessage(m))
	}
	replies, err := bch.GetReplies(ctx, hello.ID, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range replies {
		fmt.Printf("  %s: %s\n", m.User.ID, renderMessage(m))
	}

	fmt.Println("Stream holds the text:", len(w.stream.Snapshot().Find([]byte("Lunch at"))) > 0)
	// Output:
	// session_id: true
	// alice (revision 1): Lunch at one?
	//   bob: Yes, the usual place
	// Stream holds the text: false
}

// Members: carol added with history, dave without, bob removed.
func Example_guideMembers() {
	ctx := context.Background()
	w := startGuide()
	defer w.stop()
	alice, bob, carol, dave := w.user(ctx, "alice"), w.user(ctx, "bob"), w.user(ctx, "carol"), w.user(ctx, "dave")
	ch, err := alice.CreateChannel(ctx, "messaging", "team", []string{"bob"})
	if err != nil {
		log.Fatal(err)
	}
	bch, err := bob.Channel(ctx, "messaging", "team")
	if err != nil {
		log.Fatal(err)
	}
	early, err := ch.SendMessage(ctx, &stream.Message{Text: "the plan, first draft"})
	if err != nil {
		log.Fatal(err)
	}

	if err := ch.AddMembers(ctx, []string{"carol"}); err != nil { // reads the history
		log.Fatal(err)
	}
	if err := ch.AddMembers(ctx, []string{"dave"}, streamadapter.HideHistory()); err != nil { // a new epoch
		log.Fatal(err)
	}
	if err := ch.RemoveMembers(ctx, []string{"bob"}); err != nil { // rotates first, then removes on Stream
		log.Fatal(err)
	}
	late, err := ch.SendMessage(ctx, &stream.Message{Text: "the plan, final"})
	if err != nil {
		log.Fatal(err)
	}
	info, err := alice.Veil().Manager().Info(ctx, ch.SessionID()) // the signed roster
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("epoch", info.Epoch, "members", info.Members)

	for _, reader := range []struct {
		name string
		ch   *streamadapter.Channel
	}{{"carol", openTeam(ctx, carol)}, {"dave", openTeam(ctx, dave)}, {"bob", bch}} {
		ms, err := reader.ch.GetMessages(ctx, []string{early.ID, late.ID})
		if err != nil {
			log.Fatal(err)
		}
		for _, m := range ms {
			fmt.Printf("%-5s %s\n", reader.name, renderMessage(m))
		}
	}
	// Output:
	// epoch 2 members [{alice true} {carol false} {dave false}]
	// carol the plan, first draft
	// carol the plan, final
	// dave  (sent while you were not a member)
	// dave  the plan, final
	// bob   the plan, first draft
	// bob   (you are no longer a member)
}

// openTeam opens the channel of Example_guideMembers for a member.
func openTeam(ctx context.Context, c *streamadapter.Client) *streamadapter.Channel {
	ch, err := c.Channel(ctx, "messaging", "team")
	if err != nil {
		log.Fatal(err)
	}
	return ch
}

// Recovery: alice loses her only device; on a new one she recovers her
// identity under the two-man rule and reads the channel's history.
func Example_guideRecovery() {
	ctx := context.Background()
	w := startGuide()
	defer w.stop()
	email := twoman.Factor{Type: twoman.Email, Value: "alice@example.com"}
	device, err := twoman.NewClient(twoman.ClientConfig{BaseURL: w.ssksURL})
	if err != nil {
		log.Fatal(err)
	}
	alice, bob := w.user(ctx, "alice"), w.user(ctx, "bob")
	s, err := w.app.StartRecovery(ctx, "alice", email)
	if err != nil {
		log.Fatal(err)
	}
	if err := device.SaveIdentity(ctx, s, w.inbox.code("alice"), alice.Veil().Identity()); err != nil {
		log.Fatal(err)
	}
	ch, err := alice.CreateChannel(ctx, "messaging", "alice-bob", []string{"bob"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := ch.SendMessage(ctx, &stream.Message{Text: "the door code is 4711"}); err != nil {
		log.Fatal(err)
	}
	bch, err := bob.Channel(ctx, "messaging", "alice-bob")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := bch.SendMessage(ctx, &stream.Message{Text: "noted"}); err != nil {
		log.Fatal(err)
	}

	// A new device: alice logs in to the app, which starts a challenge.
	s, err = w.app.StartRecovery(ctx, "alice", email)
	if err != nil {
		log.Fatal(err)
	}
	id, err := device.RetrieveIdentity(ctx, s, w.inbox.code("alice"))
	if err != nil {
		log.Fatal(err)
	}
	stateKey, err := e2ee.NewStateKey(nil) // the new device's own key
	if err != nil {
		log.Fatal(err)
	}
	again, err := w.openDevice(ctx, "alice", stateKey, id)
	if err != nil {
		log.Fatal(err)
	}
	history, err := again.Channel(ctx, "messaging", "alice-bob")
	if err != nil {
		log.Fatal(err)
	}
	page, err := history.Query(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range page.Messages {
		fmt.Printf("%s: %s\n", m.User.ID, renderMessage(m))
	}
	// Output:
	// alice: the door code is 4711
	// bob: noted
}

// Attachments: encrypted as they upload; the name, type, size, key and
// digest travel inside the sealed message.
func Example_guideAttachment() {
	ctx := context.Background()
	w := startGuide()
	defer w.stop()
	alice, bob := w.user(ctx, "alice"), w.user(ctx, "bob")
	ch, err := alice.CreateChannel(ctx, "messaging", "files", []string{"bob"})
	if err != nil {
		log.Fatal(err)
	}
	report := bytes.Repeat([]byte("quarterly figures "), 100_000)

	att, err := ch.UploadFile(ctx, bytes.NewReader(report), "q3-report.pdf", "")
	if err != nil {
		log.Fatal(err)
	}
	_, err = ch.SendMessage(ctx, &stream.Message{Text: "the Q3 report"}, streamadapter.Attach(att))
	if err != nil {
		log.Fatal(err)
	}

	bch, err := bob.Channel(ctx, "messaging", "files")
	if err != nil {
		log.Fatal(err)
	}
	page, err := bch.Query(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	a := page.Messages[0].Attachments[0]
	r, err := bob.OpenAttachment(ctx, a) // decrypts as it downloads
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r) // or io.Copy to a file: constant memory
	if err != nil {
		log.Fatal(err) // session.ErrAttachment: swapped, cut short or extended
	}

	fmt.Println(a.Name, a.MIMEType, a.Size, bytes.Equal(got, report))
	fmt.Println("Stream holds the name:", len(w.stream.Snapshot().Find([]byte("q3-report"))) > 0)
	// Output:
	// q3-report.pdf application/pdf 1800000 true
	// Stream holds the name: false
}

// Limits: the sealed text must fit Stream's 5,000 characters; custom fields
// are sealed unless named Public.
func Example_guideLimits() {
	ctx := context.Background()
	w := startGuide()
	defer w.stop()
	alice := w.user(ctx, "alice")
	ch, err := alice.CreateChannel(ctx, "messaging", "limits", nil)
	if err != nil {
		log.Fatal(err)
	}

	fmt.Println("plaintext that fits:", session.MaxPlaintext(e2ee.StreamTextLimit), "bytes")
	_, err = ch.SendMessage(ctx, &stream.Message{Text: strings.Repeat("a", 3_572)}) // the payload {"text":"…"} adds 11 bytes
	fmt.Println(err)
	_, err = ch.SendMessage(ctx, &stream.Message{Text: strings.Repeat("a", 3_600)})
	fmt.Println(errors.Is(err, streamadapter.ErrTooLong))
	fmt.Println(err)

	m, err := ch.SendMessage(ctx, &stream.Message{
		Text:      "ticket closed",
		ExtraData: map[string]any{"ticket_id": "T-1042", "customer": "ACME Corp"},
	}, streamadapter.Public("ticket_id"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Message.ExtraData["ticket_id"], m.Message.ExtraData["customer"], m.Custom["customer"])
	// Output:
	// plaintext that fits: 3583 bytes
	// <nil>
	// true
	// streamadapter: message too long once sealed: 3611 bytes once encoded (text, sealed fields and attachment descriptors), at most 3583 fit in Stream's 5000 characters
	// T-1042 <nil> ACME Corp
}

// The app settings that send Stream's webhooks and its before-message-send
// hook to the app's backend. It needs a Stream app, so it is compiled, not
// run.
func Example_guideHooks() {
	ctx := context.Background()
	sc, err := stream.NewClient(os.Getenv("STREAM_KEY"), os.Getenv("STREAM_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	settings := stream.NewAppSettings().SetWebhookURL("https://backend.example.com/stream/webhook")
	guard := "https://backend.example.com/stream/before-send"
	settings.BeforeMessageSendHookURL = &guard
	if _, err := sc.UpdateAppSettings(ctx, settings); err != nil {
		log.Fatal(err)
	}
}

// The app's backend serves the plaintext guard and a bot's webhook: Stream
// bounces plaintext sent into an encrypted channel, and the bot reads what
// members send and answers, encrypted.
func Example_guideBackend() {
	ctx := context.Background()
	w := startGuide()
	defer w.stop()
	alice, bot := w.user(ctx, "alice"), w.user(ctx, "bot")
	apiSecret := w.stream.APISecret() // the app's Stream secret
	answered := make(chan error, 1)

	mux := http.NewServeMux()
	mux.Handle("/stream/before-send", streamadapter.Guard(apiSecret))
	mux.Handle("/stream/webhook", bot.WebhookHandler(apiSecret, func(ctx context.Context, ev *streamadapter.Event) {
		if ev.Type != stream.EventMessageNew || ev.Message == nil || ev.FromSelf() || ev.Message.Status != streamadapter.StatusDecrypted {
			return
		}
		typ, id, _ := strings.Cut(ev.CID, ":")
		ch, err := bot.Channel(ctx, typ, id)
		if err == nil {
			_, err = ch.SendMessage(ctx, &stream.Message{Text: "noted: " + ev.Message.Text})
		}
		answered <- err
	}))
	backendServer := httptest.NewServer(mux)
	defer backendServer.Close()
	settings := stream.NewAppSettings().SetWebhookURL(backendServer.URL + "/stream/webhook")
	guard := backendServer.URL + "/stream/before-send"
	settings.BeforeMessageSendHookURL = &guard
	if _, err := w.stream.Client().UpdateAppSettings(ctx, settings); err != nil {
		log.Fatal(err)
	}

	ch, err := alice.CreateChannel(ctx, "messaging", "helpdesk", []string{"bot"})
	if err != nil {
		log.Fatal(err)
	}
	// A client without Veil: Stream asks the guard, which bounces the text.
	resp, err := ch.Stream().SendMessage(ctx, &stream.Message{Text: "my password is hunter2"}, "alice")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("plaintext:", resp.Message.Type, strings.HasPrefix(resp.Message.Text, streamadapter.GuardText))
	if _, err := ch.SendMessage(ctx, &stream.Message{Text: "the printer is down"}); err != nil {
		log.Fatal(err)
	}
	if err := <-answered; err != nil {
		log.Fatal(err)
	}
	page, err := ch.Query(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range page.Messages {
		fmt.Printf("%s: %s (%s)\n", m.User.ID, m.Text, m.Status)
	}
	// Output:
	// plaintext: error true
	// alice: the printer is down (decrypted)
	// bot: noted: the printer is down (decrypted)
}

// TestGuideSnippets checks that every Go block of docs/STREAM.md is a run
// of lines of this file (leading tabs aside), so that the guide's code is
// code that compiles and runs.
func TestGuideSnippets(t *testing.T) {
	doc, err := os.ReadFile("../docs/STREAM.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("guide_example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	trim := func(lines []string) []string {
		out := make([]string, len(lines))
		for i, l := range lines {
			out[i] = strings.TrimLeft(l, "\t")
		}
		return out
	}
	file := trim(strings.Split(string(src), "\n"))
	blocks := 0
	for rest := string(doc); ; {
		_, after, ok := strings.Cut(rest, "```go\n")
		if !ok {
			break
		}
		block, tail, ok := strings.Cut(after, "```")
		if !ok {
			t.Fatal("docs/STREAM.md: a Go block is not closed")
		}
		rest = tail
		blocks++
		lines := trim(strings.Split(strings.TrimSuffix(block, "\n"), "\n"))
		if !guideContainsRun(file, lines) {
			t.Errorf("docs/STREAM.md: this Go block is not in guide_example_test.go:\n%s", block)
		}
	}
	if blocks < 8 {
		t.Fatalf("docs/STREAM.md has %d Go blocks; the check found too few to mean anything", blocks)
	}
}

// guideContainsRun reports whether run occurs in lines as consecutive lines.
func guideContainsRun(lines, run []string) bool {
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
