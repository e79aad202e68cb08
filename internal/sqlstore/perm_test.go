package sqlstore

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestNewFilesPrivate: whatever the umask, the database and its -wal and
// -shm are created 0600, through every DSN form that names a file.
func TestNewFilesPrivate(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("permission bits mean little on Windows")
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name, dsn, file, reason string
	}{
		{"sqlite URL", "sqlite://" + filepath.Join(dir, "a.db"), filepath.Join(dir, "a.db"), "the documented form"},
		{"bare path", filepath.Join(dir, "b.db"), filepath.Join(dir, "b.db"), "a path without a scheme"},
		{"file URI", "file:" + filepath.Join(dir, "c%20d.db") + "?cache=private", filepath.Join(dir, "c d.db"), "a URI is percent-decoded, as SQLite does"},
		{"file URI with authority", "file://localhost" + filepath.Join(dir, "e.db"), filepath.Join(dir, "e.db"), "localhost is the only authority SQLite accepts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mustOpen(t, tc.dsn, counterTable)
			for _, suffix := range []string{"", "-wal", "-shm"} {
				fi, err := os.Stat(tc.file + suffix)
				if err != nil {
					t.Fatalf("%s%s: %v (%s)", tc.file, suffix, err, tc.reason)
				}
				if got := fi.Mode().Perm(); got != FileMode {
					t.Errorf("%s%s has mode %04o, want %04o (%s)", tc.file, suffix, got, FileMode, tc.reason)
				}
			}
		})
	}
}

// TestLooseFilesRefused: an existing database, -wal or -shm that group or
// others may access is refused, with an error that names the file and the
// fix, and nothing is left open.
func TestLooseFilesRefused(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("permission bits mean little on Windows")
	}
	for _, tc := range []struct {
		name   string
		loose  string // suffix of the file made group- or world-accessible
		mode   fs.FileMode
		reason string
	}{
		{"world-readable database", "", 0o644, "the default of a file created by hand or by an older release"},
		{"group-readable database", "", 0o640, "a group may be wider than the service"},
		{"group-writable database", "", 0o620, "a writer could plant data"},
		{"world-readable -wal", "-wal", 0o644, "recent writes live in the WAL"},
		{"world-readable -shm", "-shm", 0o604, "SQLite keeps an existing -shm's mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "keys.db")
			first := mustOpen(t, "sqlite://"+path, counterTable)
			if tc.loose == "" {
				if err := first.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				// While a DB is open (another replica, or a crashed run's
				// leftovers) its -wal and -shm exist and are not empty;
				// SQLite resets the mode of an empty one itself.
				mustExec(t, first, "UPDATE counter SET n = n + 1")
			}
			loose := path + tc.loose
			if err := os.Chmod(loose, tc.mode); err != nil {
				t.Fatal(err)
			}
			db, err := Open(context.Background(), "sqlite://"+path, "test", []Migration{counterTable})
			if err == nil {
				db.Close()
				t.Fatalf("Open accepted %s with mode %04o (%s)", loose, tc.mode, tc.reason)
			}
			if db != nil {
				t.Error("Open returned a DB with its error")
			}
			for _, want := range []string{loose + " ", "chmod 600 " + loose} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q (%s)", err, want, tc.reason)
				}
			}
			// After the fix, the database opens.
			if err := os.Chmod(loose, FileMode); err != nil {
				t.Fatal(err)
			}
			mustOpen(t, "sqlite://"+path, counterTable)
		})
	}
}

func TestFilePath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, path, want string
		wantErr          bool
		reason           string
	}{
		{"plain", "/var/lib/veil/keys.db", "/var/lib/veil/keys.db", false, "a path is the file"},
		{"relative", "keys.db", "keys.db", false, "relative to the working directory"},
		{"file absolute", "file:/var/lib/keys.db", "/var/lib/keys.db", false, "no authority"},
		{"file relative", "file:data/keys.db", "data/keys.db", false, "SQLite accepts a relative URI path"},
		{"empty authority", "file:///var/lib/keys.db", "/var/lib/keys.db", false, "an empty authority is local"},
		{"localhost", "file://localhost/var/lib/keys.db", "/var/lib/keys.db", false, "localhost is local"},
		{"escaped", "file:/var/lib/my%20keys.db", "/var/lib/my keys.db", false, "SQLite percent-decodes the path"},
		{"fragment", "file:/var/lib/keys.db#x", "/var/lib/keys.db", false, "SQLite ignores a fragment"},
		{"remote", "file://db.example/keys.db", "", true, "SQLite refuses any other authority"},
		{"bad escape", "file:/var/lib/%zz.db", "", true, "not a URI"},
	} {
		got, err := target{dialect: SQLite, path: tc.path}.filePath()
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("filePath(%q) = %q, %v; want %q, error %v (%s)", tc.path, got, err, tc.want, tc.wantErr, tc.reason)
		}
	}
}
