package httpserve

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// bodyWatch enforces a minimum upload rate on a request body: after a
// grace period, the body must have come at rate bytes per second on
// average since the request started. A client below it has its
// connection's read deadline moved to now, so that the read the handler is
// blocked in fails with a timeout (ReadBody answers 408) and the
// connection closes, its buffers freed.
//
// A timer checks, not the reads: a client that sends nothing makes no read
// return. The timer fires when the bytes received so far stop covering the
// time elapsed, and reschedules itself while they do; each firing does
// constant work. The deadline only ever moves earlier than the server's
// own (ReadTimeout), never later.
type bodyWatch struct {
	rate  float64 // bytes per second
	grace time.Duration
	start time.Time
	rc    *http.ResponseController
	n     atomic.Int64 // bytes read so far

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
	tripped bool
}

// watchBody wraps r.Body and starts the watch. The returned function stops
// it and reports whether it tripped; it must be called before the handler
// returns, since the connection may then serve another request whose reads
// the watch must not touch. (After a dropped upload, net/http closes the
// connection itself: the rest of the body was never read.)
func watchBody(w http.ResponseWriter, r *http.Request, rate int64, grace time.Duration, onTrip func()) (stop func() bool) {
	bw := &bodyWatch{rate: float64(rate), grace: grace, start: time.Now(), rc: http.NewResponseController(w)}
	r.Body = &countingBody{ReadCloser: r.Body, w: bw}
	bw.mu.Lock()
	bw.timer = time.AfterFunc(grace, func() { bw.check(onTrip) })
	bw.mu.Unlock()
	return bw.stop
}

// due is the time by which the next byte is late: the grace plus the time
// the bytes so far pay for.
func (bw *bodyWatch) due() time.Time {
	paid := time.Duration(float64(bw.n.Load()) / bw.rate * float64(time.Second))
	return bw.start.Add(bw.grace + paid)
}

func (bw *bodyWatch) check(onTrip func()) {
	bw.mu.Lock()
	defer bw.mu.Unlock()
	if bw.stopped {
		return
	}
	if wait := time.Until(bw.due()); wait > 0 {
		bw.timer.Reset(wait)
		return
	}
	bw.tripped = true
	bw.stopped = true
	// ErrNotSupported (an HTTP/2 stream, a recorder in a test) leaves
	// the server's ReadTimeout as the only bound.
	_ = bw.rc.SetReadDeadline(time.Now())
	if onTrip != nil {
		onTrip()
	}
}

// stop ends the watch and reports whether it had tripped.
func (bw *bodyWatch) stop() bool {
	bw.mu.Lock()
	defer bw.mu.Unlock()
	bw.stopped = true
	bw.timer.Stop()
	return bw.tripped
}

// countingBody counts what the handler reads, and ends the watch at the
// end of the body: the handler's work after that is not the client's
// upload.
type countingBody struct {
	io.ReadCloser
	w *bodyWatch
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.w.n.Add(int64(n))
	if err == io.EOF {
		c.w.mu.Lock()
		if !c.w.tripped {
			c.w.stopped = true
			c.w.timer.Stop()
		}
		c.w.mu.Unlock()
	}
	return n, err
}
