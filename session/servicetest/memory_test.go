package servicetest_test

import (
	"testing"

	"github.com/veilchat/veil/session"
	"github.com/veilchat/veil/session/servicetest"
)

// TestMemory runs the suite on the in-memory implementations, the
// MemoryService verifying records with the cards of the MemoryDirectory as
// the key service verifies them with its own.
func TestMemory(t *testing.T) {
	t.Parallel()
	servicetest.Run(t, func(t *testing.T) servicetest.Env {
		dir := new(session.MemoryDirectory)
		svc := &session.MemoryService{Directory: dir}
		return servicetest.Env{
			Service:   svc.As,
			Directory: func(string) servicetest.Directory { return dir },
		}
	})
}
