package httpserve

import (
	"net"
	"sync"
)

// LimitListener returns a Listener that has at most n of its connections
// open at once: Accept waits, leaving further connections in the kernel's
// backlog, until one of them is closed. Idle keep-alive connections count
// until the server closes them (http.Server.IdleTimeout). Closing the
// Listener ends a waiting Accept with [net.ErrClosed]. n must be positive.
func LimitListener(l net.Listener, n int) *LimitedListener {
	if n <= 0 {
		panic("httpserve: LimitListener needs a positive limit")
	}
	return &LimitedListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

// LimitedListener is the Listener [LimitListener] returns. It is safe for
// concurrent use.
type LimitedListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// Accept waits for a free slot, then for a connection.
func (l *LimitedListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitedConn{Conn: c, release: func() { <-l.sem }}, nil
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
	once    sync.Once
	release func()
}

// Close closes the connection and frees its slot, once.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
