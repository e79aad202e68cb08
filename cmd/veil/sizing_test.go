package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/server"
	"github.com/veilchat/veil/session"
)

// procKiB reads a "VmRSS"-style line of /proc/pid/status, in KiB.
func procKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(rest)[0])
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// cpuSeconds is the CPU time (user and system) process pid has used.
func cpuSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	// The fields after the command name, which ends with ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return float64(utime+stime) / 100 // USER_HZ
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// TestSizing measures what docs/DEPLOY.md's sizing section states: the
// built `veil serve` on SQLite, driven over loopback by concurrent clients
// that seal (one head check each) and now and then rotate a session of
// five members. It reports throughput, latencies, the process's memory
// and the database's growth. It runs only with VEIL_SIZING=1 (it takes
// about a minute and its figures depend on the machine).
func TestSizing(t *testing.T) {
	if os.Getenv("VEIL_SIZING") == "" {
		t.Skip("set VEIL_SIZING=1 to measure")
	}
	bin, err := buildVeil()
	if err != nil {
		t.Fatal(err)
	}
	const clients, members, duration, rotateEvery = 32, 5, 20 * time.Second, 20
	dir := t.TempDir()
	db := filepath.Join(dir, "keys.db")
	// One address for every start, so that the clients outlive restarts.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := func() (*os.Process, string, func()) {
		cmd, url, _ := startVeil(t, bin, []string{"VEIL_JWT_SECRETS=" + crashSecret}, "serve", "--create", "--addr", addr, "--db", db, "--rate", "100000")
		return cmd.Process, url, func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }
	}
	proc, url, stop := start()
	idle := procKiB(t, proc.Pid, "VmRSS")
	ctx := context.Background()
	users := make([]*session.Manager, clients)
	names := make([]string, clients)
	for i := range users {
		names[i] = fmt.Sprintf("u%02d", i)
		tok, _ := server.UserToken([]byte(crashSecret), "", names[i], time.Hour)
		c, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: url, Token: keyservice.StaticToken(tok)})
		if err != nil {
			t.Fatal(err)
		}
		id, err := identity.Generate(testrand.New("size-"+names[i]), names[i], identity.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PublishCard(ctx, id.Card()); err != nil {
			t.Fatal(err)
		}
		if users[i], err = session.NewManager(session.Config{Identity: id, Service: c, Directory: c}); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	withCards := fileSize(db)
	_, _, stop = start()
	sessions := make([]session.ID, clients)
	for i, m := range users {
		var others []string
		for j := 1; j < members; j++ {
			others = append(others, names[(i+j)%clients])
		}
		s, err := m.Create(ctx, fmt.Sprintf("messaging:c%02d", i), others)
		if err != nil {
			t.Fatal(err)
		}
		sessions[i] = s.ID()
	}
	stop()
	withSessions := fileSize(db)

	proc, _, stop = start()
	defer stop()
	var (
		mu             sync.Mutex
		seals, rotates []time.Duration
		errs           int
	)
	cpu0 := cpuSeconds(t, proc.Pid)
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for i, m := range users {
		wg.Go(func() {
			for n := 0; time.Now().Before(deadline); n++ {
				t0 := time.Now()
				var err error
				rotated := n%rotateEvery == rotateEvery-1
				if rotated {
					err = m.Rotate(ctx, sessions[i])
				} else {
					_, err = m.SealText(ctx, sessions[i], session.Binding{ChannelCID: fmt.Sprintf("messaging:c%02d", i), MessageID: strconv.Itoa(n), SenderID: names[i]}, []byte("hello"), 5000)
				}
				d := time.Since(t0)
				mu.Lock()
				switch {
				case err != nil:
					errs++
				case rotated:
					rotates = append(rotates, d)
				default:
					seals = append(seals, d)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	peak := procKiB(t, proc.Pid, "VmHWM")
	serverCPU := cpuSeconds(t, proc.Pid) - cpu0
	stop()
	afterLoad := fileSize(db)
	pct := func(ds []time.Duration, p float64) time.Duration {
		slices.Sort(ds)
		return ds[int(float64(len(ds)-1)*p)].Round(100 * time.Microsecond)
	}
	secs := duration.Seconds()
	t.Logf("%d clients for %v: %.0f seals/s (p50 %v, p99 %v), %.1f rotations/s of %d members (p50 %v, p99 %v), %d errors",
		clients, duration, float64(len(seals))/secs, pct(seals, .5), pct(seals, .99), float64(len(rotates))/secs, members, pct(rotates, .5), pct(rotates, .99), errs)
	t.Logf("the service used %.2f cores (the clients the rest of the machine); memory: %d KiB resident idle, %d KiB peak under load",
		serverCPU/secs, idle, peak)
	t.Logf("database: %d bytes with %d cards; +%d bytes per session of %d members; +%d bytes per rotation (%d rotations)",
		withCards, clients, (withSessions-withCards)/clients, members, (afterLoad-withSessions)/int64(max(1, len(rotates))), len(rotates))
	if errs > 0 {
		t.Errorf("%d operations failed", errs)
	}
}
