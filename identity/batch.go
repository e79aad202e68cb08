package identity

import (
	"bytes"

	"github.com/veilchat/veil/internal/zip215"
)

// BatchVerifier checks many card signatures at once, for example those of a
// page of messages. It accepts exactly the signatures that [Card.Verify]
// accepts, one by one: both follow the ZIP 215 rules (docs/PROTOCOL.md §2),
// under which a batch equation holds only if every signature's does. A batch
// of valid signatures costs about half of verifying them one by one, less
// when many come from one card (a page of messages from a few senders).
//
// The zero value is an empty batch. A BatchVerifier is not safe for
// concurrent use.
type BatchVerifier struct {
	b zip215.Batch
}

// NewBatchVerifier returns an empty batch with room for n signatures.
func NewBatchVerifier(n int) *BatchVerifier {
	return &BatchVerifier{b: *zip215.NewBatch(n)}
}

// Add appends sig, a signature of msg under purpose claimed to be by card,
// as [Card.Verify] takes them. It copies msg and sig. Like [Identity.Sign], it
// panics if purpose is empty or contains a NUL byte.
func (v *BatchVerifier) Add(card *Card, purpose string, msg, sig []byte) {
	v.b.Add(card.signingKey, signedMessage(purpose, msg), bytes.Clone(sig))
}

// Len returns the number of signatures added.
func (v *BatchVerifier) Len() int { return v.b.Len() }

// Verify reports whether every signature added is valid (true for an empty
// batch). It draws the batch's random weights from crypto/rand.
func (v *BatchVerifier) Verify() bool { return v.b.Verify() }

// VerifyEach reports, for each signature in the order added, whether it is
// valid: one batch verification when all are, then one verification per
// signature to find the invalid ones when not.
func (v *BatchVerifier) VerifyEach() []bool { return v.b.VerifyEach() }
