package server

import (
	"testing"

	"golang.org/x/time/rate"

	"github.com/veilchat/veil/internal/pgtest"
	"github.com/veilchat/veil/session"
	"github.com/veilchat/veil/session/servicetest"
)

// TestServiceConformance runs the session.Service and Directory suite on
// the key service as its users reach it: a keyservice.Client per user over
// HTTP to the Handler, on SQLite and on PostgreSQL. The handler pages by
// servicetest.MaxGrantsPerCall, so the suite's larger sessions come over
// several pages, and does not rate-limit the suite's bursts.
func TestServiceConformance(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			if b.name == "postgres" && !pgtest.Available() {
				t.Skip(pgtest.EnvVar + " not set")
			}
			servicetest.Run(t, func(t *testing.T) servicetest.Env {
				srv := newTestServer(t, b.open(t), func(c *Config) {
					c.MaxMembersPerCall = servicetest.MaxGrantsPerCall
					c.RateLimit, c.RateBurst = rate.Inf, 1
				})
				return servicetest.Env{
					Service:   func(user string) session.Service { return srv.client(t, user) },
					Directory: func(user string) servicetest.Directory { return srv.client(t, user) },
				}
			})
		})
	}
}
