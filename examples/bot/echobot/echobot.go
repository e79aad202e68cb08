// Package echobot is the bot of examples/bot: a member of encrypted Stream
// channels that reads what it is sent through Stream's webhook and answers,
// encrypted, in the same channel. It is a package of its own so that
// `veil dev --bot` runs the same bot in its process; a real bot would keep
// this code in its main package.
//
// The bot is an ordinary Veil user (a streamadapter.Client): it has an
// identity of its own, kept in a state file encrypted at rest, and reads
// only the channels whose members added it. Stream delivers every event of
// the app to the webhook; the bot answers the new messages it can decrypt
// — those of the channels it is a member of — and ignores the rest.
//
// It answers
//
//	/help          what it does
//	/fingerprint   its identity's fingerprint, to compare out of band
//	anything else  "you said: " and the text
//
// Nothing it logs holds a message's text or a key: only channel and message
// IDs, and the reasons messages did not open.
package echobot

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/streamadapter"
)

// DefaultUserID is the bot's Stream user ID when Config.UserID is empty.
const DefaultUserID = "veil-bot"

// WebhookPath is where Handler serves Stream's webhook: the app's
// webhook_url is the bot's address followed by it.
const WebhookPath = "/webhook"

// File names in Config.StateDir.
const (
	// StateFile is the bot's e2ee state (its identity, trusted cards and
	// the keys of its channels), encrypted under the state key.
	StateFile = "veil.state"
	// StateKeyFile holds the state key, 64 hex digits, when Config.StateKey
	// is not set.
	StateKeyFile = "state.key"
)

// maxEcho bounds the text the bot echoes, in characters, so that an
// answer always fits in a Stream message once sealed.
const maxEcho = 1000

// Config configures a Bot.
type Config struct {
	// UserID is the bot's Stream user ID. Empty means DefaultUserID.
	UserID string
	// Name is the bot's display name on Stream. Empty means "Veil bot".
	Name string
	// Stream is a stream-chat-go client made with the app's key and
	// secret. Required.
	Stream *stream.Client
	// KeyServiceURL is the key service's base URL. Required.
	KeyServiceURL string
	// KeyServiceToken returns a key-service token for UserID: a JWT the
	// app's backend signed for the bot (see examples/bot for one minted
	// with the HS256 secret of `veil dev`). It is called for every request
	// to the key service. Required.
	KeyServiceToken func(ctx context.Context) (string, error)
	// StateDir holds the bot's state: StateFile and, when StateKey is not
	// set, StateKeyFile. It is created (mode 0700) if missing. Required.
	StateDir string
	// StateKey encrypts the state at rest. The zero value means the key in
	// StateDir/StateKeyFile, generated there (mode 0600) on the first
	// start: convenient for development, but a key kept beside what it
	// encrypts protects nothing from whoever can read the directory. In
	// production, load it from a secret manager (e2ee.ParseStateKey).
	StateKey e2ee.StateKey
	// HTTPClient reaches the key service. Nil means a client with a 30 s
	// timeout.
	HTTPClient *http.Client
	// Logger receives a line per answer and per failure, never a text or
	// a key. Nil discards.
	Logger *slog.Logger
}

