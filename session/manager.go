package session

import (
	"cmp"
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
	"github.com/veilchat/veil/internal/memberlog"
)

// Config configures a [Manager]. Identity, [Service] and [Directory] are required;
// the zero value of every other field is the safe default.
type Config struct {
	// Identity is the local user's private identity.
	Identity *identity.Identity
	// Service stores sessions, their membership logs and grants, acting as
	// Identity's user. It is not trusted: every record and key it serves
	// is verified.
	Service Service
	// Directory returns other users' cards.
	Directory Directory
	// Pins holds trusted cards (trust on first use). Nil means a new
	// [identity.MemoryPins], which forgets everything when the process ends.
	// If Pins is also a [ContextPins], the manager pins through PinContext
	// with the context of the call that pins.
	Pins identity.Pins
	// Floors keeps the newest membership-log head verified per session, so
	// that a service cannot roll the Manager back to an older log (one where
	// a removed member still holds the current key). Nil means in memory,
	// for the life of the Manager; e2ee keeps them in its encrypted state.
	Floors Floors
	// Records keeps the membership-log records this Manager verifies, so
	// that it can publish them again to a Service that lost them: when a
	// key service restored from an older backup serves an older head of a
	// log this client verified further (ErrRollback), the Manager sends
	// the records after that head back, each with its grants wrapped anew
	// from the epoch keys it holds, and carries on once the Service
	// reaches its floor — the session heals itself, and members removed
	// since the backup are removed again. Nil means a new [MemoryRecords],
	// for the life of the Manager: a client restarted since it verified
	// the records cannot send them, and waits for a member who can.
	Records Records
	// Rand is the source of epoch keys and genesis nonces. Nil means
	// crypto/rand. It must be safe for concurrent use. Message nonces never
	// come from it but always from crypto/rand: a deterministic reader
	// would repeat them across processes, and an XChaCha20-Poly1305 nonce
	// used twice under one key reveals both plaintexts' XOR and the
	// authentication key.
	Rand io.Reader
	// CacheSize is the number of sessions kept in memory. Zero means 1024.
	// Evicting a session never lowers its floor (Floors).
	CacheSize int
	// EpochCheckInterval is how long a cached session is trusted to still
	// be at the head of its log before sealing. Zero means ask the Service
	// for the head before every seal, so that a message is never sealed
	// under an epoch a removed member holds; a negative value never asks
	// (only for a single-writer setting).
	EpochCheckInterval time.Duration
	// Now is the clock. Nil means [time.Now].
	Now func() time.Time
	// Members, if set, returns a channel's members as the application
	// knows them — for Stream, the channel's member list. A removal then
	// takes effect when either the application or the log shows it: before
	// sealing, a Manager rotates out (Revoke) every member of the log that
	// the list lacks, and refuses to seal (ErrPendingRemoval) if the log's
	// policy does not let it. It also wraps new keys only for listed users
	// and accepts a session on first contact only if its creator is listed
	// (or was removed since). Without it, the log alone decides who
	// reads.
	Members func(ctx context.Context, channelCID string) ([]string, error)
	// RevisionMemory is the number of messages whose highest opened
	// revision a Manager remembers, to refuse an older edit replayed as
	// current (ErrStaleRevision). Zero means 65536.
	RevisionMemory int
	// Policy is what members who are not admins may do in sessions this
	// Manager creates. Zero means DefaultPolicy.
	Policy Policy
	// OnSession, if set, is called with every session the manager creates,
	// opens or rotates (a new value each time), for example to persist its
	// keys in an encrypted local store (e2ee does), with the context of the
	// call that did it. It runs outside the manager's locks, possibly
	// concurrently. The operation has succeeded when it runs: it has no
	// error to return, and must report its own failures.
	OnSession func(ctx context.Context, s *Session)
}

// Policy says what members who are not admins may do in a session. It is
// fixed when the session is created.
type Policy uint8

// Policy bits.
const (
	// PolicyMembersAdd lets every member add members.
	PolicyMembersAdd = Policy(memberlog.MembersAdd)
	// PolicyMembersRemove lets every member remove others (admins
	// included) with a new epoch. Removal only shrinks who can read, so a
	// channel whose admins are offline can still cut off a user the
	// application no longer lists.
	PolicyMembersRemove = Policy(memberlog.MembersRemove)
	// PolicyAdminsOnly gives every change but rotation and leaving to
	// admins.
	PolicyAdminsOnly Policy = 1 << 7
	// DefaultPolicy: members remove and rotate, admins add.
	DefaultPolicy = PolicyMembersRemove
)

// Floor is the newest membership-log head a client verified for a session.
type Floor struct {
	ChannelCID string
	Head
}

// Floors keeps a Floor per session. Implementations must be safe for
// concurrent use and must never drop a floor on their own.
type Floors interface {
	// Floor returns the floor of a session, if one was set.
	Floor(id ID) (Floor, bool)
	// SetFloor records a newer floor. A Manager uses a new head only after
	// SetFloor succeeds.
	SetFloor(ctx context.Context, id ID, f Floor) error
}

// MemoryFloors is an in-memory Floors. The zero value is ready; it is safe
// for concurrent use.
type MemoryFloors struct {
	mu sync.Mutex
	m  map[ID]Floor
}

// Floor implements Floors.
func (f *MemoryFloors) Floor(id ID) (Floor, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl, ok := f.m[id]
	return fl, ok
}

// SetFloor implements Floors; it never lowers a floor.
func (f *MemoryFloors) SetFloor(_ context.Context, id ID, fl Floor) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[ID]Floor{}
	}
	if old, ok := f.m[id]; !ok || fl.Seq > old.Seq {
		f.m[id] = fl
	}
	return nil
}

