package keyservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
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
