package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/internal/pgtest"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/internal/wire"
	"github.com/veilchat/veil/session"
)

// replica is one key-service process: its own handler (rate limiters,
// state cache) and store, on the shared database.
type replica struct {
	*httptest.Server
	store Store
}

// roundRobin is the load balancer: each request goes to the next replica.
func roundRobin(t *testing.T, replicas []*replica) *httptest.Server {
	t.Helper()
	targets := make([]*url.URL, len(replicas))
	for i, r := range replicas {
		u, err := url.Parse(r.URL)
		if err != nil {
			t.Fatal(err)
		}
		targets[i] = u
	}
	var next atomic.Uint64
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(targets[next.Add(1)%uint64(len(targets))])
	}}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return srv
}

// opLog is what the clients of the replica test were told succeeded.
type opLog struct {
	mu       sync.Mutex
	sessions map[session.ID]*sessionOps
}

// sessionOps are a session's acknowledged operations.
type sessionOps struct {
	creator   string
	members   []string // of the genesis
	epochs    int      // acknowledged rotations and removals: one new epoch each
	added     []string // acknowledged additions
	removed   []string // acknowledged removals
	sealed    int
	channelID string
}

func (l *opLog) with(id session.ID, f func(*sessionOps)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(l.sessions[id])
}

// TestThreeReplicasBehindAProxy runs three key-service replicas on one PostgreSQL database
// behind a round-robin proxy. Clients (session.Manager over
// keyservice.Client, each request to the next replica) create sessions,
// add and remove members, rotate and seal, concurrently. Then: every
// acknowledged write is in the database, every log verifies from its
// genesis, every replica reports the same head, and every member's client
// agrees with it; a genesis, a record and a card sent again to another
// replica are answered as the first time and stored once; and a user's
// rate limit is per replica, as docs/DEPLOY.md says.
func TestThreeReplicasBehindAProxy(t *testing.T) {
	t.Parallel()
	if !pgtest.Available() {
		t.Skip(pgtest.EnvVar + " not set")
	}
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	const perReplicaRate, perReplicaBurst = 50, 100
	// The replicas' clock runs, but stops for the rate check, so that
	// buckets do not refill during it and its count is exact.
	var frozen atomic.Pointer[time.Time]
	clock := func() time.Time {
		if at := frozen.Load(); at != nil {
			return *at
		}
		return time.Now()
	}
	replicas := make([]*replica, 3)
	for i := range replicas {
		st, err := OpenStore(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		h, err := NewHandler(Config{Store: st, Auth: Auth{Keys: []Key{{HS256: NewSecret(testSecret)}}},
			RateLimit: perReplicaRate, RateBurst: perReplicaBurst, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		replicas[i] = &replica{Server: srv, store: st}
	}
	lb := roundRobin(t, replicas)
	front := &testServer{Server: lb}

	const nUsers, opsPerUser = 8, 14
	users := make([]*member, nUsers)
	names := make([]string, nUsers)
	for i := range users {
		names[i] = fmt.Sprintf("user%d", i)
		users[i] = front.member(t, names[i])
	}
	byName := map[string]*member{}
	for i, n := range names {
		byName[n] = users[i]
	}
	log := &opLog{sessions: map[session.ID]*sessionOps{}}
	var (
		mu    sync.Mutex
		known []session.ID // sessions created so far
		fails []error
	)
	// An operation may lose a race (conflict), or find its caller removed
	// or without the right: those are answers, not failures. Anything
	// else — a log that does not verify, a rollback, a server error — is.
	expected := func(err error) bool {
		return err == nil || errors.Is(err, session.ErrConflict) || errors.Is(err, session.ErrNotMember) ||
			errors.Is(err, session.ErrForbidden) || errors.Is(err, session.ErrUnknownEpoch)
	}
	var wg sync.WaitGroup
	start := time.Now()
	for i, u := range users {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			others := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == names[i] })
			for op := range opsPerUser {
				mu.Lock()
				var id session.ID
				if len(known) > 0 {
					id = known[rng.IntN(len(known))]
				}
				mu.Unlock()
				var err error
				switch k := rng.IntN(10); {
				case k < 2 || id.IsZero():
					rng.Shuffle(len(others), func(a, b int) { others[a], others[b] = others[b], others[a] })
					members := slices.Clone(others[:3])
					cid := fmt.Sprintf("messaging:%s-%d", names[i], op)
					var s *session.Session
					if s, err = u.mgr.Create(ctx, cid, members); err == nil {
						log.mu.Lock()
						log.sessions[s.ID()] = &sessionOps{creator: names[i], members: append(members, names[i]), channelID: cid}
						log.mu.Unlock()
						mu.Lock()
						known = append(known, s.ID())
						mu.Unlock()
					}
				case k < 4:
					add := others[rng.IntN(len(others))]
					if err = u.mgr.Extend(ctx, id, []string{add}, false); err == nil {
						log.with(id, func(o *sessionOps) { o.added = append(o.added, add) })
					}
				case k < 5:
					// A removal counts as one when the service listed the
					// user just before; of another user it is a rotation.
					rm := others[rng.IntN(len(others))]
					info, ierr := u.mgr.Info(ctx, id)
					wasMember := ierr == nil && slices.ContainsFunc(info.Members, func(m session.Member) bool { return m.UserID == rm })
					if err = u.mgr.Revoke(ctx, id, []string{rm}); err == nil {
						log.with(id, func(o *sessionOps) {
							if wasMember {
								o.removed = append(o.removed, rm)
							}
							o.epochs++
						})
					}
				case k < 7:
					if err = u.mgr.Rotate(ctx, id); err == nil {
						log.with(id, func(o *sessionOps) { o.epochs++ })
					}
				default:
					var cid string
					log.with(id, func(o *sessionOps) { cid = o.channelID })
					bind := session.Binding{ChannelCID: cid, MessageID: fmt.Sprintf("%s-%d", names[i], op), SenderID: names[i]}
					if _, err = u.mgr.SealText(ctx, id, bind, []byte("hello"), 5000); err == nil {
						log.with(id, func(o *sessionOps) { o.sealed++ })
					}
				}
				if !expected(err) {
					mu.Lock()
					fails = append(fails, fmt.Errorf("%s, operation %d: %w", names[i], op, err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d users × %d operations through 3 replicas in %v", nUsers, opsPerUser, time.Since(start).Round(time.Millisecond))
	for _, err := range fails {
		t.Error(err)
	}

	// Every acknowledged write is there, and consistent.
	store := replicas[0].store
	cards := func(user string, anchor memberlog.Anchor, gen uint32) ([]*identity.Card, error) {
		raw, err := store.CardHistory(ctx, user)
		if err != nil {
			return nil, err
		}
		var out []*identity.Card
		for _, b := range raw[anchor.Generation : gen+1] {
			c, err := identity.ParseCard(b)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		return out, nil
	}
	acked := 0
	for id, ops := range log.sessions {
		records, head, err := store.Log(ctx, id, "", 0, math.MaxInt, math.MaxInt)
		if err != nil {
			t.Fatalf("session %s, created and acknowledged: %v", id, err)
		}
		var st *memberlog.State
		newEpochs := 0
		added, removed := map[string]bool{}, map[string]bool{}
		for i, raw := range records {
			var next *memberlog.State
			if i == 0 {
				next, err = memberlog.Verify(raw, id, cards)
			} else {
				next, err = st.Apply(raw, cards)
			}
			if err != nil {
				t.Fatalf("session %s: record %d does not verify: %v", id, i, err)
			}
			if st != nil {
				if next.Epoch() != st.Epoch() {
					newEpochs++
				}
				a, r := rosterDiff(st, next)
				for _, u := range a {
					added[u] = true
				}
				for _, u := range r {
					removed[u] = true
				}
			}
			st = next
		}
		if st.Creator() != ops.creator || st.ChannelCID() != ops.channelID {
			t.Errorf("session %s: created by %s for %s, the log says %s for %s", id, ops.creator, ops.channelID, st.Creator(), st.ChannelCID())
		}
		if newEpochs != ops.epochs {
			t.Errorf("session %s: %d acknowledged rotations and removals, %d new epochs in the log", id, ops.epochs, newEpochs)
		}
		for _, u := range ops.added {
			if !added[u] && !slices.Contains(ops.members, u) {
				t.Errorf("session %s: the acknowledged addition of %s is not in the log", id, u)
			}
		}
		for _, u := range ops.removed {
			if !removed[u] {
				t.Errorf("session %s: the acknowledged removal of %s is not in the log", id, u)
			}
		}
		if head.Seq != st.Seq() || head.Hash != st.Head() {
			t.Errorf("session %s: the stored head %d is not the log's %d", id, head.Seq, st.Seq())
		}
		for i, r := range replicas {
			h, err := r.client(t, st.Creator()).Head(ctx, id)
			if _, member := st.Member(st.Creator()); !member {
				continue
			}
			if err != nil || h.Seq != head.Seq || h.Hash != head.Hash {
				t.Errorf("session %s: replica %d's head %+v, %v; want %d", id, i, h, err, head.Seq)
			}
		}
		for _, m := range st.Members() {
			info, err := byName[m.UserID].mgr.Info(ctx, id)
			if err != nil || info.Seq != st.Seq() || info.Epoch != st.Epoch() {
				t.Errorf("session %s: %s's client sees %+v, %v; want record %d, epoch %d", id, m.UserID, info, err, st.Seq(), st.Epoch())
			}
		}
		acked += 1 + ops.epochs + len(ops.added) + len(ops.removed) + ops.sealed
	}
	if len(log.sessions) == 0 || acked < nUsers*opsPerUser/4 {
		t.Fatalf("%d sessions, %d acknowledged operations of %d: the run proves little", len(log.sessions), acked, nUsers*opsPerUser)
	}
	t.Logf("%d sessions, %d acknowledged operations checked", len(log.sessions), acked)

	checkIdempotentAcrossReplicas(t, replicas)
	now := time.Now()
	frozen.Store(&now)
	checkRatePerReplica(t, lb, replicas, perReplicaBurst)
}

// client is a keyservice.Client for user that talks to this replica only.
func (r *replica) client(t *testing.T, user string) *keyservice.Client {
	return (&testServer{Server: r.Server}).client(t, user)
}

// checkIdempotentAcrossReplicas sends a genesis, a record and a card to
// one replica and again to the others: each is answered as the first time
// and stored once.
func checkIdempotentAcrossReplicas(t *testing.T, replicas []*replica) {
	t.Helper()
	ctx := context.Background()
	srvs := make([]*testServer, len(replicas))
	for i, r := range replicas {
		srvs[i] = &testServer{Server: r.Server}
	}
	alice, bob := srvs[0].member(t, "idem-alice"), srvs[0].member(t, "idem-bob")
	c := newChain(t, "messaging:idempotent", alice.id, bob.id)
	genesis := c.create()
	rotation := c.add(alice.id, nil, true)
	for i, s := range srvs {
		if r := request(t, s, "POST", "/v1/sessions", userToken(t, "idem-alice"), genesis); r.status/100 != 2 {
			t.Fatalf("the genesis sent to replica %d: %d %s", i, r.status, r.err.Code)
		}
	}
	for i, s := range srvs {
		if r := request(t, s, "POST", logPath(c.id), userToken(t, "idem-alice"), rotation); r.status != http.StatusOK {
			t.Fatalf("the record sent to replica %d: %d %s", i, r.status, r.err.Code)
		}
	}
	card := wire.PublishCardRequest{Card: alice.id.Card().Marshal()}
	for i, s := range srvs {
		if r := request(t, s, "PUT", "/v1/users/idem-alice/cards", userToken(t, "idem-alice"), card); r.status/100 != 2 {
			t.Fatalf("the card sent again to replica %d: %d %s", i, r.status, r.err.Code)
		}
	}
	records, head, err := replicas[2].store.Log(ctx, c.id, "", 0, math.MaxInt, math.MaxInt)
	if err != nil || len(records) != 2 || head.Seq != 1 || !bytes.Equal(records[1], rotation.Record) {
		t.Fatalf("after sending each write to every replica: %d records, head %d, %v; want the genesis and the record once", len(records), head.Seq, err)
	}
	if hist, err := replicas[1].store.CardHistory(ctx, "idem-alice"); err != nil || len(hist) != 1 {
		t.Fatalf("alice's cards: %d, %v; want one", len(hist), err)
	}
}

// checkRatePerReplica sends one user's requests through the round-robin
// proxy while the replicas' clock stands still: each replica lets through
// its own burst and no more, so the user gets exactly the replicas'
// bursts together — limits are per replica, as DEPLOY.md says.
func checkRatePerReplica(t *testing.T, lb *httptest.Server, replicas []*replica, perBurst int) {
	t.Helper()
	tok := userToken(t, "rate-user")
	const n, senders = 600, 6
	var ok, limited atomic.Int64
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for range n / senders {
				req, _ := http.NewRequest("GET", lb.URL+"/v1/users/rate-user/cards", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusTooManyRequests {
					limited.Add(1)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("one user, %d requests through %d replicas: %d answered, %d limited (one replica's burst: %d)", n, len(replicas), ok.Load(), limited.Load(), perBurst)
	if want := int64(len(replicas) * perBurst); ok.Load() != want {
		t.Fatalf("%d of %d requests answered, want %d: each replica's burst, no more (rate limits are per replica)", ok.Load(), n, want)
	}
}
