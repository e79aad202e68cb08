package httpserve

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowStore is a Store whose Ping blocks until release is closed, and
// counts the pings running at once.
type slowStore struct {
	release          chan struct{}
	running, maxSeen atomic.Int32
	calls            atomic.Int32
}

func (s *slowStore) Ping(ctx context.Context) error {
	s.calls.Add(1)
	n := s.running.Add(1)
	defer s.running.Add(-1)
	for {
		m := s.maxSeen.Load()
		if n <= m || s.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestReadyChecksOneAtATime: /readyz is served to anyone, outside every
// rate limit and the cap of requests in flight (a load balancer must not
// be refused), so a flood of it must not become a flood of database
// queries: probes that arrive while a check runs share its verdict, and
// the store sees one check at a time however many probes wait.
func TestReadyChecksOneAtATime(t *testing.T) {
	t.Parallel()
	st := &slowStore{release: make(chan struct{})}
	srv := httptest.NewServer(Ready(st))
	t.Cleanup(srv.Close)
	const probes = 20
	var wg sync.WaitGroup
	statuses := make(chan int, probes)
	for range probes {
		wg.Go(func() {
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	// Let the probes arrive and wait on the store.
	deadline := time.Now().Add(5 * time.Second)
	for st.calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	close(st.release)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Errorf("a probe answered %d, want 200", s)
		}
	}
	if n := st.maxSeen.Load(); n != 1 {
		t.Errorf("%d probes at once made %d store checks at once, want 1", probes, n)
	}
	// A probe after the shared check checks again: a verdict is not kept
	// past its check, so that a store that fails is seen at once.
	before := st.calls.Load()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || st.calls.Load() != before+1 {
		t.Errorf("a later probe: %d after %d new checks, want 200 after 1", resp.StatusCode, st.calls.Load()-before)
	}
}
