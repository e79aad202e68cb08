package session

import (
	"container/list"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/veilchat/veil/identity"
)

// Config configures a [Manager]. Identity, [Service] and [Directory] are required;
// the zero value of every other field is the safe default.
type Config struct {
	// Identity is the local user's private identity.
	Identity *identity.Identity
	// Service stores sessions and grants, acting as Identity's user.
	Service Service
	// Directory returns other users' cards.
	Directory Directory
	// Pins holds trusted cards (trust on first use). Nil means a new
	// [identity.MemoryPins], which forgets everything when the process ends.
	// If Pins is also a [ContextPins], the manager pins through PinContext
	// with the context of the call that pins.
	Pins identity.Pins
	// Rand is the source of keys and nonces. Nil means crypto/rand. It
	// must be safe for concurrent use: sessions draw nonces from it
	// concurrently, and a reader that repeats itself repeats nonces.
	Rand io.Reader
	// CacheSize is the number of sessions kept in memory. Zero means 1024.
	CacheSize int
	// EpochCheckInterval is how long a cached session is trusted to still
	// be at the current epoch before sealing. Zero means ask the [Service]
	// before every seal, so that a message is never sealed under an epoch
	// a removed member holds; a negative value never asks (only for a
	// single-writer setting).
	EpochCheckInterval time.Duration
	// Now is the clock. Nil means [time.Now].
	Now func() time.Time
	// Members, if set, returns a channel's members as the application
	// knows them — for Stream, the channel's member list — so that the key
	// service alone cannot decide who holds a channel's keys. With it, the
	// manager wraps a new epoch's key (Revoke, Rotate, Extend) only for
	// users it lists, and accepts the key of an epoch newer than every one
	// it holds only from a granter it lists (or from itself); a client
	// that kept no keys (no e2ee state) and whose current epoch was granted
	// by someone who has since left gets [ErrNotMember] until the next
	// rotation. Without it,
	// the key service is trusted for membership: a malicious one could add
	// a user of its own to the members a rotation wraps for, or serve a
	// new epoch granted by any user with a card (SECURITY.md).
	Members func(ctx context.Context, channelCID string) ([]string, error)
	// OnSession, if set, is called with every session the manager creates,
	// opens or rotates (a new value each time), for example to persist its
	// keys in an encrypted local store (e2ee does), with the context of the
	// call that did it. It runs outside the manager's locks, possibly
	// concurrently. The operation has succeeded when it runs: it has no
	// error to return, and must report its own failures.
	OnSession func(ctx context.Context, s *Session)
}

// Manager creates, retrieves, extends, revokes and rotates sessions through
// a [Service], opening the grants made for its identity and trusting cards
// through its Pins. It caches sessions (bounded, least recently used first
// out) and trusted cards. A Manager is safe for concurrent use.
type Manager struct {
	cfg   Config
	me    *identity.Identity
	pins  identity.Pins
	rand  io.Reader
	now   func() time.Time
	mu    sync.Mutex
	lru   *list.List // of *cacheEntry, most recent first
	byID  map[ID]*list.Element
	cards map[cardKey]trustedCard
	// trust serializes trust decisions per user (striped by user ID), so
	// that two concurrent first uses cannot pin and accept two cards.
	trust [64]sync.Mutex
	seed  maphash.Seed // of the stripe hash
}

// trustedCard is a cached card and the pin it was checked against; it is
// used only while that pin stays.
type trustedCard struct {
	card, pin *identity.Card
}

type cacheEntry struct {
	s       *Session
	checked time.Time
}

type cardKey struct {
	user string
	gen  uint32
}

const maxCachedCards = 4096

