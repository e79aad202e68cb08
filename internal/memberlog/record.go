package memberlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/protosign"
)

// Format constants. Every record starts with Version and a record type.
const (
	Version = 0x01

	typeGenesis = 0x01
	typeChange  = 0x02

	// IDSize is the size of a session ID: the first bytes of the genesis
	// record's hash.
	IDSize = 16
	// HashSize is the size of a record hash, a roster digest and a key
	// commitment.
	HashSize = 32
	// NonceSize is the size of the genesis nonce, which makes every
	// genesis (and so every session ID) unique.
	NonceSize = 16
	// SignatureSize is the size of an Ed25519 signature.
	SignatureSize = 64

	// MaxRoster bounds the members of a session at any time.
	MaxRoster = 10000
	// MaxOps bounds the operations of one change record.
	MaxOps = 1000
	// MaxRecordSize bounds a change record; MaxGenesisSize a genesis.
	MaxRecordSize  = 1 << 20
	MaxGenesisSize = 4 << 20
	// MaxEpochs bounds epoch numbers: they run from 0 to MaxEpochs-1.
	MaxEpochs = 1 << 20
	// MaxChannelCIDLen bounds the channel CID a genesis names.
	MaxChannelCIDLen = 1024

	flagNewEpoch = 0x01

	// Domain-separation labels (docs/PROTOCOL.md §3).
	labelSign   = "veil/v1/log"
	labelRecord = "veil/v1/log/record"
	labelRoster = "veil/v1/log/roster"
)

// Role is a member's role in a session.
type Role uint8

// Roles. Admins may do everything; members what the policy allows.
const (
	RoleMember Role = 0
	RoleAdmin  Role = 1
)

