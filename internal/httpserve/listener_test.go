package httpserve

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// dialFrom opens a connection to addr from the loopback address local
// (Linux answers on all of 127/8).
func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reports whether the server closes c within d, the
// client having sent nothing more.
func closedByServer(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	ne, ok := err.(net.Error)
	return err != nil && !(ok && ne.Timeout())
}

// get sends a request on c and reads its answer, leaving c open.
func get(t *testing.T, c net.Conn) {
	t.Helper()
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("a request on a connection the cap admits: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// TestLimitListenerPerClient: a client address past its cap of open
// connections has a new one closed at once, unless one of its own is idle
// (which is closed instead, the longest idle first); other addresses, and
// exempt ones, are not affected; the counts come back to nothing.
func TestLimitListenerPerClient(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := LimitListener(inner, 20)
	l.LimitPerClient(2, []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")})
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), ConnState: l.ConnState}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	addr := inner.Addr().String()

	// Two connections sending their headers slowly fill 127.0.0.1's cap.
	for range 2 {
		fmt.Fprint(dialFrom(t, "127.0.0.1", addr), "GET / HTTP/1.1\r\n")
	}
	time.Sleep(100 * time.Millisecond)
	if third := dialFrom(t, "127.0.0.1", addr); !closedByServer(third, 2*time.Second) {
		t.Error("a third connection of a client with two busy ones stayed open, with a cap of 2")
	}
	get(t, dialFrom(t, "127.0.0.2", addr)) // another client is served
	// An exempt peer (a proxy) is not capped.
	var proxied []net.Conn
	for range 4 {
		c := dialFrom(t, "127.0.0.3", addr)
		fmt.Fprint(c, "GET / HTTP/1.1\r\n")
		proxied = append(proxied, c)
	}
	for i, c := range proxied {
		if closedByServer(c, 200*time.Millisecond) {
			t.Errorf("the exempt peer's connection %d was closed", i+1)
		}
	}
	// A client whose connections are idle: a new one closes the one idle
	// longest, and is served.
	first, second := dialFrom(t, "127.0.0.4", addr), dialFrom(t, "127.0.0.4", addr)
	get(t, first)
	time.Sleep(50 * time.Millisecond) // until it is idle: the server marks it after answering
	get(t, second)
	time.Sleep(50 * time.Millisecond)
	get(t, dialFrom(t, "127.0.0.4", addr))
	if !closedByServer(first, 2*time.Second) {
		t.Error("the longest idle connection stayed open when a third came, with a cap of 2")
	}
	if closedByServer(second, 200*time.Millisecond) {
		t.Error("the other idle connection was closed too")
	}

	srv.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		open, idle := len(l.open), len(l.idle)
		l.mu.Unlock()
		if open == 0 && idle == 0 && l.Open() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the server closed: %d clients counted, %d idle, %d open; want none", open, idle, l.Open())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLimitListenerIdleGivesWay: with every slot taken by connections
// idle between requests, a new connection closes the one idle longest
// and is served, instead of waiting for the server's IdleTimeout.
func TestLimitListenerIdleGivesWay(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := LimitListener(inner, 3)
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), ConnState: l.ConnState, IdleTimeout: time.Hour}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	addr := inner.Addr().String()
	var held []net.Conn
	for range 3 {
		c := dialFrom(t, "127.0.0.1", addr)
		get(t, c)
		time.Sleep(50 * time.Millisecond) // until it is idle: the server marks it after answering
		held = append(held, c)
	}
	for i, c := range held {
		if closedByServer(c, 100*time.Millisecond) {
			t.Fatalf("idle connection %d was closed with no new one waiting", i+1)
		}
	}
	get(t, dialFrom(t, "127.0.0.1", addr))
	if !closedByServer(held[0], 2*time.Second) {
		t.Error("the longest idle connection stayed open when a new one came")
	}
	for i, c := range held[1:] {
		if closedByServer(c, 100*time.Millisecond) {
			t.Errorf("idle connection %d was closed too", i+2)
		}
	}
}
