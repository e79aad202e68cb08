package httpserve

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// LimitListener returns a Listener that serves at most n of its
// connections at once: when all n are open, a new connection closes the
// one idle longest between requests, or waits until one is closed (and
// connections after it wait in the kernel's backlog). Keep-alive
// connections left idle — by a client that opened n of them — so do not
// keep new clients out until the server's IdleTimeout; for this the
// server's ConnState must be the Listener's [LimitedListener.ConnState].
// Closing the Listener ends a waiting Accept with [net.ErrClosed]. n must
// be positive.
func LimitListener(l net.Listener, n int) *LimitedListener {
	if n <= 0 {
		panic("httpserve: LimitListener needs a positive limit")
	}
	return &LimitedListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{}),
		open: map[string]int{}, idle: map[*limitedConn]time.Time{}}
}

// LimitedListener is the Listener [LimitListener] returns. It is safe for
// concurrent use.
type LimitedListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	perClient int            // LimitPerClient's n; 0: no cap
	exempt    []netip.Prefix // LimitPerClient's exempt

	mu   sync.Mutex
	open map[string]int             // ClientKey → connections open; no zero entries
	idle map[*limitedConn]time.Time // connections idle between requests, and since when
}

// LimitPerClient caps the connections one client address (its peer
// address, by [ClientKey]) has open at n: a new connection past it
// closes that client's connection idle longest, or, if none is idle, is
// closed at once. Peers in exempt (the reverse proxies, which carry many
// clients' connections) are not capped. Without it, one client could
// hold every connection the Listener allows, sending its headers slowly.
// Call it before the first Accept; n zero or negative: no cap.
func (l *LimitedListener) LimitPerClient(n int, exempt []netip.Prefix) {
	l.perClient, l.exempt = max(n, 0), exempt
}

// Accept waits for a connection, then for a slot for it: a free one,
// else that of the connection idle longest, which is closed, else the
// first to be freed (the connection then waits, accepted; those after it
// wait in the kernel's backlog).
func (l *LimitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !l.take() {
			c.Close()
			return nil, net.ErrClosed
		}
		lc := &limitedConn{Conn: c, l: l}
		if l.admit(lc) {
			return lc, nil
		}
		c.Close()
		<-l.sem
	}
}

// take takes a slot for a connection just accepted, and reports false if
// the Listener was closed meanwhile.
func (l *LimitedListener) take() bool {
	select {
	case l.sem <- struct{}{}:
		return true
	default:
	}
	l.evict("")
	select {
	case l.sem <- struct{}{}:
		return true
	case <-l.done:
		return false
	}
}

// admit counts c against its client's cap, making room by closing that
// client's connection idle longest if need be, and reports whether c may
// be served.
func (l *LimitedListener) admit(c *limitedConn) bool {
	if l.perClient == 0 {
		return true
	}
	peer := parseHost(c.RemoteAddr().String())
	if inAny(peer, l.exempt) {
		return true
	}
	key := ClientKey(peer)
	l.mu.Lock()
	full := l.open[key] >= l.perClient
	l.mu.Unlock()
	if full && !l.evict(key) {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c.key = key
	l.open[key]++
	return true
}

// evict closes the connection idle longest of client key ("": of any
// client) and reports whether there was one.
func (l *LimitedListener) evict(key string) bool {
	l.mu.Lock()
	var victim *limitedConn
	var since time.Time
	for c, t := range l.idle {
		if (key == "" || c.key == key) && (victim == nil || t.Before(since)) {
			victim, since = c, t
		}
	}
	delete(l.idle, victim)
	l.mu.Unlock()
	if victim == nil {
		return false
	}
	victim.Close()
	return true
}

// ConnState is the http.Server's ConnState hook that tells the Listener
// which of its connections are idle between requests, and so may be
// closed to make room for a new one.
func (l *LimitedListener) ConnState(c net.Conn, s http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if s == http.StateIdle && !lc.closed {
		l.idle[lc] = time.Now()
	} else {
		delete(l.idle, lc)
	}
}

// Open returns the number of connections open now.
func (l *LimitedListener) Open() int { return len(l.sem) }

// Close closes the listener; connections already accepted stay open.
func (l *LimitedListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitedConn struct {
	net.Conn
	l      *LimitedListener
	key    string // ClientKey counted in l.open; "" if not counted
	once   sync.Once
	closed bool // under l.mu
}

// Close closes the connection and frees its slot, once.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.closed = true
		delete(c.l.idle, c)
		if c.key != "" {
			if c.l.open[c.key]--; c.l.open[c.key] <= 0 {
				delete(c.l.open, c.key)
			}
		}
		c.l.mu.Unlock()
		<-c.l.sem
	})
	return err
}
