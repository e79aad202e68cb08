package e2ee

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/session"
)

// StreamTextLimit is Stream's default maximum message length in characters.
const StreamTextLimit = 5000

// Publisher publishes a user's card history to the directory.
// keyservice.Client implements it.
type Publisher interface {
	PublishHistory(ctx context.Context, cards []*identity.Card) error
}

// Config configures a Client. UserID, Service, Directory and Publisher are
// required (KeyService sets the last three at once); the zero value of the
// other fields is the safe default.
type Config struct {
	// UserID is the Stream user the client acts as.
	UserID string
	// KeyService, if set, is used as Service, Directory and Publisher.
	KeyService *keyservice.Client
	// Service, Directory and Publisher reach the key service.
	Service   session.Service
	Directory session.Directory
	Publisher Publisher
	// State persists the identity and the trusted cards. Nil means memory
	// only: a restarted process gets a new identity and cannot read old
	// messages.
	State StateStore
	// StateKey (32 bytes) encrypts the state at rest. Required when State
	// is set. Keep it outside the state's storage (a secret manager, the
	// OS keychain).
	StateKey []byte
	// Kind is the key type of a newly generated identity. Zero means the
	// post-quantum hybrid.
	Kind identity.Kind
	// Identity, if set, is used instead of generating one when State holds
	// none: an identity recovered on a new device (twoman.Client), or
	// imported from a backup. It must belong to UserID. A saved identity
	// in State takes precedence.
	Identity *identity.Identity
	// EpochCheckInterval is passed to the session.Manager.
	EpochCheckInterval time.Duration
	// Rand is the randomness source. Nil means crypto/rand.
	Rand io.Reader
}

// Client is the SDK's entry point for one user: the local identity, the
// session manager, trust pins and the persisted local state. It is safe for
// concurrent use.
type Client struct {
	cfg      Config
	mu       sync.Mutex
	id       *identity.Identity
	mgr      *session.Manager
	pins     *pins
	sessions map[session.ID]*session.Session // what the state keeps
	saveMu   sync.Mutex                      // one save at a time
}

