package bench

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

var sizes = []int{64, 1024, 4096}

// channelSizes are the member counts benchmarked: a direct message and a
// small group.
var channelSizes = []int{2, 10}

func schemes(tb testing.TB, n int) (Scheme, []Scheme) {
	tb.Helper()
	v, err := NewVeil(n)
	if err != nil {
		tb.Fatal(err)
	}
	peers, err := Peers(n)
	if err != nil {
		tb.Fatal(err)
	}
	return v, peers
}

// TestRoundTrip checks that every scheme opens what it sealed and refuses a
// modified message, so that the benchmarks time working code.
func TestRoundTrip(t *testing.T) {
	for _, n := range channelSizes {
		v, peers := schemes(t, n)
		for _, s := range append([]Scheme{v}, peers...) {
			t.Run(fmt.Sprintf("%s/%d", s.Name(), n), func(t *testing.T) {
				msg := bytes.Repeat([]byte("m"), 100)
				sealed, err := s.Seal(msg)
				if err != nil {
					t.Fatal(err)
				}
				got, err := s.Open(sealed)
				if err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("Open = %q, %v", got, err)
				}
				bad := bytes.Clone(sealed)
				bad[len(bad)-5] ^= 1
				if _, err := s.Open(bad); err == nil {
					t.Fatal("a modified message opened")
				}
			})
		}
	}
}

// BenchmarkSeal times Veil's Seal and each peer's per-message encryption in
// the same loop, for channels of 2 and 10 members: x-peer = Veil's time /
// the peer's (below 1: Veil is faster). veil-B and peer-B are the sizes of
// one sealed message.
func BenchmarkSeal(b *testing.B) { benchPeers(b, true) }

// BenchmarkOpen is BenchmarkSeal for opening, as one member.
func BenchmarkOpen(b *testing.B) { benchPeers(b, false) }

func benchPeers(b *testing.B, seal bool) {
	for _, n := range channelSizes {
		v, peers := schemes(b, n)
		for _, size := range sizes {
			msg := bytes.Repeat([]byte("m"), size)
			for _, p := range peers {
				b.Run(fmt.Sprintf("members=%d/%dB/%s", n, size, p.Name()), func(b *testing.B) {
					vSealed, err := v.Seal(msg)
					if err != nil {
						b.Fatal(err)
					}
					pSealed, err := p.Seal(msg)
					if err != nil {
						b.Fatal(err)
					}
					op := func(s Scheme, sealed []byte) func() {
						if seal {
							return func() {
								if _, err := s.Seal(msg); err != nil {
									b.Fatal(err)
								}
							}
						}
						return func() {
							if _, err := s.Open(sealed); err != nil {
								b.Fatal(err)
							}
						}
					}
					alternate(b, nil, op(v, vSealed), op(p, pSealed))
					b.ReportMetric(float64(len(vSealed)), "veil-B")
					b.ReportMetric(float64(len(pSealed)), "peer-B")
				})
			}
		}
	}
}

// alternate runs ours (Veil) and theirs (a peer) in turns in one loop, each
// timed on its own, after prep (if not nil), which is not timed. It reports
// their times and x-peer = ours / theirs (below 1: Veil is faster).
func alternate(b *testing.B, prep, ours, theirs func()) {
	var tOurs, tTheirs time.Duration
	for b.Loop() {
		if prep != nil {
			prep()
		}
		t := time.Now()
		theirs()
		tTheirs += time.Since(t)
		t = time.Now()
		ours()
		tOurs += time.Since(t)
	}
	b.ReportMetric(float64(tOurs.Nanoseconds())/float64(b.N), "veil-ns/op")
	b.ReportMetric(float64(tTheirs.Nanoseconds())/float64(b.N), "peer-ns/op")
	b.ReportMetric(float64(tOurs)/float64(tTheirs), "x-peer")
}