// Errors of the membership log, as a Manager reports them.
var (
	// ErrInvalidLog: a record of the session's log does not verify (bad
	// signature, a change its signer may not make, a broken chain). The
	// session is not used.
	ErrInvalidLog = errors.New("session: the membership log does not verify")
	// ErrRollback: the service serves a log that ends before the newest head
	// this client verified (its Floor): it lost data or hides records.
	ErrRollback = errors.New("session: the service rolled the membership log back")
	// ErrFork: the service serves a log whose record at the floor's
	// sequence number differs from the one this client verified: two
	// histories exist. The client keeps its own and does not seal.
	ErrFork = errors.New("session: the membership log forked")
	// ErrWrongChannel: the session's genesis names another channel than
	// the one it was opened for.
	ErrWrongChannel = errors.New("session: the session belongs to another channel")
	// ErrPendingRemoval: the application's member list lacks a member of
	// the log, and the session's policy does not let the local user remove
	// them: an admin must. Nothing is sealed until then.
	ErrPendingRemoval = errors.New("session: a member the application removed is still in the session; an admin must remove them")
	// ErrNotMember is returned when the local user is not in the session's
	// roster (removed, or never added) and tries to seal or change it, and,
	// with Config.Members, when a session's creator or a user to wrap a key
	// for is not in the application's member list.
	ErrNotMember = errors.New("session: not a member of the session or of the channel")
)

// Manager creates, opens, extends, revokes and rotates sessions through a
// Service. It verifies each session's membership log, opens the grants made
// for its identity and accepts a key only if it matches its epoch's signed
// commitment, and trusts cards through its Pins. It caches sessions
// (bounded, least recently used first out) and trusted cards; floors
// (Config.Floors) are never evicted. A Manager is safe for concurrent use.
type Manager struct {
	cfg     Config
	me      *identity.Identity
	pins    identity.Pins
	floors  Floors
	records Records
	rand    io.Reader
	now     func() time.Time
	mu      sync.Mutex
	lru     *list.List // of *cacheEntry, most recent first
	byID    map[ID]*list.Element
	cards   map[cardKey]trustedCard
	// trust serializes trust decisions per user (striped by user ID), so
	// that two concurrent first uses cannot pin and accept two cards.
	trust [64]sync.Mutex
	seed  maphash.Seed // of the stripe hash
	// changes serializes log changes and fetches per session (striped).
	changes [64]sync.Mutex
	revs    *revisions
}

// trustedCard is a cached card and the pin it was checked against; it is
// used only while that pin stays.
type trustedCard struct {
	card, pin *identity.Card
}

// cacheEntry is a session's keys and, once fetched, its verified log.
type cacheEntry struct {
	s       *Session
	log     *memberlog.State // nil for a preloaded session not fetched yet
	checked time.Time
	// unsaved: the floor of log could not be saved (Config.Floors). The
	// session still opens messages; sealing retries the save and fails
	// closed.
	unsaved bool
}

type cardKey struct {
	user string
	gen  uint32
}

const (
	maxCachedCards = 4096
	// maxAppendTries bounds the retries of a change that lost a race.
	maxAppendTries = 4
)

