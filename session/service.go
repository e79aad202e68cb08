package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// Member is one member of a session, as its verified membership log says.
type Member struct {
	UserID string
	Admin  bool // may add members, change roles, and (as any member may by default) remove and rotate
}

// Info is a session's state as its verified membership log says.
type Info struct {
	ID         ID
	ChannelCID string
	Creator    string
	Epoch      uint32 // current epoch
	Seq        uint32 // sequence number of the log's last record
	Members    []Member
}

// Head identifies the last record of a session's membership log: its
// sequence number (0 is the genesis) and hash.
type Head struct {
	Seq  uint32
	Hash [32]byte
}

// Service stores sessions — their membership logs and grants — and
// enforces who may do what. It is never trusted: clients verify every record
// and every key it serves. It never sees an epoch key in the clear. Every
// method acts as the user the implementation is authenticated as (the
// caller). Implementations must be safe for concurrent use; the key
// service's client is one, MemoryService an in-memory one.
type Service interface {
	// Create stores a session: its genesis record, signed by the caller,
	// and one epoch-0 grant per member. If the channel already has a
	// session it stores nothing and returns a *SessionExistsError (which
	// matches ErrSessionExists) naming it. The creator sending the same
	// genesis again succeeds.
	Create(ctx context.Context, genesis []byte, grants []GrantRecord) error
	// Append adds the next record of session id's log, with the grants it
	// needs (one per member for a new epoch, one per added user
	// otherwise). The record is signed by the caller, or by another member
	// when the caller publishes it again after the service lost it (a
	// restore: see Manager): the caller must then be a member before or
	// after the record. A record that does not follow the head returns
	// ErrConflict (someone appended first); its signer, or a member,
	// sending a stored record again succeeds.
	Append(ctx context.Context, id ID, record []byte, grants []GrantRecord) error
	// Log returns the records of session id's log from sequence number from
	// on, in order; only members may read it.
	Log(ctx context.Context, id ID, from uint32) ([][]byte, error)
	// Head returns the last record's sequence number and hash; only
	// members may read it.
	Head(ctx context.Context, id ID) (Head, error)
	// Lookup returns the session the service has for a channel, or
	// ErrUnknownSession. It is a hint: the channel's own session_id is
	// authoritative, and a Manager verifies that the session's genesis
	// names the channel.
	Lookup(ctx context.Context, channelCID string) (ID, error)
	// Grants returns every grant the caller was given in the session, all
	// epochs; ErrForbidden for a non-member (a removed member included).
	Grants(ctx context.Context, id ID) ([]GrantRecord, error)
	// Delete removes the session, its log and its grants. Admins only.
	Delete(ctx context.Context, id ID) error
}

// ErrSessionExists is matched by a *SessionExistsError.
var ErrSessionExists = errors.New("session: the channel already has a session")

// SessionExistsError is returned when a channel already has a session:
// creating one never adopts another's silently. Open ID through the
// channel's session_id, which verifies it, to join it.
type SessionExistsError struct {
	ChannelCID string
	ID         ID
}

func (e *SessionExistsError) Error() string {
	return fmt.Sprintf("session: channel %q already has session %s", e.ChannelCID, e.ID)
}

// Is matches ErrSessionExists.
func (e *SessionExistsError) Is(target error) bool { return target == ErrSessionExists }

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
