package session

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/veilchat/veil/identity"
)

// More sentinel errors, returned by Service and Directory implementations.
var (
	// ErrForbidden is returned when the caller lacks the right for an
	// operation: not a member, or not an admin for revoke, rotate and
	// delete.
	ErrForbidden = errors.New("session: forbidden")
	// ErrConflict is returned when the operation no longer matches the
	// session's state (another member rotated first, a grant set does not
	// match the members, a card does not chain to the published one).
	ErrConflict = errors.New("session: conflict")
	// ErrUnknownUser is returned by a Directory for a user without a card.
	ErrUnknownUser = errors.New("session: unknown user")
)

// GrantRecord is a grant as a Service stores it: for whom, for which epoch,
// and the sealed bytes (made by NewGrant). The service cannot open it.
type GrantRecord struct {
	Grantee string
	Epoch   uint32
	Grant   []byte
}

// Member is one member of a session as the service records it.
type Member struct {
	UserID string
	Admin  bool   // may revoke, rotate, delete and make admins
	Since  uint32 // first epoch the member was granted
}

// Info is a session's public state.
type Info struct {
	ID         ID
	ChannelCID string
	Epoch      uint32 // current epoch
	Members    []Member
}

// CreateResult says what Service.Create did.
type CreateResult struct {
	ID      ID
	Created bool // false: the channel already had a session, and ID is it
}

// Service stores sessions and their grants, and enforces who may do what.
// It never sees an epoch key in the clear. Every method acts as the user the
// implementation is authenticated as (the caller). Implementations must be
// safe for concurrent use; the key service's client is one, MemoryService an
// in-memory one.
type Service interface {
	// Create registers a session for a channel with its epoch-0 grants; the
	// caller becomes its admin. If the channel already has a session, it
	// returns that session's ID with Created false and stores nothing, so
	// concurrent creators converge on one session.
	Create(ctx context.Context, id ID, channelCID string, grants []GrantRecord) (CreateResult, error)
	// Lookup returns the session of a channel, or ErrUnknownSession.
	Lookup(ctx context.Context, channelCID string) (ID, error)
	// Info returns a session's state; only members may read it.
	Info(ctx context.Context, id ID) (Info, error)
	// Grants returns every grant the caller was given in the session, all
	// epochs; ErrForbidden for a non-member (a removed member included).
	Grants(ctx context.Context, id ID) ([]GrantRecord, error)
	// Extend adds members with grants for the current epoch (one per new
	// member). Members may extend. Grants for another epoch than the
	// current one, or for a user who is a member already, are ErrConflict.
	Extend(ctx context.Context, id ID, grants []GrantRecord) error
	// Rotate starts epoch current+1 atomically: the users in remove stop
	// being members, and grants (one per remaining member, for the new
	// epoch; it may include new members) become the new epoch's. Admins
	// only. A new epoch that does not follow the current one is ErrConflict.
	Rotate(ctx context.Context, id ID, remove []string, grants []GrantRecord) error
	// SetAdmin gives or takes the admin right. Admins only.
	SetAdmin(ctx context.Context, id ID, userID string, admin bool) error
	// Delete removes the session and its grants. Admins only.
	Delete(ctx context.Context, id ID) error
}

// Directory publishes users' cards. The key service's client implements it;
// MemoryDirectory is an in-memory one. Implementations must be safe for
// concurrent use.
type Directory interface {
	// Latest returns the newest card of each user that has one; users
	// without a card are absent from the map.
	Latest(ctx context.Context, userIDs []string) (map[string]*identity.Card, error)
	// History returns a user's cards, generation 0 first, or ErrUnknownUser.
	History(ctx context.Context, userID string) ([]*identity.Card, error)
}

// MemoryDirectory is an in-memory Directory with the publication rule of the
// key service: a user's first card must be generation 0, and each later card
// the successor of the latest. The zero value is ready; it is safe for
// concurrent use.
type MemoryDirectory struct {
	mu    sync.Mutex
	cards map[string][]*identity.Card
}

// Publish adds card to its user's history. Publishing a card that is
// already there is a no-op; a card that is neither generation 0 of a new
// user nor the successor of the latest returns ErrConflict.
func (d *MemoryDirectory) Publish(card *identity.Card) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cards == nil {
		d.cards = make(map[string][]*identity.Card)
	}
	h := d.cards[card.UserID()]
	switch {
	case len(h) == 0 && card.Generation() == 0:
	case int(card.Generation()) < len(h) && h[card.Generation()].Equal(card):
		return nil // already published
	case len(h) > 0 && card.IsSuccessorOf(h[len(h)-1]):
	default:
		return ErrConflict
	}
	d.cards[card.UserID()] = append(h, card)
	return nil
}

