package atomicfile

import (
	"os"
	"path/filepath"
)

// Replace writes data to path with mode perm, replacing any file there
// atomically: it writes a temporary file in the same directory, syncs it
// and renames it over path, so that a reader sees the old content or the
// new, never a part, and the old file's mode never applies to the new
// content. It does not sync the directory: a caller that needs the rename
// to survive a power loss syncs it too.
func Replace(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".veil-tmp-*")
	if err != nil {
		return err
	}
	// After the rename there is nothing left to remove: the error of this
	// clean-up only matters on the failure paths, which return theirs.
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
