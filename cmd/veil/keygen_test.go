package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veilchat/veil/identity"
)

func runVeil(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "alice.veil-identity")
	code, stdout, stderr := runVeil("keygen", "--user", "alice", "--out", out, "--kind", "x25519")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.Import(data)
	if err != nil || id.UserID() != "alice" || id.Card().Kind() != identity.KindX25519 {
		t.Fatalf("the file does not import as alice's x25519 identity: %v", err)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Errorf("identity file mode %v, want 0600", fi.Mode().Perm())
	}
	card, err := readCard(out + ".card")
	if err != nil || !card.Equal(id.Card()) {
		t.Fatalf("the card file does not hold the identity's card: %v", err)
	}
	if !strings.Contains(stdout, id.Card().Fingerprint()) || !strings.Contains(stdout, out+".card") {
		t.Errorf("the output lacks the fingerprint or the card's path:\n%s", stdout)
	}
	// Nothing of the export's secret lines reaches the output.
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.HasPrefix(line, "AGE-SECRET-KEY") || strings.HasPrefix(line, "# veil-generation:") {
			secret := line
			if f := strings.Fields(line); len(f) > 3 {
				secret = f[3] // the seed
			}
			if strings.Contains(stdout+stderr, secret) {
				t.Errorf("keygen printed a secret line of the export")
			}
		}
	}

	// A second run keeps the file; --force replaces it, with mode 0600
	// whatever the old file's mode.
	code, _, stderr = runVeil("keygen", "--user", "alice", "--out", out)
	if again, _ := os.ReadFile(out); code != 1 || !strings.Contains(stderr, "--force") || !bytes.Equal(again, data) {
		t.Errorf("an existing identity: exit %d, %q; the file must stay", code, stderr)
	}
	if err := os.Chmod(out, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr = runVeil("keygen", "--user", "alice", "--out", out, "--force"); code != 0 {
		t.Fatalf("--force: exit %d, %s", code, stderr)
	}
	fi, _ := os.Stat(out)
	if again, _ := os.ReadFile(out); bytes.Equal(again, data) || fi.Mode().Perm() != 0o600 {
		t.Errorf("--force kept the old identity or its mode %v", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("files left behind: %v", entries)
	}
}

func TestKeygenRefuses(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runVeil("keygen", "--user", "a", "--out", link); code != 1 || !strings.Contains(stderr, "exists") {
		t.Errorf("a symbolic link at --out: exit %d, %q", code, stderr)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Error("keygen wrote through a symbolic link")
	}
	// A card path that exists: nothing is written, not even the identity.
	out := filepath.Join(dir, "b.id")
	if err := os.WriteFile(out+".card", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runVeil("keygen", "--user", "b", "--out", out); code != 1 {
		t.Errorf("an existing card file: exit %d", code)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the identity was written although its card could not be: %v", err)
	}
	// An empty passphrase variable is refused by name.
	t.Setenv("VEIL_TEST_EMPTY", "")
	if code, _, stderr := runVeil("keygen", "--user", "c", "--out", filepath.Join(dir, "c"), "--passphrase-env", "VEIL_TEST_EMPTY"); code != 1 || !strings.Contains(stderr, "VEIL_TEST_EMPTY") {
		t.Errorf("an empty passphrase variable: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runVeil("keygen", "--user", "c", "--out", filepath.Join(dir, "c"), "--passphrase-file", filepath.Join(dir, "target.card")); code != 1 || !strings.Contains(stderr, "--passphrase-file") {
		t.Errorf("a missing passphrase file: exit %d, %q", code, stderr)
	}
}

func TestKeygenPassphrase(t *testing.T) {
	dir := t.TempDir()
	const pass = "correct horse battery staple"
	passFile := filepath.Join(dir, "pass")
	if err := os.WriteFile(passFile, []byte(pass+"\r\nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VEIL_TEST_PASSPHRASE", pass)
	for _, src := range [][]string{{"--passphrase-file", passFile}, {"--passphrase-env", "VEIL_TEST_PASSPHRASE"}} {
		out := filepath.Join(dir, src[0][2:]+".age")
		args := append([]string{"keygen", "--user", "carol", "--out", out, "--kind", "x25519", "--work-factor", "15"}, src...)
		code, stdout, stderr := runVeil(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d, %s", src, code, stderr)
		}
		if strings.Contains(stdout+stderr, pass) || !strings.Contains(stdout, "work factor 15") {
			t.Errorf("%v: the output shows the passphrase, or not the protection:\n%s", src, stdout)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		id, err := identity.ImportWithPassphrase(data, pass, 0)
		if err != nil || id.UserID() != "carol" {
			t.Fatalf("%v: the file does not open with the passphrase: %v", src, err)
		}
		if _, err := identity.ImportWithPassphrase(data, pass+"!", 0); !errors.Is(err, identity.ErrWrongPassphrase) {
			t.Errorf("%v: another passphrase opens the file: %v", src, err)
		}
		// inspect sees the protection, and verify reads the card beside it
		// but not the encrypted file.
		if code, stdout, _ := runVeil("inspect", out); code != 0 || !strings.Contains(stdout, "work factor:  15") {
			t.Errorf("inspect of the protected export: exit %d\n%s", code, stdout)
		}
		if _, err := readCard(out); err == nil || !strings.Contains(err.Error(), "card file") {
			t.Errorf("readCard of an encrypted export: %v", err)
		}
	}
	// A short passphrase is warned about, on stderr.
	if err := os.WriteFile(passFile, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runVeil("keygen", "--user", "d", "--out", filepath.Join(dir, "d"), "--kind", "x25519", "--work-factor", "15", "--passphrase-file", passFile); code != 0 || !strings.Contains(stderr, "weak") {
		t.Errorf("a short passphrase: exit %d, %q", code, stderr)
	}
}