// Bot is a running bot. Serve Handler on an address Stream can reach, set
// it as the app's webhook (Register), and Close the bot after the server
// has stopped. It is safe for concurrent use.
type Bot struct {
	c    *streamadapter.Client
	log  *slog.Logger
	sem  chan struct{} // bounds the answers being written
	seen *recent       // webhook IDs already handled

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// maxInFlight bounds the answers being written at once: beyond it a
// webhook call waits, and Stream eventually retries it.
const maxInFlight = 16

// answerTimeout bounds the writing of one answer.
const answerTimeout = 30 * time.Second

// New makes the bot's Stream user, loads its identity from StateDir (or
// generates one and publishes its card) and returns the bot. The bot
// answers nothing until Stream calls its Handler.
func New(ctx context.Context, cfg Config) (*Bot, error) {
	switch {
	case cfg.Stream == nil:
		return nil, errors.New("echobot: Config.Stream is required")
	case cfg.KeyServiceURL == "":
		return nil, errors.New("echobot: Config.KeyServiceURL is required")
	case cfg.KeyServiceToken == nil:
		return nil, errors.New("echobot: Config.KeyServiceToken is required")
	case cfg.StateDir == "":
		return nil, errors.New("echobot: Config.StateDir is required")
	}
	if cfg.UserID == "" {
		cfg.UserID = DefaultUserID
	}
	if cfg.Name == "" {
		cfg.Name = "Veil bot"
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("echobot: the state directory: %w", err)
	}
	stateKey := cfg.StateKey
	if stateKey == (e2ee.StateKey{}) {
		var err error
		if stateKey, err = stateKeyIn(filepath.Join(cfg.StateDir, StateKeyFile)); err != nil {
			return nil, err
		}
	}
	keys, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: cfg.KeyServiceURL, Token: cfg.KeyServiceToken, HTTPClient: cfg.HTTPClient})
	if err != nil {
		return nil, err
	}
	if _, err := cfg.Stream.UpsertUser(ctx, &stream.User{ID: cfg.UserID, Name: cfg.Name}); err != nil {
		return nil, fmt.Errorf("echobot: making the bot's Stream user: %w", err)
	}
	c, err := streamadapter.New(ctx, streamadapter.Config{
		Stream: cfg.Stream,
		Veil: e2ee.Config{
			UserID:     cfg.UserID,
			KeyService: keys,
			State:      &e2ee.FileStore{Path: filepath.Join(cfg.StateDir, StateFile)},
			StateKey:   stateKey,
			Logger:     logger,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("echobot: %w", err)
	}
	return &Bot{c: c, log: logger, sem: make(chan struct{}, maxInFlight), seen: newRecent(4096)}, nil
}

// UserID returns the bot's Stream user ID: add it to a channel's members
// to talk to it.
func (b *Bot) UserID() string { return b.c.UserID() }

// Fingerprint returns the fingerprint of the bot's current identity card.
func (b *Bot) Fingerprint() string { return b.c.Veil().Identity().Card().Fingerprint() }

// Client returns the bot's adapter.
func (b *Bot) Client() *streamadapter.Client { return b.c }

// Handler returns the bot's HTTP handler: Stream's webhook at WebhookPath,
// its signature checked with apiSecret (the app's API secret), and
// GET /healthz. It panics if apiSecret is empty.
func (b *Bot) Handler(apiSecret string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(WebhookPath, b.c.WebhookHandler(apiSecret, b.event))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	return mux
}

// Register sets the app's webhook_url to webhookURL, the address at which
// Stream reaches Handler's WebhookPath. An app has one webhook URL: this
// replaces any other.
func (b *Bot) Register(ctx context.Context, webhookURL string) error {
	if !strings.HasPrefix(webhookURL, "http://") && !strings.HasPrefix(webhookURL, "https://") {
		return errors.New("echobot: the webhook URL must be an http(s) URL")
	}
	_, err := b.c.Stream().UpdateAppSettings(ctx, stream.NewAppSettings().SetWebhookURL(webhookURL))
	return err
}

// Close waits for the answers being written, and makes the bot ignore
// later events. Call it once the server serving Handler has stopped.
func (b *Bot) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
}

// event is the webhook's callback: it picks the new messages to answer and
// answers each on a goroutine of its own, so that Stream's call returns at
// once.
func (b *Bot) event(ctx context.Context, ev *streamadapter.Event) {
	if ev.Type != stream.EventMessageNew || ev.Message == nil || ev.FromSelf() {
		return
	}
	m := ev.Message
	switch m.Type {
	case "", stream.MessageTypeRegular, stream.MessageTypeReply:
	default:
		return // system, error, ephemeral or deleted
	}
	if m.Status != streamadapter.StatusDecrypted {
		// Another channel's message (the bot is not a member), a
		// plaintext channel's, or one that did not open.
		b.log.Debug("message not answered", "cid", ev.CID, "message_id", m.ID, "status", m.Status.String(), "reason", m.Reason())
		return
	}
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return // Stream gave up on the call, and will retry it
	}
	b.mu.Lock()
	if b.closed || !b.seen.add(ev.WebhookID) {
		b.mu.Unlock()
		<-b.sem
		return
	}
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		defer func() { <-b.sem }()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), answerTimeout)
		defer cancel()
		if err := b.answer(ctx, ev.CID, m); err != nil {
			b.log.Warn("answer failed", "cid", ev.CID, "message_id", m.ID, "error", err.Error())
			return
		}
		b.log.Info("answered", "cid", ev.CID, "message_id", m.ID)
	}()
}