// PublishHistory publishes every card of a history in order, generation 0
// first; cards already published are skipped, and a card that differs from
// the published one of its generation returns ErrConflict. It implements
// e2ee.Publisher, as keyservice.Client does.
func (d *MemoryDirectory) PublishHistory(_ context.Context, cards []*identity.Card) error {
	for _, c := range cards {
		if err := d.Publish(c); err != nil {
			return err
		}
	}
	return nil
}

// Latest implements Directory.
func (d *MemoryDirectory) Latest(_ context.Context, userIDs []string) (map[string]*identity.Card, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]*identity.Card, len(userIDs))
	for _, u := range userIDs {
		if h := d.cards[u]; len(h) > 0 {
			out[u] = h[len(h)-1]
		}
	}
	return out, nil
}

// History implements Directory.
func (d *MemoryDirectory) History(_ context.Context, userID string) ([]*identity.Card, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.cards[userID]
	if len(h) == 0 {
		return nil, ErrUnknownUser
	}
	return slices.Clone(h), nil
}

// MemoryService is an in-memory session store with the key service's access
// rules (session/servicetest checks both against one suite). Use As to get
// the Service a given user sees. The zero value is ready; it is safe for
// concurrent use.
type MemoryService struct {
	// Directory, if set, is where every grantee must have a card, as the
	// key service requires. Nil accepts grants for any user. It is asked
	// with the service's lock held, so it must not call the service.
	Directory Directory

	mu        sync.Mutex
	sessions  map[ID]*memSession
	byChannel map[string]ID
}

type memSession struct {
	cid     string
	epoch   uint32
	members map[string]*Member
	grants  map[string][]GrantRecord // by grantee, epoch ascending
}

// As returns the Service seen by userID.
func (m *MemoryService) As(userID string) Service { return memView{m: m, caller: userID} }

type memView struct {
	m      *MemoryService
	caller string
}

// get returns the session if the caller is a member (and an admin when
// admin is set).
func (v memView) get(id ID, admin bool) (*memSession, error) {
	s, ok := v.m.sessions[id]
	if !ok {
		return nil, ErrUnknownSession
	}
	me, ok := s.members[v.caller]
	if !ok || (admin && !me.Admin) {
		return nil, ErrForbidden
	}
	return s, nil
}

func (v memView) Create(ctx context.Context, id ID, cid string, grants []GrantRecord) (CreateResult, error) {
	if err := checkCID(cid); err != nil || id.IsZero() {
		return CreateResult{}, errors.New("session: invalid session ID or channel")
	}
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	// The grants are judged before the channel, as the key service judges
	// them: wrong grants are an error even when the channel has a session.
	if err := v.m.checkGrants(ctx, grants, 0); err != nil {
		return CreateResult{}, err
	}
	if !slices.ContainsFunc(grants, func(g GrantRecord) bool { return g.Grantee == v.caller }) {
		return CreateResult{}, ErrInvalidGrants
	}
	if existing, ok := v.m.byChannel[cid]; ok {
		return CreateResult{ID: existing}, nil
	}
	if _, ok := v.m.sessions[id]; ok {
		return CreateResult{}, ErrConflict
	}
	s := &memSession{cid: cid, members: map[string]*Member{}, grants: map[string][]GrantRecord{}}
	for _, g := range grants {
		s.members[g.Grantee] = &Member{UserID: g.Grantee, Admin: g.Grantee == v.caller}
		s.grants[g.Grantee] = append(s.grants[g.Grantee], cloneRecord(g))
	}
	if v.m.sessions == nil {
		v.m.sessions, v.m.byChannel = map[ID]*memSession{}, map[string]ID{}
	}
	v.m.sessions[id] = s
	v.m.byChannel[cid] = id
	return CreateResult{ID: id, Created: true}, nil
}

func (v memView) Lookup(_ context.Context, cid string) (ID, error) {
	if err := checkCID(cid); err != nil {
		return ID{}, err
	}
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	id, ok := v.m.byChannel[cid]
	if !ok {
		return ID{}, ErrUnknownSession
	}
	return id, nil
}

func (v memView) Info(_ context.Context, id ID) (Info, error) {
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	s, err := v.get(id, false)
	if err != nil {
		return Info{}, err
	}
	info := Info{ID: id, ChannelCID: s.cid, Epoch: s.epoch}
	for _, m := range s.members {
		info.Members = append(info.Members, *m)
	}
	slices.SortFunc(info.Members, func(a, b Member) int { return strings.Compare(a.UserID, b.UserID) })
	return info, nil
}

func (v memView) Grants(_ context.Context, id ID) ([]GrantRecord, error) {
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	s, err := v.get(id, false)
	if err != nil {
		return nil, err
	}
	out := make([]GrantRecord, 0, len(s.grants[v.caller]))
	for _, g := range s.grants[v.caller] {
		out = append(out, cloneRecord(g))
	}
	return out, nil
}

