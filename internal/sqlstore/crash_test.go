package sqlstore

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

const crashChildEnv = "VEIL_SQLSTORE_CRASH_CHILD"

var crashTable = Migration{Version: 1, Name: "acks",
	SQLite:   "CREATE TABLE acks (i INTEGER PRIMARY KEY, pad BLOB NOT NULL)",
	Postgres: "CREATE TABLE acks (i INTEGER PRIMARY KEY, pad BYTEA NOT NULL)",
}

// TestCrashChild is the child of TestSIGKILL: it commits rows one by one
// and prints the number of each after Tx returns, until it is killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("run by TestSIGKILL")
	}
	db, err := Open(context.Background(), "sqlite://"+path, "crash", []Migration{crashTable})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	pad := make([]byte, 4096) // fills pages so checkpoints happen along the way
	for i := 0; ; i++ {
		err := db.Tx(context.Background(), func(tx *sql.Tx) error {
			_, err := tx.Exec("INSERT INTO acks (i, pad) VALUES (?, ?)", i, pad)
			return err
		})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		os.Stdout.WriteString(strconv.Itoa(i) + "\n") // unbuffered: printed means acknowledged
	}
}

// TestSIGKILL kills a process that writes through Tx and checks that
// every transaction it acknowledged is in the database afterwards. (It
// proves that Tx returns only after COMMIT; that a commit also survives
// power loss is synchronous=FULL, checked by TestSQLitePragmas.)
func TestSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	acked := -1
	deadline := time.Now().Add(30 * time.Second)
	for acked < 300 && time.Now().Before(deadline) && lines.Scan() {
		n, err := strconv.Atoi(lines.Text())
		if err != nil {
			t.Logf("child: %s", lines.Text())
			continue
		}
		acked = n
	}
	cmd.Process.Signal(syscall.SIGKILL)
	// Read what the child acknowledged between our decision and its death.
	for lines.Scan() {
		if n, err := strconv.Atoi(lines.Text()); err == nil {
			acked = n
		}
	}
	cmd.Wait()
	if acked < 50 {
		t.Fatalf("the child acknowledged %d writes; the test proves nothing", acked+1)
	}

	db, err := Open(context.Background(), "sqlite://"+path, "crash", []Migration{crashTable})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, maxI int
	if err := db.QueryRowContext(context.Background(), "SELECT COUNT(*), COALESCE(MAX(i), -1) FROM acks").Scan(&n, &maxI); err != nil {
		t.Fatal(err)
	}
	if n != maxI+1 {
		t.Errorf("%d rows but the highest is %d: a hole", n, maxI)
	}
	if maxI < acked {
		t.Errorf("the child acknowledged rows 0..%d, but after SIGKILL only 0..%d are stored", acked, maxI)
	}
	t.Logf("%d acknowledged writes before SIGKILL, %d rows after restart", acked+1, n)
}
