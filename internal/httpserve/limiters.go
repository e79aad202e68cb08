package httpserve

import (
	"container/list"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiters holds one token bucket per key (a user, a service, a client
// address). It forgets buckets idle for a minute and never holds more than
// 100,000: when full, a new key evicts the least recently used one. Every
// call does a bounded amount of work under one mutex, however many keys an
// attacker invents (new client addresses cost nothing over IPv6). An
// evicted key starts again with a full bucket; that lets a flood of new
// keys relax the limit of others, but never stalls the service or grows
// its memory. It is safe for concurrent use.
type Limiters struct {
	mu    sync.Mutex
	limit rate.Limit
	burst int
	now   func() time.Time
	m     map[string]*list.Element // values are *limiterEntry
	lru   list.List                // front: most recently used
}

type limiterEntry struct {
	key  string
	l    *rate.Limiter
	seen time.Time
}

const (
	// maxLimiters caps the buckets held at once.
	maxLimiters = 100_000
	// limiterIdle is how long an unused bucket is kept.
	limiterIdle = time.Minute
	// limiterSweep is how many idle buckets one call forgets at most: more
	// than the one key a call may add, so idle buckets drain, and few
	// enough that no call pays for a backlog.
	limiterSweep = 8
)

// NewLimiters returns Limiters of l tokens per second and bursts of burst,
// refilled by now's clock (nil: time.Now).
func NewLimiters(l rate.Limit, burst int, now func() time.Time) *Limiters {
	if now == nil {
		now = time.Now
	}
	return &Limiters{limit: l, burst: burst, now: now, m: map[string]*list.Element{}}
}

// Allow reports whether key may make a request now, and takes a token if
// so. It runs in constant time.
func (ls *Limiters) Allow(key string) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	now := ls.now()
	for range limiterSweep {
		oldest := ls.lru.Back()
		if oldest == nil || now.Sub(oldest.Value.(*limiterEntry).seen) <= limiterIdle {
			break
		}
		ls.forget(oldest)
	}
	el, ok := ls.m[key]
	if ok {
		ls.lru.MoveToFront(el)
	} else {
		if ls.lru.Len() >= maxLimiters {
			ls.forget(ls.lru.Back())
		}
		el = ls.lru.PushFront(&limiterEntry{key: key, l: rate.NewLimiter(ls.limit, ls.burst)})
		ls.m[key] = el
	}
	e := el.Value.(*limiterEntry)
	e.seen = now
	return e.l.AllowN(now, 1)
}

// Len returns the number of buckets held.
func (ls *Limiters) Len() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.lru.Len()
}

func (ls *Limiters) forget(el *list.Element) {
	delete(ls.m, ls.lru.Remove(el).(*limiterEntry).key)
}
