package session

import (
	"context"
	"runtime"
	"sync"

	"github.com/veilchat/veil/identity"
)

// Sealed is one envelope for [Manager.OpenBatch], with the Binding of the
// message it arrived as.
type Sealed struct {
	Envelope []byte
	Binding  Binding
}

// Result is what [Manager.OpenBatch] found for one envelope: its plaintext,
// or the error [Manager.Open] would have returned for it.
type Result struct {
	Plaintext []byte
	Err       error
}

// OpenBatch opens a page of envelopes and returns one Result per envelope,
// in order, each what [Manager.Open] would return for it: one envelope
// that fails never fails the others. It fetches each session (asking the
// Service about it at most once, whatever epochs the headers name) and
// each sender's card once, then decrypts on every core and verifies the
// signatures in batches (identity.BatchVerifier, which accepts exactly the
// signatures one-by-one verification accepts); a batch that fails is
// verified one by one to find the forged envelopes, which get
// [ErrSignature]. Revisions are checked in order, as if the envelopes were
// opened one after the other.
//
// A done ctx stops the fetches: the envelopes that needed one get ctx's
// error.
func (m *Manager) OpenBatch(ctx context.Context, items []Sealed) []Result {
	out := make([]Result, len(items))
	type job struct {
		i      int
		s      *Session
		sender *identity.Card
	}
	jobs := make([]job, 0, len(items))
	refreshed := map[ID]error{}
	for i, it := range items {
		h, err := ParseHeader(it.Envelope)
		if err != nil {
			out[i].Err = ErrDecrypt
			continue
		}
		s, sender, err := m.keysFor(ctx, h, it.Binding, refreshed)
		if err != nil {
			out[i].Err = err
			continue
		}
		jobs = append(jobs, job{i: i, s: s, sender: sender})
	}

	// Decrypt and verify in one chunk per core: each chunk's signatures
	// are verified as one batch.
	workers := min(runtime.GOMAXPROCS(0), (len(jobs)+minBatch-1)/minBatch)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*len(jobs)/workers, (w+1)*len(jobs)/workers
		wg.Go(func() {
			chunk := jobs[lo:hi]
			opens := make([]opened, len(chunk))
			bv := identity.NewBatchVerifier(len(chunk))
			idx := make([]int, 0, len(chunk)) // chunk positions in the batch
			for k, j := range chunk {
				o, err := j.s.decrypt(items[j.i].Envelope, items[j.i].Binding, j.sender)
				if err != nil {
					out[j.i].Err = err
					continue
				}
				opens[k] = o
				bv.Add(j.sender, purposeEnvelope, o.signed, o.sig)
				idx = append(idx, k)
			}
			var ok []bool
			if bv.Len() > 0 {
				ok = bv.VerifyEach()
			}
			for n, k := range idx {
				j := chunk[k]
				if !ok[n] {
					opens[k].wipe()
					out[j.i].Err = ErrSignature
					continue
				}
				out[j.i].Plaintext, out[j.i].Err = opens[k].unpad()
			}
		})
	}
	wg.Wait()

	// Revisions, in order.
	for i, it := range items {
		if out[i].Err != nil {
			continue
		}
		h, _ := ParseHeader(it.Envelope)
		if err := m.revs.admit(h.SessionID, it.Binding, it.Envelope); err != nil {
			clear(out[i].Plaintext)
			out[i] = Result{Err: err}
		}
	}
	return out
}

// minBatch is the fewest envelopes worth a core of their own.
const minBatch = 8
