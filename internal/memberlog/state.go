package memberlog

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/veilchat/veil/identity"
)

// CardSource returns the cards of userID from the anchor's generation up to
// generation gen, in order: the card the anchor names first and the card of
// gen last. The State checks what it returns (the anchor's fingerprint, the
// chain, the user ID), so the source may be an untrusted directory: a
// member's anchor was signed into the log by whoever added the member. The
// State never asks for a generation of identity.MaxGenerations or above.
type CardSource func(userID string, anchor Anchor, gen uint32) ([]*identity.Card, error)

// State is a verified log replayed: the session's roster, epochs and key
// commitments, and the head the next record must name. A State is
// immutable: Apply returns a new one. Safe for concurrent use.
type State struct {
	id      [IDSize]byte
	cid     string
	creator string
	policy  Policy
	seq     uint32
	head    [HashSize]byte
	epoch   uint32
	commits [][HashSize]byte // per epoch, 0..epoch
	roster  []Member         // sorted by user ID
	readers []string         // R(epoch): who may hold the current key, sorted
	// signed is, per user who signed a record of the log, the newest card
	// generation it signed one with: older generations are retired
	// (docs/PROTOCOL.md §10.4). Never modified: a record that raises an
	// entry gets a new map, so states and epochs share it.
	signed map[string]uint32
	// signedAt is signed as it was when each epoch began (the record that
	// started it included), 0..epoch: the generations that may no longer
	// sign that epoch's envelopes and grants.
	signedAt []map[string]uint32
	// lastSigner and lastGen: who signed the last record, with which card
	// generation; lastAdded: the users it added (never modified).
	lastSigner string
	lastGen    uint32
	lastAdded  []string
}

// ID returns the session ID.
func (s *State) ID() [IDSize]byte { return s.id }

// ChannelCID returns the channel the genesis binds the session to.
func (s *State) ChannelCID() string { return s.cid }

// Creator returns the user who signed the genesis.
func (s *State) Creator() string { return s.creator }

// Policy returns the session's policy.
func (s *State) Policy() Policy { return s.policy }

// Seq returns the sequence number of the last record (0: the genesis).
func (s *State) Seq() uint32 { return s.seq }

// Head returns the hash of the last record.
func (s *State) Head() [HashSize]byte { return s.head }

// Epoch returns the current epoch.
func (s *State) Epoch() uint32 { return s.epoch }

// Commitment returns the signed key commitment of an epoch, if the log has
// reached it.
func (s *State) Commitment(epoch uint32) ([HashSize]byte, bool) {
	if int64(epoch) >= int64(len(s.commits)) {
		return [HashSize]byte{}, false
	}
	return s.commits[epoch], true
}

// CheckCommitment reports, in constant time, whether c is epoch's signed
// commitment.
func (s *State) CheckCommitment(epoch uint32, c [HashSize]byte) bool {
	want, ok := s.Commitment(epoch)
	return ok && subtle.ConstantTimeCompare(want[:], c[:]) == 1
}

// SignedGeneration returns the newest card generation of userID that
// signed a record of the log, and false if userID signed none. A record
// signed by an older generation of userID is invalid after it: signing
// with a generation retires the generations before it.
func (s *State) SignedGeneration(userID string) (uint32, bool) {
	g, ok := s.signed[userID]
	return g, ok
}

// Signer is who signed a record, with which card generation, and whom
// the record added.
type Signer struct {
	UserID     string
	Generation uint32
	// Added are the users a change added; none for a genesis, whose
	// members the session ID (the channel's session_id) commits to.
	Added []string
}

// LastSigner returns who signed the last record: the creator for a
// genesis, the actor for a change.
func (s *State) LastSigner() Signer {
	return Signer{UserID: s.lastSigner, Generation: s.lastGen, Added: slices.Clone(s.lastAdded)}
}

