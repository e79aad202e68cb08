package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// ssksArgs are the settings the SSKS needs besides its database.
var ssksArgs = []string{"--ssks-app-keys", strings.Repeat("k", 32), "--ssks-hash-key", strings.Repeat("ab", 32), "--insecure-log-codes"}

// serveFor runs `veil serve` in-process with args for at most d: a
// service that starts serves until then and exits 0.
func serveFor(d time.Duration, args ...string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var out, errOut bytes.Buffer
	if !slices.Contains(args, "--ssks") {
		args = append([]string{"--jwt-secret", strings.Repeat("s", 32)}, args...)
	}
	code := run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), &out, &errOut)
	return code, errOut.String()
}

// namespacesIn lists the services whose tables a SQLite file holds.
func namespacesIn(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT DISTINCT namespace FROM schema_migrations ORDER BY namespace")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var ns string
		rows.Scan(&ns)
		out = append(out, ns)
	}
	return out
}

// TestServeDatabases: a database is created only with --create (a mistyped
// --db fails instead of starting an empty service); the key service and
// the SSKS default to different files, and each refuses the other's
// database without adding its tables to it.
func TestServeDatabases(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	keys, vault := filepath.Join(dir, "keys.db"), filepath.Join(dir, "ssks.db")

	if code, stderr := serveFor(5*time.Second, "--db", keys); code != 1 || !strings.Contains(stderr, "--create") {
		t.Fatalf("the key service on a missing file: exit %d, %q; want a refusal naming --create", code, stderr)
	}
	if code, stderr := serveFor(5*time.Second, append([]string{"--ssks", "--db", vault}, ssksArgs...)...); code != 1 || !strings.Contains(stderr, "--create") {
		t.Fatalf("the SSKS on a missing file: exit %d, %q; want a refusal naming --create", code, stderr)
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "*")); len(entries) != 0 {
		t.Fatalf("refused starts created %v", entries)
	}
	// Defaults: distinct files, named in the refusal.
	if _, stderr := serveFor(5 * time.Second); !strings.Contains(stderr, defaultKeysDB) {
		t.Errorf("the key service's default database: %q, want %s", stderr, defaultKeysDB)
	}
	if _, stderr := serveFor(5*time.Second, append([]string{"--ssks"}, ssksArgs...)...); !strings.Contains(stderr, defaultSSKSDB) {
		t.Errorf("the SSKS's default database: %q, want %s", stderr, defaultSSKSDB)
	}
	if defaultKeysDB == defaultSSKSDB || defaultKeysAddr == defaultSSKSAddr {
		t.Fatal("the services share a default")
	}

	// With --create each sets up its own; started again, each opens its
	// own without --create.
	for _, args := range [][]string{{"--db", keys}, append([]string{"--ssks", "--db", vault}, ssksArgs...)} {
		for _, create := range []bool{true, false} {
			a := args
			if create {
				a = append([]string{"--create"}, args...)
			}
			if code, stderr := serveFor(5*time.Second, a...); code != 0 {
				t.Fatalf("veil serve %v: exit %d, %s", a, code, stderr)
			}
		}
	}
	// Each refuses the other's database, with or without --create, and
	// adds nothing to it.
	for _, tc := range []struct {
		args []string
		file string
		want string
	}{
		{[]string{"--create", "--db", vault}, vault, "ssks"},
		{append([]string{"--ssks", "--create", "--db", keys}, ssksArgs...), keys, "keyservice"},
	} {
		before := namespacesIn(t, tc.file)
		code, stderr := serveFor(5*time.Second, tc.args...)
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("veil serve %v: exit %d, %q; want a refusal naming %s's tables", tc.args, code, stderr, tc.want)
		}
		if after := namespacesIn(t, tc.file); !slices.Equal(before, after) {
			t.Errorf("the refused start changed %s: %v -> %v", tc.file, before, after)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, defaultKeysDB)); err == nil {
		t.Error("a default database was created without --create")
	}
}
