package pgtest_test

import (
	"database/sql"
	"fmt"
	"testing"

	"github.com/veilchat/veil/internal/pgtest"
)

// A test that needs PostgreSQL asks for a DSN: it gets a schema of its
// own, dropped when the test ends, or is skipped when no database is
// configured.
func ExampleDSN() {
	testWithDatabase := func(t *testing.T) {
		db, err := sql.Open("pgx", pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		// ... tables created here live in the test's own schema.
	}
	_ = testWithDatabase
	fmt.Println("the database comes from", pgtest.EnvVar)
	// Output: the database comes from VEIL_TEST_POSTGRES
}
