package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/pgtest"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/keyservice"
)

// deployBlocks returns the shell blocks of docs/DEPLOY.md marked
// "<!-- verbatim: NAME -->", by name, without the indentation of a block
// inside a list.
func deployBlocks(t *testing.T) map[string]string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "DEPLOY.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- verbatim: ([a-z0-9-]+) -->\\n([ ]*)```sh\\n(.*?)\\n[ ]*```")
	out := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(doc), -1) {
		var lines []string
		for _, l := range strings.Split(m[3], "\n") {
			lines = append(lines, strings.TrimPrefix(l, m[2]))
		}
		out[m[1]] = strings.Join(lines, "\n")
	}
	return out
}

// docEnv is the environment the blocks run in: the PATH and nothing of
// Veil's but what the test passes (a free port instead of the default).
func docEnv(dir string, extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "VEIL_ADDR=127.0.0.1:0"}, extra...)
}

// runBlock runs a block to its end with sh -e in dir.
func runBlock(t *testing.T, dir, name, script string, env []string) {
	t.Helper()
	cmd := exec.Command("sh", "-ec", script)
	cmd.Dir, cmd.Env = dir, env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the %s block of DEPLOY.md failed: %v\n%s\n---\n%s", name, err, script, out)
	}
}

// startBlock runs a block that starts a service, waits for the line with
// its URL and returns the URL and a function that stops it (SIGTERM to
// its process group).
func startBlock(t *testing.T, dir, name, script string, env []string) (string, func()) {
	t.Helper()
	cmd := exec.Command("sh", "-ec", script)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		stop()
		t.Fatalf("the %s block of DEPLOY.md started nothing:\n%s\n---\n%s", name, script, stderr.String())
	}
	go io.Copy(io.Discard, stdout)
	line := lines.Text()
	i := strings.Index(line, "http://")
	if i < 0 {
		stop()
		t.Fatalf("the %s block printed %q", name, line)
	}
	u := strings.Fields(line[i:])[0]
	if resp, err := http.Get(u + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		stop()
		t.Fatalf("the %s block's service: /healthz %v %v\n%s", name, resp, err, stderr.String())
	} else {
		resp.Body.Close()
	}
	return u, stop
}

// TestDeployCommandsVerbatim runs the marked commands of docs/DEPLOY.md as
// written, in an empty directory holding the veil binary: the key
// service's setup and start, a token signed with the key pair the setup
// made, an online backup, a restore; the SSKS's setup and start against a
// local SMTP server; and, with a test PostgreSQL, the replica's start.
func TestDeployCommandsVerbatim(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	for _, tool := range []string{"sh", "openssl", "sqlite3", "install"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the documented commands need %s: %v", tool, err)
		}
	}
	bin, err := buildVeil()
	if err != nil {
		t.Fatal(err)
	}
	blocks := deployBlocks(t)
	for _, name := range []string{"keys-setup", "keys-start", "keys-backup", "keys-restore", "pg-start", "ssks-setup", "ssks-start"} {
		if blocks[name] == "" {
			t.Fatalf("DEPLOY.md has no %q block", name)
		}
	}
	dir := t.TempDir()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "veil"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// The key service: setup, start, a write with a token of the backend's
	// key, a backup while it runs, a later write, a restore.
	env := docEnv(dir)
	runBlock(t, dir, "keys-setup", blocks["keys-setup"], env)
	u, stop := startBlock(t, dir, "keys-start", blocks["keys-start"], env)
	priv := backendKey(t, filepath.Join(dir, "keys-data", "jwt-ed25519.key"))
	publish := func(user string) {
		t.Helper()
		id, err := identity.Generate(testrand.New("deploy-"+user), user, identity.Options{Kind: identity.KindX25519})
		if err != nil {
			t.Fatal(err)
		}
		if err := edClient(t, u, priv, user).PublishCard(ctx, id.Card()); err != nil {
			t.Fatalf("publishing %s's card with a token of the documented key pair: %v", user, err)
		}
	}
	publish("alice")
	runBlock(t, dir, "keys-backup", blocks["keys-backup"], env)
	publish("bob")
	stop()
	runBlock(t, dir, "keys-restore", blocks["keys-restore"], env)
	u, stop = startBlock(t, dir, "keys-start", blocks["keys-start"], env)
	c := edClient(t, u, priv, "carol")
	if _, err := c.History(ctx, "alice"); err != nil {
		t.Errorf("alice's card, published before the backup, after the restore: %v", err)
	}
	if _, err := c.History(ctx, "bob"); !errors.Is(err, keyservice.ErrNotFound) {
		t.Errorf("bob's card, published after the backup, after the restore: %v, want not found", err)
	}
	stop()

	// The SSKS, with the SMTP settings in its environment.
	smtpAddr, certPEM := startSMTP(t, true)
	ca := filepath.Join(t.TempDir(), "smtp-ca.pem")
	if err := os.WriteFile(ca, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ssksEnv := docEnv(dir, "VEIL_SMTP_ADDR="+smtpAddr, "VEIL_SMTP_FROM=codes@veil.test", "VEIL_SMTP_CA_FILE="+ca)
	runBlock(t, dir, "ssks-setup", blocks["ssks-setup"], ssksEnv)
	_, stop = startBlock(t, dir, "ssks-start", blocks["ssks-start"], ssksEnv)
	stop()
	_, stop = startBlock(t, dir, "ssks-start", blocks["ssks-start"], ssksEnv) // started again
	stop()

	// A replica on PostgreSQL, the connection in PG* variables.
	if !pgtest.Available() {
		t.Log(pgtest.EnvVar + " not set: the PostgreSQL block is not run")
		return
	}
	pgEnv := docEnv(dir, freshDatabase(t)...)
	_, stop = startBlock(t, dir, "pg-start", blocks["pg-start"], pgEnv)
	stop()
}

// backendKey reads the Ed25519 private key the setup made for the backend.
func backendKey(t *testing.T, path string) ed25519.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		t.Fatalf("%s holds a %T", path, k)
	}
	return priv
}

// edClient is a key service client for user with an EdDSA token, as the
// backend would sign it.
func edClient(t *testing.T, u string, priv ed25519.PrivateKey, user string) *keyservice.Client {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"user_id": user, "exp": time.Now().Add(time.Hour).Unix()}).SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: u, Token: keyservice.StaticToken(tok), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// freshDatabase creates a database in the test PostgreSQL, dropped when
// the test ends, and returns the PG* variables that reach it.
func freshDatabase(t *testing.T) []string {
	t.Helper()
	base := os.Getenv(pgtest.EnvVar)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	var r [6]byte
	if _, err := testrand.New(t.Name()).Read(r[:]); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("veil_deploy_%s_%d", hex.EncodeToString(r[:]), time.Now().UnixNano())
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		admin.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE " + name + " WITH (FORCE)")
		admin.Close()
	})
	pu, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := pu.User.Password()
	env := []string{"PGHOST=" + pu.Hostname(), "PGUSER=" + pu.User.Username(), "PGPASSWORD=" + pw, "PGDATABASE=" + name}
	if p := pu.Port(); p != "" {
		env = append(env, "PGPORT="+p)
	}
	if m := pu.Query().Get("sslmode"); m != "" {
		env = append(env, "PGSSLMODE="+m)
	}
	return env
}
