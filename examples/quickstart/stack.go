package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	stream "github.com/GetStream/stream-chat-go/v6"

	"github.com/veilchat/veil/e2ee"
	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/streamadapter"
	"github.com/veilchat/veil/streamadapter/streamtest"
	"github.com/veilchat/veil/twoman"
	"github.com/veilchat/veil/twoman/backend"
	"github.com/veilchat/veil/twoman/ssks"
)

// stack is every service of the reference architecture (docs/STREAM.md),
// in this process: Stream (its emulator, or a real Stream app), the key
// service on SQLite and the SSKS on SQLite, both served over loopback HTTP,
// and the app backend. In production each runs on its own party's
// machines.
type stack struct {
	stream   *stream.Client
	emulator *streamtest.Server // nil on a real Stream app
	where    string             // says which Stream
	// prefix starts the IDs of users and channels: empty on the emulator,
	// unique per run on a real Stream app, whose users and channels
	// outlive the run (the key service does not).
	prefix  string
	keysURL string
	ssksURL string
	app     *appBackend
	outbox  *outbox
	http    *http.Client
	dir     string // the key service's and the SSKS's files, and the devices'
	closers []func()
}

// appBackend is the app's backend (the Stream + Seald article's Messaging
// API): it holds Stream's API secret, the secret that signs key-service
// tokens, and each user's twoManRuleKey. It never holds a message key.
type appBackend struct {
	stream   *stream.Client
	ksSecret []byte
	recovery *backend.Backend
}

// signUp makes the user on Stream and returns the user's Stream token, the
// one Stream's client SDKs connect with.
func (a *appBackend) signUp(ctx context.Context, userID, name string) (string, error) {
	if _, err := a.stream.UpsertUser(ctx, &stream.User{ID: userID, Name: name}); err != nil {
		return "", fmt.Errorf("making %s on Stream: %w", name, err)
	}
	return a.stream.CreateToken(userID, time.Now().Add(time.Hour))
}

// keyServiceToken returns a key-service token for a user the app has
// authenticated.
func (a *appBackend) keyServiceToken(userID string) (string, error) {
	return server.UserToken(a.ksSecret, "", userID, time.Hour)
}

// startRecovery has the SSKS send the user a code, and returns the
// challenge session for the user's device.
func (a *appBackend) startRecovery(ctx context.Context, userID string, factor twoman.Factor) (*twoman.Session, error) {
	return a.recovery.StartChallenge(ctx, userID, factor, false)
}

// outbox is the SSKS's development sender: instead of emailing a code, it
// hands it to this program, which plays the user reading the email. It
// never prints a code.
type outbox struct {
	mu    sync.Mutex
	codes map[string]string // user ID → the last code sent
}

// Send implements ssks.Sender.
func (o *outbox) Send(_ context.Context, c ssks.Challenge) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.codes[c.UserID] = c.Code.Reveal()
	return nil
}

// read returns the code last sent to a user, once: what the user types.
func (o *outbox) read(userID string) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	code, ok := o.codes[userID]
	if !ok {
		return "", fmt.Errorf("no code was sent to %s", userID)
	}
	delete(o.codes, userID)
	return code, nil
}

// startStack starts the services. Close them with stop.
func startStack(ctx context.Context, cfg config) (_ *stack, err error) {
	s := &stack{outbox: &outbox{codes: map[string]string{}}, http: &http.Client{Timeout: 30 * time.Second}}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	if s.dir, err = os.MkdirTemp("", "veil-quickstart-"); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { os.RemoveAll(s.dir) })

	if cfg.StreamKey == "" {
		s.emulator = streamtest.NewServer(streamtest.Config{})
		s.closers = append(s.closers, s.emulator.Close)
		s.stream = s.emulator.Client()
		s.where = "the emulator at " + s.emulator.URL
	} else {
		if s.stream, err = stream.NewClient(cfg.StreamKey, cfg.StreamSecret); err != nil {
			return nil, fmt.Errorf("STREAM_KEY, STREAM_SECRET: %w", err)
		}
		if cfg.StreamURL != "" {
			s.stream.BaseURL = cfg.StreamURL
		}
		s.prefix = "veil-quickstart-" + randomHex(4) + "-"
		s.where = "your Stream app at " + s.stream.BaseURL + ", IDs starting " + s.prefix
	}

	// Fresh secrets for this run; none is ever printed.
	ksSecret := randomBytes(32)
	appKey := randomHex(32) // the app's SSKS API key
	hashKey := randomBytes(32)

	keys, err := server.OpenStore(ctx, filepath.Join(s.dir, "keys.db"))
	if err != nil {
		return nil, fmt.Errorf("key service store: %w", err)
	}
	s.closers = append(s.closers, func() { keys.Close() })
	kh, err := server.NewHandler(server.Config{Store: keys, Auth: server.Auth{Keys: []server.Key{{HS256: server.NewSecret(ksSecret)}}}})
	if err != nil {
		return nil, err
	}
	if s.keysURL, err = s.serve(kh); err != nil {
		return nil, err
	}

	store, err := ssks.OpenStore(ctx, filepath.Join(s.dir, "ssks.db"))
	if err != nil {
		return nil, fmt.Errorf("SSKS store: %w", err)
	}
	s.closers = append(s.closers, func() { store.Close() })
	sh, err := ssks.NewHandler(ssks.Config{Store: store, AppKeys: []ssks.Secret{ssks.NewSecret([]byte(appKey))},
		HashKey: ssks.NewSecret(hashKey), Sender: s.outbox})
	if err != nil {
		return nil, err
	}
	if s.ssksURL, err = s.serve(sh); err != nil {
		return nil, err
	}

	rec, err := backend.New(backend.Config{Keys: &backend.MemoryKeyStore{}, SSKSURL: s.ssksURL, AppKey: backend.NewSecret([]byte(appKey))})
	if err != nil {
		return nil, err
	}
	s.app = &appBackend{stream: s.stream, ksSecret: ksSecret, recovery: rec}
	return s, nil
}

