package bench

import (
	"bytes"
	"fmt"
	"testing"
)

// pageLen is the number of messages in a page, as a chat client fetches
// them.
const pageLen = 100

// pageMessages returns pageLen distinct messages of size bytes, so that a
// page opened in the wrong order cannot pass for a right one.
func pageMessages(size int) [][]byte {
	msgs := make([][]byte, pageLen)
	for i := range msgs {
		m := bytes.Repeat([]byte("m"), size)
		copy(m, fmt.Sprintf("%03d", i))
		msgs[i] = m
	}
	return msgs
}

// sealPage seals msgs in order, as one sender's part of a channel's history.
func sealPage(tb testing.TB, s Scheme, msgs [][]byte) [][]byte {
	tb.Helper()
	page := make([][]byte, len(msgs))
	for i, m := range msgs {
		sealed, err := s.Seal(m)
		if err != nil {
			tb.Fatal(err)
		}
		page[i] = sealed
	}
	return page
}

// openPage opens every message of a page as the scheme's reader, in the
// order they were sent or, with newestFirst, last message first (the order
// in which a client scrolling back through a channel receives them). A
// reader with state starts the page as it stood when it received the key. If
// want is not nil, each plaintext must equal its entry.
func openPage(s Scheme, page, want [][]byte, newestFirst bool) error {
	if r, ok := s.(Rewinder); ok {
		r.Rewind()
	}
	for k := range page {
		i := k
		if newestFirst {
			i = len(page) - 1 - k
		}
		got, err := s.Open(page[i])
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		if want != nil && !bytes.Equal(got, want[i]) {
			return fmt.Errorf("message %d: opened as %q", i, got)
		}
	}
	return nil
}

// TestPage checks that every scheme opens a page, in both orders, as the
// page benchmark does, and that a page with one tampered message fails.
func TestPage(t *testing.T) {
	msgs := pageMessages(64)
	for _, n := range channelSizes {
		v, peers := schemes(t, n)
		for _, s := range append([]Scheme{v}, peers...) {
			t.Run(fmt.Sprintf("%s/%d", s.Name(), n), func(t *testing.T) {
				page := sealPage(t, s, msgs)
				for _, newestFirst := range []bool{false, true, false} {
					if err := openPage(s, page, msgs, newestFirst); err != nil {
						t.Fatalf("newest first %v: %v", newestFirst, err)
					}
				}
				bad := bytes.Clone(page[pageLen/2])
				// Near the end: with OpenPGP and age, the middle of a message
				// may be another recipient's key, which this reader ignores.
				bad[len(bad)-5] ^= 1
				page[pageLen/2] = bad
				if err := openPage(s, page, msgs, false); err == nil {
					t.Fatal("a page with a modified message opened")
				}
			})
		}
	}
}

// BenchmarkPage times one reader opening a page of 100 messages of 64 B,
// Veil and each peer in the same loop (x-peer = Veil's time / the peer's),
// for channels of 2 and 10 members.
//
// Megolm's reader is the one scheme with state: its inbound ratchet only
// moves forward. Every page starts from the inbound session as the room key
// created it (a copy of it at index 0, the page's first message) and, with
// order=sent, opens the messages in the order they were sent, so that the
// ratchet moves one step per message: the cheapest order, the one a client
// catching up on a channel follows. order=newest-first opens the same page
// last message first, as a client scrolling back does: each earlier message
// then needs its key derived again from index 0. Veil, age and OpenPGP open
// a message the same way whatever came before, so only order=sent is run
// for them.
func BenchmarkPage(b *testing.B) {
	msgs := pageMessages(64)
	for _, n := range channelSizes {
		v, peers := schemes(b, n)
		vPage := sealPage(b, v, msgs)
		for _, p := range peers {
			pPage := sealPage(b, p, msgs)
			orders := []bool{false}
			if _, ok := p.(Rewinder); ok {
				orders = append(orders, true)
			}
			for _, newestFirst := range orders {
				order := "sent"
				if newestFirst {
					order = "newest-first"
				}
				b.Run(fmt.Sprintf("members=%d/order=%s/%s", n, order, p.Name()), func(b *testing.B) {
					open := func(s Scheme, page [][]byte) func() {
						return func() {
							if err := openPage(s, page, nil, newestFirst); err != nil {
								b.Fatal(err)
							}
						}
					}
					alternate(b, nil, open(v, vPage), open(p, pPage))
				})
			}
		}
	}
}
