package sqlstore

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"runtime"
	"strings"
)

// FileMode is the permission of the SQLite files a DB creates: the
// database and, since SQLite gives them the database's permission, its
// -wal and -shm. The files hold what the services keep (the backend's
// twoManRuleKeys, the SSKS's encrypted identities and code hashes), so
// only the service's user may read them.
const FileMode fs.FileMode = 0o600

// filePath returns the name of the SQLite file t opens: the path as given,
// or the path of a "file:" URI (SQLite's URI rules: an optional empty or
// "localhost" authority, percent-decoding, a fragment ignored).
func (t target) filePath() (string, error) {
	rest, ok := strings.CutPrefix(t.path, "file:")
	if !ok {
		return t.path, nil
	}
	rest, _, _ = strings.Cut(rest, "#")
	if after, ok := strings.CutPrefix(rest, "//"); ok {
		authority, p, _ := strings.Cut(after, "/")
		if authority != "" && authority != "localhost" {
			return "", fmt.Errorf("sqlstore: file: URI with authority %q; only a local file can be opened", authority)
		}
		rest = "/" + p
	}
	p, err := url.PathUnescape(rest)
	if err != nil || p == "" {
		return "", errors.New("sqlstore: malformed file: URI")
	}
	return p, nil
}

// createPrivate creates the SQLite file at path with FileMode before the
// driver opens it (the driver would create it with 0644 less the umask),
// unless it exists or create is false, and refuses a file that group or
// others may access.
func createPrivate(path string, create bool) error {
	if create {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, FileMode)
		if err != nil {
			return fmt.Errorf("sqlstore: creating the SQLite file: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("sqlstore: creating the SQLite file: %w", err)
		}
	}
	return checkPrivate(path, true)
}

// checkPrivate refuses a file that group or others may read or write,
// naming the file and the fix. A missing file passes unless mustExist.
// On Windows, where permission bits mean little, it checks nothing.
func checkPrivate(path string, mustExist bool) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) && !mustExist {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlstore: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("sqlstore: %s is accessible to group or others (mode %04o); it must be private to the service's user: chmod 600 %s", path, perm, path)
	}
	return nil
}
