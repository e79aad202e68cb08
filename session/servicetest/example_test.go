package servicetest_test

import (
	"context"
	"fmt"

	"github.com/veilchat/veil/session"
	"github.com/veilchat/veil/session/servicetest"
)

// An implementation proves its conformance from a test, giving Run a new,
// empty Env for each of its checks:
//
//	func TestConformance(t *testing.T) {
//		servicetest.Run(t, func(t *testing.T) servicetest.Env { return newEnv() })
//	}
//
// An Env gives each user the Service and the Directory acting as that
// user. In memory, one MemoryService and one MemoryDirectory serve
// everyone; over HTTP, each user gets a client with its own token.
func Example() {
	newEnv := func() servicetest.Env {
		dir := new(session.MemoryDirectory)
		svc := &session.MemoryService{Directory: dir}
		return servicetest.Env{
			Service:   svc.As,
			Directory: func(string) servicetest.Directory { return dir },
		}
	}

	// A new Env is empty: no session, no card.
	env, ctx := newEnv(), context.Background()
	_, err := env.Service("alice").Lookup(ctx, "messaging:general")
	fmt.Println(err)
	_, err = env.Directory("alice").History(ctx, "alice")
	fmt.Println(err)
	// Output:
	// session: unknown session
	// session: unknown user
}
