package memberlog

import (
	"errors"
	"slices"
)

// GrantsNeeded says which grants must come with the record that turned
// before into after (before nil: after is a genesis): on a new epoch, one
// for the new epoch per member of the roster; otherwise one for the current
// epoch per user the record made a reader (an added user who left without a
// rotation and comes back already holds the key, and needs none). A key service stores a record only with
// exactly these grants, so that nobody is left without a key they should
// have and nobody gets one the log does not give them.
func GrantsNeeded(before, after *State) (epoch uint32, users []string) {
	if before == nil || after.epoch != before.epoch {
		users = make([]string, len(after.roster))
		for i, m := range after.roster {
			users[i] = m.UserID
		}
		return after.epoch, users
	}
	for _, u := range after.readers {
		if _, held := slices.BinarySearch(before.readers, u); !held {
			users = append(users, u)
		}
	}
	return after.epoch, users
}

// GrantTarget is one grant as a service sees it: for whom and which epoch.
type GrantTarget struct {
	Grantee string
	Epoch   uint32
}

// Errors of Accept besides a *Error (ErrInvalid).
var (
	// ErrNotSigner: the record is not signed by the caller.
	ErrNotSigner = errors.New("memberlog: the record is not signed by the caller")
	// ErrGrantsMismatch: the grants are not exactly the ones the record
	// needs (GrantsNeeded).
	ErrGrantsMismatch = errors.New("memberlog: the grants do not match the record")
	// ErrNotNext: the change does not follow the head (another record was
	// appended first).
	ErrNotNext = errors.New("memberlog: the record does not follow the head")
)

// Accept is what a service checks before it stores a record: that raw is a
// valid genesis (before nil) or the next change of before, signed by
// caller, and that grants are exactly the ones it needs. It returns the
// state after the record. Clients do not trust a service that ran it; a
// service runs it so that its access rules are the log's.
func Accept(before *State, raw []byte, caller string, cards CardSource, grants []GrantTarget) (*State, error) {
	r, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	var after *State
	switch {
	case before == nil && r.Genesis != nil:
		if r.Genesis.Creator != caller {
			return nil, ErrNotSigner
		}
		if after, err = Verify(raw, SessionIDOf(raw), cards); err != nil {
			return nil, err
		}
	case before != nil && r.Change != nil:
		c := r.Change
		if c.SessionID == before.id && (c.Seq != before.seq+1 || c.Prev != before.head) {
			return nil, ErrNotNext
		}
		if c.Actor != caller {
			return nil, ErrNotSigner
		}
		if after, err = before.Apply(raw, cards); err != nil {
			return nil, err
		}
	default:
		return nil, invalid(-1, "a genesis where a change is due, or the reverse")
	}
	epoch, users := GrantsNeeded(before, after)
	if len(grants) != len(users) {
		return nil, ErrGrantsMismatch
	}
	// As many grants as users, each for a user and none twice: exactly
	// one per user.
	seen := make([]bool, len(users))
	for _, g := range grants {
		i, ok := slices.BinarySearch(users, g.Grantee)
		if !ok || seen[i] || g.Epoch != epoch {
			return nil, ErrGrantsMismatch
		}
		seen[i] = true
	}
	return after, nil
}