// String returns "member", "admin", or "Role(n)" for an unknown role.
func (r Role) String() string {
	switch r {
	case RoleMember:
		return "member"
	case RoleAdmin:
		return "admin"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Policy says what members who are not admins may do. It is fixed at
// genesis.
type Policy uint8

// Policy bits. Any other bit is invalid.
const (
	// MembersAdd lets every member add members (as members, with or without
	// history).
	MembersAdd Policy = 1 << 0
	// MembersRemove lets every member remove others, admins included, with
	// a new epoch. Removal only ever shrinks who can read, so a channel
	// whose admins are offline can still cut off a departed user.
	MembersRemove Policy = 1 << 1

	policyMask = MembersAdd | MembersRemove
)

// DefaultPolicy is what a new session gets unless its creator chooses:
// members may remove (and rotate), only admins add.
const DefaultPolicy = MembersRemove

// Anchor names the card of a member that whoever added the member verified:
// its generation and its raw 32-byte fingerprint (identity.Card.Fingerprint
// decoded). A member's later cards count only if they chain forward from it.
type Anchor struct {
	Generation  uint32
	Fingerprint [HashSize]byte
}

// AnchorOf returns the anchor of card.
func AnchorOf(card *identity.Card) Anchor {
	var a Anchor
	a.Generation = card.Generation()
	fp, err := hex.DecodeString(card.Fingerprint())
	if err != nil || len(fp) != HashSize {
		panic("memberlog: a card fingerprint is not 32 bytes of hex")
	}
	copy(a.Fingerprint[:], fp)
	return a
}

// Member is one entry of a roster.
type Member struct {
	UserID string
	Anchor Anchor
	Role   Role
}

// OpKind is the kind of one operation of a change record.
type OpKind uint8

// Operation kinds.
const (
	OpAdd    OpKind = 1 // add Member (UserID, Anchor, Role)
	OpRemove OpKind = 2 // remove Member.UserID
	OpRole   OpKind = 3 // set Member.UserID's role to Member.Role
)

// Op is one operation of a change record. For OpRemove only Member.UserID
// is used; for OpRole, UserID and Role.
type Op struct {
	Kind   OpKind
	Member Member
}

// Genesis is the first record of a session, signed by its creator.
type Genesis struct {
	Nonce      [NonceSize]byte
	ChannelCID string
	Creator    string
	CreatorGen uint32
	Time       uint64 // the signer's clock, Unix seconds: shown, never trusted
	Policy     Policy
	Commitment [HashSize]byte // of epoch 0's key
	Members    []Member       // sorted by user ID bytes, the creator an admin
}

// Change is every record after the genesis, signed by its actor.
type Change struct {
	SessionID    [IDSize]byte
	Seq          uint32 // ≥ 1: the genesis is 0
	Prev         [HashSize]byte
	Actor        string
	ActorGen     uint32
	Time         uint64
	NewEpoch     bool
	Epoch        uint32         // the epoch in force after the record
	Commitment   [HashSize]byte // of the new epoch's key, iff NewEpoch
	Ops          []Op           // sorted by user ID bytes, one per user
	RosterDigest [HashSize]byte // of the roster after the record
}

// Record is a parsed record: exactly one of Genesis and Change is set.
type Record struct {
	Genesis   *Genesis
	Change    *Change
	Signature [SignatureSize]byte
	// Raw is the record's encoding, signature included; Hash is its hash.
	Raw  []byte
	Hash [HashSize]byte
}

// signed returns the bytes the signature covers.
func (r *Record) signed() []byte { return r.Raw[:len(r.Raw)-SignatureSize] }

// Hash returns the hash of a record's encoding (signature included).
func Hash(raw []byte) [HashSize]byte {
	h := sha256.New()
	h.Write([]byte(labelRecord))
	h.Write([]byte{0})
	h.Write(raw)
	var out [HashSize]byte
	h.Sum(out[:0])
	return out
}

// SessionIDOf returns the session ID a genesis record defines: the first
// IDSize bytes of its hash.
func SessionIDOf(genesis []byte) [IDSize]byte {
	h := Hash(genesis)
	var id [IDSize]byte
	copy(id[:], h[:])
	return id
}

// ErrInvalid is matched (errors.Is) by every *Error.
var ErrInvalid = errors.New("memberlog: invalid record")

// Error is why a record was refused. Reason is for logs and tests; callers
// branch on ErrInvalid.
type Error struct {
	Seq    int64 // the record's position (0: genesis), -1 when unknown
	Reason string
}

// Error returns the reason, with the record's position when known.
func (e *Error) Error() string {
	if e.Seq < 0 {
		return "memberlog: invalid record: " + e.Reason
	}
	return fmt.Sprintf("memberlog: invalid record %d: %s", e.Seq, e.Reason)
}

// Is matches ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

func invalid(seq int64, format string, args ...any) error {
	return &Error{Seq: seq, Reason: fmt.Sprintf(format, args...)}
}

// ValidChannelCID reports whether a genesis can name channel CID cid: 1 to
// MaxChannelCIDLen bytes of UTF-8 without NUL (PROTOCOL.md §10.2).
func ValidChannelCID(cid string) bool {
	return cid != "" && len(cid) <= MaxChannelCIDLen && utf8.ValidString(cid) && !strings.ContainsRune(cid, 0)
}

func addMember(b *cryptobyte.Builder, m Member) {
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(m.UserID)) })
	b.AddUint32(m.Anchor.Generation)
	b.AddBytes(m.Anchor.Fingerprint[:])
	b.AddUint8(uint8(m.Role))
}

func readMember(s *cryptobyte.String, m *Member) bool {
	var user cryptobyte.String
	var role uint8
	if !s.ReadUint8LengthPrefixed(&user) || !s.ReadUint32(&m.Anchor.Generation) ||
		!s.CopyBytes(m.Anchor.Fingerprint[:]) || !s.ReadUint8(&role) {
		return false
	}
	m.UserID, m.Role = string(user), Role(role)
	return true
}

func checkMember(m Member) error {
	if identity.CheckUserID(m.UserID) != nil {
		return errors.New("a user ID is not valid")
	}
	if m.Role != RoleMember && m.Role != RoleAdmin {
		return fmt.Errorf("unknown role %d", m.Role)
	}
	if m.Anchor.Generation >= identity.MaxGenerations {
		return errors.New("an anchor generation is out of range")
	}
	return nil
}

// ascending reports whether user IDs are strictly ascending (sorted, no
// duplicates) by their bytes.
func ascending(n int, user func(int) string) bool {
	for i := 1; i < n; i++ {
		if strings.Compare(user(i-1), user(i)) >= 0 {
			return false
		}
	}
	return true
}

// marshal encodes g without its signature, checking it is canonical.
func (g *Genesis) marshal() ([]byte, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	out := g.encode()
	if len(out)+SignatureSize > MaxGenesisSize {
		return nil, errors.New("the genesis is too large")
	}
	return out, nil
}

