package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/veilchat/veil/internal/sqlstore"
)

// A service declares its schema as migrations, writes in Tx with ?
// placeholders rebound for the dialect, and maps unique violations to its
// own conflict error.
func Example() {
	dir, err := os.MkdirTemp("", "sqlstore-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	db, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(dir, "notes.db"), "notes", []sqlstore.Migration{{
		Version:  1,
		Name:     "notes",
		SQLite:   "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
		Postgres: "CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL)",
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	insert := db.Dialect().Rebind("INSERT INTO notes (id, body) VALUES (?, ?)")
	add := func(id int, body string) error {
		return db.Tx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, insert, id, body)
			return err
		})
	}
	fmt.Println(add(1, "hello"))
	fmt.Println(sqlstore.IsUniqueViolation(add(1, "again")))

	var body string
	if err := db.QueryRowContext(ctx, db.Dialect().Rebind("SELECT body FROM notes WHERE id = ?"), 1).Scan(&body); err != nil {
		log.Fatal(err)
	}
	fmt.Println(body)
	fmt.Println(sqlstore.Postgres.Rebind("SELECT body FROM notes WHERE id = ?"))
	// Output:
	// <nil>
	// true
	// hello
	// SELECT body FROM notes WHERE id = $1
}