// answer sends the reply to m in its channel, quoting it, in its thread if
// it has one.
func (b *Bot) answer(ctx context.Context, cid string, m *streamadapter.Message) error {
	typ, id, ok := strings.Cut(cid, ":")
	if !ok {
		return fmt.Errorf("a channel CID without a type: %q", cid)
	}
	ch, err := b.c.Channel(ctx, typ, id)
	if err != nil {
		return err
	}
	_, err = ch.SendMessage(ctx, &stream.Message{
		Text:            Reply(m.Text, b.Fingerprint()),
		ParentID:        m.ParentID,
		QuotedMessageID: m.ID,
	})
	return err
}

// Reply returns the bot's answer to text, given its identity's fingerprint.
func Reply(text, fingerprint string) string {
	switch strings.TrimSpace(text) {
	case "/help":
		return "I am an end-to-end encrypted bot: I read this channel because its members added me, and Stream reads neither your messages nor my answers. " +
			"Commands: /help, /fingerprint. Anything else, I echo."
	case "/fingerprint":
		return "My identity's fingerprint: " + fingerprint + ". Compare our safety number in your app to be sure you talk to me."
	}
	if utf8.RuneCountInString(text) > maxEcho {
		text = string([]rune(text)[:maxEcho]) + "…"
	}
	return "you said: " + text
}

// stateKeyIn returns the state key kept in path, or a new one saved there
// (mode 0600). It refuses a file that group or others may access, or that
// does not hold 64 hex digits; its errors never quote the file.
func stateKeyIn(path string) (e2ee.StateKey, error) {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		k, err := e2ee.NewStateKey(nil)
		if err != nil {
			return e2ee.StateKey{}, err
		}
		// O_EXCL: two bots started at once on one directory never
		// overwrite each other's key.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return e2ee.StateKey{}, fmt.Errorf("echobot: saving a new state key: %w", err)
		}
		raw := k.Bytes()
		defer clear(raw)
		_, err = f.Write(append(hex.AppendEncode(nil, raw), '\n'))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return e2ee.StateKey{}, fmt.Errorf("echobot: saving a new state key: %w", err)
		}
		return k, nil
	}
	if err != nil {
		return e2ee.StateKey{}, fmt.Errorf("echobot: reading the state key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return e2ee.StateKey{}, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return e2ee.StateKey{}, fmt.Errorf("echobot: %s: group or others may access it: chmod 600 it", path)
	}
	buf := make([]byte, 2*e2ee.StateKeySize+2)
	defer clear(buf)
	n, _ := io.ReadFull(f, buf)
	raw, err := hex.DecodeString(strings.TrimSpace(string(buf[:n])))
	defer clear(raw)
	if err != nil || len(raw) != e2ee.StateKeySize {
		return e2ee.StateKey{}, fmt.Errorf("echobot: %s does not hold a state key (64 hex digits)", path)
	}
	return e2ee.ParseStateKey(raw)
}

// recent is a bounded set of the last webhook IDs added. Not safe for
// concurrent use: Bot.mu guards it.
type recent struct {
	ids  map[string]struct{}
	ring []string
	next int
}

func newRecent(n int) *recent {
	return &recent{ids: make(map[string]struct{}, n), ring: make([]string, n)}
}

// add records id and reports whether it was new. An empty ID (a call
// without X-Webhook-Id) is always new.
func (r *recent) add(id string) bool {
	if id == "" {
		return true
	}
	if _, ok := r.ids[id]; ok {
		return false
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.ids, old)
	}
	r.ring[r.next] = id
	r.next = (r.next + 1) % len(r.ring)
	r.ids[id] = struct{}{}
	return true
}
