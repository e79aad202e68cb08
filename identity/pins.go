package identity

import (
	"fmt"
	"sync"
)

// KeyChangeError reports that a user presented a card that is not connected
// by a signature chain to the card pinned for them: either the user lost
// their keys and started over, or someone (a compromised key service, say)
// substitutes keys. The caller decides, after comparing safety numbers out of
// band, whether to accept New with [Pins.Pin].
type KeyChangeError struct {
	UserID string
	Old    *Card // the pinned card
	New    *Card // the card that was presented
}

// Error describes the change with the two fingerprints; it holds nothing
// secret.
func (e *KeyChangeError) Error() string {
	return fmt.Sprintf("identity: key change for user %q: pinned generation %d (%s), presented generation %d (%s) is not chained to it",
		e.UserID, e.Old.Generation(), e.Old.Fingerprint()[:16], e.New.Generation(), e.New.Fingerprint()[:16])
}

// Pins stores, per user, the card that was trusted first or verified out of
// band (trust on first use). Implementations must be safe for concurrent
// use. [Check] is the policy on top of it.
type Pins interface {
	// Pinned returns the card pinned for userID, or nil and no error if
	// none is.
	Pinned(userID string) (*Card, error)
	// Pin records card as the one pinned for card.UserID(), replacing any
	// earlier pin. Call it directly only after out-of-band verification;
	// [Check] pins on first use and advances pins along verified chains.
	Pin(card *Card) error
}

// Check applies trust on first use to card, a card of some user that is
// about to be used (to verify a signature or wrap a key for):
//   - no pin for the user: card is pinned and accepted;
//   - card is the pinned card ([Card.SameKeys]: the same user, generation
//     and keys, though perhaps signed anew): accepted;
//   - card is newer and history holds the cards that chain the pinned one to
//     it (each signed by its predecessor): accepted, and the pin advances;
//   - card is older and history chains it to the pinned card: accepted (an
//     old generation, for old messages), the pin stays;
//   - anything else: a *KeyChangeError, and the pin stays.
//
// history is the user's card history as a directory returned it, in any
// order; it may include card and the pinned card. Cards of other users in it
// are ignored.
//
// Check reads the pin, decides, then pins: it is not atomic. Callers
// sharing [Pins] must serialize Check per user (session.Manager does), or
// two concurrent first uses could each pin their own card, and two
// concurrent advances could leave the older generation pinned.
func Check(pins Pins, card *Card, history []*Card) error {
	pinned, err := pins.Pinned(card.UserID())
	if err != nil {
		return err
	}
	if pinned == nil {
		return pins.Pin(card)
	}
	if pinned.SameKeys(card) {
		return nil
	}
	byGen := make(map[uint32]*Card, len(history)+2)
	for _, h := range history {
		if h.UserID() == card.UserID() {
			byGen[h.Generation()] = h
		}
	}
	if h, ok := byGen[pinned.Generation()]; ok && !h.SameKeys(pinned) {
		return &KeyChangeError{UserID: card.UserID(), Old: pinned, New: card}
	}
	if h, ok := byGen[card.Generation()]; ok && !h.SameKeys(card) {
		return &KeyChangeError{UserID: card.UserID(), Old: pinned, New: card}
	}
	byGen[pinned.Generation()] = pinned
	byGen[card.Generation()] = card
	switch {
	case card.Generation() > pinned.Generation():
		if chained(byGen, pinned.Generation(), card.Generation()) {
			return pins.Pin(card)
		}
	case card.Generation() < pinned.Generation():
		if chained(byGen, card.Generation(), pinned.Generation()) {
			return nil
		}
	}
	return &KeyChangeError{UserID: card.UserID(), Old: pinned, New: card}
}

// chained reports whether byGen holds a successor chain from generation lo
// to generation hi.
func chained(byGen map[uint32]*Card, lo, hi uint32) bool {
	for g := lo; g < hi; g++ {
		prev, next := byGen[g], byGen[g+1]
		if prev == nil || next == nil || !next.IsSuccessorOf(prev) {
			return false
		}
	}
	return true
}

// MemoryPins is an in-memory [Pins]. The zero value is ready to use; it is
// safe for concurrent use.
type MemoryPins struct {
	mu   sync.Mutex
	pins map[string]*Card
}

var _ Pins = (*MemoryPins)(nil)

// Pinned implements [Pins].
func (p *MemoryPins) Pinned(userID string) (*Card, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pins[userID], nil
}

// Pin implements [Pins].
func (p *MemoryPins) Pin(card *Card) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pins == nil {
		p.pins = make(map[string]*Card)
	}
	p.pins[card.UserID()] = card
	return nil
}
