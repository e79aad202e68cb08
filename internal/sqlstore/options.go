package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// Options are the settings of OpenWith. The zero value opens as Open does.
type Options struct {
	// MustExist refuses a database in which the namespace has not been
	// set up yet — no migration of it recorded, or, for SQLite, no file —
	// instead of creating it: a mistyped path or DSN then fails at start
	// instead of serving an empty database. The error matches
	// ErrNoDatabase, and nothing is created.
	MustExist bool
	// Exclusive refuses a database that records migrations of another
	// namespace than this one and Companions, and changes nothing in it: a
	// service whose data belongs to another party than its neighbours'
	// (the SSKS's, which the key service must not read) then never adds
	// its tables to their database, nor theirs to its own. The error is a
	// *ForeignDatabaseError.
	Exclusive bool
	// Companions are the namespaces an Exclusive database may also hold
	// (those of the same party).
	Companions []string
}

// ErrNoDatabase is matched by OpenWith's error when Options.MustExist is
// set and the database is not set up for the namespace.
var ErrNoDatabase = errors.New("sqlstore: no such database")

// ForeignDatabaseError is returned by OpenWith with Options.Exclusive when
// the database holds other namespaces' migrations.
type ForeignDatabaseError struct {
	Namespace string   // the namespace being opened
	Found     []string // the other namespaces the database records, sorted
}

// Error implements error.
func (e *ForeignDatabaseError) Error() string {
	return fmt.Sprintf("sqlstore: the database holds the tables of %s; %q must not share a database with them: give each its own",
		strings.Join(e.Found, ", "), e.Namespace)
}

// OpenWith is Open with opts.
func OpenWith(ctx context.Context, dsn, namespace string, migrations []Migration, opts Options) (*DB, error) {
	return open(ctx, dsn, namespace, migrations, opts)
}

// mustExistFile refuses a SQLite file that does not exist, under
// Options.MustExist.
func mustExistFile(path string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s does not exist", ErrNoDatabase, path)
	} else if err != nil {
		return fmt.Errorf("sqlstore: %w", err)
	}
	return nil
}

// checkNamespaces applies opts to the namespaces the database records, in
// the migration transaction, before anything is applied: has is whether
// namespace has migrations recorded.
func checkNamespaces(ctx context.Context, tx *sql.Tx, namespace string, has bool, opts Options) error {
	if opts.Exclusive {
		rows, err := tx.QueryContext(ctx, "SELECT DISTINCT namespace FROM schema_migrations")
		if err != nil {
			return fmt.Errorf("sqlstore: reading schema_migrations: %w", err)
		}
		var foreign []string
		for rows.Next() {
			var ns string
			if err := rows.Scan(&ns); err != nil {
				rows.Close()
				return fmt.Errorf("sqlstore: reading schema_migrations: %w", err)
			}
			if ns != namespace && !slices.Contains(opts.Companions, ns) {
				foreign = append(foreign, ns)
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("sqlstore: reading schema_migrations: %w", err)
		}
		if len(foreign) > 0 {
			slices.Sort(foreign)
			return &ForeignDatabaseError{Namespace: namespace, Found: foreign}
		}
	}
	if opts.MustExist && !has {
		return fmt.Errorf("%w: the database holds no %q tables", ErrNoDatabase, namespace)
	}
	return nil
}
