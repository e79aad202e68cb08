// Package storetest is the conformance suite for [server.Store], the key
// service's persistence: every implementation (SQLite and PostgreSQL through
// [server.OpenStore], and any other a deployment brings) must pass [Run].
//
// The suite checks each method against the contract written on
// [server.Store]: results, ordering, every sentinel error and the order in
// which the checks apply; that a failing call stores nothing; and the
// behaviour under races (one winner among concurrent rotations from one
// epoch, one session per channel among concurrent creators, one card per
// generation among concurrent publishers).
//
// Use it from a _test.go file:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) server.Store {
//			st, err := server.OpenStore(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "k.db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { st.Close() })
//			return st
//		})
//	}
package storetest