// check reports why g is not a canonical genesis, if it is not.
func (g *Genesis) check() error {
	if !ValidChannelCID(g.ChannelCID) {
		return errors.New("the channel CID is empty, too long or not UTF-8")
	}
	if identity.CheckUserID(g.Creator) != nil {
		return errors.New("the creator's user ID is not valid")
	}
	if g.Policy&^policyMask != 0 {
		return fmt.Errorf("unknown policy bits %#x", uint8(g.Policy&^policyMask))
	}
	if len(g.Members) == 0 || len(g.Members) > MaxRoster {
		return fmt.Errorf("a genesis names 1 to %d members", MaxRoster)
	}
	if !ascending(len(g.Members), func(i int) string { return g.Members[i].UserID }) {
		return errors.New("members are not sorted by user ID or repeat one")
	}
	creatorOK := false
	for _, m := range g.Members {
		if err := checkMember(m); err != nil {
			return err
		}
		if m.UserID == g.Creator {
			creatorOK = m.Role == RoleAdmin && m.Anchor.Generation == g.CreatorGen
		}
	}
	if !creatorOK {
		return errors.New("the creator is not an admin member with its own card generation")
	}
	return nil
}

// encode writes g's layout without its signature and without any check:
// marshal checks first, and tests encode records Parse must refuse.
func (g *Genesis) encode() []byte {
	var b cryptobyte.Builder
	b.AddUint8(Version)
	b.AddUint8(typeGenesis)
	b.AddBytes(g.Nonce[:])
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(g.ChannelCID)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(g.Creator)) })
	b.AddUint32(g.CreatorGen)
	b.AddUint64(g.Time)
	b.AddUint8(uint8(g.Policy))
	b.AddBytes(g.Commitment[:])
	b.AddUint16(uint16(len(g.Members)))
	for _, m := range g.Members {
		addMember(&b, m)
	}
	return b.BytesOrPanic()
}

// marshal encodes c without its signature, checking it is canonical.
func (c *Change) marshal() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	var flags uint8
	if c.NewEpoch {
		flags = flagNewEpoch
	}
	out := c.encode(flags)
	if len(out)+SignatureSize > MaxRecordSize {
		return nil, errors.New("the record is too large")
	}
	return out, nil
}

// check reports why c is not a canonical change, if it is not.
func (c *Change) check() error {
	if c.Seq == 0 {
		return errors.New("a change has a sequence number of 1 or more")
	}
	if identity.CheckUserID(c.Actor) != nil {
		return errors.New("the actor's user ID is not valid")
	}
	if c.Epoch >= MaxEpochs {
		return errors.New("the epoch is out of range")
	}
	if len(c.Ops) > MaxOps {
		return fmt.Errorf("more than %d operations", MaxOps)
	}
	if len(c.Ops) == 0 && !c.NewEpoch {
		return errors.New("a change without a new epoch needs an operation")
	}
	if !ascending(len(c.Ops), func(i int) string { return c.Ops[i].Member.UserID }) {
		return errors.New("operations are not sorted by user ID or repeat one")
	}
	for _, op := range c.Ops {
		switch op.Kind {
		case OpAdd:
			if err := checkMember(op.Member); err != nil {
				return err
			}
		case OpRemove, OpRole:
			if identity.CheckUserID(op.Member.UserID) != nil {
				return errors.New("a user ID is not valid")
			}
			if op.Kind == OpRole && op.Member.Role != RoleMember && op.Member.Role != RoleAdmin {
				return fmt.Errorf("unknown role %d", op.Member.Role)
			}
		default:
			return fmt.Errorf("unknown operation %d", op.Kind)
		}
	}
	return nil
}

