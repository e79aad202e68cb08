package servicetest_test

import (
	"fmt"
	"testing"

	"github.com/veilchat/veil/session"
	"github.com/veilchat/veil/session/servicetest"
)

// An implementation proves its conformance from a test: Run calls newEnv
// once for each check, and each call returns a new, empty service whose
// users each get the Service and Directory acting as them. Over HTTP, that
// is one client per user, each with its own user's token.
func ExampleRun() {
	testMemory := func(t *testing.T) {
		servicetest.Run(t, func(t *testing.T) servicetest.Env {
			dir := new(session.MemoryDirectory)
			svc := &session.MemoryService{Directory: dir}
			return servicetest.Env{
				Service:   svc.As,
				Directory: func(userID string) servicetest.Directory { return dir },
			}
		})
	}
	fmt.Printf("%T\n", testMemory)
	// Output: func(*testing.T)
}