// NewManager checks cfg and returns a [Manager].
func NewManager(cfg Config) (*Manager, error) {
	if cfg.Identity == nil || cfg.Service == nil || cfg.Directory == nil {
		return nil, errors.New("session: Config needs Identity, Service and Directory")
	}
	m := &Manager{cfg: cfg, me: cfg.Identity, pins: cfg.Pins, rand: cfg.Rand, now: cfg.Now,
		lru: list.New(), byID: map[ID]*list.Element{}, cards: map[cardKey]trustedCard{}, seed: maphash.MakeSeed()}
	if m.pins == nil {
		m.pins = new(identity.MemoryPins)
	}
	if m.rand == nil {
		m.rand = rand.Reader
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.cfg.CacheSize <= 0 {
		m.cfg.CacheSize = 1024
	}
	return m, nil
}

// Identity returns the manager's identity.
func (m *Manager) Identity() *identity.Identity { return m.me }

// Create starts a session for channelCID whose members are the local user
// and members, with epoch-0 grants for each. If the channel already has a
// session (another member created it first), that session is retrieved and
// returned instead. Every member must have a card in the [Directory] that the
// Pins accept.
func (m *Manager) Create(ctx context.Context, channelCID string, members []string) (*Session, error) {
	users := withUser(members, m.me.UserID())
	cards, err := m.trustedLatest(ctx, users)
	if err != nil {
		return nil, err
	}
	s, err := New(m.rand, channelCID)
	if err != nil {
		return nil, err
	}
	grants, err := m.wrap(s, s.Epoch(), cards)
	if err != nil {
		return nil, err
	}
	res, err := m.cfg.Service.Create(ctx, s.ID(), channelCID, grants)
	if err != nil {
		return nil, err
	}
	if !res.Created {
		return m.retrieveFor(ctx, res.ID, channelCID)
	}
	m.store(ctx, s)
	return s, nil
}

// Retrieve returns session id, from the cache or by fetching and opening the
// local user's grants.
func (m *Manager) Retrieve(ctx context.Context, id ID) (*Session, error) {
	if s := m.cached(id); s != nil {
		return s, nil
	}
	return m.fetch(ctx, id)
}

// ForChannel returns the session of a channel ([ErrUnknownSession] if it has
// none).
func (m *Manager) ForChannel(ctx context.Context, channelCID string) (*Session, error) {
	id, err := m.cfg.Service.Lookup(ctx, channelCID)
	if err != nil {
		return nil, err
	}
	return m.retrieveFor(ctx, id, channelCID)
}

// retrieveFor retrieves session id and checks, from its signed grants, that
// it is bound to channelCID: the service's channel-to-session mapping is
// not trusted.
func (m *Manager) retrieveFor(ctx context.Context, id ID, channelCID string) (*Session, error) {
	s, err := m.Retrieve(ctx, id)
	if err != nil {
		return nil, err
	}
	if s.ChannelCID() != channelCID {
		return nil, fmt.Errorf("%w: the service maps %q to a session of channel %q", ErrConflict, channelCID, s.ChannelCID())
	}
	return s, nil
}

// Forget drops a session from the cache.
func (m *Manager) Forget(id ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.byID[id]; ok {
		m.lru.Remove(e)
		delete(m.byID, id)
	}
}

// ErrKeyConflict is returned when the [Service] serves, for an epoch, a key
// other than the one the local user already holds (or two keys for one
// epoch): a key service trying to substitute an epoch key. The held key
// stays.
var ErrKeyConflict = errors.New("session: the service served a different key for an epoch already held")

// fetch opens every grant of the local user in session id and merges the
// keys with those already held: a fetch never drops a held key nor replaces
// it with another (ErrKeyConflict), so a service that omits or substitutes
// grants cannot make the local user forget an epoch or seal under a key
// other than the one first received.
func (m *Manager) fetch(ctx context.Context, id ID) (*Session, error) {
	records, err := m.cfg.Service.Grants(ctx, id)
	if err != nil {
		return nil, err
	}
	held := m.cached(id)
	keys := make(map[uint32]EpochKey, len(records))
	cid := ""
	if held != nil {
		cid = held.ChannelCID()
		for _, n := range held.Epochs() {
			keys[n], _ = held.Key(n)
		}
	}
	var members []string // Config.Members of the channel, fetched once when needed
	newest := uint32(0)
	for _, r := range records {
		newest = max(newest, r.Epoch)
	}
	for _, r := range records {
		g, err := OpenGrant(r.Grant, m.me, func(user string, gen uint32) (*identity.Card, error) {
			return m.Card(ctx, user, gen)
		})
		if err != nil {
			return nil, err
		}
		if g.SessionID != id || g.Epoch != r.Epoch || (cid != "" && g.ChannelCID != cid) {
			return nil, ErrDecrypt
		}
		cid = g.ChannelCID
		// keys holds the held keys and those of the grants opened so far:
		// another key for one of their epochs is a substitution.
		if k, ok := keys[g.Epoch]; ok && !k.Equal(g.Key) {
			return nil, fmt.Errorf("%w (epoch %d)", ErrKeyConflict, g.Epoch)
		}
		if g.Epoch == newest && (held == nil || g.Epoch > held.Epoch()) {
			if err := m.checkGranter(ctx, g, &members); err != nil {
				return nil, err
			}
		}
		keys[g.Epoch] = g.Key
	}
	if len(keys) == 0 {
		return nil, ErrUnknownSession
	}
	s, err := FromKeys(m.rand, id, cid, keys)
	if err != nil {
		return nil, err
	}
	m.store(ctx, s)
	return s, nil
}

// ErrNotMember is returned, with [Config.Members] set, when the key service
// names as a member, or as the granter of a new epoch, a user the
// application does not list as a member of the channel.
var ErrNotMember = errors.New("session: not a member of the channel according to the application")

// appMembers returns Config.Members(cid), fetched into *cache once.
func (m *Manager) appMembers(ctx context.Context, cid string, cache *[]string) ([]string, error) {
	if *cache == nil {
		list, err := m.cfg.Members(ctx, cid)
		if err != nil {
			return nil, fmt.Errorf("session: the application's member list: %w", err)
		}
		*cache = append(slices.Clone(list), m.me.UserID()) // never nil once fetched
	}
	return *cache, nil
}

// checkGranter accepts the granter of the key that becomes current (the
// newest fetched, newer than all held): with Config.Members, only a member
// of the channel (or the local user). Keys of other epochs only open
// messages, whose signatures protect them, so they are not checked: their
// granters may have left since.
func (m *Manager) checkGranter(ctx context.Context, g *Grant, cache *[]string) error {
	if m.cfg.Members == nil || g.Granter == m.me.UserID() {
		return nil
	}
	members, err := m.appMembers(ctx, g.ChannelCID, cache)
	if err != nil {
		return err
	}
	if !slices.Contains(members, g.Granter) {
		return fmt.Errorf("%w: %q granted epoch %d of %s", ErrNotMember, g.Granter, g.Epoch, g.ChannelCID)
	}
	return nil
}

// checkMembers refuses, with Config.Members, to wrap a key for a user the
// application does not list as a member of the channel.
func (m *Manager) checkMembers(ctx context.Context, cid string, users []string) error {
	if m.cfg.Members == nil {
		return nil
	}
	var cache []string
	members, err := m.appMembers(ctx, cid, &cache)
	if err != nil {
		return err
	}
	for _, u := range users {
		if !slices.Contains(members, u) {
			return fmt.Errorf("%w: %q in %s", ErrNotMember, u, cid)
		}
	}
	return nil
}

// Extend adds users to session id. With hideHistory false they get the
// current epoch's key (and can read messages of that epoch sent before they
// joined); with hideHistory true the session rotates to a new epoch that
// they and the current members get, so they read nothing sent before.
// hideHistory needs the admin right.
func (m *Manager) Extend(ctx context.Context, id ID, users []string, hideHistory bool) error {
	if len(users) == 0 {
		return nil
	}
	if hideHistory {
		return m.rotate(ctx, id, nil, users)
	}
	s, err := m.current(ctx, id)
	if err != nil {
		return err
	}
	if err := m.checkMembers(ctx, s.ChannelCID(), users); err != nil {
		return err
	}
	cards, err := m.trustedLatest(ctx, users)
	if err != nil {
		return err
	}
	grants, err := m.wrap(s, s.Epoch(), cards)
	if err != nil {
		return err
	}
	return m.cfg.Service.Extend(ctx, id, grants)
}

// Revoke removes users from session id and rotates it to a new epoch whose
// key only the remaining members get: the removed users cannot read what is
// sealed from then on, even with every key they ever held. It needs the
// admin right.
func (m *Manager) Revoke(ctx context.Context, id ID, users []string) error {
	return m.rotate(ctx, id, users, nil)
}

// Rotate moves session id to a new epoch for the same members. It needs the
// admin right.
func (m *Manager) Rotate(ctx context.Context, id ID) error {
	return m.rotate(ctx, id, nil, nil)
}

func (m *Manager) rotate(ctx context.Context, id ID, remove, add []string) error {
	s, err := m.current(ctx, id)
	if err != nil {
		return err
	}
	info, err := m.cfg.Service.Info(ctx, id)
	if err != nil {
		return err
	}
	var users []string
	for _, mem := range info.Members {
		if !slices.Contains(remove, mem.UserID) {
			users = append(users, mem.UserID)
		}
	}
	for _, u := range add {
		users = withUser(users, u)
	}
	if slices.Contains(remove, m.me.UserID()) {
		return errors.New("session: use another admin to remove yourself; the remover must keep the new key")
	}
	if err := m.checkMembers(ctx, s.ChannelCID(), users); err != nil {
		return err
	}
	cards, err := m.trustedLatest(ctx, users)
	if err != nil {
		return err
	}
	next, err := s.Rotate()
	if err != nil {
		return err
	}
	grants, err := m.wrap(next, next.Epoch(), cards)
	if err != nil {
		return err
	}
	if err := m.cfg.Service.Rotate(ctx, id, remove, grants); err != nil {
		if errors.Is(err, ErrConflict) {
			m.Forget(id)
		}
		return err
	}
	m.store(ctx, next)
	return nil
}

// current returns session id at the service's current epoch: from the cache
// if it was checked within EpochCheckInterval, after asking the Service
// otherwise.
func (m *Manager) current(ctx context.Context, id ID) (*Session, error) {
	s, checked := m.cachedEntry(id)
	if s == nil {
		var err error
		if s, err = m.fetch(ctx, id); err != nil {
			return nil, err
		}
		checked = m.now()
	}
	iv := m.cfg.EpochCheckInterval
	if iv < 0 || (iv > 0 && m.now().Sub(checked) < iv) {
		return s, nil
	}
	info, err := m.cfg.Service.Info(ctx, id)
	if err != nil {
		return nil, err
	}
	if info.Epoch < s.Epoch() {
		// A service never goes back: this one lost data or lies, perhaps
		// to make us seal under an epoch a removed member holds.
		return nil, fmt.Errorf("%w: the service reports epoch %d of session %s, older than epoch %d held here", ErrConflict, info.Epoch, id, s.Epoch())
	}
	if info.Epoch != s.Epoch() || !s.HasEpoch(info.Epoch) {
		if s, err = m.fetch(ctx, id); err != nil {
			return nil, err
		}
		if !s.HasEpoch(info.Epoch) {
			return nil, ErrUnknownEpoch
		}
	}
	m.touch(id)
	return s, nil
}

// SealText seals plaintext for session id as the local user, under the
// current epoch (see [Config.EpochCheckInterval]), and returns the text form.
// A plaintext that would not fit in textLimit characters returns a
// [*TooLongError] before any cryptography.
func (m *Manager) SealText(ctx context.Context, id ID, msg Binding, plaintext []byte, textLimit int) (string, error) {
	if max := MaxPlaintext(textLimit); len(plaintext) > max {
		return "", &TooLongError{Len: len(plaintext), Max: max}
	}
	s, err := m.current(ctx, id)
	if err != nil {
		return "", err
	}
	return s.SealText(m.me, msg, plaintext, textLimit)
}

// Open opens an envelope: it finds the session from the header (fetching
// new grants when the epoch is not known yet), trusts the sender's card
// through the [Directory] and Pins, and opens it. It returns the
// [Service]'s [ErrForbidden] when the local user is not, or no longer, a
// member of the session; [ErrUnknownEpoch] when the local user holds no key
// for the envelope's epoch (it joined later with the history hidden, or the
// epoch is not there yet); an [*identity.KeyChangeError] when the sender's
// card is not trusted; and [ErrDecrypt] for everything else that does not
// authenticate.
func (m *Manager) Open(ctx context.Context, envelope []byte, msg Binding) ([]byte, error) {
	h, err := ParseHeader(envelope)
	if err != nil {
		return nil, ErrDecrypt
	}
	s, err := m.Retrieve(ctx, h.SessionID)
	if err != nil {
		return nil, err
	}
	if !s.HasEpoch(h.Epoch) && h.Epoch > s.Epoch() {
		// Ask for the current epoch first: a forged header naming a future
		// epoch costs one small request, not a fetch and unwrap of every
		// grant.
		info, err := m.cfg.Service.Info(ctx, h.SessionID)
		if err != nil {
			return nil, err
		}
		if info.Epoch < h.Epoch {
			return nil, ErrUnknownEpoch
		}
		if s, err = m.fetch(ctx, h.SessionID); err != nil {
			return nil, err
		}
	}
	if !s.HasEpoch(h.Epoch) {
		return nil, ErrUnknownEpoch
	}
	sender, err := m.Card(ctx, msg.SenderID, h.SenderGeneration)
	if err != nil {
		if errors.Is(err, ErrUnknownUser) {
			return nil, ErrDecrypt
		}
		return nil, err
	}
	return s.Open(envelope, msg, sender)
}

// OpenText decodes the text form and opens it like Open.
func (m *Manager) OpenText(ctx context.Context, text string, msg Binding) ([]byte, error) {
	env, err := DecodeText(text)
	if err != nil {
		return nil, ErrDecrypt
	}
	return m.Open(ctx, env, msg)
}

// Card returns userID's card of generation gen, trusted through the Pins
// ([identity.Check] against the [Directory]'s history). Trusted cards are
// cached for as long as the user's pin does not change.
func (m *Manager) Card(ctx context.Context, userID string, gen uint32) (*identity.Card, error) {
	if c := m.cachedCard(userID, gen); c != nil {
		return c, nil
	}
	unlock := m.lockUser(userID)
	defer unlock()
	if c := m.cachedCard(userID, gen); c != nil {
		return c, nil
	}
	history, err := m.cfg.Directory.History(ctx, userID)
	if err != nil {
		return nil, err
	}
	var c *identity.Card
	for _, h := range history {
		if h.UserID() == userID && h.Generation() == gen {
			c = h
		}
	}
	if c == nil {
		return nil, fmt.Errorf("%w: %q has no card of generation %d", ErrUnknownUser, userID, gen)
	}
	if err := identity.Check(m.pinsFor(ctx), c, history); err != nil {
		return nil, err
	}
	if err := m.cacheCard(c); err != nil {
		return nil, err
	}
	return c, nil
}

// lockUser takes the trust lock of userID and returns its unlock.
func (m *Manager) lockUser(userID string) func() {
	l := m.trustLock(userID)
	l.Lock()
	return l.Unlock
}

// trustLock returns the trust lock of userID's stripe.
func (m *Manager) trustLock(userID string) *sync.Mutex {
	return &m.trust[maphash.String(m.seed, userID)%uint64(len(m.trust))]
}

// cachedCard returns the cached card of (userID, gen) if the pin it was
// checked against is still the user's pin.
func (m *Manager) cachedCard(userID string, gen uint32) *identity.Card {
	m.mu.Lock()
	tc, ok := m.cards[cardKey{userID, gen}]
	m.mu.Unlock()
	if !ok {
		return nil
	}
	if p, err := m.pins.Pinned(userID); err != nil || p == nil || !p.Equal(tc.pin) {
		return nil
	}
	return tc.card
}

// cacheCard caches c, just checked, with the user's current pin.
func (m *Manager) cacheCard(c *identity.Card) error {
	p, err := m.pins.Pinned(c.UserID())
	if err != nil {
		return err
	}
	if p == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.cards) >= maxCachedCards {
		clear(m.cards)
	}
	m.cards[cardKey{c.UserID(), c.Generation()}] = trustedCard{card: c, pin: p}
	return nil
}