// CheckPinned is a reader's rule on retired generations
// (docs/PROTOCOL.md §10.4 rule 5). fresh are the signers of the records
// the reader verifies for the first time — past its floor, all of them
// on first contact — in log order, and st the state after the last of
// them; pinned returns the newest card generation of a user the reader
// trusts (false: none). A record signed with a generation older than the
// pinned one counts only if a later record of the same user, signed with
// the pinned generation or newer, vouches for it (its hash chain covers
// every record before it), or if the user is no longer in st's roster
// and another user signed a record after it whose membership does not
// come from such records: a member that a record nothing vouches for
// added (or that one it added added, and so on) vouches for nothing, or
// the holder of a retired admin key could add a member of its own to
// vouch for it. Otherwise the record may have been forged with a retired
// key that leaked, and CheckPinned returns an error matching ErrInvalid.
func CheckPinned(st *State, fresh []Signer, pinned func(userID string) (uint32, bool, error)) error {
	last := make(map[string]int, 4) // user → index of its last fresh record
	for i, r := range fresh {
		last[r.UserID] = i
	}
	stale := map[string]uint32{} // user → the trusted generation its last fresh record is older than
	for user, i := range last {
		g, ok, err := pinned(user)
		if err != nil {
			return err
		}
		if ok && g > fresh[i].Generation {
			stale[user] = g
		}
	}
	if len(stale) == 0 {
		return nil
	}
	// vouches[i]: fresh[i] is signed by a user who is not stale and whose
	// membership, when it signed, came from no unvouched record.
	vouches := make([]bool, len(fresh))
	tainted := map[string]bool{}
	for i, r := range fresh {
		_, s := stale[r.UserID]
		bad := s || tainted[r.UserID]
		vouches[i] = !bad
		for _, u := range r.Added {
			tainted[u] = bad
		}
	}
	for user, g := range stale {
		i := last[user]
		if _, member := st.Member(user); !member && slices.ContainsFunc(vouches[i+1:], func(v bool) bool { return v }) {
			continue
		}
		return invalid(-1, "%q last signed with card generation %d, older than the trusted generation %d, and no other member vouches for it", user, fresh[i].Generation, g)
	}
	return nil
}

// MinGeneration returns the oldest card generation of userID that may sign
// envelopes and grants of epoch: the newest generation userID had signed a
// record of the log with when the epoch began (by the record that began
// it, or before), or 0. A reader refuses an envelope or grant of the
// epoch signed by an older one (docs/PROTOCOL.md §6.5, §7): once the log
// shows a user's new generation, a leaked retired key signs nothing that
// counts in epochs created after. Epochs the log has not reached return 0.
func (s *State) MinGeneration(epoch uint32, userID string) uint32 {
	if int64(epoch) >= int64(len(s.signedAt)) {
		return 0
	}
	return s.signedAt[epoch][userID]
}

// Members returns a copy of the roster, sorted by user ID.
func (s *State) Members() []Member { return slices.Clone(s.roster) }

// Member returns userID's roster entry.
func (s *State) Member(userID string) (Member, bool) {
	i, ok := slices.BinarySearchFunc(s.roster, userID, func(m Member, u string) int { return strings.Compare(m.UserID, u) })
	if !ok {
		return Member{}, false
	}
	return s.roster[i], true
}

// Readers returns who may hold the current epoch's key: the roster when the
// epoch began and everyone added with history since, including members who
// left without a rotation. Sorted.
func (s *State) Readers() []string { return slices.Clone(s.readers) }

// ReadersAreMembers reports whether every reader of the current epoch is
// still in the roster: false after a member left, until the next epoch.
func (s *State) ReadersAreMembers() bool {
	for _, r := range s.readers {
		if _, ok := s.Member(r); !ok {
			return false
		}
	}
	return true
}

// Verify checks a genesis record and returns the State it starts. cards
// resolves the creator's card (whose trust, e.g. by pinning, the caller
// decides before or after). The genesis's session ID must be id.
func Verify(genesis []byte, id [IDSize]byte, cards CardSource) (*State, error) {
	r, err := Parse(genesis)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Seq = 0
		}
		return nil, err
	}
	g := r.Genesis
	if g == nil {
		return nil, invalid(0, "the first record is not a genesis")
	}
	if SessionIDOf(genesis) != id {
		return nil, invalid(0, "the genesis does not define this session ID")
	}
	var anchor Anchor
	for _, m := range g.Members {
		if m.UserID == g.Creator {
			anchor = m.Anchor
		}
	}
	if err := verifySig(0, r, g.Creator, anchor, g.CreatorGen, cards); err != nil {
		return nil, err
	}
	return stateOf(r), nil
}

