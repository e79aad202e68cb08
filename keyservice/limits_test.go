package keyservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veilchat/veil/session"
)

func TestPagination(t *testing.T) {
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
	for i := 2; i < 5; i++ { // 6 members, more than a page of 3
		names = append(names, fmt.Sprintf("m%d", i))
		srv.member(t, names[i])
		if err := owner.mgr.Extend(ctx, s.ID(), names[i:i+1], false); err != nil {
			t.Fatal(err)
		}
	}
	info, err := owner.c.Info(ctx, s.ID())
	if err != nil || len(info.Members) != 6 || info.Epoch != 4 {
		t.Fatalf("Info over pages: %d members, epoch %d, %v", len(info.Members), info.Epoch, err)
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
	req, _ := http.NewRequest("GET", srv.URL+"/v1/sessions/"+s.ID().String()+"/grants?limit=2&after_epoch=1", nil)
	req.Header.Set("Authorization", "Bearer "+userToken(t, "owner"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page grantsResponse
	json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if len(page.Grants) != 2 || page.Grants[0].Epoch != 2 || page.Next == nil || *page.Next != 3 {
		t.Fatalf("page after epoch 1: %+v", page)
	}
	// The greatest cursor ends the pages: after_epoch+1 must not wrap to
	// epoch 0 and start them again.
	req, _ = http.NewRequest("GET", srv.URL+"/v1/sessions/"+s.ID().String()+"/grants?after_epoch=4294967295", nil)
	req.Header.Set("Authorization", "Bearer "+userToken(t, "owner"))
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	page = grantsResponse{}
	json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(page.Grants) != 0 || page.Next != nil {
		t.Fatalf("page after epoch 4294967295: %d, %d grants, next %v; want an empty last page", resp.StatusCode, len(page.Grants), page.Next)
	}
	if code, eb := rawRequest(t, srv, "GET", "/v1/sessions/"+s.ID().String()+"?limit=0", userToken(t, "owner"), nil); code != 400 || eb.Error.Code != CodeInvalidRequest {
		t.Fatalf("limit=0: %d %s", code, eb.Error.Code)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, openTestStore(t), func(c *Config) { c.RateLimit, c.RateBurst = 0.001, 3 })
	tok := userToken(t, "alice")
	codes := []int{}
	for range 5 {
		code, eb := rawRequest(t, srv, "POST", "/v1/cards/lookup", tok, lookupRequest{UserIDs: []string{"x"}})
		codes = append(codes, code)
		if code == 429 && eb.Error.Code != CodeRateLimited {
			t.Fatalf("429 without the rate_limited code: %+v", eb)
		}
	}
	if fmt.Sprint(codes) != "[200 200 200 429 429]" {
		t.Fatalf("statuses %v, want 3 allowed then 429", codes)
	}
	// Another user has its own bucket.
	if code, _ := rawRequest(t, srv, "POST", "/v1/cards/lookup", userToken(t, "bob"), lookupRequest{UserIDs: []string{"x"}}); code != 200 {
		t.Fatalf("bob was limited by alice's requests: %d", code)
	}
	// The client retries a 429 and reports it when the limit holds.
	c, _ := NewClient(ClientConfig{BaseURL: srv.URL, Token: StaticToken(tok), MaxRetries: 1, Backoff: time.Millisecond})
	if _, err := c.Latest(context.Background(), []string{"x"}); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("client under the limit: %v, want ErrRateLimited", err)
	}
}

func TestIdempotencyKeyExpires(t *testing.T) {
	t.Parallel()
	now := time.Now()
	clock := func() time.Time { return now }
	srv := newTestServer(t, openTestStore(t), func(c *Config) { c.Now = clock; c.IdempotencyTTL = time.Hour })
	srv.member(t, "alice")
	id, _ := session.NewID(nil)
	body, _ := json.Marshal(createSessionRequest{ID: id.String(), ChannelCID: "messaging:exp", Grants: []grantJSON{fakeGrant("alice", 0)}})
	tok, _ := UserToken(testSecret, "", "alice", 24*time.Hour) // outlives the jump of the clock
	post := func() (int, string) {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/sessions", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Idempotency-Key", "once")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := post(); code != 201 {
		t.Fatalf("first: %d", code)
	}
	now = now.Add(2 * time.Hour)
	if code, out := post(); code != http.StatusUnprocessableEntity || !strings.Contains(out, CodeIdempotencyReuse) {
		t.Fatalf("replay of an expired key: %d %s", code, out)
	}
}

// TestLimitersBounded fills the rate limiters with fresh buckets, as a
// flood of new client addresses does, and checks that they stay at
// maxLimiters by evicting the least recently used bucket for each new key
// (one step, where a scan of the whole map under the handler-wide lock
// would stall every request), and that a bucket in use keeps its limit.
func TestLimitersBounded(t *testing.T) {
	t.Parallel()
	ls := newLimiters(0.001, 3) // no refill within the test
	addr := func(i int) string { return fmt.Sprintf("ip:2001:db8::%x", i) }
	for range 3 {
		ls.allow("user:alice")
	}
	if ls.allow("user:alice") {
		t.Fatal("alice's fourth request allowed with a burst of 3")
	}
	for i := range maxLimiters - 1 {
		ls.allow(addr(i))
	}
	if len(ls.m) != maxLimiters {
		t.Fatalf("%d buckets, want the map full at %d", len(ls.m), maxLimiters)
	}
	if ls.allow("user:alice") {
		t.Error("alice's limit was lost while the map filled")
	}
	const flood = 100
	for i := range flood {
		ls.allow(addr(maxLimiters + i))
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
	if ls.allow("user:alice") {
		t.Error("alice's limit was lost to the flood of new keys")
	}
}

// TestLimitersForgetIdle checks that buckets unused for limiterIdle go, a
// few per call, so that no single request pays for a backlog.
func TestLimitersForgetIdle(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000_000, 0)
	ls := newLimiters(100, 200)
	ls.now = func() time.Time { return now }
	for i := range 100 {
		ls.allow(fmt.Sprintf("ip:192.0.2.%d", i))
	}
	now = now.Add(limiterIdle + time.Second)
	ls.allow("user:alice")
	if want := 100 - limiterSweep + 1; len(ls.m) != want {
		t.Fatalf("%d buckets after one call, want %d: one call forgets at most %d idle buckets", len(ls.m), want, limiterSweep)
	}
	for range 100 / limiterSweep {
		ls.allow("user:alice")
	}
	if len(ls.m) != 1 || ls.lru.Len() != 1 {
		t.Fatalf("%d buckets (%d in the list), want alice's only", len(ls.m), ls.lru.Len())
	}
}

// TestClientPagesMustAdvance points a Client at key services whose pages
// never end: Info and Grants stop at once with an error instead of paging
// (and accumulating) until the context ends.
func TestClientPagesMustAdvance(t *testing.T) {
	t.Parallel()
	grantsPage := func(first, n, next int) string {
		var b strings.Builder
		b.WriteString(`{"grants":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"grantee":"me","epoch":%d,"grant":"YWdl"}`, first+i)
		}
		fmt.Fprintf(&b, `],"next":%d}`, next)
		return b.String()
	}
	const testMaxItems = 100
	tests := []struct {
		name     string
		grants   bool                  // call Grants, else Info
		page     func(call int) string // the answer to the call-th request, from 0
		maxCalls int64
		reason   string
	}{
		{"members, cursor stuck", false, func(int) string {
			return `{"channel_cid":"c","members":[{"user_id":"x"}],"next":"x"}`
		}, 2, "the same page again"},
		{"members, cursor moves, members repeat", false, func(call int) string {
			return fmt.Sprintf(`{"channel_cid":"c","members":[{"user_id":"x"}],"next":"x%d"}`, call)
		}, 2, "members come in ascending order, once each"},
		{"members, cursor goes back", false, func(call int) string {
			return fmt.Sprintf(`{"channel_cid":"c","members":[{"user_id":"m%d"}],"next":"a"}`, call)
		}, 1, "the cursor is past the page"},
		{"grants, cursor stuck", true, func(int) string {
			return `{"grants":[{"grantee":"me","epoch":0,"grant":"YWdl"}],"next":0}`
		}, 2, "the same page again"},
		{"grants, cursor moves, epochs repeat", true, func(call int) string {
			return fmt.Sprintf(`{"grants":[{"grantee":"me","epoch":0,"grant":"YWdl"}],"next":%d}`, call)
		}, 2, "one grant per epoch, ascending"},
		{"grants, cursor goes back", true, func(call int) string {
			return grantsPage(10*call+5, 1, 0)
		}, 1, "the cursor is past the page"},
		{"members, no end", false, func(call int) string {
			return fmt.Sprintf(`{"channel_cid":"c","members":[{"user_id":"m%03d"},{"user_id":"m%03d"}],"next":"m%03d"}`, 2*call, 2*call+1, 2*call+1)
		}, testMaxItems/2 + 1, "pages that advance stop at the cap"},
		{"grants, no end", true, func(call int) string {
			return grantsPage(call*2, 2, call*2+1)
		}, testMaxItems/2 + 1, "pages that advance stop at the cap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int64
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte(tt.page(int(calls.Add(1) - 1))))
			}))
			defer hs.Close()
			c, err := NewClient(ClientConfig{BaseURL: hs.URL, Token: StaticToken("t")})
			if err != nil {
				t.Fatal(err)
			}
			// maxInfoMembers and maxGrants, scaled down.
			c.maxMembers, c.maxGrants = testMaxItems, testMaxItems
			// A bound, not a measure: the client should give up at once.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			id, _ := session.NewID(nil)
			if tt.grants {
				_, err = c.Grants(ctx, id)
			} else {
				_, err = c.Info(ctx, id)
			}
			if !errors.Is(err, errPaging) || calls.Load() > tt.maxCalls {
				t.Errorf("%v after %d requests, want errPaging after at most %d (%s)", err, calls.Load(), tt.maxCalls, tt.reason)
			}
		})
	}
}