// trustedLatest returns the newest card of every user, each accepted by the
// Pins (fetching the history when the newest card is ahead of the pin), and
// never older than the pinned one.
func (m *Manager) trustedLatest(ctx context.Context, users []string) ([]*identity.Card, error) {
	latest, err := m.cfg.Directory.Latest(ctx, users)
	if err != nil {
		return nil, err
	}
	cards := make([]*identity.Card, 0, len(users))
	for _, u := range users {
		c, err := m.trustLatest(ctx, u, latest[u])
		if err != nil {
			return nil, err
		}
		cards = append(cards, c)
	}
	return cards, nil
}

// trustLatest accepts c as the newest card of u, under u's trust lock.
func (m *Manager) trustLatest(ctx context.Context, u string, c *identity.Card) (*identity.Card, error) {
	if c == nil || c.UserID() != u {
		return nil, fmt.Errorf("%w: %q", ErrUnknownUser, u)
	}
	unlock := m.lockUser(u)
	defer unlock()
	if err := identity.Check(m.pinsFor(ctx), c, nil); err != nil {
		history, herr := m.cfg.Directory.History(ctx, u)
		if herr != nil {
			return nil, herr
		}
		if err := identity.Check(m.pinsFor(ctx), c, history); err != nil {
			return nil, err
		}
	}
	if p, err := m.pins.Pinned(u); err != nil {
		return nil, err
	} else if p != nil && p.Generation() > c.Generation() {
		return nil, fmt.Errorf("session: the directory returned generation %d for %q, older than the trusted generation %d", c.Generation(), u, p.Generation())
	}
	if err := m.cacheCard(c); err != nil {
		return nil, err
	}
	return c, nil
}

