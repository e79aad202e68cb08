package server

import (
	"net/http"
	"net/url"
	"strings"
)

// slashUserRoute routes a request for the cards of the user ID "/" (an
// escaped path /v1/users/%2F/cards), which http.ServeMux cannot route: it
// reads a path segment that decodes to "/" alone as the end of the path,
// so the {user} wildcard never matches it. It returns the handler the mux
// has for any other user's cards, with the path value set by hand
// (httpserve.Config.Route).
func (h *Handler) slashUserRoute(r *http.Request, lookup func(*http.Request) (http.Handler, string)) (http.Handler, string, bool) {
	const prefix, suffix = "/v1/users/", "/cards"
	p := r.URL.EscapedPath()
	if !strings.HasPrefix(p, prefix) || !strings.HasSuffix(p, suffix) || len(p) <= len(prefix)+len(suffix) {
		return nil, "", false
	}
	seg := p[len(prefix) : len(p)-len(suffix)]
	if user, err := url.PathUnescape(seg); err != nil || user != "/" {
		return nil, "", false
	}
	probe := r.Clone(r.Context())
	probe.URL = &url.URL{Path: prefix + "_" + suffix}
	handler, pattern := lookup(probe)
	if !strings.HasSuffix(pattern, prefix+"{user}"+suffix) {
		return nil, "", false // not a route of cards (a method without one): the mux answers
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.SetPathValue("user", "/")
		handler.ServeHTTP(w, r)
	}), pattern, true
}