func stateOf(r *Record) *State {
	g := r.Genesis
	signed := map[string]uint32{g.Creator: g.CreatorGen}
	s := &State{
		id: SessionIDOf(r.Raw), cid: g.ChannelCID, creator: g.Creator, policy: g.Policy,
		head: r.Hash, commits: [][HashSize]byte{g.Commitment}, roster: slices.Clone(g.Members),
		signed: signed, signedAt: []map[string]uint32{signed}, lastSigner: g.Creator, lastGen: g.CreatorGen,
	}
	for _, m := range s.roster {
		s.readers = append(s.readers, m.UserID)
	}
	return s
}

// verifySig checks r's signature under user's card of generation gen,
// reached from the anchor by a chain of cards.
func verifySig(seq int64, r *Record, user string, anchor Anchor, gen uint32, cards CardSource) error {
	card, err := anchored(seq, user, anchor, gen, cards)
	if err != nil {
		return err
	}
	if !card.Verify(labelSign, r.signed(), r.Signature[:]) {
		return invalid(seq, "bad signature")
	}
	return nil
}

// anchored returns user's card of generation gen, reached from the anchor
// by a chain of cards.
func anchored(seq int64, user string, anchor Anchor, gen uint32, cards CardSource) (*identity.Card, error) {
	// Refused before the source is asked for billions of cards.
	if gen >= identity.MaxGenerations {
		return nil, invalid(seq, "signed with a card generation no card has")
	}
	if gen < anchor.Generation {
		return nil, invalid(seq, "signed with a card generation older than the signer's anchor")
	}
	chain, err := cards(user, anchor, gen)
	if err != nil {
		return nil, fmt.Errorf("memberlog: the cards of %q: %w", user, err)
	}
	if len(chain) != int(gen-anchor.Generation)+1 || AnchorOf(chain[0]) != anchor {
		return nil, invalid(seq, "the signer's cards do not start at its anchor")
	}
	if chain[len(chain)-1].Generation() != gen || chain[0].UserID() != user {
		return nil, invalid(seq, "the signer's cards are not its cards of that generation")
	}
	if len(chain) > 1 {
		if err := identity.VerifyChain(chain); err != nil {
			return nil, invalid(seq, "the signer's cards do not chain from its anchor")
		}
	}
	return chain[len(chain)-1], nil
}

// CheckCard reports whether card is a card of a member of s: the card of
// the member's anchor or one chaining forward from it, resolved through
// cards (which, like a CardSource, may be an untrusted directory). A
// client wraps a key only for such a card: the anchor is what whoever
// added the member verified, so a directory cannot substitute a key for a
// member the client never saw. It returns an error matching ErrInvalid
// when the card is not the member's.
func (s *State) CheckCard(card *identity.Card, cards CardSource) error {
	m, ok := s.Member(card.UserID())
	if !ok {
		return invalid(-1, "%q is not a member", card.UserID())
	}
	if card.Generation() == m.Anchor.Generation {
		if AnchorOf(card) != m.Anchor {
			return invalid(-1, "the card of %q is not the one its anchor names", card.UserID())
		}
		return nil
	}
	last, err := anchored(-1, m.UserID, m.Anchor, card.Generation(), cards)
	if err != nil {
		return err
	}
	if !last.SameKeys(card) {
		return invalid(-1, "the card of %q does not chain from its anchor", card.UserID())
	}
	return nil
}

// Apply verifies the next record against s and returns the state after it.
// cards resolves the actor's cards (see CardSource).
func (s *State) Apply(raw []byte, cards CardSource) (*State, error) {
	next := int64(s.seq) + 1
	r, err := Parse(raw)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Seq = next
		}
		return nil, err
	}
	c := r.Change
	if c == nil {
		return nil, invalid(next, "a second genesis")
	}
	if c.SessionID != s.id {
		return nil, invalid(next, "another session's record")
	}
	if int64(c.Seq) != next {
		return nil, invalid(next, "sequence number %d, want %d", c.Seq, next)
	}
	if c.Prev != s.head {
		return nil, invalid(next, "does not follow the head")
	}
	actor, ok := s.Member(c.Actor)
	if !ok {
		return nil, invalid(next, "signed by %q, who is not a member", c.Actor)
	}
	if g, ok := s.signed[c.Actor]; ok && c.ActorGen < g {
		return nil, invalid(next, "signed with card generation %d of %q, retired by a record it signed with generation %d", c.ActorGen, c.Actor, g)
	}
	if err := verifySig(next, r, c.Actor, actor.Anchor, c.ActorGen, cards); err != nil {
		return nil, err
	}
	return s.apply(next, r.Hash, actor, c)
}

