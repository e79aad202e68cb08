package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/memberlog"
)

// MemoryService is an in-memory Service with the key service's rules: it
// verifies every record against the membership log (with the cards of
// Directory) and stores a record only with exactly the grants it needs.
// Rights come first: a genesis only its creator may store, and a change a
// member may append — its signer, or another member publishing it again
// (after a restore, see [Manager]) — or a user the change makes a member.
// A record sent again by its signer or by a member succeeds, even when it
// took the signer out of the session. A user keeps its grants while it is
// a member or holds the current epoch's key, and loses them once it is
// neither. Package session/servicetest holds it and the key service to the
// same rules. Use As to get the Service a given user sees. Set Directory
// before use; then it is safe for concurrent use.
type MemoryService struct {
	// Directory holds the cards records are verified with.
	Directory Directory

	mu        sync.Mutex
	sessions  map[ID]*memSession
	byChannel map[string]ID
}

type memSession struct {
	records [][]byte
	state   *memberlog.State
	grants  map[string][]GrantRecord // by grantee
}

// As returns the Service seen by userID.
func (m *MemoryService) As(userID string) Service { return memView{m: m, caller: userID} }

type memView struct {
	m      *MemoryService
	caller string
}

// CardSource returns the memberlog card source of a Directory: the cards of
// a user from an anchor's generation to another. The log checks what it
// returns.
func cardSource(ctx context.Context, d Directory) memberlog.CardSource {
	return func(user string, anchor memberlog.Anchor, gen uint32) ([]*identity.Card, error) {
		h, err := d.History(ctx, user)
		if err != nil {
			return nil, err
		}
		if gen < anchor.Generation || int64(gen) >= int64(len(h)) {
			return nil, fmt.Errorf("%w: no card of generation %d for %q", ErrUnknownUser, gen, user)
		}
		return h[anchor.Generation : gen+1], nil
	}
}

// logError maps the log's verdicts onto the Service's sentinels.
func logError(err error) error {
	switch {
	case errors.Is(err, memberlog.ErrNotNext):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case errors.Is(err, memberlog.ErrNotSigner):
		return fmt.Errorf("%w: %w", ErrForbidden, err)
	case errors.Is(err, memberlog.ErrGrantsMismatch):
		return fmt.Errorf("%w: %w", ErrInvalidGrants, err)
	case errors.Is(err, memberlog.ErrInvalid):
		return fmt.Errorf("%w: %w", ErrInvalidLog, err)
	}
	return err
}

// member returns the session if the caller is in its roster (and an admin
// when admin is set).
func (v memView) member(id ID, admin bool) (*memSession, error) {
	s, ok := v.m.sessions[id]
	if !ok {
		return nil, ErrUnknownSession
	}
	me, ok := s.state.Member(v.caller)
	if !ok || (admin && me.Role != memberlog.RoleAdmin) {
		return nil, ErrForbidden
	}
	return s, nil
}

func targets(grants []GrantRecord) ([]memberlog.GrantTarget, error) {
	out := make([]memberlog.GrantTarget, len(grants))
	for i, g := range grants {
		if len(g.Grant) == 0 || len(g.Grant) > MaxGrantSize {
			return nil, ErrInvalidGrants
		}
		out[i] = memberlog.GrantTarget{Grantee: g.Grantee, Epoch: g.Epoch}
	}
	return out, nil
}

func (v memView) Create(ctx context.Context, genesis []byte, grants []GrantRecord) error {
	if v.m.Directory == nil {
		return errors.New("session: MemoryService needs a Directory")
	}
	// Rights first: only the genesis's creator may store it, even again.
	r, err := memberlog.Parse(genesis)
	if err != nil {
		return logError(err)
	}
	if r.Genesis == nil {
		return fmt.Errorf("%w: a change where a genesis is due", ErrInvalidLog)
	}
	if r.Genesis.Creator != v.caller {
		return fmt.Errorf("%w: the genesis is not the caller's", ErrForbidden)
	}
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	id := ID(memberlog.SessionIDOf(genesis))
	if s, ok := v.m.sessions[id]; ok {
		if bytes.Equal(s.records[0], genesis) {
			return nil // sent again
		}
		return ErrConflict
	}
	ts, err := targets(grants)
	if err != nil {
		return err
	}
	st, err := memberlog.Accept(nil, genesis, v.caller, cardSource(ctx, v.m.Directory), ts)
	if err != nil {
		return logError(err)
	}
	if existing, ok := v.m.byChannel[st.ChannelCID()]; ok {
		return &SessionExistsError{ChannelCID: st.ChannelCID(), ID: existing}
	}
	s := &memSession{records: [][]byte{slices.Clone(genesis)}, state: st, grants: map[string][]GrantRecord{}}
	s.addGrants(grants)
	if v.m.sessions == nil {
		v.m.sessions, v.m.byChannel = map[ID]*memSession{}, map[string]ID{}
	}
	v.m.sessions[id] = s
	v.m.byChannel[st.ChannelCID()] = id
	return nil
}

