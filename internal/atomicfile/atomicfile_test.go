package atomicfile_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"testing"

	"github.com/veilchat/veil/internal/atomicfile"
)

func Example() {
	dir, err := os.MkdirTemp("", "atomicfile")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "state")
	for _, content := range []string{"first", "second"} {
		if err := atomicfile.Replace(path, []byte(content), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	fmt.Println(string(b), fi.Mode().Perm())
	// Output: second -rw-------
}

// TestReplaceMode: the new content gets perm, whatever mode the file it
// replaces had, and nothing else is left in the directory.
func TestReplaceMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Replace(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("%d entries left in the directory", len(entries))
	}
	if err := atomicfile.Replace(filepath.Join(dir, "no", "such", "f"), nil, 0o600); err == nil {
		t.Fatal("a missing directory was accepted")
	}
}
