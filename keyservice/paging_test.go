package keyservice

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veilchat/veil/session"
)

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
			// A bound, not a measure: the client should give up at once.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			id, _ := session.NewID(nil)
			// Info and Grants with their caps (maxInfoMembers and
			// maxGrants) scaled down.
			if tt.grants {
				_, err = c.grants(ctx, id, testMaxItems)
			} else {
				_, err = c.info(ctx, id, testMaxItems)
			}
			if !errors.Is(err, errPaging) || calls.Load() > tt.maxCalls {
				t.Errorf("%v after %d requests, want errPaging after at most %d (%s)", err, calls.Load(), tt.maxCalls, tt.reason)
			}
		})
	}
}