// encode writes c's layout without its signature, with the flags byte as
// given and without any check: marshal checks first, and tests encode
// records Parse must refuse (an unknown operation takes a removal's
// layout).
func (c *Change) encode(flags uint8) []byte {
	var b cryptobyte.Builder
	b.AddUint8(Version)
	b.AddUint8(typeChange)
	b.AddBytes(c.SessionID[:])
	b.AddUint32(c.Seq)
	b.AddBytes(c.Prev[:])
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.Actor)) })
	b.AddUint32(c.ActorGen)
	b.AddUint64(c.Time)
	b.AddUint8(flags)
	b.AddUint32(c.Epoch)
	if flags&flagNewEpoch != 0 {
		b.AddBytes(c.Commitment[:])
	}
	b.AddUint16(uint16(len(c.Ops)))
	for _, op := range c.Ops {
		b.AddUint8(uint8(op.Kind))
		switch op.Kind {
		case OpAdd:
			addMember(&b, op.Member)
		case OpRole:
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(op.Member.UserID)) })
			b.AddUint8(uint8(op.Member.Role))
		default:
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(op.Member.UserID)) })
		}
	}
	b.AddBytes(c.RosterDigest[:])
	return b.BytesOrPanic()
}

// sign appends s's signature of body under the protocol's purpose
// veil/v1/log, which identity.Identity.Sign refuses to applications.
func sign(s *identity.Identity, body []byte) []byte {
	return append(body, protosign.Sign(s, labelSign, body)...)
}

// SignGenesis encodes g, signed by its creator s. g.Creator and
// g.CreatorGen must be s's.
func SignGenesis(s *identity.Identity, g *Genesis) ([]byte, error) {
	if g.Creator != s.UserID() || g.CreatorGen != s.Generation() {
		return nil, errors.New("memberlog: the genesis's creator is not the signer")
	}
	body, err := g.marshal()
	if err != nil {
		return nil, fmt.Errorf("memberlog: %w", err)
	}
	return sign(s, body), nil
}

// SignChange encodes c, signed by its actor s. c.Actor and c.ActorGen must
// be s's.
func SignChange(s *identity.Identity, c *Change) ([]byte, error) {
	if c.Actor != s.UserID() || c.ActorGen != s.Generation() {
		return nil, errors.New("memberlog: the change's actor is not the signer")
	}
	body, err := c.marshal()
	if err != nil {
		return nil, fmt.Errorf("memberlog: %w", err)
	}
	return sign(s, body), nil
}

// Parse decodes one record. It checks the encoding only (canonical form,
// bounds); signatures and the rules of the log are checked by State.
func Parse(raw []byte) (*Record, error) {
	if len(raw) > MaxGenesisSize {
		return nil, invalid(-1, "larger than %d bytes", MaxGenesisSize)
	}
	s := cryptobyte.String(raw)
	var version, typ uint8
	if !s.ReadUint8(&version) || !s.ReadUint8(&typ) {
		return nil, invalid(-1, "truncated")
	}
	if version != Version {
		return nil, invalid(-1, "unknown version %d", version)
	}
	r := &Record{Raw: bytes.Clone(raw)}
	var err error
	switch typ {
	case typeGenesis:
		r.Genesis, err = parseGenesis(&s)
	case typeChange:
		if len(raw) > MaxRecordSize {
			return nil, invalid(-1, "larger than %d bytes", MaxRecordSize)
		}
		r.Change, err = parseChange(&s)
	default:
		return nil, invalid(-1, "unknown record type %d", typ)
	}
	if err != nil {
		return nil, err
	}
	if !s.CopyBytes(r.Signature[:]) || !s.Empty() {
		return nil, invalid(-1, "no signature or trailing bytes")
	}
	// One encoding per record: re-encoding must give the same bytes.
	var body []byte
	if r.Genesis != nil {
		body, err = r.Genesis.marshal()
	} else {
		body, err = r.Change.marshal()
	}
	if err != nil {
		return nil, invalid(-1, "%v", err)
	}
	if !bytes.Equal(body, r.signed()) {
		return nil, invalid(-1, "not in canonical form")
	}
	r.Hash = Hash(r.Raw)
	return r, nil
}

func parseGenesis(s *cryptobyte.String) (*Genesis, error) {
	g := &Genesis{}
	var cid, creator cryptobyte.String
	var policy uint8
	var n uint16
	if !s.CopyBytes(g.Nonce[:]) || !s.ReadUint16LengthPrefixed(&cid) || !s.ReadUint8LengthPrefixed(&creator) ||
		!s.ReadUint32(&g.CreatorGen) || !s.ReadUint64(&g.Time) || !s.ReadUint8(&policy) ||
		!s.CopyBytes(g.Commitment[:]) || !s.ReadUint16(&n) {
		return nil, invalid(0, "truncated genesis")
	}
	if int(n) > MaxRoster {
		return nil, invalid(0, "more than %d members", MaxRoster)
	}
	g.ChannelCID, g.Creator, g.Policy = string(cid), string(creator), Policy(policy)
	g.Members = make([]Member, n)
	for i := range g.Members {
		if !readMember(s, &g.Members[i]) {
			return nil, invalid(0, "truncated member entry")
		}
	}
	return g, nil
}