func (s *memSession) addGrants(grants []GrantRecord) {
	for _, g := range grants {
		s.grants[g.Grantee] = append(s.grants[g.Grantee], cloneRecord(g))
	}
}

func (v memView) Append(ctx context.Context, id ID, record []byte, grants []GrantRecord) error {
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	s, ok := v.m.sessions[id]
	if !ok {
		return ErrUnknownSession
	}
	r, perr := memberlog.Parse(record)
	_, isMember := s.state.Member(v.caller)
	if perr == nil && r.Change != nil && (r.Change.Actor == v.caller || isMember) && r.Change.Seq >= 1 &&
		int64(r.Change.Seq) < int64(len(s.records)) && bytes.Equal(s.records[r.Change.Seq], record) {
		// Sent again: answered as the first time, even when the record
		// took the caller out of the session (a retried leave).
		return nil
	}
	// A record signed by another member is being published again (after
	// a restore): the log's rules decide, and the caller must be a member
	// before or after it.
	republished := perr == nil && r.Change != nil && r.Change.Actor != v.caller
	if !isMember && !republished {
		return ErrForbidden
	}
	if perr != nil {
		return logError(perr)
	}
	signer := v.caller
	if republished {
		signer = r.Change.Actor
	}
	ts, terr := targets(grants)
	var st *memberlog.State
	var err error
	if terr == nil {
		st, err = memberlog.Accept(s.state, record, signer, cardSource(ctx, v.m.Directory), ts)
	}
	if !isMember {
		if terr != nil || err != nil {
			return ErrForbidden
		}
		if _, ok := st.Member(v.caller); !ok {
			return ErrForbidden
		}
	}
	if terr != nil {
		return terr
	}
	if err != nil {
		return logError(err)
	}
	s.records = append(s.records, slices.Clone(record))
	newEpoch := st.Epoch() != s.state.Epoch()
	s.state = st
	if newEpoch { // without one, readers only grow: nobody loses a grant
		readers := st.Readers()
		for _, u := range s.grantees() {
			_, member := st.Member(u)
			if _, reader := slices.BinarySearch(readers, u); !member && !reader {
				// A user who is neither a member nor holds the current key
				// loses its grants. One who left without a rotation keeps
				// them: it holds the key, and the log gives it no new grant
				// if it is added back before the next rotation.
				delete(s.grants, u)
			}
		}
	}
	s.addGrants(grants)
	return nil
}

func (s *memSession) grantees() []string {
	out := make([]string, 0, len(s.grants))
	for u := range s.grants {
		out = append(out, u)
	}
	return out
}

func (v memView) Log(_ context.Context, id ID, from uint32) ([][]byte, error) {
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	s, err := v.member(id, false)
	if err != nil {
		return nil, err
	}
	if int64(from) >= int64(len(s.records)) {
		return nil, nil
	}
	out := make([][]byte, 0, len(s.records)-int(from))
	for _, r := range s.records[from:] {
		out = append(out, slices.Clone(r))
	}
	return out, nil
}

func (v memView) Head(_ context.Context, id ID) (Head, error) {
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	s, err := v.member(id, false)
	if err != nil {
		return Head{}, err
	}
	return Head{Seq: s.state.Seq(), Hash: s.state.Head()}, nil
}

func (v memView) Lookup(_ context.Context, cid string) (ID, error) {
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	id, ok := v.m.byChannel[cid]
	if !ok {
		return ID{}, ErrUnknownSession
	}
	return id, nil
}

func (v memView) Grants(_ context.Context, id ID) ([]GrantRecord, error) {
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	s, err := v.member(id, false)
	if err != nil {
		return nil, err
	}
	out := make([]GrantRecord, 0, len(s.grants[v.caller]))
	for _, g := range s.grants[v.caller] {
		out = append(out, cloneRecord(g))
	}
	return out, nil
}

func (v memView) Delete(_ context.Context, id ID) error {
	v.m.mu.Lock()
	defer v.m.mu.Unlock()
	s, err := v.member(id, true)
	if err != nil {
		return err
	}
	delete(v.m.byChannel, s.state.ChannelCID())
	delete(v.m.sessions, id)
	return nil
}

func cloneRecord(g GrantRecord) GrantRecord {
	g.Grant = slices.Clone(g.Grant)
	return g
}
