// Package storetest is the conformance suite for [server.Store], the key
// service's persistence: every implementation (SQLite and PostgreSQL through
// [server.OpenStore], and any other a deployment brings) must pass [Run].
//
// The suite checks each method against the contract written on
// [server.Store]: results, ordering and paging, every sentinel error and
// the order in which the checks apply (an unknown session before a
// refused reader); that a session's roster decides who reads it; that a
// user's grants stay while it is in the roster or the readers an append
// lists, and are deleted, not hidden, once it is in neither; that a
// failing call
// stores nothing; and the behaviour under races (exactly one winner among
// appends at one head, a log extended by concurrent writers with every
// record once, one session per channel among concurrent creators, one
// genesis stored once when sent at once, one card per generation among
// concurrent publishers). Records and cards are opaque bytes to a Store, so
// the suite needs no keys.
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
