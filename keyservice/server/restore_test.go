package server

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/veilchat/veil/session"
)

// backupSQLite makes an online backup of the SQLite database at src into
// dst, as docs/DEPLOY.md says: with the sqlite3 command's .backup when it
// is installed, else with VACUUM INTO, which the service's own driver runs.
func backupSQLite(t *testing.T, src, dst string) {
	t.Helper()
	if path, err := exec.LookPath("sqlite3"); err == nil {
		out, err := exec.Command(path, src, ".backup '"+dst+"'").CombinedOutput()
		if err != nil {
			t.Fatalf("sqlite3 .backup: %v\n%s", err, out)
		}
		return
	}
	db, err := sql.Open("sqlite", src)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("VACUUM INTO ?", dst); err != nil {
		t.Fatalf("VACUUM INTO: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the handler's concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRestoreHeals restores the key service from an older backup — after
// which it has lost a removal, rotations, an addition and a promotion —
// and checks that the members' clients heal the sessions on their own: the
// first to send (or rotate) publishes again the records it verified, with
// their grants wrapped anew, sending works again for everyone, the member
// removed since the backup is locked out again, and the service's log
// names every record published again with its session ID.
func TestRestoreHeals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "keys.db")
	logs := new(syncBuffer)
	var current atomic.Pointer[http.Handler]
	var store Store
	start := func() {
		var err error
		if store, err = OpenStore(ctx, db); err != nil {
			t.Fatal(err)
		}
		h, err := NewHandler(Config{Store: store, Auth: Auth{Keys: []Key{{HS256: NewSecret(testSecret)}}},
			Logger: slog.New(slog.NewJSONHandler(logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		var hh http.Handler = h
		current.Store(&hh)
	}
	start()
	t.Cleanup(func() { store.Close() })
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*current.Load()).ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)
	srv := &testServer{Server: ts}

	alice, bob, carol, dave, erin := srv.member(t, "alice"), srv.member(t, "bob"), srv.member(t, "carol"), srv.member(t, "dave"), srv.member(t, "erin")
	const team, pair = "messaging:team", "messaging:pair"
	s1, err := alice.mgr.Create(ctx, team, []string{"bob", "carol", "dave"})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := alice.mgr.Create(ctx, pair, []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{alice, bob, carol, dave} {
		text := sealAs(t, m, s1.ID(), team, "before-"+m.id.UserID(), "before the backup")
		for _, r := range []*member{alice, bob, carol, dave} {
			if _, err := openAs(r, m.id.UserID(), team, "before-"+m.id.UserID(), text); err != nil {
				t.Fatalf("%s opens %s's message: %v", r.id.UserID(), m.id.UserID(), err)
			}
		}
	}

	backup := filepath.Join(dir, "backup.db")
	backupSQLite(t, db, backup)

	// After the backup: alice removes carol (epoch 1), bob rotates (epoch
	// 2), alice adds erin with history and makes bob an admin; in the
	// other session bob rotates. Everyone's client verifies it all.
	if err := alice.mgr.Revoke(ctx, s1.ID(), []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	if err := bob.mgr.Rotate(ctx, s1.ID()); err != nil {
		t.Fatal(err)
	}
	if err := alice.mgr.Extend(ctx, s1.ID(), []string{"erin"}, false); err != nil {
		t.Fatal(err)
	}
	if err := alice.mgr.SetAdmin(ctx, s1.ID(), "bob", true); err != nil {
		t.Fatal(err)
	}
	if err := bob.mgr.Rotate(ctx, s2.ID()); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{alice, bob, dave, erin} {
		sealAs(t, m, s1.ID(), team, "after-"+m.id.UserID(), "after the backup")
	}
	sealAs(t, alice, s2.ID(), pair, "after", "after the backup")
	wantHead := func(id session.ID) session.Head {
		h, err := alice.c.Head(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	head1, head2 := wantHead(s1.ID()), wantHead(s2.ID())
	if head1.Seq != 4 || head2.Seq != 1 {
		t.Fatalf("heads before the restore: %d and %d, want 4 and 1", head1.Seq, head2.Seq)
	}

	// The restore: stop, put the backup in place, start.
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{db, db + "-wal", db + "-shm"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	copyFile(t, backup, db)
	start()
	if h := wantHead(s1.ID()); h.Seq != 0 {
		t.Fatalf("the restored head is record %d, want the genesis", h.Seq)
	}

	// bob sends: his client finds the service behind its floor, publishes
	// alice's removal of carol, his rotation, alice's addition of erin and
	// her promotion of bob again, and seals under epoch 2.
	text := sealAs(t, bob, s1.ID(), team, "healed-bob", "healed")
	if h := wantHead(s1.ID()); h != head1 {
		t.Fatalf("the head after healing: %+v, want %+v", h, head1)
	}
	if h := header(t, text); h.Epoch != 2 {
		t.Fatalf("bob sealed under epoch %d, want 2", h.Epoch)
	}
	for _, m := range []*member{alice, dave, erin} {
		if got, err := openAs(m, "bob", team, "healed-bob", text); err != nil || got != "healed" {
			t.Fatalf("%s opens bob's message after the restore: %q, %v", m.id.UserID(), got, err)
		}
		sealAs(t, m, s1.ID(), team, "healed-"+m.id.UserID(), "sending works again")
	}
	// carol, removed after the backup, is removed again: she neither
	// reads the new epoch nor sends.
	if _, err := openAs(carol, "bob", team, "healed-bob", text); err == nil {
		t.Fatal("carol, removed since the backup, opened a message sent after the restore")
	}
	if _, err := carol.mgr.SealText(ctx, s1.ID(), session.Binding{ChannelCID: team, MessageID: "carol", SenderID: "carol"}, []byte("x"), 5000); err == nil {
		t.Fatal("carol, removed since the backup, sealed after the restore")
	}
	// In the other session alice heals by rotating — the documented answer
	// to a rollback, which failed as long as the log was behind — and
	// publishes bob's rotation again on the way.
	if err := alice.mgr.Rotate(ctx, s2.ID()); err != nil {
		t.Fatalf("alice rotates after the restore: %v", err)
	}
	if h := wantHead(s2.ID()); h.Seq != 2 {
		t.Fatalf("the other session's head after healing: %d, want 2", h.Seq)
	}
	text = sealAs(t, alice, s2.ID(), pair, "healed", "rotated")
	if got, err := openAs(bob, "alice", pair, "healed", text); err != nil || got != "rotated" {
		t.Fatalf("bob opens alice's message: %q, %v", got, err)
	}

	// The service's log names each record published again, by session.
	for _, want := range []string{
		`"msg":"membership change","session":"` + s1.ID().String() + `","seq":1,"epoch":1,"signer":"alice","new_epoch":true,"republished_by":"bob","removed":["carol"]`,
		`"msg":"membership change","session":"` + s1.ID().String() + `","seq":3,"epoch":2,"signer":"alice","republished_by":"bob","added":["erin"]`,
		`"msg":"membership change","session":"` + s2.ID().String() + `","seq":1,"epoch":1,"signer":"bob","new_epoch":true,"republished_by":"alice"`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the service's log lacks %s", want)
		}
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