// Extend checks, in the key service's order: the grants are not empty,
// the caller is a member, the grants are well formed for the epoch they
// name, that epoch is the current one (else ErrConflict, as for a grantee
// who is a member already).
func (v memView) Extend(ctx context.Context, id ID, grants []GrantRecord) error {
	if len(grants) == 0 {
		return ErrInvalidGrants
	}
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	s, err := v.get(id, false)
	if err != nil {
		return err
	}
	epoch := grants[0].Epoch
	if err := v.m.checkGrants(ctx, grants, epoch); err != nil {
		return err
	}
	if epoch != s.epoch {
		return ErrConflict
	}
	for _, g := range grants {
		if _, ok := s.members[g.Grantee]; ok {
			return ErrConflict
		}
	}
	for _, g := range grants {
		s.members[g.Grantee] = &Member{UserID: g.Grantee, Since: s.epoch}
		s.grants[g.Grantee] = append(s.grants[g.Grantee], cloneRecord(g))
	}
	return nil
}

// Rotate checks, in the key service's order: the grants name an epoch
// after 0 and before MaxEpochs, the caller is an admin, the grants are
// well formed for that epoch, none is for a removed user, every remaining
// member has one, and the epoch follows the current one (else ErrConflict).
func (v memView) Rotate(ctx context.Context, id ID, remove []string, grants []GrantRecord) error {
	if len(grants) == 0 || grants[0].Epoch == 0 {
		return ErrInvalidGrants
	}
	next := grants[0].Epoch
	if next >= MaxEpochs {
		return errors.New("session: too many epochs")
	}
	for _, u := range remove {
		if err := identity.CheckUserID(u); err != nil {
			return err
		}
	}
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	s, err := v.get(id, true)
	if err != nil {
		return err
	}
	if err := v.m.checkGrants(ctx, grants, next); err != nil {
		return err
	}
	granted := make(map[string]bool, len(grants))
	for _, g := range grants {
		if slices.Contains(remove, g.Grantee) {
			return ErrInvalidGrants
		}
		granted[g.Grantee] = true
	}
	for u := range s.members {
		if !slices.Contains(remove, u) && !granted[u] {
			return ErrInvalidGrants
		}
	}
	if next != s.epoch+1 {
		return ErrConflict
	}
	for _, u := range remove {
		delete(s.members, u)
		delete(s.grants, u)
	}
	s.epoch = next
	for _, g := range grants {
		if _, ok := s.members[g.Grantee]; !ok {
			s.members[g.Grantee] = &Member{UserID: g.Grantee, Since: next}
		}
		s.grants[g.Grantee] = append(s.grants[g.Grantee], cloneRecord(g))
	}
	return nil
}

func (v memView) SetAdmin(_ context.Context, id ID, userID string, admin bool) error {
	if err := identity.CheckUserID(userID); err != nil {
		return err
	}
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	s, err := v.get(id, true)
	if err != nil {
		return err
	}
	m, ok := s.members[userID]
	if !ok {
		return ErrUnknownUser
	}
	m.Admin = admin
	return nil
}

func (v memView) Delete(_ context.Context, id ID) error {
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	s, err := v.get(id, true)
	if err != nil {
		return err
	}
	delete(v.m.byChannel, s.cid)
	delete(v.m.sessions, id)
	return nil
}

// ageHeader starts every grant: NewGrant makes age files, and the key
// service refuses anything else.
const ageHeader = "age-encryption.org/v1\n"

// checkGrants checks that grants are non-empty, all for epoch, one per
// valid user ID, age files of at most MaxGrantSize bytes, and, with a
// Directory, that every grantee has a card.
func (m *MemoryService) checkGrants(ctx context.Context, grants []GrantRecord, epoch uint32) error {
	if len(grants) == 0 {
		return ErrInvalidGrants
	}
	users := make([]string, 0, len(grants))
	seen := make(map[string]bool, len(grants))
	for _, g := range grants {
		if g.Epoch != epoch || identity.CheckUserID(g.Grantee) != nil || seen[g.Grantee] ||
			len(g.Grant) > MaxGrantSize || !bytes.HasPrefix(g.Grant, []byte(ageHeader)) {
			return ErrInvalidGrants
		}
		seen[g.Grantee] = true
		users = append(users, g.Grantee)
	}
	if m.Directory == nil {
		return nil
	}
	cards, err := m.Directory.Latest(ctx, users)
	if err != nil {
		return err
	}
	for _, u := range users {
		if cards[u] == nil {
			return ErrInvalidGrants
		}
	}
	return nil
}

func cloneRecord(g GrantRecord) GrantRecord {
	g.Grant = slices.Clone(g.Grant)
	return g
}