// wrap makes one grant of epoch n per card, in parallel across cores.
func (m *Manager) wrap(s *Session, n uint32, cards []*identity.Card) ([]GrantRecord, error) {
	out := make([]GrantRecord, len(cards))
	errs := make([]error, len(cards))
	workers := min(runtime.GOMAXPROCS(0), len(cards))
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				next.Lock()
				j := i
				i++
				next.Unlock()
				if j >= len(cards) {
					return
				}
				g, err := NewGrant(m.me, cards[j], s, n)
				out[j], errs[j] = GrantRecord{Grantee: cards[j].UserID(), Epoch: n, Grant: g}, err
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func (m *Manager) cached(id ID) *Session {
	s, _ := m.cachedEntry(id)
	return s
}

func (m *Manager) cachedEntry(id ID) (*Session, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.byID[id]
	if !ok {
		return nil, time.Time{}
	}
	m.lru.MoveToFront(e)
	ce := e.Value.(*cacheEntry)
	return ce.s, ce.checked
}

func (m *Manager) touch(id ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.byID[id]; ok {
		e.Value.(*cacheEntry).checked = m.now()
	}
}

// Preload puts sessions in the cache (for example those a restarted
// program saved), so that they need not be fetched again. Their current
// epoch is still checked with the [Service] before sealing.
func (m *Manager) Preload(sessions ...*Session) {
	for _, s := range sessions {
		m.cache(s, time.Time{})
	}
}

// store caches s and reports it to Config.OnSession.
func (m *Manager) store(ctx context.Context, s *Session) {
	m.cache(s, m.now())
	if m.cfg.OnSession != nil {
		m.cfg.OnSession(ctx, s)
	}
}

// ContextPins is an identity.Pins whose pinning can honour a context: a
// Pins that persists what it pins (e2ee's local state does) bounds that
// write by the caller's context instead of none. See Config.Pins.
type ContextPins interface {
	identity.Pins
	// PinContext is Pin under ctx.
	PinContext(ctx context.Context, card *identity.Card) error
}

// pinsFor returns the Pins to check cards with during a call under ctx.
func (m *Manager) pinsFor(ctx context.Context) identity.Pins {
	if cp, ok := m.pins.(ContextPins); ok {
		return ctxPins{ctx: ctx, ContextPins: cp}
	}
	return m.pins
}

// ctxPins pins through PinContext with the context of one call.
type ctxPins struct {
	ctx context.Context
	ContextPins
}

func (p ctxPins) Pin(card *identity.Card) error { return p.PinContext(p.ctx, card) }

// cache caches s, replacing an older copy unless that one is newer.
func (m *Manager) cache(s *Session, checked time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.byID[s.ID()]; ok {
		ce := e.Value.(*cacheEntry)
		if ce.s.Epoch() <= s.Epoch() {
			ce.s, ce.checked = s, checked
		}
		m.lru.MoveToFront(e)
		return
	}
	m.byID[s.ID()] = m.lru.PushFront(&cacheEntry{s: s, checked: checked})
	for m.lru.Len() > m.cfg.CacheSize {
		last := m.lru.Back()
		m.lru.Remove(last)
		delete(m.byID, last.Value.(*cacheEntry).s.ID())
	}
}

func withUser(users []string, u string) []string {
	if slices.Contains(users, u) {
		return users
	}
	return append(slices.Clone(users), u)
}
