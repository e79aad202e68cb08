package httpserve

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// maxForwardedHops bounds the X-Forwarded-For entries ClientAddr reads,
// from the right: a chain of proxies longer than this is not a deployment.
const maxForwardedHops = 32

// ClientAddr returns the address of r's client. It is the peer address
// (r.RemoteAddr), unless the peer is a trusted proxy: then the
// X-Forwarded-For entries are read from the right (the nearest hop) and the
// first address not in trusted is the client's — entries further left were
// written by the client itself and prove nothing. If every entry is
// trusted, the leftmost is the client; an entry that does not parse ends
// the walk at the last trusted hop before it. IPv4-mapped IPv6 addresses
// are unmapped. A RemoteAddr that does not parse gives the zero Addr.
func ClientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := parseHost(r.RemoteAddr)
	if !peer.IsValid() || !inAny(peer, trusted) {
		return peer
	}
	var entries []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		entries = append(entries, strings.Split(v, ",")...)
	}
	client := peer
	for i, n := len(entries)-1, 0; i >= 0 && n < maxForwardedHops; i, n = i-1, n+1 {
		a := parseHost(strings.TrimSpace(entries[i]))
		if !a.IsValid() {
			return client
		}
		client = a
		if !inAny(a, trusted) {
			return a
		}
	}
	return client
}

// parseHost parses "addr", "addr:port" or "[addr]:port". An address with
// a zone does not parse: the zone is free text, which would reach the log.
func parseHost(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Addr().Zone() != "" {
			return netip.Addr{}
		}
		return ap.Addr().Unmap()
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}
	}
	return a.Unmap()
}

func inAny(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientKey is the key per-client limits count a client address under: an
// IPv4 address as such, an IPv6 address by its /64, the smallest network a
// site is assigned (an attacker with one has 2⁶⁴ addresses to rotate
// through). The zero Addr is "unknown".
func ClientKey(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "unknown"
	case a.Is4():
		return a.String()
	}
	p, _ := a.Prefix(64) // cannot fail for IPv6
	return p.String()
}

// ParsePrefixes parses a comma-separated list of CIDR prefixes ("10.0.0.0/8,
// fd00::/8") or single addresses (taken as /32 or /128). An empty list is
// nil. Prefixes with host bits set are refused, as likely typos.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if !strings.Contains(item, "/") {
			a, err := netip.ParseAddr(item)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("entry %d is neither an address nor a CIDR prefix", i+1)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("entry %d is not a CIDR prefix", i+1)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("entry %d has host bits set (did you mean %s?)", i+1, p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}
