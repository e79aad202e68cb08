package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/veilchat/veil/keyservice/internal/wire"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/veilchat/veil/internal/pgtest"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
)

// benchStores opens the stores to benchmark: SQLite, and PostgreSQL when
// VEIL_TEST_POSTGRES is set.
func benchStores(b *testing.B) map[string]func(b *testing.B) Store {
	m := map[string]func(b *testing.B) Store{
		"sqlite": func(b *testing.B) Store {
			st, err := OpenStore(context.Background(), "sqlite://"+filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		},
	}
	if pgtest.Available() {
		m["postgres"] = func(b *testing.B) Store {
			st, err := OpenStore(context.Background(), pgtest.DSN(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		}
	}
	return m
}

// hammer sends total requests from c concurrent clients and returns the
// throughput and the 50th and 99th percentile latencies.
func hammer(b *testing.B, url string, body []byte, header http.Header, c, total int) (perSec float64, p50, p99 time.Duration) {
	tr := &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	lat := make([]time.Duration, total)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range c {
		wg.Go(func() {
			for i := w; i < total; i += c {
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header = header.Clone()
				t := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
				lat[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	return float64(total) / elapsed.Seconds(), lat[total/2], lat[total*99/100]
}

// BenchmarkKeyFetch measures card lookups (POST /v1/cards/lookup of one
// user's card) over loopback at 1, 16 and 64 concurrent clients, next to a
// bare net/http handler that decodes the same request and writes a response
// of the same size, in the same run. Metrics: req/s, p50-µs, p99-µs, and
// x-bare = our throughput / the bare handler's.
func BenchmarkKeyFetch(b *testing.B) {
	for name, open := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			st := open(b)
			srv := newTestServer(b, st, func(c *Config) { c.RateLimit, c.RateBurst = 1e9, 1e9 })
			ctx := context.Background()
			const users = 100
			for i := range users {
				id, err := identity.Generate(testrand.New(fmt.Sprint("bench", i)), fmt.Sprintf("user%03d", i), identity.Options{})
				if err != nil {
					b.Fatal(err)
				}
				if err := st.InsertCard(ctx, id.UserID(), 0, id.Card().Marshal()); err != nil {
					b.Fatal(err)
				}
			}
			body, _ := json.Marshal(wire.LookupRequest{UserIDs: []string{"user042"}})
			h := http.Header{"Authorization": {"Bearer " + userToken(b, "user001")}, "Content-Type": {"application/json"}}
			// The bare handler does the HTTP and JSON work of a lookup and
			// answers with the same bytes, without auth or storage.
			resp, _ := st.LatestCards(ctx, []string{"user042"})
			canned, _ := json.Marshal(wire.LookupResponse{Cards: resp})
			bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var req wire.LookupRequest
				if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
					http.Error(w, "bad", 400)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.Write(canned)
			}))
			defer bare.Close()
			for _, c := range []int{1, 16, 64} {
				b.Run(fmt.Sprintf("clients=%d", c), func(b *testing.B) {
					total := max(b.N, c)
					bareRate, _, _ := hammer(b, bare.URL, body, h, c, total)
					rate, p50, p99 := hammer(b, srv.URL+"/v1/cards/lookup", body, h, c, total)
					b.ReportMetric(rate, "req/s")
					b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
					b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
					b.ReportMetric(bareRate, "bare-req/s")
					b.ReportMetric(rate/bareRate, "x-bare")
				})
			}
		})
	}
}

// BenchmarkSessionCreate measures session.Manager.Create over HTTP for 10,
// 100 and 1,000 members with post-quantum (hybrid) cards: card lookup, one
// grant per member built in parallel across cores, and the store's
// transaction.
func BenchmarkSessionCreate(b *testing.B) {
	for name, open := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			st := open(b)
			srv := newTestServer(b, st, func(c *Config) { c.RateLimit, c.RateBurst = 1e9, 1e9 })
			ctx := context.Background()
			names := make([]string, 1000)
			for i := range names {
				names[i] = fmt.Sprintf("m%04d", i)
				id, err := identity.Generate(testrand.New(names[i]), names[i], identity.Options{})
				if err != nil {
					b.Fatal(err)
				}
				if err := st.InsertCard(ctx, names[i], 0, id.Card().Marshal()); err != nil {
					b.Fatal(err)
				}
			}
			owner := srv.member(b, "owner")
			for _, n := range []int{10, 100, 1000} {
				b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
					for i := 0; b.Loop(); i++ {
						if _, err := owner.mgr.Create(ctx, fmt.Sprintf("bench:%s:%d:%d", name, n, i), names[:n-1]); err != nil { // n members with the owner
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "grants/s")
				})
			}
		})
	}
}