func parseChange(s *cryptobyte.String) (*Change, error) {
	c := &Change{}
	var actor cryptobyte.String
	var flags uint8
	var k uint16
	if !s.CopyBytes(c.SessionID[:]) || !s.ReadUint32(&c.Seq) || !s.CopyBytes(c.Prev[:]) ||
		!s.ReadUint8LengthPrefixed(&actor) || !s.ReadUint32(&c.ActorGen) || !s.ReadUint64(&c.Time) ||
		!s.ReadUint8(&flags) || !s.ReadUint32(&c.Epoch) {
		return nil, invalid(-1, "truncated change")
	}
	if flags&^flagNewEpoch != 0 {
		return nil, invalid(-1, "unknown flag bits %#x", flags&^flagNewEpoch)
	}
	c.Actor, c.NewEpoch = string(actor), flags&flagNewEpoch != 0
	if c.NewEpoch && !s.CopyBytes(c.Commitment[:]) {
		return nil, invalid(-1, "truncated change")
	}
	if !s.ReadUint16(&k) {
		return nil, invalid(-1, "truncated change")
	}
	if int(k) > MaxOps {
		return nil, invalid(-1, "more than %d operations", MaxOps)
	}
	c.Ops = make([]Op, k)
	for i := range c.Ops {
		var kind uint8
		if !s.ReadUint8(&kind) {
			return nil, invalid(-1, "truncated operation")
		}
		op := &c.Ops[i]
		op.Kind = OpKind(kind)
		var user cryptobyte.String
		switch op.Kind {
		case OpAdd:
			if !readMember(s, &op.Member) {
				return nil, invalid(-1, "truncated operation")
			}
		case OpRemove:
			if !s.ReadUint8LengthPrefixed(&user) {
				return nil, invalid(-1, "truncated operation")
			}
			op.Member.UserID = string(user)
		case OpRole:
			var role uint8
			if !s.ReadUint8LengthPrefixed(&user) || !s.ReadUint8(&role) {
				return nil, invalid(-1, "truncated operation")
			}
			op.Member.UserID, op.Member.Role = string(user), Role(role)
		default:
			return nil, invalid(-1, "unknown operation %d", kind)
		}
	}
	if !s.CopyBytes(c.RosterDigest[:]) {
		return nil, invalid(-1, "truncated change")
	}
	return c, nil
}

// RosterDigest returns the roster digest (docs/PROTOCOL.md §10.1) of a
// roster in any order under policy: what a change record signs.
func RosterDigest(policy Policy, roster []Member) [HashSize]byte {
	roster = slices.Clone(roster)
	sortMembers(roster)
	return rosterDigest(policy, roster)
}

// rosterDigest is SHA-256(label ‖ 0x00 ‖ u8 policy ‖ u32 n ‖ entries), the
// entries sorted by user ID bytes.
func rosterDigest(policy Policy, roster []Member) [HashSize]byte {
	h := sha256.New()
	// One entry at a time through a reused buffer: the roster can be
	// 10,000 members, hashed on every record.
	buf := make([]byte, 0, 1+255+4+HashSize+1)
	buf = append(buf, labelRoster...)
	buf = append(buf, 0, byte(policy))
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(roster)))
	h.Write(buf)
	for _, m := range roster {
		buf = append(buf[:0], byte(len(m.UserID)))
		buf = append(buf, m.UserID...)
		buf = binary.BigEndian.AppendUint32(buf, m.Anchor.Generation)
		buf = append(buf, m.Anchor.Fingerprint[:]...)
		buf = append(buf, byte(m.Role))
		h.Write(buf)
	}
	var out [HashSize]byte
	h.Sum(out[:0])
	return out
}

// sortMembers sorts members by user ID bytes, in place.
func sortMembers(ms []Member) {
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.UserID, b.UserID) })
}
