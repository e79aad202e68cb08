package e2ee

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/redact"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/session"
)

// StreamTextLimit is Stream's default maximum message length in characters.
const StreamTextLimit = 5000

// Publisher publishes a user's card history to the directory.
// [keyservice.Client] implements it.
type Publisher interface {
	PublishHistory(ctx context.Context, cards []*identity.Card) error
}

// Config configures a [Client]. UserID, Service, Directory and [Publisher] are
// required (KeyService sets the last three at once); the zero value of the
// other fields is the safe default.
//
// A Config prints and logs redacted: fmt (every verb), slog and
// encoding/json show the user ID, the key kind and the store's type, never
// StateKey, which keeps its bytes behind pointers where fmt reaches a
// Config without its methods (in an unexported struct field).
type Config struct {
	// UserID is the Stream user the client acts as.
	UserID string
	// KeyService, if set, is used as Service, Directory and [Publisher].
	KeyService *keyservice.Client
	// Service, Directory and [Publisher] reach the key service.
	Service   session.Service
	Directory session.Directory
	Publisher Publisher
	// State persists the identity and the trusted cards. Nil means memory
	// only: a restarted process gets a new identity and cannot read old
	// messages.
	State StateStore
	// StateKey encrypts the state at rest. Required when State is set.
	// Keep it outside the state's storage (a secret manager, the OS
	// keychain) and load it with [ParseStateKey].
	//
	// The key authenticates the state but cannot tell an old state from
	// the current one: whoever can write the state's storage can put back
	// an older blob. New refuses one whose identity is older than the one
	// the Directory publishes for UserID ([ErrStateRollback]), but not an
	// older blob with the same identity, which silently restores older
	// pins and session keys.
	StateKey StateKey
	// Kind is the key type of a newly generated identity. Zero means the
	// post-quantum hybrid.
	Kind identity.Kind
	// Identity, if set, is used instead of generating one when State holds
	// none: an identity recovered on a new device (twoman.Client), or
	// imported from a backup. It must belong to UserID, and be no older
	// than the identity the Directory publishes ([ErrStateRollback]). A
	// saved identity in State takes precedence.
	Identity *identity.Identity
	// EpochCheckInterval is passed to the [session.Manager].
	EpochCheckInterval time.Duration
	// Members, if set, returns a channel's members as the application knows
	// them (for Stream, the channel's member list). It is passed to the
	// [session.Manager]: a removal then takes effect when either the
	// application or the session's log shows it, and a session is accepted
	// on first contact only if its creator is listed (see
	// [session.Config.Members] and SECURITY.md).
	Members func(ctx context.Context, channelCID string) ([]string, error)
	// SessionID, if set, returns the session a channel names — for Stream,
	// the channel's session_id custom field, the root of trust of a
	// channel's membership. The session's signed genesis must name the
	// channel, and once the local state binds a channel to a session, a
	// different one is [ErrSessionChanged]. Nil means only sessions bound
	// here (created with [Client.CreateSession] or opened with
	// [Client.OpenChannel]) are used: the key service's listing of a
	// channel is never trusted.
	SessionID func(ctx context.Context, channelCID string) (session.ID, error)
	// Rand is the source of identity keys, epoch keys and grant randomness.
	// Nil means crypto/rand. Message nonces always come from crypto/rand.
	Rand io.Reader
	// Logger receives a warning when saving the local state fails after
	// an operation that succeeded on the key service (a session created,
	// opened or rotated): the operation's caller gets no error, as the
	// keys are saved again with the next save and the grants can be
	// fetched again. Nil discards. Nothing secret is logged.
	Logger *slog.Logger
}

// ErrStateRollback is returned by [New] when the saved state (or
// [Config.Identity]) holds an identity older than the one the Directory
// publishes for the user: typically an old state file put back after
// RotateIdentity, which would silently bring back a generation the user
// rotated away from, possibly because it was compromised. Restore the
// newest state, or recover the current identity (see the package doc).
var ErrStateRollback = errors.New("e2ee: the local state is older than the identity published for this user")

