package streamadapter

import (
	"testing"

	"github.com/veilchat/veil/keyservice/server"
)

// For the tests of package streamadapter_test.
var KeyClient = testKeyClient

// NewKeyService runs a key service with the default limits until the test
// ends and returns its URL.
func NewKeyService(tb testing.TB) string { return startTestKeyService(tb, server.Config{}) }