// apply checks c's rules against s (everything but the signature) and
// returns the state after it.
func (s *State) apply(seq int64, hash [HashSize]byte, actor Member, c *Change) (*State, error) {
	roster, added, err := applyOps(s.roster, s.policy, actor, c.Ops, c.NewEpoch)
	if err != nil {
		return nil, invalid(seq, "%v", err)
	}
	want := s.epoch
	if c.NewEpoch {
		want++
	}
	if c.Epoch != want || c.Epoch >= MaxEpochs {
		return nil, invalid(seq, "epoch %d, want %d", c.Epoch, want)
	}
	if d := rosterDigest(s.policy, roster); d != c.RosterDigest {
		return nil, invalid(seq, "the roster digest does not match the roster")
	}
	return s.next(c, hash, roster, added), nil
}

// next returns the state after c, checked: its roster and the users it
// added as applyOps computed them.
func (s *State) next(c *Change, hash [HashSize]byte, roster []Member, added []string) *State {
	n := *s
	n.seq, n.head, n.epoch, n.roster = c.Seq, hash, c.Epoch, roster
	n.lastSigner, n.lastGen, n.lastAdded = c.Actor, c.ActorGen, added
	if g, ok := s.signed[c.Actor]; !ok || c.ActorGen > g {
		n.signed = maps.Clone(s.signed)
		n.signed[c.Actor] = c.ActorGen
	}
	if c.NewEpoch {
		n.signedAt = append(slices.Clip(s.signedAt), n.signed)
		n.commits = append(slices.Clip(s.commits), c.Commitment)
		n.readers = make([]string, len(roster))
		for i, m := range roster {
			n.readers[i] = m.UserID
		}
	} else if len(added) > 0 {
		// A member who left without a rotation is still a reader: re-adding
		// it must not name it twice.
		n.readers = append(slices.Clone(s.readers), added...)
		slices.Sort(n.readers)
		n.readers = slices.Compact(n.readers)
	}
	return &n
}

// applyOps returns the roster after ops and the users they add, or why the
// actor may not apply them (docs/PROTOCOL.md §10.3).
func applyOps(roster []Member, policy Policy, actor Member, ops []Op, newEpoch bool) ([]Member, []string, error) {
	isAdmin := actor.Role == RoleAdmin
	out := slices.Clone(roster)
	var added []string
	promotions := 0
	for _, op := range ops {
		i, found := slices.BinarySearchFunc(out, op.Member.UserID, func(m Member, u string) int { return strings.Compare(m.UserID, u) })
		switch op.Kind {
		case OpAdd:
			if found {
				return nil, nil, fmt.Errorf("adds %q, who is already a member", op.Member.UserID)
			}
			if op.Member.Role == RoleAdmin && !isAdmin {
				return nil, nil, errors.New("a member who is not an admin adds an admin")
			}
			if !isAdmin && policy&MembersAdd == 0 {
				return nil, nil, errors.New("a member who is not an admin adds a member, and the policy does not allow it")
			}
			out = slices.Insert(out, i, op.Member)
			added = append(added, op.Member.UserID)
		case OpRemove:
			if !found {
				return nil, nil, fmt.Errorf("removes %q, who is not a member", op.Member.UserID)
			}
			if op.Member.UserID == actor.UserID {
				if len(ops) != 1 || newEpoch {
					return nil, nil, errors.New("a member who leaves does nothing else and starts no epoch")
				}
			} else {
				if !newEpoch {
					return nil, nil, errors.New("removes a member without a new epoch")
				}
				if !isAdmin && policy&MembersRemove == 0 {
					return nil, nil, errors.New("a member who is not an admin removes a member, and the policy does not allow it")
				}
			}
			out = slices.Delete(out, i, i+1)
		case OpRole:
			if !found {
				return nil, nil, fmt.Errorf("changes the role of %q, who is not a member", op.Member.UserID)
			}
			if out[i].Role == op.Member.Role {
				return nil, nil, fmt.Errorf("sets the role %s %q already has", op.Member.Role, op.Member.UserID)
			}
			if !isAdmin {
				if op.Member.Role != RoleAdmin {
					return nil, nil, errors.New("a member who is not an admin demotes someone")
				}
				promotions++
			}
			out[i].Role = op.Member.Role
		default:
			return nil, nil, fmt.Errorf("unknown operation %d", op.Kind)
		}
	}
	if len(out) == 0 || len(out) > MaxRoster {
		return nil, nil, fmt.Errorf("a roster has 1 to %d members", MaxRoster)
	}
	admins := 0
	for _, m := range out {
		if m.Role == RoleAdmin {
			admins++
		}
	}
	if admins == 0 {
		return nil, nil, errors.New("no admin would remain")
	}
	// Forced promotion: the only role change a member who is not an admin
	// may sign is one promotion, when its removals leave no admin.
	if promotions > 0 && (promotions > 1 || admins > 1) {
		return nil, nil, errors.New("a member who is not an admin promotes someone while an admin remains")
	}
	return out, added, nil
}

