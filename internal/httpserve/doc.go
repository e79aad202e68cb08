// Package httpserve is the serving layer Veil's two services share, between
// the connection and a service's routes: request IDs, the client's address
// (behind trusted proxies), one access line per request, metrics by route,
// JSON answers for unknown routes (404) and wrong methods (405 with Allow),
// the Content-Type of bodies (415), a cap on the requests one client has in
// flight, a minimum upload rate for bodies, per-key token buckets
// ([Limiters]) and a listener that caps open connections
// ([LimitListener]).
//
// The key service (keyservice/server) and the SSKS (twoman/ssks) each
// build one [Frontend] in their NewHandler, so that a handler mounted in
// another server keeps these protections; the connection-level limits
// (timeouts, header bytes, open connections) belong to the http.Server
// and its listener, which cmd/veil configures.
package httpserve
