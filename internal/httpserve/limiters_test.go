package httpserve

import (
	"fmt"
	"testing"
	"time"
)

// TestLimitersBounded fills the rate limiters with fresh buckets, as a
// flood of new client addresses does, and checks that they stay at
// maxLimiters by evicting the least recently used bucket for each new key
// (one step, where a scan of the whole map under the one lock would
// stall every request), and that a bucket in use keeps its limit.
func TestLimitersBounded(t *testing.T) {
	t.Parallel()
	ls := NewLimiters(0.001, 3, time.Now) // no refill within the test
	addr := func(i int) string { return fmt.Sprintf("ip:2001:db8::%x", i) }
	for range 3 {
		ls.Allow("user:alice")
	}
	if ls.Allow("user:alice") {
		t.Fatal("alice's fourth request allowed with a burst of 3")
	}
	for i := range maxLimiters - 1 {
		ls.Allow(addr(i))
	}
	if len(ls.m) != maxLimiters {
		t.Fatalf("%d buckets, want the map full at %d", len(ls.m), maxLimiters)
	}
	if ls.Allow("user:alice") {
		t.Error("alice's limit was lost while the map filled")
	}
	const flood = 100
	for i := range flood {
		ls.Allow(addr(maxLimiters + i))
	}
	if len(ls.m) != maxLimiters {
		t.Errorf("%d buckets after %d new keys, want the cap %d", len(ls.m), flood, maxLimiters)
	}
	for i := range flood {
		if _, ok := ls.m[addr(i)]; ok {
			t.Fatalf("bucket %d, among the %d least recently used, was kept", i, flood)
		}
	}
	for _, k := range []string{addr(flood), addr(maxLimiters - 2), addr(maxLimiters + flood - 1), "user:alice"} {
		if _, ok := ls.m[k]; !ok {
			t.Errorf("bucket %s was evicted before older ones", k)
		}
	}
	if ls.Allow("user:alice") {
		t.Error("alice's limit was lost to the flood of new keys")
	}
}

// TestLimitersForgetIdle checks that buckets unused for limiterIdle go, a
// few per call, so that no single request pays for a backlog.
func TestLimitersForgetIdle(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000_000, 0)
	ls := NewLimiters(100, 200, func() time.Time { return now })
	for i := range 100 {
		ls.Allow(fmt.Sprintf("ip:192.0.2.%d", i))
	}
	now = now.Add(limiterIdle + time.Second)
	ls.Allow("user:alice")
	if want := 100 - limiterSweep + 1; len(ls.m) != want {
		t.Fatalf("%d buckets after one call, want %d: one call forgets at most %d idle buckets", len(ls.m), want, limiterSweep)
	}
	for range 100 / limiterSweep {
		ls.Allow("user:alice")
	}
	if len(ls.m) != 1 || ls.lru.Len() != 1 {
		t.Fatalf("%d buckets (%d in the list), want alice's only", len(ls.m), ls.lru.Len())
	}
}