// NewGenesis builds and signs the genesis of a session for channelCID:
// creator (an admin, anchored to its current card) and members (each with
// its anchor and role), the policy, and the commitment of epoch 0's key.
// nonce must be random. It returns the record and the State it starts.
func NewGenesis(creator *identity.Identity, creatorCard *identity.Card, channelCID string, members []Member, policy Policy, commitment [HashSize]byte, nonce [NonceSize]byte, now uint64) ([]byte, *State, error) {
	if creatorCard.UserID() != creator.UserID() || creatorCard.Generation() != creator.Generation() {
		return nil, nil, errors.New("memberlog: the creator's card is not the signer's")
	}
	all := []Member{{UserID: creator.UserID(), Anchor: AnchorOf(creatorCard), Role: RoleAdmin}}
	for _, m := range members {
		if m.UserID != creator.UserID() {
			all = append(all, m)
		}
	}
	sortMembers(all)
	g := &Genesis{Nonce: nonce, ChannelCID: channelCID, Creator: creator.UserID(), CreatorGen: creator.Generation(),
		Time: now, Policy: policy, Commitment: commitment, Members: all}
	raw, err := SignGenesis(creator, g)
	if err != nil {
		return nil, nil, err
	}
	r, err := Parse(raw)
	if err != nil {
		return nil, nil, err
	}
	return raw, stateOf(r), nil
}

// NewChange builds and signs the next record of s: ops by actor, starting
// a new epoch with the given key commitment when newEpoch. It checks the
// record against the log's rules first, so an honest client never signs a
// record readers refuse. It returns the record and the State after it.
func (s *State) NewChange(actor *identity.Identity, ops []Op, newEpoch bool, commitment [HashSize]byte, now uint64) ([]byte, *State, error) {
	me, ok := s.Member(actor.UserID())
	if !ok {
		return nil, nil, fmt.Errorf("memberlog: %q is not a member", actor.UserID())
	}
	if g, ok := s.signed[actor.UserID()]; ok && actor.Generation() < g {
		return nil, nil, fmt.Errorf("memberlog: %q signed the log with card generation %d; generation %d is retired", actor.UserID(), g, actor.Generation())
	}
	ops = slices.Clone(ops)
	slices.SortFunc(ops, func(a, b Op) int { return strings.Compare(a.Member.UserID, b.Member.UserID) })
	roster, added, err := applyOps(s.roster, s.policy, me, ops, newEpoch)
	if err != nil {
		return nil, nil, fmt.Errorf("memberlog: %w", err)
	}
	c := &Change{SessionID: s.id, Seq: s.seq + 1, Prev: s.head, Actor: actor.UserID(), ActorGen: actor.Generation(),
		Time: now, NewEpoch: newEpoch, Epoch: s.epoch, Ops: ops, RosterDigest: rosterDigest(s.policy, roster)}
	if newEpoch {
		c.Epoch++
		c.Commitment = commitment
	}
	raw, err := SignChange(actor, c)
	if err != nil {
		return nil, nil, err
	}
	// SignChange encoded c canonically; the roster is the one just
	// checked, so the state follows without applying c a second time.
	return raw, s.next(c, Hash(raw), roster, added), nil
}
