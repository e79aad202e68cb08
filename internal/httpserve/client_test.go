package httpserve

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func TestClientAddr(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name, remote string
		xff          []string // X-Forwarded-For header lines
		want         string
		reason       string
	}{
		{"direct", "198.51.100.7:5000", nil, "198.51.100.7", "no proxy: the peer is the client"},
		{"untrusted peer's header", "198.51.100.7:5000", []string{"203.0.113.9"}, "198.51.100.7", "anyone can send X-Forwarded-For: only a trusted proxy's counts"},
		{"one proxy", "10.1.2.3:5000", []string{"203.0.113.9"}, "203.0.113.9", "the proxy names the client"},
		{"client-written prefix", "10.1.2.3:5000", []string{"1.1.1.1, 203.0.113.9"}, "203.0.113.9", "entries left of the first untrusted one were written by the client"},
		{"two proxies", "10.1.2.3:5000", []string{"203.0.113.9, 10.9.9.9"}, "203.0.113.9", "trusted hops are skipped from the right"},
		{"several lines", "10.1.2.3:5000", []string{"1.1.1.1", "203.0.113.9, 10.9.9.9"}, "203.0.113.9", "header lines are one list"},
		{"all trusted", "10.1.2.3:5000", []string{"10.7.7.7, 10.8.8.8"}, "10.7.7.7", "a client inside the trusted network"},
		{"no header", "10.1.2.3:5000", nil, "10.1.2.3", "a proxy's own request (a health check)"},
		{"garbage entry", "10.1.2.3:5000", []string{"203.0.113.9, not-an-ip, 10.9.9.9"}, "10.9.9.9", "the walk stops at what does not parse, at the last trusted hop"},
		{"entry with port", "10.1.2.3:5000", []string{"203.0.113.9:4711"}, "203.0.113.9", "some proxies append the port"},
		{"zoned entry", "10.1.2.3:5000", []string{"fe80::1%eth0"}, "10.1.2.3", "a zone is free text (up to the header's size) that would reach every log line: it does not parse"},
		{"zoned entry with port", "10.1.2.3:5000", []string{"[fe80::1%eth0]:4711"}, "10.1.2.3", "nor with a port"},
		{"IPv6 through a proxy", "[fd00::1]:443", []string{"2001:db8::5"}, "2001:db8::5", "IPv6 on both sides"},
		{"mapped peer", "[::ffff:198.51.100.7]:5000", nil, "198.51.100.7", "IPv4-mapped addresses are unmapped, so one client has one key"},
		{"bad remote", "pipe", nil, "invalid IP", "a listener without addresses gives the zero Addr"},
	}
	for _, tc := range tests {
		r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := ClientAddr(r, trusted).String(); got != tc.want {
			t.Errorf("%s: ClientAddr = %s, want %s (%s)", tc.name, got, tc.want, tc.reason)
		}
	}
	// A long chain is read from the right for a bounded number of hops.
	r := &http.Request{RemoteAddr: "10.1.2.3:1", Header: http.Header{"X-Forwarded-For": {"203.0.113.9," + strings.Repeat("10.0.0.1,", 100) + "10.0.0.2"}}}
	if got := ClientAddr(r, trusted); !trusted[0].Contains(got) {
		t.Errorf("a chain of 100 trusted hops: %s, want the last hop read, inside the trusted network", got)
	}
}

func TestClientKey(t *testing.T) {
	t.Parallel()
	tests := []struct{ addr, want, reason string }{
		{"198.51.100.7", "198.51.100.7", "IPv4: the address"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64", "IPv6: the /64 a site gets, so rotating addresses within it does not help"},
		{"2001:db8:1:2:ffff::9", "2001:db8:1:2::/64", "the same /64"},
	}
	for _, tc := range tests {
		if got := ClientKey(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("ClientKey(%s) = %s, want %s (%s)", tc.addr, got, tc.want, tc.reason)
		}
	}
	if got := ClientKey(netip.Addr{}); got != "unknown" {
		t.Errorf("ClientKey of the zero Addr = %q", got)
	}
}

func TestParsePrefixes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string // want: the prefixes joined by spaces, or "error"
		reason   string
	}{
		{"", "", "none"},
		{"10.0.0.0/8, fd00::/8", "10.0.0.0/8 fd00::/8", "a list"},
		{"192.0.2.1", "192.0.2.1/32", "a single address is a /32"},
		{"2001:db8::1", "2001:db8::1/128", "or a /128"},
		{"10.0.0.1/8", "error", "host bits set: a typo for 10.0.0.0/8 or 10.0.0.1/32"},
		{"10.0.0.0/33", "error", "no such prefix length"},
		{"proxy.internal", "error", "names are not resolved"},
		{"fe80::1%eth0", "error", "zones do not appear in client addresses"},
	}
	for _, tc := range tests {
		ps, err := ParsePrefixes(tc.in)
		got := "error"
		if err == nil {
			var parts []string
			for _, p := range ps {
				parts = append(parts, p.String())
			}
			got = strings.Join(parts, " ")
		}
		if got != tc.want {
			t.Errorf("ParsePrefixes(%q) = %q (%v), want %q (%s)", tc.in, got, err, tc.want, tc.reason)
		}
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		given  string
		keep   bool
		reason string
	}{
		{"4bf92f3577b34da6a3ce929d0e0e4736", true, "a trace ID"},
		{"req-1.2:3/4+5=", true, "the characters proxies use"},
		{strings.Repeat("a", 128), true, "at the bound"},
		{strings.Repeat("a", 129), false, "over the bound"},
		{"", false, "none given"},
		{`a" level=ERROR msg="forged`, false, "quotes and spaces could forge a text log line"},
		{"ä", false, "non-ASCII"},
	}
	for _, tc := range tests {
		got := requestID(tc.given)
		if (got == tc.given) != tc.keep {
			t.Errorf("requestID(%q) = %q, kept %v, want %v (%s)", tc.given, got, got == tc.given, tc.keep, tc.reason)
		}
		if !validRequestID(got) {
			t.Errorf("requestID(%q) = %q, which is not itself valid", tc.given, got)
		}
	}
	if a, b := requestID(""), requestID(""); a == b {
		t.Errorf("two generated IDs are equal: %s", a)
	}
}
