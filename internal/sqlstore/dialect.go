package sqlstore

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Dialect names the database behind a DB. Its zero value names none.
type Dialect int

const (
	// SQLite is modernc.org/sqlite (pure Go), one file, WAL mode.
	SQLite Dialect = iota + 1
	// Postgres is PostgreSQL through github.com/jackc/pgx/v5/stdlib.
	Postgres
)

// String returns "sqlite", "postgres" or "unknown".
func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return "unknown"
}

// Rebind returns query with its ? placeholders numbered $1, $2, … for
// Postgres, so that one SQL text serves both dialects. For SQLite it
// returns query unchanged. Question marks inside string literals
// ('…'), quoted identifiers ("…") and comments (-- and /* */) are left
// alone. Rebind is pure; callers with fixed queries rebind them once.
func (d Dialect) Rebind(query string) string {
	if d != Postgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		case c == '\'' || c == '"':
			// Copy through the closing quote; a doubled quote is an
			// escaped one and keeps the literal open.
			j := i + 1
			for j < len(query) {
				if query[j] == c {
					if j+1 < len(query) && query[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			end := min(j+1, len(query))
			b.WriteString(query[i:end])
			i = end - 1
			continue
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			end := strings.IndexByte(query[i:], '\n')
			if end < 0 {
				end = len(query) - i
			}
			b.WriteString(query[i : i+end])
			i += end - 1
			continue
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			end := strings.Index(query[i+2:], "*/")
			stop := len(query)
			if end >= 0 {
				stop = i + 2 + end + 2
			}
			b.WriteString(query[i:stop])
			i = stop - 1
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Placeholders returns n question-mark placeholders separated by commas,
// for an IN list or a VALUES row: Placeholders(3) is "?, ?, ?". Rebind
// numbers them for Postgres. It panics if n < 1.
func Placeholders(n int) string {
	if n < 1 {
		panic("sqlstore: Placeholders needs at least one")
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// target is a parsed DSN: which dialect, and what to hand its driver.
type target struct {
	dialect Dialect
	// path is the SQLite file name or "file:" URI without the settings
	// this package adds; for Postgres it is the DSN as given.
	path string
	// query holds the SQLite URI parameters the caller gave (file: form
	// only); the ones this package sets are refused.
	query url.Values
}

var errMemory = errors.New("sqlstore: in-memory SQLite databases are not supported (the writer and reader pools would see different databases); use a file, e.g. in t.TempDir()")

// parseDSN sorts a DSN into a dialect and what its driver needs.
func parseDSN(dsn string) (target, error) {
	switch {
	case dsn == "":
		return target{}, errors.New("sqlstore: empty DSN")
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if _, err := url.Parse(dsn); err != nil {
			// Not wrapped: a *url.Error quotes the DSN, password included.
			return target{}, errors.New("sqlstore: malformed postgres:// DSN")
		}
		return target{dialect: Postgres, path: dsn}, nil
	case strings.HasPrefix(dsn, "sqlite://"):
		// "sqlite:///abs/path.db" and "sqlite://relative/path.db": the
		// rest is a file name, taken literally.
		return sqliteFile(strings.TrimPrefix(dsn, "sqlite://"))
	case strings.HasPrefix(dsn, "file:"):
		path, rawQuery, _ := strings.Cut(dsn, "?")
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return target{}, errors.New("sqlstore: malformed query in file: DSN")
		}
		for k := range q {
			// The driver's own keys would override the durability and
			// locking settings this package guarantees.
			if strings.HasPrefix(k, "_") {
				return target{}, fmt.Errorf("sqlstore: DSN parameter %q is not allowed; sqlstore sets the connection's pragmas itself", k)
			}
			if k == "mode" && q.Get(k) != "rwc" && q.Get(k) != "rw" {
				if q.Get(k) == "memory" {
					return target{}, errMemory
				}
				return target{}, fmt.Errorf("sqlstore: mode=%s is not supported", q.Get(k))
			}
		}
		if path == "file:" || strings.HasPrefix(path, "file::memory:") {
			return target{}, errMemory
		}
		return target{dialect: SQLite, path: path, query: q}, nil
	case strings.Contains(dsn, "://"):
		scheme, _, _ := strings.Cut(dsn, "://")
		return target{}, fmt.Errorf("sqlstore: unsupported DSN scheme %q (want sqlite://, file:, a path, or postgres://)", scheme)
	default:
		for _, kw := range []string{"host=", "dbname=", "user="} {
			if strings.Contains(dsn, kw) {
				return target{}, errors.New("sqlstore: a key=value connection string is not supported; use a postgres:// URL")
			}
		}
		if scheme, _, ok := strings.Cut(dsn, ":/"); ok && len(scheme) > 1 && strings.Trim(strings.ToLower(scheme), "abcdefghijklmnopqrstuvwxyz+.-") == "" {
			return target{}, fmt.Errorf("sqlstore: %q:/ looks like a URL scheme without its //; write %s:// (or ./%s:/... for a file)", scheme, scheme, scheme)
		}
		return sqliteFile(dsn)
	}
}

func sqliteFile(path string) (target, error) {
	switch {
	case path == "" || path == ":memory:":
		return target{}, errMemory
	case strings.ContainsRune(path, '?'):
		// The driver would silently cut the name at '?'.
		return target{}, errors.New("sqlstore: a SQLite file name may not contain '?'; use a file: URI for SQLite URI parameters")
	}
	return target{dialect: SQLite, path: path}, nil
}

// sqliteDSN returns the driver DSN for path with the given settings, which
// are modernc.org/sqlite query keys in the order given.
func (t target) sqliteDSN(settings ...string) string {
	var b strings.Builder
	b.WriteString(t.path)
	sep := byte('?')
	for k, vs := range t.query {
		for _, v := range vs {
			b.WriteByte(sep)
			b.WriteString(url.QueryEscape(k) + "=" + url.QueryEscape(v))
			sep = '&'
		}
	}
	for _, s := range settings {
		b.WriteByte(sep)
		b.WriteString(s)
		sep = '&'
	}
	return b.String()
}
