package storetest_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/keyservice/server/storetest"
)

// A store implementation proves its conformance from a test: Run calls
// open once for each check, and each call returns a new, empty store.
func ExampleRun() {
	testStore := func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) server.Store {
			st, err := server.OpenStore(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "keys.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		})
	}
	fmt.Printf("%T\n", testStore)
	// Output: func(*testing.T)
}
