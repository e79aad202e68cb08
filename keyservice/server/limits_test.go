package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/internal/wire"
)

// TestGrantPages reads a member's grants over more pages than one.
func TestGrantPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := newTestServer(t, openTestStore(t), func(c *Config) { c.MaxMembersPerCall = 3 })
	owner := srv.member(t, "owner")
	var names []string
	for i := range 2 {
		names = append(names, fmt.Sprintf("m%d", i))
		srv.member(t, names[i])
	}
	s, err := owner.mgr.Create(ctx, "messaging:pages", names)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 { // epochs 1..4: five grants for the owner
		if err := owner.mgr.Rotate(ctx, s.ID()); err != nil {
			t.Fatal(err)
		}
	}
	grants, err := owner.c.Grants(ctx, s.ID())
	if err != nil || len(grants) != 5 {
		t.Fatalf("Grants over pages: %d, %v", len(grants), err)
	}
	for i, g := range grants {
		if g.Epoch != uint32(i) {
			t.Fatalf("grant %d is for epoch %d", i, g.Epoch)
		}
	}
	// One raw page, to see the cursor.
	r := request(t, srv, "GET", "/v1/sessions/"+s.ID().String()+"/grants?limit=2&after_epoch=1", userToken(t, "owner"), nil)
	var page wire.GrantsResponse
	json.Unmarshal(r.body, &page)
	if len(page.Grants) != 2 || page.Grants[0].Epoch != 2 || page.Next == nil || *page.Next != 3 {
		t.Fatalf("page after epoch 1: %+v", page)
	}
	// The greatest cursor ends the pages: after_epoch+1 must not wrap to
	// epoch 0 and start them again.
	r = request(t, srv, "GET", "/v1/sessions/"+s.ID().String()+"/grants?after_epoch=4294967295", userToken(t, "owner"), nil)
	page = wire.GrantsResponse{}
	json.Unmarshal(r.body, &page)
	if r.status != 200 || len(page.Grants) != 0 || page.Next != nil {
		t.Fatalf("page after epoch 4294967295: %d, %d grants, next %v; want an empty last page", r.status, len(page.Grants), page.Next)
	}
	if code, eb := rawRequest(t, srv, "GET", "/v1/sessions/"+s.ID().String()+"/grants?limit=0", userToken(t, "owner"), nil); code != 400 || eb.Error.Code != keyservice.CodeInvalidRequest {
		t.Fatalf("limit=0: %d %s", code, eb.Error.Code)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, openTestStore(t), func(c *Config) { c.RateLimit, c.RateBurst = 0.001, 3 })
	tok := userToken(t, "alice")
	codes := []int{}
	for range 5 {
		code, eb := rawRequest(t, srv, "POST", "/v1/cards/lookup", tok, wire.LookupRequest{UserIDs: []string{"x"}})
		codes = append(codes, code)
		if code == 429 && eb.Error.Code != keyservice.CodeRateLimited {
			t.Fatalf("429 without the rate_limited code: %+v", eb)
		}
	}
	if fmt.Sprint(codes) != "[200 200 200 429 429]" {
		t.Fatalf("statuses %v, want 3 allowed then 429", codes)
	}
	// Another user has its own bucket.
	if code, _ := rawRequest(t, srv, "POST", "/v1/cards/lookup", userToken(t, "bob"), wire.LookupRequest{UserIDs: []string{"x"}}); code != 200 {
		t.Fatalf("bob was limited by alice's requests: %d", code)
	}
	// The client retries a 429 and reports it when the limit holds.
	c, _ := keyservice.NewClient(keyservice.ClientConfig{BaseURL: srv.URL, Token: keyservice.StaticToken(tok), MaxRetries: 1, Backoff: time.Millisecond})
	if _, err := c.Latest(context.Background(), []string{"x"}); !errors.Is(err, keyservice.ErrRateLimited) {
		t.Fatalf("client under the limit: %v, want keyservice.ErrRateLimited", err)
	}
}

// TestRateLimitRefillsByConfigNow checks that the buckets follow the
// handler's clock: frozen, an exhausted bucket stays empty however long the
// test takes; moved on by a second, it has a token again.
func TestRateLimitRefillsByConfigNow(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	srv := newTestServer(t, openTestStore(t), func(c *Config) { c.Now = clock; c.RateLimit, c.RateBurst = 1, 1 })
	tok := userToken(t, "alice")
	lookup := func() int {
		code, _ := rawRequest(t, srv, "POST", "/v1/cards/lookup", tok, wire.LookupRequest{UserIDs: []string{"x"}})
		return code
	}
	if got := lookup(); got != http.StatusOK {
		t.Fatalf("first request: %d", got)
	}
	time.Sleep(1100 * time.Millisecond) // a wall clock second: no token while Config.Now stands still
	if got := lookup(); got != http.StatusTooManyRequests {
		t.Fatalf("second request, clock frozen: %d, want 429", got)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	if got := lookup(); got != http.StatusOK {
		t.Fatalf("third request, clock one second on: %d, want 200", got)
	}
}