// New loads the user's identity from cfg.State, or generates one on first
// use, saves it, and publishes its cards. It returns an error if the saved
// state belongs to another user or does not decrypt with cfg.StateKey.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.KeyService != nil {
		cfg.Service, cfg.Directory, cfg.Publisher = cfg.KeyService, cfg.KeyService, cfg.KeyService
	}
	if cfg.UserID == "" || cfg.Service == nil || cfg.Directory == nil || cfg.Publisher == nil {
		return nil, errors.New("e2ee: Config needs UserID and a key service")
	}
	if cfg.State == nil {
		cfg.State = new(MemoryStore)
		if cfg.StateKey == nil {
			cfg.StateKey = make([]byte, StateKeySize) // memory only: nothing at rest
		}
	}
	if len(cfg.StateKey) != StateKeySize {
		return nil, fmt.Errorf("e2ee: StateKey must be %d bytes", StateKeySize)
	}
	c := &Client{cfg: cfg, sessions: map[session.ID]*session.Session{}}
	c.pins = &pins{m: map[string]*identity.Card{}, save: func() error { return c.save(context.Background()) }}

	blob, err := cfg.State.Load(ctx)
	switch {
	case errors.Is(err, ErrNoState):
		if cfg.Identity != nil {
			if cfg.Identity.UserID() != cfg.UserID {
				return nil, errors.New("e2ee: Config.Identity belongs to another user")
			}
			c.id = cfg.Identity
		} else if c.id, err = identity.Generate(cfg.Rand, cfg.UserID, identity.Options{Kind: cfg.Kind}); err != nil {
			return nil, err
		}
		if err := c.save(ctx); err != nil {
			return nil, fmt.Errorf("e2ee: saving the new identity: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("e2ee: loading state: %w", err)
	default:
		st, err := openState(cfg.StateKey, cfg.UserID, blob)
		if err != nil {
			return nil, err
		}
		if c.id, err = identity.Import(st.Identity); err != nil {
			return nil, err
		}
		if c.id.UserID() != cfg.UserID {
			return nil, errors.New("e2ee: the saved state belongs to another user")
		}
		for _, raw := range st.Pins {
			card, err := identity.ParseCard(raw)
			if err != nil {
				return nil, fmt.Errorf("e2ee: saved pin: %w", err)
			}
			c.pins.m[card.UserID()] = card
		}
		for _, saved := range st.Sessions {
			s, err := restoreSession(cfg.Rand, saved)
			if err != nil {
				return nil, err
			}
			c.sessions[s.ID()] = s
		}
	}
	if err := cfg.Publisher.PublishHistory(ctx, c.id.Cards()); err != nil {
		return nil, fmt.Errorf("e2ee: publishing the identity: %w", err)
	}
	if err := c.newManager(); err != nil {
		return nil, err
	}
	return c, nil
}

// newManager builds the session manager for the current identity and
// preloads the saved sessions. It takes c.mu itself; callers must not hold
// it.
func (c *Client) newManager() error {
	c.mu.Lock()
	id := c.id
	c.mu.Unlock()
	mgr, err := session.NewManager(session.Config{
		Identity: id, Service: c.cfg.Service, Directory: c.cfg.Directory, Pins: c.pins,
		Rand: c.cfg.Rand, EpochCheckInterval: c.cfg.EpochCheckInterval,
		OnSession: c.remember,
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sessions {
		mgr.Preload(s)
	}
	c.mgr = mgr
	return nil
}

// remember keeps a session's keys in the persisted state.
func (c *Client) remember(s *session.Session) {
	c.mu.Lock()
	if old, ok := c.sessions[s.ID()]; ok && len(old.Epochs()) >= len(s.Epochs()) && old.Epoch() >= s.Epoch() {
		c.mu.Unlock()
		return
	}
	c.sessions[s.ID()] = s
	c.mu.Unlock()
	// A failed save loses only a cache entry: the grants are fetched
	// again after a restart.
	c.save(context.Background())
}

func restoreSession(rnd io.Reader, saved savedSession) (*session.Session, error) {
	id, err := session.ParseID(saved.ID)
	if err != nil {
		return nil, fmt.Errorf("e2ee: saved session: %w", err)
	}
	keys := make(map[uint32]session.EpochKey, len(saved.Keys))
	for n, b := range saved.Keys {
		k, err := session.ParseEpochKey(b)
		clear(b)
		if err != nil {
			return nil, fmt.Errorf("e2ee: saved session: %w", err)
		}
		keys[n] = k
	}
	return session.FromKeys(rnd, id, saved.ChannelCID, keys)
}

func (c *Client) save(ctx context.Context) error {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	c.mu.Lock()
	id := c.id
	saved := make([]savedSession, 0, len(c.sessions))
	for _, s := range c.sessions {
		keys := make(map[uint32][]byte, len(s.Epochs()))
		for _, n := range s.Epochs() {
			k, _ := s.Key(n)
			keys[n] = k.Bytes()
		}
		saved = append(saved, savedSession{ID: s.ID().String(), ChannelCID: s.ChannelCID(), Keys: keys})
	}
	c.mu.Unlock()
	defer func() {
		for _, s := range saved {
			for _, k := range s.Keys {
				clear(k)
			}
		}
	}()
	export := id.Export()
	defer clear(export)
	blob, err := sealState(c.cfg.StateKey, c.cfg.UserID, &state{Version: stateVersion, Identity: export, Pins: c.pins.snapshot(), Sessions: saved})
	if err != nil {
		return err
	}
	return c.cfg.State.Save(ctx, blob)
}

// Identity returns the current identity.
func (c *Client) Identity() *identity.Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// Manager returns the session manager.
func (c *Client) Manager() *session.Manager {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mgr
}

// Pins returns the client's persisted trust pins, for re-pinning a user
// after out-of-band verification (Pins().Pin(card)).
func (c *Client) Pins() identity.Pins { return c.pins }

// CreateSession starts the encryption session of a channel for the local
// user and members (or returns the channel's existing one).
func (c *Client) CreateSession(ctx context.Context, channelCID string, members []string) (*session.Session, error) {
	return c.Manager().Create(ctx, channelCID, members)
}

// Encrypt seals plaintext for the channel msg.ChannelCID names, as message
// msg.MessageID, and returns the text to send in Stream's text field. The
// channel must have a session. msg.SenderID must be the client's user. A
// plaintext that would exceed Stream's 5,000 characters fails with a
// *session.TooLongError before any cryptography.
func (c *Client) Encrypt(ctx context.Context, msg session.Context, plaintext []byte) (string, error) {
	if msg.SenderID != c.cfg.UserID {
		return "", errors.New("e2ee: the message's sender is not this client's user")
	}
	if max := session.MaxPlaintext(StreamTextLimit); len(plaintext) > max {
		return "", &session.TooLongError{Len: len(plaintext), Max: max}
	}
	mgr := c.Manager()
	id, err := c.cfg.Service.Lookup(ctx, msg.ChannelCID)
	if err != nil {
		return "", err
	}
	return mgr.SealText(ctx, id, msg, plaintext, StreamTextLimit)
}

// Decrypt opens the text of a received message. It returns
// session.ErrDecrypt for anything that does not authenticate,
// session.ErrUnknownEpoch for a message the user was never granted, and an
// *identity.KeyChangeError when the sender's keys changed without a chain.
func (c *Client) Decrypt(ctx context.Context, msg session.Context, text string) ([]byte, error) {
	return c.Manager().OpenText(ctx, text, msg)
}

// RotateIdentity moves the user to a new key generation signed by the
// current one, saves it and publishes the new card. Old generations are
// kept, so old grants still open.
func (c *Client) RotateIdentity(ctx context.Context) error {
	c.mu.Lock()
	next, err := c.id.Rotate(c.cfg.Rand, identity.Options{})
	if err != nil {
		c.mu.Unlock()
		return err
	}
	prev := c.id
	c.id = next
	c.mu.Unlock()
	if err := c.save(ctx); err != nil {
		c.mu.Lock()
		c.id = prev
		c.mu.Unlock()
		return err
	}
	if err := c.cfg.Publisher.PublishHistory(ctx, next.Cards()); err != nil {
		return err
	}
	return c.newManager()
}
