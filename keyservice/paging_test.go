package keyservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/veilchat/veil/keyservice/internal/wire"
	"github.com/veilchat/veil/session"
)

// TestClientPagesMustAdvance points a Client at key services whose pages
// never end or do not follow each other: Log and Grants stop at once with
// an error instead of paging (and accumulating) until the context ends.
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
	// logPage answers ?from= with n records and the given next.
	logPage := func(n int, next string) string {
		return `{"records":[` + strings.TrimSuffix(strings.Repeat(`"AAAA",`, n), ",") + `],"next":` + next + `}`
	}
	const testMaxItems, testMaxBytes = 100, 300 // each record is 3 bytes
	tests := []struct {
		name     string
		grants   bool                               // call Grants, else Log
		page     func(call int, from string) string // the answer to the call-th request, from 0
		maxCalls int64
		reason   string
	}{
		{"log, next stuck", false, func(_ int, from string) string { return logPage(1, from) },
			1, "the next page starts after this one"},
		{"log, next skips", false, func(_ int, from string) string { return logPage(1, "9"+from) },
			1, "no records left out"},
		{"log, empty page with a next", false, func(int, string) string { return logPage(0, "5") },
			1, "a page that is not the last holds records"},
		{"log, next goes back", false, func(call int, _ string) string { return logPage(2, "1") },
			1, "pages move forward"},
		{"log, no end", false, func(call int, from string) string {
			return logPage(2, fmt.Sprint(2*call+2))
		}, testMaxItems/2 + 1, "pages that advance stop at the cap on records"},
		{"log, no end in bytes", false, func(call int, from string) string {
			return `{"records":["` + strings.Repeat("A", 80) + `"],"next":` + fmt.Sprint(call+1) + `}`
		}, 6, "pages that advance stop at the cap on bytes"},
		{"grants, cursor stuck", true, func(int, string) string {
			return `{"grants":[{"grantee":"me","epoch":0,"grant":"YWdl"}],"next":0}`
		}, 2, "the same page again"},
		{"grants, cursor moves, epochs repeat", true, func(call int, _ string) string {
			return fmt.Sprintf(`{"grants":[{"grantee":"me","epoch":0,"grant":"YWdl"}],"next":%d}`, call)
		}, 2, "one grant per epoch, ascending"},
		{"grants, cursor goes back", true, func(call int, _ string) string {
			return grantsPage(10*call+5, 1, 0)
		}, 1, "the cursor is past the page"},
		{"grants, no end", true, func(call int, _ string) string {
			return grantsPage(call*2, 2, call*2+1)
		}, testMaxItems/2 + 1, "pages that advance stop at the cap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int64
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte(tt.page(int(calls.Add(1)-1), r.URL.Query().Get("from"))))
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
			// Log and Grants with their caps (maxLogRecords, maxLogBytes
			// and maxGrants) scaled down.
			if tt.grants {
				_, err = c.grants(ctx, id, testMaxItems)
			} else {
				_, err = c.log(ctx, id, 0, testMaxItems, testMaxBytes)
			}
			if !errors.Is(err, errPaging) || calls.Load() > tt.maxCalls {
				t.Errorf("%v after %d requests, want errPaging after at most %d (%s)", err, calls.Load(), tt.maxCalls, tt.reason)
			}
		})
	}
}

// TestClientLogPages points a Client at a key service that pages a log
// one record at a time: Log follows the pages from where it is asked.
func TestClientLogPages(t *testing.T) {
	t.Parallel()
	records := [][]byte{[]byte("r0"), []byte("r1"), []byte("r2"), []byte("r3")}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		from, _ := strconv.Atoi(r.URL.Query().Get("from"))
		resp := wire.LogResponse{Records: [][]byte{}}
		if from < len(records) {
			resp.Records = records[from : from+1]
		}
		if from+1 < len(records) {
			next := uint32(from + 1)
			resp.Next = &next
		}
		json.NewEncoder(w).Encode(resp)
	}))
	defer hs.Close()
	c, err := NewClient(ClientConfig{BaseURL: hs.URL, Token: StaticToken("t")})
	if err != nil {
		t.Fatal(err)
	}
	for from := range uint32(6) {
		got, err := c.Log(context.Background(), session.ID{1}, from)
		if err != nil {
			t.Fatalf("Log from %d: %v", from, err)
		}
		var want [][]byte
		if from < uint32(len(records)) {
			want = records[from:]
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Log from %d (-want +got)\n%s", from, diff)
		}
	}
}