// Client is the SDK's entry point for one user: the local identity, the
// session manager, trust pins and the persisted local state. It is safe for
// concurrent use. [New] returns one; the zero value is not usable. A Client
// prints and logs redacted (user ID, generation and fingerprint only) and
// never shows the StateKey.
type Client struct {
	// A [Client] is a handle on its state so that it holds no lock by value
	// and can redact itself with value-receiver methods: a Client value
	// that fmt reaches by dereference or as a struct field would otherwise
	// be printed field by field through reflection.
	*client
}

type client struct {
	cfg      Config
	log      *slog.Logger // cfg.Logger or a discarding one
	mu       sync.Mutex
	id       *identity.Identity
	mgr      *session.Manager
	pins     *pins
	floors   *floors
	sessions map[session.ID]*session.Session // what the state keeps
	saveMu   sync.Mutex                      // one save at a time
}

// New loads the user's identity from cfg.State, or generates one on first
// use, saves it, and publishes its cards. It returns an error if the saved
// state belongs to another user or does not decrypt with cfg.StateKey
// ([ErrStateKey]).
//
// A loaded identity, or cfg.Identity, is compared with the newest card the
// Directory publishes for the user: if that card is newer and not one of
// the identity's own, New returns [ErrStateRollback]. If the local identity
// is the newer one (an earlier publication failed), New publishes it. A
// rolled-back state whose identity did not change since is not detected:
// its older pins and session keys are loaded (see [Config.StateKey]).
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.KeyService != nil {
		cfg.Service, cfg.Directory, cfg.Publisher = cfg.KeyService, cfg.KeyService, cfg.KeyService
	}
	if cfg.UserID == "" || cfg.Service == nil || cfg.Directory == nil || cfg.Publisher == nil {
		return nil, errors.New("e2ee: Config needs UserID and a key service")
	}
	if cfg.State == nil {
		cfg.State = new(MemoryStore)
		if cfg.StateKey.k.IsZero() {
			cfg.StateKey = StateKey{redact.Hold(new([StateKeySize]byte))} // memory only: nothing at rest
		}
	}
	if cfg.StateKey.k.IsZero() {
		return nil, errors.New("e2ee: Config.StateKey is required with a State")
	}
	c := &Client{&client{cfg: cfg, sessions: map[session.ID]*session.Session{}}}
	if c.log = cfg.Logger; c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.pins = &pins{m: map[string]*identity.Card{}, save: c.save}
	c.floors = &floors{m: map[session.ID]session.Floor{}, byChannel: map[string]session.ID{}, save: c.save}

	blob, err := cfg.State.Load(ctx)
	switch {
	case errors.Is(err, ErrNoState):
		if cfg.Identity != nil {
			if cfg.Identity.UserID() != cfg.UserID {
				return nil, errors.New("e2ee: Config.Identity belongs to another user")
			}
			c.id = cfg.Identity
			if err := c.checkPublished(ctx); err != nil {
				return nil, err
			}
		} else if c.id, err = identity.Generate(cfg.Rand, cfg.UserID, identity.Options{Kind: cfg.Kind}); err != nil {
			return nil, err
		}
		if err := c.save(ctx); err != nil {
			return nil, fmt.Errorf("e2ee: saving the new identity: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("e2ee: loading state: %w", err)
	default:
		st, err := openState(c.cfg.StateKey.k.Get()[:], cfg.UserID, blob)
		if err != nil {
			return nil, err
		}
		if c.id, err = identity.Import(st.Identity); err != nil {
			return nil, err
		}
		if c.id.UserID() != cfg.UserID {
			return nil, errors.New("e2ee: the saved state belongs to another user")
		}
		if err := c.checkPublished(ctx); err != nil {
			return nil, err
		}
		for _, raw := range st.Pins {
			card, err := identity.ParseCard(raw)
			if err != nil {
				return nil, fmt.Errorf("e2ee: saved pin: %w", err)
			}
			c.pins.m[card.UserID()] = card
		}
		if err := c.floors.restore(st.Floors); err != nil {
			return nil, err
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

// checkPublished returns ErrStateRollback if the Directory publishes a card
// for the user that is newer than c.id and not one of its own. The
// signature chain cannot decide this: an old state's identity is an
// ancestor of the published one, so a valid chain is exactly what a
// rollback looks like.
func (c *Client) checkPublished(ctx context.Context) error {
	latest, err := c.cfg.Directory.Latest(ctx, []string{c.cfg.UserID})
	if err != nil {
		return fmt.Errorf("e2ee: checking the published identity: %w", err)
	}
	pub := latest[c.cfg.UserID]
	if pub == nil {
		return nil // nothing published yet: New publishes
	}
	cards := c.id.Cards()
	if g := pub.Generation(); int64(g) < int64(len(cards)) && cards[g].Equal(pub) {
		return nil // the directory is current or behind: New publishes the rest
	}
	if pub.Generation() > c.id.Generation() {
		return ErrStateRollback
	}
	// Another card at a generation the identity has: not a rollback of
	// this state; publishing reports the conflict.
	return nil
}

// newManager builds the session manager for the current identity and
// preloads the saved sessions. It takes c.mu itself; callers must not hold
// it.
func (c *Client) newManager() error {
	c.mu.Lock()
	id := c.id
	c.mu.Unlock()
	mgr, err := session.NewManager(session.Config{
		Identity: id, Service: c.cfg.Service, Directory: c.cfg.Directory, Pins: c.pins, Floors: c.floors,
		Rand: c.cfg.Rand, EpochCheckInterval: c.cfg.EpochCheckInterval,
		Members: c.cfg.Members, OnSession: c.remember,
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

// remember keeps a session's keys in the persisted state, saving under the
// context of the operation that produced the session. A failed save is
// logged, not returned: the operation succeeded on the key service, the
// keys stay in memory and go out with the next save, and at worst a
// restarted client fetches the grants again.
func (c *Client) remember(ctx context.Context, s *session.Session) {
	c.mu.Lock()
	if old, ok := c.sessions[s.ID()]; ok && len(old.Epochs()) >= len(s.Epochs()) && old.Epoch() >= s.Epoch() {
		c.mu.Unlock()
		return
	}
	c.sessions[s.ID()] = s
	c.mu.Unlock()
	if err := c.save(ctx); err != nil {
		c.log.WarnContext(ctx, "e2ee: saving the local state failed; the session's keys will be saved with the next save",
			"user", c.cfg.UserID, "session", s.ID().String(), "error", err.Error())
	}
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
	blob, err := sealState(c.cfg.StateKey.k.Get()[:], c.cfg.UserID, &state{Version: stateVersion, Identity: export, Pins: c.pins.snapshot(), Sessions: saved, Floors: c.floors.snapshot()})
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
// after out-of-band verification (Pins().PinContext(ctx, card)). Pinning
// saves the local state and returns the save's error; Pin, having no
// context, saves without a deadline.
func (c *Client) Pins() session.ContextPins { return c.pins }

// CreateSession starts the encryption session of a channel for the local
// user (its admin) and members, and binds the channel to it in the local
// state. Write the returned session's ID to the channel's session_id. If the
// channel already has a session, it returns a [*session.SessionExistsError]:
// open the channel's session_id with [Client.OpenChannel] instead.
func (c *Client) CreateSession(ctx context.Context, channelCID string, members []string) (*session.Session, error) {
	s, err := c.Manager().Create(ctx, channelCID, members)
	if err != nil {
		return nil, err
	}
	if err := c.floors.bind(ctx, channelCID, s.ID()); err != nil {
		return nil, err
	}
	return s, nil
}

// ErrSessionChanged is returned when a channel names another session than
// the one this client verified for it before: Stream (or whoever can write
// the channel's session_id) pointing the channel at a session of its own.
// The client keeps using the session it verified.
var ErrSessionChanged = errors.New("e2ee: the channel names another session than the one verified for it")

// OpenChannel verifies that session id — the ID the channel's session_id
// holds — belongs to channelCID (its signed genesis names the channel, and,
// with [Config.Members], its creator is a member) and binds the channel to it
// in the local state. A channel already bound to another session returns
// [ErrSessionChanged].
func (c *Client) OpenChannel(ctx context.Context, channelCID string, id session.ID) (*session.Session, error) {
	if bound, ok := c.floors.sessionOf(channelCID); ok && bound != id {
		return nil, fmt.Errorf("%w: %s is bound to session %s, not %s", ErrSessionChanged, channelCID, bound, id)
	}
	s, err := c.Manager().OpenSession(ctx, id, channelCID)
	if err != nil {
		return nil, err
	}
	if err := c.floors.bind(ctx, channelCID, id); err != nil {
		return nil, err
	}
	return s, nil
}

// ChannelSession returns the session the local state binds channelCID to
// (by [Client.CreateSession] or [Client.OpenChannel]), if any: the only
// session whose messages are the channel's, whatever session another
// genesis naming the channel, or a message's header, points at.
func (c *Client) ChannelSession(channelCID string) (session.ID, bool) {
	return c.floors.sessionOf(channelCID)
}

// sessionFor returns the session to seal a message of channelCID under: the
// one the local state binds the channel to, else the one [Config.SessionID]
// names (verified like [Client.OpenChannel]). The key service's listing is
// never used: it is only a hint.
func (c *Client) sessionFor(ctx context.Context, channelCID string) (session.ID, error) {
	if id, ok := c.floors.sessionOf(channelCID); ok {
		if c.cfg.SessionID != nil {
			named, err := c.cfg.SessionID(ctx, channelCID)
			if err != nil {
				return session.ID{}, fmt.Errorf("e2ee: the channel's session ID: %w", err)
			}
			if named != id {
				return session.ID{}, fmt.Errorf("%w: %s is bound to session %s, not %s", ErrSessionChanged, channelCID, id, named)
			}
		}
		return id, nil
	}
	if c.cfg.SessionID == nil {
		// The key service's listing of a channel is only a hint: a user
		// could have created the session of a channel before its creator.
		return session.ID{}, fmt.Errorf("%w: no session is bound to %s here; open the channel's session_id with OpenChannel, or set Config.SessionID", session.ErrUnknownSession, channelCID)
	}
	id, err := c.cfg.SessionID(ctx, channelCID)
	if err != nil {
		return session.ID{}, fmt.Errorf("e2ee: the channel's session ID: %w", err)
	}
	if _, err := c.OpenChannel(ctx, channelCID, id); err != nil {
		return session.ID{}, err
	}
	return id, nil
}

// Encrypt seals plaintext for the channel msg.ChannelCID names, as message
// msg.MessageID, and returns the text to send in Stream's text field.
// msg.SenderID must be the client's user. The session is the one the local
// state binds the channel to, else the one [Config.SessionID] names (verified
// as [Client.OpenChannel] does). A channel without one returns
// [session.ErrUnknownSession] (start one with [Client.CreateSession], or open
// the channel's with [Client.OpenChannel]); a
// plaintext that would exceed Stream's 5,000 characters ([StreamTextLimit])
// returns a [*session.TooLongError] before any cryptography.
func (c *Client) Encrypt(ctx context.Context, msg session.Binding, plaintext []byte) (string, error) {
	if msg.SenderID != c.cfg.UserID {
		return "", errors.New("e2ee: the message's sender is not this client's user")
	}
	if max := session.MaxPlaintext(StreamTextLimit); len(plaintext) > max {
		return "", &session.TooLongError{Len: len(plaintext), Max: max}
	}
	id, err := c.sessionFor(ctx, msg.ChannelCID)
	if err != nil {
		return "", err
	}
	return c.Manager().SealText(ctx, id, msg, plaintext, StreamTextLimit)
}

// Decrypt opens the text of a received message, as [session.Manager.OpenText]
// does. It returns [session.ErrDecrypt] for anything that does not
// authenticate, [session.ErrForbidden] when the user is not (or no longer) a
// member of the session, [session.ErrUnknownEpoch] for an epoch the user was
// never granted, and an [*identity.KeyChangeError] when the sender's keys
// changed without a chain.
func (c *Client) Decrypt(ctx context.Context, msg session.Binding, text string) ([]byte, error) {
	return c.Manager().OpenText(ctx, text, msg)
}

// RotateIdentity moves the user to a new key generation signed by the
// current one, saves it and publishes the new card. Old generations are
// kept, so old grants still open. Then, in every session the local state
// keeps whose roster has the user, it appends a rotation signed with the
// new generation ([session.Manager.RetireGenerations]): readers refuse
// what the retired generations sign from then on, and readers that
// already trust the new generation accept what the old ones signed
// before. A session it could not reach is re-signed before the user next
// seals in it; their errors are returned joined, after the new identity
// is in place.
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
	if err := c.newManager(); err != nil {
		return err
	}
	return c.retireGenerations(ctx)
}

// retireGenerations re-signs, with the current generation, every session
// of the local state whose log has not seen it.
func (c *Client) retireGenerations(ctx context.Context) error {
	c.mu.Lock()
	mgr := c.mgr
	ids := make([]session.ID, 0, len(c.sessions))
	for id := range c.sessions {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	slices.SortFunc(ids, func(a, b session.ID) int { return bytes.Compare(a[:], b[:]) })
	var errs []error
	for _, id := range ids {
		err := mgr.RetireGenerations(ctx, id)
		// A session the user left or was removed from: nothing to sign.
		if err != nil && !errors.Is(err, session.ErrForbidden) && !errors.Is(err, session.ErrNotMember) {
			errs = append(errs, fmt.Errorf("e2ee: re-signing session %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// String returns a redacted description of the configuration: the user
// ID, the key kind and the state store's type. StateKey shows as REDACTED
// (or unset), never as bytes.
func (c Config) String() string {
	return fmt.Sprintf("e2ee.Config{UserID: %q, Kind: %v, State: %s, StateKey: %s}",
		c.UserID, c.kind(), c.storeType(), c.stateKeyNote())
}

// GoString implements [fmt.GoStringer] with the same redacted text as String.
func (c Config) GoString() string { return c.String() }

// Format implements [fmt.Formatter] so that every verb (%v, %+v, %#v, %s, %q,
// %x, ...) prints the redacted String. It has a value receiver so that a
// [Config] reached through a pointer, a dereference or an exported struct
// field redacts itself too.
func (c Config) Format(f fmt.State, verb rune) { redact.Format(f, verb, c.String()) }

// LogValue implements [slog.LogValuer]: logs see the user ID, the key kind
// and the state store's type only.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("user_id", c.UserID),
		slog.String("kind", c.kind().String()),
		slog.String("state", c.storeType()),
		slog.String("state_key", c.stateKeyNote()),
	)
}

// MarshalJSON gives encoding/json, and so slog's JSON handler when a [Config]
// is nested in another value, the fields LogValue shows: a Config is not a
// serialisation format, and without it the StateKey's refusal to marshal
// would fail the whole Config.
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		UserID   string `json:"user_id"`
		Kind     string `json:"kind"`
		State    string `json:"state"`
		StateKey string `json:"state_key"`
	}{c.UserID, c.kind().String(), c.storeType(), c.stateKeyNote()})
}

func (c Config) kind() identity.Kind {
	if c.Kind == 0 {
		return identity.KindHybrid
	}
	return c.Kind
}

func (c Config) storeType() string {
	if c.State == nil {
		return "memory"
	}
	return fmt.Sprintf("%T", c.State)
}

func (c Config) stateKeyNote() string {
	if c.StateKey.k.IsZero() {
		return "unset"
	}
	return redact.Placeholder
}

// String returns a redacted description of the client: the user ID, the
// identity's generation and fingerprint. It never shows the StateKey or
// any private key.
func (c Client) String() string {
	if c.client == nil {
		return "e2ee.Client(zero)"
	}
	id := c.Identity()
	if id == nil {
		return fmt.Sprintf("e2ee.Client(%q, no identity, state key REDACTED)", c.cfg.UserID)
	}
	return fmt.Sprintf("e2ee.Client(%q gen %d %s, state key REDACTED)", c.cfg.UserID, id.Generation(), id.Card().Fingerprint())
}

// GoString implements [fmt.GoStringer] with the same redacted text as String.
func (c Client) GoString() string { return c.String() }

// Format implements [fmt.Formatter] so that every verb (%v, %+v, %#v, %s, %q,
// %x, ...) prints the redacted String. It has a value receiver so that a
// dereferenced [*Client], or a Client in a struct field, redacts itself too.
func (c Client) Format(f fmt.State, verb rune) { redact.Format(f, verb, c.String()) }

// LogValue implements [slog.LogValuer]: logs see the user ID, the identity's
// generation and fingerprint only.
func (c Client) LogValue() slog.Value {
	if c.client == nil {
		return slog.StringValue("e2ee.Client(zero)")
	}
	attrs := []slog.Attr{slog.String("user_id", c.cfg.UserID)}
	if id := c.Identity(); id != nil {
		attrs = append(attrs,
			slog.Uint64("generation", uint64(id.Generation())),
			slog.String("fingerprint", id.Card().Fingerprint()))
	}
	return slog.GroupValue(attrs...)
}