// serve serves h on a loopback port and returns its URL.
func (s *stack) serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	s.closers = append(s.closers, func() { srv.Close() })
	return "http://" + ln.Addr().String(), nil
}

func (s *stack) stop() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// device is one of a user's devices: its storage (the e2ee state, encrypted
// under a key the device keeps in its keychain) and the user's Veil client
// on Stream.
type device struct {
	dir string
	*streamadapter.Client
}

// newDevice starts a user's Veil client on a new device: at sign-up
// (recovered nil: it generates an identity and publishes its card) or with
// the identity recovery gave back.
func (s *stack) newDevice(ctx context.Context, name string, recovered *identity.Identity) (*device, error) {
	userID := s.prefix + name
	dir, err := os.MkdirTemp(s.dir, name+"-device-")
	if err != nil {
		return nil, err
	}
	stateKey, err := e2ee.NewStateKey(nil) // in the OS keychain, on a real device
	if err != nil {
		return nil, err
	}
	keys, err := keyservice.NewClient(keyservice.ClientConfig{
		BaseURL: s.keysURL,
		Token: func(context.Context) (string, error) {
			return s.app.keyServiceToken(userID) // over the app's authenticated API
		},
	})
	if err != nil {
		return nil, err
	}
	c, err := streamadapter.New(ctx, streamadapter.Config{
		Stream:     s.stream,
		HTTPClient: s.http,
		Veil: e2ee.Config{
			UserID:     userID,
			KeyService: keys,
			State:      &e2ee.FileStore{Path: filepath.Join(dir, "veil.state")},
			StateKey:   stateKey,
			Identity:   recovered,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%s's device: %w", name, err)
	}
	return &device{dir: dir, Client: c}, nil
}

// name is the user's name in the story.
func (s *stack) name(userID string) string { return strings.TrimPrefix(userID, s.prefix) }

// storedMessage is what Stream stores of a message: its text field and the
// bytes of its files.
type storedMessage struct {
	text  string
	files [][]byte
}

// stored returns what Stream stores of a message: on the emulator, read
// from its store; on a real app, what Stream's API serves (and its
// dashboard shows).
func (s *stack) stored(ctx context.Context, msgID string) (storedMessage, error) {
	if s.emulator != nil {
		snap := s.emulator.Snapshot()
		for _, m := range snap.Messages {
			if m.ID != msgID {
				continue
			}
			cur := m.Versions[len(m.Versions)-1]
			text, _ := cur["text"].(string)
			sm := storedMessage{text: text}
			atts, _ := cur["attachments"].([]any)
			for _, a := range atts {
				am, _ := a.(map[string]any)
				url, _ := am["asset_url"].(string)
				sm.files = append(sm.files, snap.Files[url])
			}
			return sm, nil
		}
		return storedMessage{}, fmt.Errorf("no message %s on Stream", msgID)
	}
	resp, err := s.stream.GetMessage(ctx, msgID)
	if err != nil {
		return storedMessage{}, err
	}
	sm := storedMessage{text: resp.Message.Text}
	for _, a := range resp.Message.Attachments {
		b, err := s.download(ctx, a.AssetURL)
		if err != nil {
			return storedMessage{}, err
		}
		sm.files = append(sm.files, b)
	}
	return sm, nil
}

// download fetches a file as Stream's CDN serves it.
func (s *stack) download(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("downloading a file from Stream: %s", resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

// find returns where Stream holds needle. On the emulator it searches its
// whole store: every channel, user, version of every message, file and
// webhook body. On a real app it searches what the API serves of the
// channel and of the messages named.
func (s *stack) find(ctx context.Context, ch *streamadapter.Channel, msgIDs []string, needle []byte) ([]string, error) {
	if s.emulator != nil {
		return s.emulator.Snapshot().Find(needle), nil
	}
	var found []string
	state, err := ch.Stream().Query(ctx, &stream.QueryRequest{State: true})
	if err != nil {
		return nil, err
	}
	if b, err := json.Marshal(state); err != nil {
		return nil, err
	} else if bytes.Contains(b, needle) {
		found = append(found, "channel "+ch.CID())
	}
	for _, id := range msgIDs {
		resp, err := s.stream.GetMessage(ctx, id)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(resp.Message)
		if err != nil {
			return nil, err
		}
		if bytes.Contains(b, needle) {
			found = append(found, "message "+id)
		}
		for _, a := range resp.Message.Attachments {
			f, err := s.download(ctx, a.AssetURL)
			if err != nil {
				return nil, err
			}
			if bytes.Contains(f, needle) {
				found = append(found, "file "+a.AssetURL)
			}
		}
	}
	return found, nil
}

// cleanUp deletes the run's channel from a real Stream app; the emulator
// goes away with the process.
func (s *stack) cleanUp(ctx context.Context, cid string) error {
	if s.emulator != nil {
		return nil
	}
	_, err := s.stream.DeleteChannels(ctx, []string{cid}, true)
	return err
}

// randomBytes returns n bytes from crypto/rand, whose Read never fails.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }
