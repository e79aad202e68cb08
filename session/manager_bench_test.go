package session

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
)

// benchWorld is n+1 users with X25519 cards in one in-memory directory
// and service, and the manager of the first ("u0").
type benchWorld struct {
	dir   MemoryDirectory
	svc   MemoryService
	users []string
	m     *Manager
}

func newBenchWorld(b *testing.B, n int) *benchWorld {
	b.Helper()
	w := &benchWorld{}
	w.svc.Directory = &w.dir
	var first *identity.Identity
	for i := range n + 1 {
		u := fmt.Sprintf("u%d", i)
		id, err := identity.Generate(testrand.New("bench-"+u), u, identity.Options{Kind: identity.KindX25519})
		if err != nil {
			b.Fatal(err)
		}
		if err := w.dir.Publish(id.Card()); err != nil {
			b.Fatal(err)
		}
		w.users = append(w.users, u)
		if i == 0 {
			first = id
		}
	}
	m, err := NewManager(Config{Identity: first, Service: w.svc.As("u0"), Directory: &w.dir})
	if err != nil {
		b.Fatal(err)
	}
	w.m = m
	return w
}

// rawWrap measures one age X25519 wrap of a 32-byte file key: the physical
// limit of a grant, which membership changes make one of per member.
func rawWrap(b *testing.B) time.Duration {
	b.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	const n = 200
	start := time.Now()
	for range n {
		w, err := age.Encrypt(io.Discard, id.Recipient())
		if err != nil {
			b.Fatal(err)
		}
		w.Write(bytes.Repeat([]byte{1}, 32))
		w.Close()
	}
	return time.Since(start) / n
}

// BenchmarkMembershipChange measures creating a session of n members,
// adding one member with history, and removing one (a rotation that wraps
// n-1 grants), each as one Manager call over MemoryService (which verifies
// the record as the key service does). x-raw-wraps is the time over the
// grants' raw age wraps measured in the same run: the membership log's
// share is what exceeds the wraps and the grants' own signatures.
func BenchmarkMembershipChange(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("create/members=%d", n), func(b *testing.B) {
			w := newBenchWorld(b, n)
			wrap := rawWrap(b)
			i := 0
			b.ResetTimer()
			for b.Loop() {
				if _, err := w.m.Create(ctx, fmt.Sprintf("messaging:c%d", i), w.users[1:]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(wrap*time.Duration(n+1)), "x-raw-wraps")
		})
		b.Run(fmt.Sprintf("extend/members=%d", n), func(b *testing.B) {
			w := newBenchWorld(b, n+64)
			s, err := w.m.Create(ctx, "messaging:c", w.users[1:n])
			if err != nil {
				b.Fatal(err)
			}
			wrap := rawWrap(b)
			next := n
			b.ResetTimer()
			for b.Loop() {
				if next >= len(w.users) {
					b.StopTimer()
					w.m.Revoke(ctx, s.ID(), w.users[n:])
					next = n
					b.StartTimer()
				}
				if err := w.m.Extend(ctx, s.ID(), w.users[next:next+1], false); err != nil {
					b.Fatal(err)
				}
				next++
			}
			b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(wrap), "x-raw-wraps")
		})
		b.Run(fmt.Sprintf("revoke/members=%d", n), func(b *testing.B) {
			w := newBenchWorld(b, n)
			wrap := rawWrap(b)
			i := 0
			for b.Loop() {
				b.StopTimer()
				s, err := w.m.Create(ctx, fmt.Sprintf("messaging:r%d", i), w.users[1:])
				if err != nil {
					b.Fatal(err)
				}
				i++
				b.StartTimer()
				if err := w.m.Revoke(ctx, s.ID(), w.users[n:n+1]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(wrap*time.Duration(n)), "x-raw-wraps")
		})
	}
}