// NewManager checks cfg and returns a [Manager].
func NewManager(cfg Config) (*Manager, error) {
	if cfg.Identity == nil || cfg.Service == nil || cfg.Directory == nil {
		return nil, errors.New("session: Config needs Identity, Service and Directory")
	}
	if cfg.Policy&^(PolicyMembersAdd|PolicyMembersRemove|PolicyAdminsOnly) != 0 {
		return nil, errors.New("session: unknown Config.Policy bits")
	}
	m := &Manager{cfg: cfg, me: cfg.Identity, pins: cfg.Pins, floors: cfg.Floors, records: cfg.Records, rand: cfg.Rand, now: cfg.Now,
		lru: list.New(), byID: map[ID]*list.Element{}, cards: map[cardKey]trustedCard{}, seed: maphash.MakeSeed()}
	if m.pins == nil {
		m.pins = new(identity.MemoryPins)
	}
	if m.floors == nil {
		m.floors = new(MemoryFloors)
	}
	if m.records == nil {
		m.records = new(MemoryRecords)
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
	if m.cfg.RevisionMemory <= 0 {
		m.cfg.RevisionMemory = 1 << 16
	}
	m.revs = newRevisions(m.cfg.RevisionMemory)
	return m, nil
}

// Identity returns the manager's identity.
func (m *Manager) Identity() *identity.Identity { return m.me }

func (m *Manager) logPolicy() memberlog.Policy {
	switch p := m.cfg.Policy; {
	case p == 0:
		return memberlog.DefaultPolicy
	case p&PolicyAdminsOnly != 0:
		return 0
	default:
		return memberlog.Policy(p)
	}
}

// lockSession serializes changes and fetches of one session.
func (m *Manager) lockSession(id ID) func() {
	l := &m.changes[maphash.Bytes(m.seed, id[:])%uint64(len(m.changes))]
	l.Lock()
	return l.Unlock
}

// Create starts a session for channelCID whose members are the local user
// (its admin) and members, with epoch-0 grants for each: it signs the
// session's genesis and stores it with the grants. The session ID derives
// from the genesis; write it to the channel's session_id. If the channel
// already has a session, it returns a *SessionExistsError: a session is
// never adopted silently (open the channel's session_id with OpenSession to join
// it). Every member must have a card in the Directory that the Pins accept.
func (m *Manager) Create(ctx context.Context, channelCID string, members []string) (*Session, error) {
	if err := checkCID(channelCID); err != nil {
		return nil, err
	}
	users := withUser(members, m.me.UserID())
	if err := m.checkMembers(ctx, channelCID, users); err != nil {
		return nil, err
	}
	cards, err := m.trustedLatest(ctx, nil, users)
	if err != nil {
		return nil, err
	}
	key, err := NewEpochKey(m.rand)
	if err != nil {
		return nil, err
	}
	var entries []memberlog.Member
	for _, c := range cards {
		if c.UserID() != m.me.UserID() {
			entries = append(entries, memberlog.Member{UserID: c.UserID(), Anchor: memberlog.AnchorOf(c), Role: memberlog.RoleMember})
		}
	}
	var nonce [memberlog.NonceSize]byte
	if _, err := io.ReadFull(m.rand, nonce[:]); err != nil {
		return nil, fmt.Errorf("session: reading randomness: %w", err)
	}
	genesis, st, err := memberlog.NewGenesis(m.me, m.me.Card(), channelCID, entries, m.logPolicy(), commitmentOf(key), nonce, uint64(m.now().Unix()))
	if err != nil {
		return nil, err
	}
	s, err := FromKeys(m.rand, ID(st.ID()), channelCID, map[uint32]EpochKey{0: key})
	if err != nil {
		return nil, err
	}
	grants, err := m.wrap(s, 0, cards)
	if err != nil {
		return nil, err
	}
	if err := m.cfg.Service.Create(ctx, genesis, grants); err != nil {
		return nil, err
	}
	m.keep(ctx, s.ID(), 0, genesis)
	if err := m.accept(ctx, s, st); err != nil {
		return nil, err
	}
	return s, nil
}

// OpenSession returns session id of channel channelCID — the ID the channel's
// session_id names — after verifying its membership log: its genesis must
// name channelCID and, with Config.Members, a creator the application lists
// as a member (or one removed since). ErrWrongChannel otherwise.
func (m *Manager) OpenSession(ctx context.Context, id ID, channelCID string) (*Session, error) {
	e, err := m.fresh(ctx, id, false)
	if err != nil {
		return nil, err
	}
	if e.log.ChannelCID() != channelCID {
		return nil, fmt.Errorf("%w: session %s is bound to %q, not %q", ErrWrongChannel, id, e.log.ChannelCID(), channelCID)
	}
	return e.s, nil
}

// Retrieve returns session id, from the cache or by fetching and verifying
// its log and opening the local user's grants. It does not check which
// channel the session belongs to: use OpenSession when the ID comes from a
// channel.
func (m *Manager) Retrieve(ctx context.Context, id ID) (*Session, error) {
	if e := m.cached(id); e != nil && e.log != nil {
		return e.s, nil
	}
	e, err := m.fetch(ctx, id)
	if err != nil {
		return nil, err
	}
	return e.s, nil
}

// ForChannel returns the session the Service lists for a channel, verified
// like Open. The Service's listing is a hint: prefer Open with the channel's
// own session_id.
func (m *Manager) ForChannel(ctx context.Context, channelCID string) (*Session, error) {
	id, err := m.cfg.Service.Lookup(ctx, channelCID)
	if err != nil {
		return nil, err
	}
	return m.OpenSession(ctx, id, channelCID)
}

// Info returns session id's state as its verified log says, after checking
// the Service's head.
func (m *Manager) Info(ctx context.Context, id ID) (Info, error) {
	e, err := m.fresh(ctx, id, false)
	if err != nil {
		return Info{}, err
	}
	st := e.log
	info := Info{ID: id, ChannelCID: st.ChannelCID(), Creator: st.Creator(), Epoch: st.Epoch(), Seq: st.Seq()}
	for _, mem := range st.Members() {
		info.Members = append(info.Members, Member{UserID: mem.UserID, Admin: mem.Role == memberlog.RoleAdmin})
	}
	return info, nil
}

// Forget drops a session from the cache. Its floor stays.
func (m *Manager) Forget(id ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.byID[id]; ok {
		m.lru.Remove(e)
		delete(m.byID, id)
	}
}

// ErrKeyConflict is returned when the Service serves, for an epoch, a key
// that does not match the epoch's signed commitment, or another key than
// the one the local user already holds: a key service trying to substitute
// an epoch key. The held key stays.
var ErrKeyConflict = errors.New("session: the service served a key that is not the epoch's key")

// cardSource resolves cards for log verification through the Pins.
func (m *Manager) cardSource(ctx context.Context) memberlog.CardSource {
	return func(user string, anchor memberlog.Anchor, gen uint32) ([]*identity.Card, error) {
		if gen < anchor.Generation || gen-anchor.Generation >= identity.MaxGenerations {
			return nil, fmt.Errorf("%w: generation %d of %q", ErrUnknownUser, gen, user)
		}
		out := make([]*identity.Card, 0, gen-anchor.Generation+1)
		for g := anchor.Generation; g <= gen; g++ {
			c, err := m.Card(ctx, user, g)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		return out, nil
	}
}

// directoryCards resolves cards from the Directory, unchecked: for
// memberlog.State.CheckCard, which checks them against an anchor.
func (m *Manager) directoryCards(ctx context.Context) memberlog.CardSource {
	return func(user string, anchor memberlog.Anchor, gen uint32) ([]*identity.Card, error) {
		history, err := m.cfg.Directory.History(ctx, user)
		if err != nil {
			return nil, err
		}
		var out []*identity.Card
		for _, c := range history {
			if g := c.Generation(); g >= anchor.Generation && g <= gen && g-anchor.Generation == uint32(len(out)) {
				out = append(out, c)
			}
		}
		return out, nil
	}
}

// verifyLog replays records from the held state (nil: from the genesis of
// id) and checks the result against the floor: it must reach the floor's
// sequence number with the floor's hash there. Records past the floor
// must not be signed by a generation the Pins retired (see
// checkRetired).
func (m *Manager) verifyLog(ctx context.Context, id ID, held *memberlog.State, records [][]byte) (*memberlog.State, error) {
	st := held
	floor, hasFloor := m.floors.Floor(id)
	var fresh []memberlog.Signer // the records this client never verified before, in order
	for i, raw := range records {
		if st == nil && i != 0 {
			return nil, ErrInvalidLog
		}
		var err error
		if st, err = m.next(ctx, id, st, raw); err != nil {
			return nil, err
		}
		if hasFloor && st.Seq() == floor.Seq && st.Head() != floor.Hash {
			return nil, fmt.Errorf("%w: session %s at record %d", ErrFork, id, floor.Seq)
		}
		if !hasFloor || st.Seq() > floor.Seq {
			fresh = append(fresh, st.LastSigner())
		}
	}
	if st == nil {
		return nil, fmt.Errorf("%w: session %s has no genesis", ErrInvalidLog, id)
	}
	if err := m.checkRetired(st, fresh); err != nil {
		if errors.Is(err, memberlog.ErrInvalid) {
			return nil, fmt.Errorf("%w: session %s: %w", ErrInvalidLog, id, err)
		}
		return nil, err
	}
	if hasFloor && st.Seq() < floor.Seq {
		return nil, fmt.Errorf("%w: session %s ends at record %d, this client verified up to %d", ErrRollback, id, st.Seq(), floor.Seq)
	}
	if hasFloor && floor.ChannelCID != st.ChannelCID() {
		return nil, fmt.Errorf("%w: session %s", ErrWrongChannel, id)
	}
	return st, nil
}

// checkRetired applies the reader's rule on retired generations
// (docs/PROTOCOL.md §10.4 rule 5, memberlog.CheckPinned) with the Pins:
// records this client verifies for the first time, signed with a
// generation older than the one it trusts for their signer, need a later
// record of that signer, signed with the trusted generation, vouching for
// them. Records at or below the floor were verified before the newer
// generation was pinned, and stay.
//
// The local user trusts its own identity's generation whatever its pin
// says: a record its retired key signed that this client never saw (a
// leaked key, replayed by the service) must not be vouched for by the
// rotation RetireGenerations appends after it.
func (m *Manager) checkRetired(st *memberlog.State, fresh []memberlog.Signer) error {
	return memberlog.CheckPinned(st, fresh, func(user string) (uint32, bool, error) {
		pin, err := m.pins.Pinned(user)
		if err != nil {
			return 0, false, err
		}
		if user == m.me.UserID() {
			g := m.me.Generation()
			if pin != nil && pin.UserID() == user {
				g = max(g, pin.Generation())
			}
			return g, true, nil
		}
		if pin == nil || pin.UserID() != user {
			return 0, false, nil
		}
		return pin.Generation(), true, nil
	})
}

// fetch brings session id up to the Service's log: it verifies the records
// after those held (all of them the first time), then opens the local
// user's grants, keeping only keys that match their epoch's commitment.
// Held keys are never dropped nor replaced.
func (m *Manager) fetch(ctx context.Context, id ID) (*cacheEntry, error) {
	unlock := m.lockSession(id)
	defer unlock()
	e, err := m.fetchLocked(ctx, id)
	if errors.Is(err, ErrRollback) {
		return m.healLocked(ctx, id, err)
	}
	return e, err
}

func (m *Manager) fetchLocked(ctx context.Context, id ID) (*cacheEntry, error) {
	held := m.cached(id)
	var from uint32
	var st *memberlog.State
	if held != nil && held.log != nil {
		st, from = held.log, held.log.Seq()+1
	}
	records, err := m.cfg.Service.Log(ctx, id, from)
	if err != nil {
		return nil, err
	}
	if len(records) > 0 || st == nil {
		if st, err = m.verifyLog(ctx, id, st, records); err != nil {
			return nil, err
		}
		m.keep(ctx, id, from, records...)
	}
	if held == nil || held.log == nil {
		if err := m.checkCreator(ctx, st); err != nil {
			return nil, err
		}
	}
	s, err := m.openGrants(ctx, id, st, held)
	if err != nil {
		return nil, err
	}
	e := &cacheEntry{s: s, log: st, checked: m.now()}
	e.unsaved = m.setFloor(ctx, id, st) != nil // reading goes on; sealing retries
	m.store(ctx, e)
	return e, nil
}

// checkCreator applies the first-contact rule: with Config.Members, the
// creator of a session must be a listed member of its channel, unless a
// later record removed it.
func (m *Manager) checkCreator(ctx context.Context, st *memberlog.State) error {
	if m.cfg.Members == nil {
		return nil
	}
	if _, still := st.Member(st.Creator()); !still {
		return nil
	}
	var cache []string
	members, err := m.appMembers(ctx, st.ChannelCID(), &cache)
	if err != nil {
		return err
	}
	if !slices.Contains(members, st.Creator()) {
		return fmt.Errorf("%w: %q created the session of %s but is not a member of the channel", ErrNotMember, st.Creator(), st.ChannelCID())
	}
	return nil
}

// openGrants opens the local user's grants of session id and merges their
// keys with the held ones. A key must match the commitment its epoch has
// in st; grants for epochs st does not show yet are left for later.
//
// A grant that does not open, verify or match its epoch's commitment is
// skipped, not fatal: the service returns every grant the user was given,
// so one bad grant — stored by a malicious member with the rotation it
// signed — would otherwise fail every later fetch and lock the user out
// of the whole session, for good. It costs the user that grant's epoch;
// its error is returned only when no key at all is left.
func (m *Manager) openGrants(ctx context.Context, id ID, st *memberlog.State, held *cacheEntry) (*Session, error) {
	keys := map[uint32]EpochKey{}
	if held != nil {
		for _, n := range held.s.Epochs() {
			keys[n], _ = held.s.Key(n)
		}
	}
	var refused error // the first grant skipped
	if _, member := st.Member(m.me.UserID()); member || held == nil {
		records, err := m.cfg.Service.Grants(ctx, id)
		if err != nil && !(errors.Is(err, ErrForbidden) && held != nil) {
			return nil, err
		}
		for _, r := range records {
			if r.Epoch > st.Epoch() {
				continue // the log does not show that epoch yet
			}
			g, err := m.openGrant(ctx, id, st, r)
			if errors.Is(err, ErrDecrypt) || errors.Is(err, ErrKeyConflict) || errors.Is(err, ErrUnknownUser) {
				refused = cmp.Or(refused, err)
				continue
			}
			if err != nil {
				return nil, err
			}
			if k, ok := keys[g.Epoch]; ok && !k.Equal(g.Key) {
				refused = cmp.Or(refused, fmt.Errorf("%w (epoch %d)", ErrKeyConflict, g.Epoch))
				continue
			}
			keys[g.Epoch] = g.Key
		}
	}
	if len(keys) == 0 {
		return nil, cmp.Or(refused, ErrUnknownSession)
	}
	return FromKeys(m.rand, id, st.ChannelCID(), keys)
}

// openGrant opens one grant of session id, checked against st: its
// session, epoch and channel, its granter's generation, and its key
// against the epoch's commitment. Errors that the grant's content causes
// match ErrDecrypt, ErrKeyConflict or ErrUnknownUser (a granter with no
// such card); others (a key change, the directory's) are returned as they
// are.
func (m *Manager) openGrant(ctx context.Context, id ID, st *memberlog.State, r GrantRecord) (*Grant, error) {
	g, err := OpenGrant(r.Grant, m.me, func(user string, gen uint32) (*identity.Card, error) {
		return m.Card(ctx, user, gen)
	})
	if err != nil {
		return nil, err
	}
	if g.SessionID != id || g.Epoch != r.Epoch || g.ChannelCID != st.ChannelCID() {
		return nil, ErrDecrypt
	}
	if g.GranterGeneration < st.MinGeneration(g.Epoch, g.Granter) {
		return nil, fmt.Errorf("%w: the grant of epoch %d is signed by generation %d of %q, which the log retired before the epoch began", ErrDecrypt, g.Epoch, g.GranterGeneration, g.Granter)
	}
	if !st.CheckCommitment(g.Epoch, commitmentOf(g.Key)) {
		return nil, fmt.Errorf("%w (epoch %d)", ErrKeyConflict, g.Epoch)
	}
	return g, nil
}

func (m *Manager) setFloor(ctx context.Context, id ID, st *memberlog.State) error {
	if f, ok := m.floors.Floor(id); ok && f.Seq >= st.Seq() {
		return nil
	}
	if err := m.floors.SetFloor(ctx, id, Floor{ChannelCID: st.ChannelCID(), Head: Head{Seq: st.Seq(), Hash: st.Head()}}); err != nil {
		return fmt.Errorf("session: saving the membership log's floor: %w", err)
	}
	return nil
}

// accept caches a session this Manager just changed, with its log state,
// after saving the floor.
func (m *Manager) accept(ctx context.Context, s *Session, st *memberlog.State) error {
	if err := m.setFloor(ctx, s.ID(), st); err != nil {
		return err
	}
	m.store(ctx, &cacheEntry{s: s, log: st, checked: m.now()})
	return nil
}

// fresh returns session id with its verified log, checked against the
// Service's head unless it was checked within EpochCheckInterval (always
// when force is set).
func (m *Manager) fresh(ctx context.Context, id ID, force bool) (*cacheEntry, error) {
	e := m.cached(id)
	if e == nil || e.log == nil {
		return m.fetch(ctx, id)
	}
	iv := m.cfg.EpochCheckInterval
	if !force && (iv < 0 || (iv > 0 && m.now().Sub(e.checked) < iv)) {
		return e, nil
	}
	head, err := m.cfg.Service.Head(ctx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case head.Seq < e.log.Seq():
		return m.heal(ctx, id, fmt.Errorf("%w: the service's head of session %s is record %d, this client verified up to %d", ErrRollback, id, head.Seq, e.log.Seq()))
	case head.Seq == e.log.Seq() && head.Hash != e.log.Head():
		return nil, fmt.Errorf("%w: session %s at record %d", ErrFork, id, head.Seq)
	case head.Seq == e.log.Seq():
		m.touch(id)
		return e, nil
	}
	return m.fetch(ctx, id)
}

// current returns session id ready to seal under: fresh, the local user in
// its roster holding the current epoch's key, and no reader of the current
// epoch missing from the roster or from the application's member list —
// rotating them out first when the policy lets the local user.
func (m *Manager) current(ctx context.Context, id ID) (*Session, error) {
	for range maxAppendTries {
		e, err := m.fresh(ctx, id, false)
		if err != nil {
			return nil, err
		}
		st := e.log
		if e.unsaved {
			if err := m.setFloor(ctx, id, st); err != nil {
				return nil, err
			}
			m.markSaved(id, st)
		}
		if _, ok := st.Member(m.me.UserID()); !ok {
			return nil, fmt.Errorf("%w: %q is not in session %s", ErrNotMember, m.me.UserID(), id)
		}
		absent, err := m.absent(ctx, st)
		if err != nil {
			return nil, err
		}
		// A reader outside the roster left without a new epoch: it holds
		// the current key. A log that has not seen the local identity's
		// generation lets the older ones sign: retire them first.
		if len(absent) == 0 && st.ReadersAreMembers() && !m.behind(st) {
			if !e.s.HasEpoch(st.Epoch()) {
				if e, err = m.fetch(ctx, id); err != nil {
					return nil, err
				}
				if !e.s.HasEpoch(e.log.Epoch()) {
					return nil, ErrUnknownEpoch
				}
			}
			return e.s, nil
		}
		if err := m.change(ctx, id, nil, nil, true); errors.Is(err, ErrForbidden) {
			return nil, fmt.Errorf("%w: %w", ErrPendingRemoval, err)
		} else if err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w: session %s keeps changing", ErrConflict, id)
}

// behind reports whether the local user is a member of st whose newest
// generation the log knows (the one it last signed a record with, or its
// anchor's if newer) is older than the local identity's.
func (m *Manager) behind(st *memberlog.State) bool {
	me, ok := st.Member(m.me.UserID())
	if !ok {
		return false
	}
	known := me.Anchor.Generation
	if g, ok := st.SignedGeneration(me.UserID); ok && g > known {
		known = g
	}
	return known < m.me.Generation()
}

// RetireGenerations makes session id's log retire the local user's older
// card generations: if the local user is a member whose newest generation
// the log knows — the one it last signed a record with, or its anchor's —
// is older than the Manager's identity, it appends a rotation (a new
// epoch, granted to every member) signed with the identity's generation.
// From then on every reader refuses records signed by the older
// generations, and envelopes and grants they sign in later epochs
// (docs/PROTOCOL.md §10.4), and a reader that already trusts the new
// generation accepts the records the old ones signed before. It does
// nothing for a session that knows the generation already or whose roster
// lacks the local user. A Manager also does it before it next seals in
// such a session; e2ee.Client.RotateIdentity does it for every session it
// keeps.
func (m *Manager) RetireGenerations(ctx context.Context, id ID) error {
	e, err := m.fresh(ctx, id, true)
	if err != nil {
		return err
	}
	if !m.behind(e.log) {
		return nil
	}
	return m.change(ctx, id, nil, nil, true)
}

// absent returns the members of st the application's list lacks.
func (m *Manager) absent(ctx context.Context, st *memberlog.State) ([]string, error) {
	if m.cfg.Members == nil {
		return nil, nil
	}
	var cache []string
	list, err := m.appMembers(ctx, st.ChannelCID(), &cache)
	if err != nil {
		return nil, err
	}
	listed := make(map[string]bool, len(list))
	for _, u := range list {
		listed[u] = true
	}
	var out []string
	for _, mem := range st.Members() {
		if !listed[mem.UserID] {
			out = append(out, mem.UserID)
		}
	}
	return out, nil
}

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
// joined); with hideHistory true the session moves to a new epoch that
// they and the current members get, so they read nothing sent before.
// Adding needs the admin right unless the session's policy lets members
// add.
func (m *Manager) Extend(ctx context.Context, id ID, users []string, hideHistory bool) error {
	if len(users) == 0 {
		return nil
	}
	return m.change(ctx, id, users, nil, hideHistory)
}

// Revoke removes users from session id and moves it to a new epoch whose
// key only the remaining members get: the removed users cannot read what is
// sealed from then on, even with every key they ever held. With
// Config.Members, every member the application no longer lists is removed
// too. It needs the admin right unless the policy lets members remove (the
// default). To remove yourself, use Leave.
func (m *Manager) Revoke(ctx context.Context, id ID, users []string) error {
	if slices.Contains(users, m.me.UserID()) {
		return errors.New("session: Revoke removes others; use Leave to remove yourself")
	}
	return m.change(ctx, id, nil, users, true)
}

// Rotate moves session id to a new epoch for the same members (minus, with
// Config.Members, those the application no longer lists). Any member may
// rotate.
func (m *Manager) Rotate(ctx context.Context, id ID) error {
	return m.change(ctx, id, nil, nil, true)
}

// change appends one record to session id's log — adding add, removing
// remove and the members the application no longer lists, with a new epoch
// when newEpoch — and its grants, re-planning on the fresh log when another
// change wins the race.
func (m *Manager) change(ctx context.Context, id ID, add, remove []string, newEpoch bool) error {
	var addCards []*identity.Card
	if len(add) > 0 {
		var err error
		if addCards, err = m.trustedLatest(ctx, nil, add); err != nil {
			return err
		}
	}
	for range maxAppendTries {
		err := m.changeOnce(ctx, id, addCards, remove, newEpoch)
		if !errors.Is(err, ErrConflict) {
			return err
		}
		if _, err := m.fresh(ctx, id, true); err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: session %s keeps changing", ErrConflict, id)
}

func (m *Manager) changeOnce(ctx context.Context, id ID, addCards []*identity.Card, remove []string, newEpoch bool) error {
	e, err := m.fresh(ctx, id, true)
	if err != nil {
		return err
	}
	unlock := m.lockSession(id)
	defer unlock()
	st := e.log
	if _, ok := st.Member(m.me.UserID()); !ok {
		return fmt.Errorf("%w: %q is not in session %s", ErrNotMember, m.me.UserID(), id)
	}
	var ops []memberlog.Op
	drop := map[string]bool{}
	for _, u := range remove {
		if _, ok := st.Member(u); ok && !drop[u] {
			drop[u] = true
		}
	}
	absent, err := m.absent(ctx, st)
	if err != nil {
		return err
	}
	for _, u := range absent {
		if u != m.me.UserID() {
			drop[u] = true
		}
	}
	for u := range drop {
		ops = append(ops, memberlog.Op{Kind: memberlog.OpRemove, Member: memberlog.Member{UserID: u}})
	}
	if len(drop) > 0 {
		newEpoch = true
	}
	var adding []string
	for _, c := range addCards {
		if _, ok := st.Member(c.UserID()); ok {
			continue // added by someone else meanwhile
		}
		adding = append(adding, c.UserID())
		ops = append(ops, memberlog.Op{Kind: memberlog.OpAdd, Member: memberlog.Member{UserID: c.UserID(), Anchor: memberlog.AnchorOf(c), Role: memberlog.RoleMember}})
	}
	if err := m.checkMembers(ctx, st.ChannelCID(), adding); err != nil {
		return err
	}
	if len(ops) == 0 && !newEpoch {
		return nil
	}
	// The record would remove the last admin: promote the local user in
	// the same record (the forced promotion the log allows).
	if me, _ := st.Member(m.me.UserID()); me.Role != memberlog.RoleAdmin && removesAllAdmins(st, drop) {
		ops = append(ops, memberlog.Op{Kind: memberlog.OpRole, Member: memberlog.Member{UserID: m.me.UserID(), Role: memberlog.RoleAdmin}})
	}
	s := e.s
	var key EpochKey
	var commit [32]byte
	if newEpoch {
		if key, err = NewEpochKey(m.rand); err != nil {
			return err
		}
		commit = commitmentOf(key)
	} else if !s.HasEpoch(st.Epoch()) {
		return ErrUnknownEpoch
	}
	raw, next, err := st.NewChange(m.me, ops, newEpoch, commit, uint64(m.now().Unix()))
	if err != nil {
		if errors.Is(err, memberlog.ErrInvalid) || next == nil {
			return fmt.Errorf("%w: %w", ErrForbidden, err)
		}
		return err
	}
	if newEpoch {
		if s, err = s.WithEpoch(next.Epoch(), key); err != nil {
			return err
		}
	}
	need, users := memberlog.GrantsNeeded(st, next)
	cards, err := m.trustedLatest(ctx, next, users)
	if err != nil {
		return err
	}
	grants, err := m.wrap(s, need, cards)
	if err != nil {
		return err
	}
	if err := m.cfg.Service.Append(ctx, id, raw, grants); err != nil {
		return err
	}
	m.keep(ctx, id, next.Seq(), raw)
	return m.accept(ctx, s, next)
}

// removesAllAdmins reports whether removing drop leaves st without admin.
func removesAllAdmins(st *memberlog.State, drop map[string]bool) bool {
	for _, mem := range st.Members() {
		if mem.Role == memberlog.RoleAdmin && !drop[mem.UserID] {
			return false
		}
	}
	return true
}

// SetAdmin gives or takes the admin right of a member. Admins only.
func (m *Manager) SetAdmin(ctx context.Context, id ID, userID string, admin bool) error {
	role := memberlog.RoleMember
	if admin {
		role = memberlog.RoleAdmin
	}
	for range maxAppendTries {
		e, err := m.fresh(ctx, id, true)
		if err != nil {
			return err
		}
		mem, ok := e.log.Member(userID)
		if !ok {
			return fmt.Errorf("%w: %q is not in session %s", ErrUnknownUser, userID, id)
		}
		if mem.Role == role {
			return nil
		}
		err = m.appendOps(ctx, e, []memberlog.Op{{Kind: memberlog.OpRole, Member: memberlog.Member{UserID: userID, Role: role}}})
		if !errors.Is(err, ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("%w: session %s keeps changing", ErrConflict, id)
}

// Leave removes the local user from session id (no new epoch: it keeps the
// current key, and the next member to seal rotates). The last admin cannot
// leave before making another member admin.
func (m *Manager) Leave(ctx context.Context, id ID) error {
	for range maxAppendTries {
		e, err := m.fresh(ctx, id, true)
		if err != nil {
			return err
		}
		err = m.appendOps(ctx, e, []memberlog.Op{{Kind: memberlog.OpRemove, Member: memberlog.Member{UserID: m.me.UserID()}}})
		if !errors.Is(err, ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("%w: session %s keeps changing", ErrConflict, id)
}

// appendOps signs and appends a change without a new epoch and without
// grants (roles, leaving).
func (m *Manager) appendOps(ctx context.Context, e *cacheEntry, ops []memberlog.Op) error {
	raw, next, err := e.log.NewChange(m.me, ops, false, [32]byte{}, uint64(m.now().Unix()))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrForbidden, err)
	}
	if err := m.cfg.Service.Append(ctx, e.s.ID(), raw, nil); err != nil {
		return err
	}
	m.keep(ctx, e.s.ID(), next.Seq(), raw)
	return m.accept(ctx, e.s, next)
}

// SealText seals plaintext for session id as the local user, under the
// current epoch (see Config.EpochCheckInterval and Config.Members), and
// returns the text form. A plaintext that would not fit in textLimit
// characters returns a *TooLongError before any cryptography.
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
// and verifying new records and grants when the epoch is not known yet),
// trusts the sender's card through the Directory and Pins, and opens it. It
// returns ErrUnknownEpoch when the local user was never granted that epoch
// (sealed before it joined with hidden history, or after it was removed
// while the service still lets it read the log), ErrForbidden when the
// service no longer lets it read the session (it was removed, or never
// was a member), an *identity.KeyChangeError when the
// sender's card is not trusted, ErrStaleRevision for an edit older than one
// it opened before (ErrEquivocation for a different envelope of the same
// revision), and ErrDecrypt for everything else that does not authenticate
// — an envelope signed by a generation of its sender that the log retired
// before its epoch began included.
func (m *Manager) Open(ctx context.Context, envelope []byte, msg Binding) ([]byte, error) {
	h, err := ParseHeader(envelope)
	if err != nil {
		return nil, ErrDecrypt
	}
	s, sender, err := m.keysFor(ctx, h, msg, nil)
	if err != nil {
		return nil, err
	}
	plain, err := s.Open(envelope, msg, sender)
	if err != nil {
		return nil, err
	}
	// Only an authenticated envelope says anything about revisions.
	if err := m.revs.admit(h.SessionID, msg, envelope); err != nil {
		clear(plain)
		return nil, err
	}
	return plain, nil
}

// keysFor returns the session holding the key of the epoch h names, and
// the sender's trusted card of the generation h names. refreshed, if not
// nil, holds the sessions a batch already asked the Service for, with the
// error it got: each is asked at most once per batch, since the epoch in a
// header is anyone's to write and a page of made-up epochs would
// otherwise cost a request per envelope.
func (m *Manager) keysFor(ctx context.Context, h Header, msg Binding, refreshed map[ID]error) (*Session, *identity.Card, error) {
	e := m.cached(h.SessionID)
	ask := func(get func(context.Context, ID) (*cacheEntry, error)) error {
		if err, asked := refreshed[h.SessionID]; asked && (err != nil || e != nil) {
			return err
		}
		fetched, err := get(ctx, h.SessionID)
		if refreshed != nil {
			refreshed[h.SessionID] = err
		}
		if err == nil {
			e = fetched
		}
		return err
	}
	if e == nil || (!e.s.HasEpoch(h.Epoch) && (e.log == nil || h.Epoch > e.log.Epoch())) {
		if err := ask(func(ctx context.Context, id ID) (*cacheEntry, error) { return m.fresh(ctx, id, true) }); err != nil {
			return nil, nil, err
		}
	}
	if !e.s.HasEpoch(h.Epoch) && e.log != nil && h.Epoch <= e.log.Epoch() {
		// The log shows the epoch; a grant may have arrived since.
		if err := ask(m.fetch); err != nil {
			return nil, nil, err
		}
	}
	if !e.s.HasEpoch(h.Epoch) {
		return nil, nil, ErrUnknownEpoch
	}
	e, err := m.checkSenderGeneration(ctx, e, h, msg.SenderID)
	if err != nil {
		return nil, nil, err
	}
	sender, err := m.Card(ctx, msg.SenderID, h.SenderGeneration)
	if err != nil {
		if errors.Is(err, ErrUnknownUser) {
			return nil, nil, ErrDecrypt
		}
		return nil, nil, err
	}
	return e.s, sender, nil
}

// checkSenderGeneration refuses (ErrDecrypt) an envelope signed with a
// generation of its sender that the log retired before the envelope's
// epoch began (memberlog.State.MinGeneration): a retired key that leaked
// must not sign messages of epochs created after its successor signed the
// log. A session whose log is not fetched yet (preloaded) is fetched only
// when the sender's generation is older than the one pinned for it: only
// then can the log have retired it.
func (m *Manager) checkSenderGeneration(ctx context.Context, e *cacheEntry, h Header, sender string) (*cacheEntry, error) {
	if e.log == nil {
		pin, err := m.pins.Pinned(sender)
		if err != nil {
			return nil, err
		}
		if pin == nil || pin.Generation() <= h.SenderGeneration {
			return e, nil
		}
		if e, err = m.fetch(ctx, h.SessionID); err != nil {
			return nil, err
		}
	}
	if h.SenderGeneration < e.log.MinGeneration(h.Epoch, sender) {
		return nil, ErrDecrypt
	}
	return e, nil
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
// never older than the pinned one. A user who is a member of st (nil: none)
// must have a card that chains from the member's anchor, checked before it
// is pinned: the log says which card whoever added the member verified.
func (m *Manager) trustedLatest(ctx context.Context, st *memberlog.State, users []string) ([]*identity.Card, error) {
	latest, err := m.cfg.Directory.Latest(ctx, users)
	if err != nil {
		return nil, err
	}
	cards := make([]*identity.Card, 0, len(users))
	for _, u := range users {
		if c := latest[u]; st != nil && c != nil && c.UserID() == u {
			if _, member := st.Member(u); member {
				if err := st.CheckCard(c, m.directoryCards(ctx)); err != nil {
					// A pinned user's substituted card is a key change;
					// an unpinned one's is refused before it is pinned.
					if p, perr := m.pins.Pinned(u); perr == nil && p != nil {
						if _, kerr := m.trustLatest(ctx, u, c); kerr != nil {
							return nil, kerr
						}
					}
					return nil, fmt.Errorf("session: the directory's card of %q is not the one session %s anchors: %w", u, ID(st.ID()), err)
				}
			}
		}
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

func (m *Manager) cached(id ID) *cacheEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.byID[id]
	if !ok {
		return nil
	}
	m.lru.MoveToFront(e)
	ce := *e.Value.(*cacheEntry)
	return &ce
}

// markSaved records that the floor of st, cached for id, is saved.
func (m *Manager) markSaved(id ID, st *memberlog.State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.byID[id]; ok && e.Value.(*cacheEntry).log == st {
		e.Value.(*cacheEntry).unsaved = false
	}
}

func (m *Manager) touch(id ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.byID[id]; ok {
		e.Value.(*cacheEntry).checked = m.now()
	}
}

// Preload puts sessions' keys in the cache (for example those a restarted
// program saved), so that messages of their epochs open without a fetch.
// Their logs are fetched and verified before the first seal or change.
func (m *Manager) Preload(sessions ...*Session) {
	for _, s := range sessions {
		m.cache(&cacheEntry{s: s})
	}
}

// store caches e and reports its session to Config.OnSession.
func (m *Manager) store(ctx context.Context, e *cacheEntry) {
	m.cache(e)
	if m.cfg.OnSession != nil {
		m.cfg.OnSession(ctx, e.s)
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

// cache caches a copy of e, replacing an older copy unless that one has a
// longer verified log. A copy, since the caller keeps reading e without the
// lock while the cached entry is overwritten by the next cache.
func (m *Manager) cache(e *cacheEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.byID[e.s.ID()]; ok {
		ce := el.Value.(*cacheEntry)
		if ce.log == nil || (e.log != nil && e.log.Seq() >= ce.log.Seq()) {
			*ce = *e
		}
		m.lru.MoveToFront(el)
		return
	}
	c := *e
	m.byID[e.s.ID()] = m.lru.PushFront(&c)
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
