package ssks

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veilchat/veil/internal/pgtest"
	"github.com/veilchat/veil/twoman"
	"github.com/veilchat/veil/twoman/backend"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// storeOpeners returns the stores the conformance suite runs on: SQLite
// always, PostgreSQL when VEIL_TEST_POSTGRES is set (each test in a schema
// of its own).
func storeOpeners(t *testing.T) map[string]func(t *testing.T) Store {
	m := map[string]func(t *testing.T) Store{
		"sqlite": func(t *testing.T) Store {
			st, err := OpenStore(context.Background(), filepath.Join(t.TempDir(), "ssks.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
	if pgtest.Available() {
		m["postgres"] = func(t *testing.T) Store {
			st, err := OpenStore(context.Background(), pgtest.DSN(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}
	}
	return m
}

func TestStoreConformance(t *testing.T) {
	for name, open := range storeOpeners(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("challenges", func(t *testing.T) { storeChallenges(t, open(t)) })
			t.Run("identities", func(t *testing.T) { storeIdentities(t, open(t)) })
			t.Run("passwords", func(t *testing.T) { storePasswords(t, open(t)) })
			t.Run("concurrent redeem", func(t *testing.T) { storeConcurrentRedeem(t, open(t)) })
			t.Run("concurrent challenges", func(t *testing.T) { storeConcurrentChallenges(t, open(t)) })
			t.Run("concurrent sign-ups", func(t *testing.T) { storeConcurrentSignups(t, open(t)) })
		})
	}
}

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func storeChallenges(t *testing.T, st Store) {
	ctx := context.Background()
	rec := ChallengeRecord{ID: [16]byte{1}, UserID: "alice", FactorType: twoman.Email, FactorHash: []byte("fh"), CodeHash: []byte("ch"),
		MustAuth: true, CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
	since := t0.Add(-time.Hour)
	if err := st.CreateChallenge(ctx, rec, since, 2); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateChallenge(ctx, rec, since, 2); !errors.Is(err, twoman.ErrConflict) {
		t.Fatalf("duplicate ID: %v", err)
	}
	// Limits: two per user and per factor hash in the window.
	old := rec
	old.ID, old.CreatedAt = [16]byte{2}, t0.Add(-2*time.Hour)
	if err := st.CreateChallenge(ctx, old, since, 2); err != nil {
		t.Fatalf("a session older than the window: %v", err)
	}
	otherFactor := rec
	otherFactor.ID, otherFactor.FactorHash = [16]byte{4}, []byte("fh2")
	if err := st.CreateChallenge(ctx, otherFactor, since, 2); err != nil {
		t.Fatalf("alice's second session in the window (the old one does not count): %v", err)
	}
	third := otherFactor
	third.ID, third.FactorHash = [16]byte{5}, []byte("fh3")
	if err := st.CreateChallenge(ctx, third, since, 2); !errors.Is(err, twoman.ErrRateLimited) {
		t.Fatalf("alice's third session in the window: %v, want twoman.ErrRateLimited", err)
	}
	bobSameFactor := rec
	bobSameFactor.ID, bobSameFactor.UserID = [16]byte{6}, "bob"
	if err := st.CreateChallenge(ctx, bobSameFactor, since, 1); !errors.Is(err, twoman.ErrRateLimited) {
		t.Fatalf("another user on a factor at its limit: %v, want twoman.ErrRateLimited", err)
	}
	if _, _, err := st.Redeem(ctx, third.ID, t0, 5, func(ChallengeRecord) bool { return true }); !errors.Is(err, twoman.ErrNotFound) {
		t.Fatalf("a rate-limited session was stored: %v", err)
	}
	wrong := func(ChallengeRecord) bool { return false }
	right := func(r ChallengeRecord) bool { return bytes.Equal(r.CodeHash, []byte("ch")) }
	for i := range 3 {
		got, v, err := st.Redeem(ctx, rec.ID, t0, 3, wrong)
		if err != nil || v != WrongCode || got.Attempts != i || got.UserID != "alice" || !got.MustAuth || got.FactorType != twoman.Email {
			t.Fatalf("wrong answer %d: %+v %v %v", i, got, v, err)
		}
	}
	if _, v, _ := st.Redeem(ctx, rec.ID, t0, 3, right); v != Dead {
		t.Fatalf("after maxAttempts wrong answers: %v, want Dead", v)
	}
	third = rec
	third.ID = [16]byte{3}
	if err := st.CreateChallenge(ctx, third, since, 100); err != nil {
		t.Fatal(err)
	}
	if _, v, _ := st.Redeem(ctx, third.ID, t0.Add(10*time.Minute), 5, right); v != Dead {
		t.Fatalf("at expiry: %v, want Dead", v)
	}
	if got, v, err := st.Redeem(ctx, third.ID, t0, 5, right); v != Accepted || err != nil || !got.ExpiresAt.Equal(third.ExpiresAt) {
		t.Fatalf("right answer: %v %v", v, err)
	}
	if _, v, _ := st.Redeem(ctx, third.ID, t0, 5, right); v != Dead {
		t.Fatalf("replayed answer: %v, want Dead", v)
	}
	if _, _, err := st.Redeem(ctx, [16]byte{9}, t0, 5, right); !errors.Is(err, twoman.ErrNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
}

func storeIdentities(t *testing.T, st Store) {
	ctx := context.Background()
	if _, err := st.Identity(ctx, "alice"); !errors.Is(err, twoman.ErrNotFound) {
		t.Fatalf("empty store: %v", err)
	}
	sms := Proof{FactorType: twoman.SMS, FactorHash: []byte("f")}
	email := Proof{FactorType: twoman.Email, FactorHash: []byte("e")}
	rec := IdentityRecord{UserID: "alice", FactorType: twoman.SMS, FactorHash: []byte("f"), Blob: []byte("blob1"), UpdatedAt: t0}
	if err := st.PutIdentity(ctx, rec, sms); err != nil {
		t.Fatal(err)
	}
	// A factor change: proved on the registered factor (SMS), registers
	// another (email).
	rec.Blob, rec.FactorType, rec.FactorHash = []byte("blob2"), twoman.Email, []byte("e")
	if err := st.PutIdentity(ctx, rec, sms); err != nil {
		t.Fatal(err)
	}
	got, err := st.Identity(ctx, "alice")
	if err != nil || string(got.Blob) != "blob2" || got.FactorType != twoman.Email || !got.UpdatedAt.Equal(t0) {
		t.Fatalf("after replace: %+v %v", got, err)
	}
	// The old factor no longer authorizes anything.
	stale := rec
	stale.Blob = []byte("junk")
	if err := st.PutIdentity(ctx, stale, sms); !errors.Is(err, twoman.ErrFactorMismatch) {
		t.Fatalf("replace proved on the former factor: %v, want twoman.ErrFactorMismatch", err)
	}
	if err := st.PutIdentity(ctx, stale, Proof{FactorType: twoman.Email, FactorHash: []byte("x")}); !errors.Is(err, twoman.ErrFactorMismatch) {
		t.Fatalf("replace proved on another email: %v, want twoman.ErrFactorMismatch", err)
	}
	if err := st.DeleteIdentity(ctx, "alice", sms); !errors.Is(err, twoman.ErrFactorMismatch) {
		t.Fatalf("delete proved on the former factor: %v, want twoman.ErrFactorMismatch", err)
	}
	if got, _ := st.Identity(ctx, "alice"); string(got.Blob) != "blob2" {
		t.Fatalf("a refused write changed the identity: %q", got.Blob)
	}
	if err := st.DeleteIdentity(ctx, "alice", email); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteIdentity(ctx, "alice", email); !errors.Is(err, twoman.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func storePasswords(t *testing.T, st Store) {
	ctx := context.Background()
	if _, err := st.Password(ctx, "alice"); !errors.Is(err, twoman.ErrNotFound) {
		t.Fatalf("empty store: %v", err)
	}
	email := &Proof{FactorType: twoman.Email, FactorHash: []byte("e")}
	if err := st.PutPassword(ctx, PasswordRecord{UserID: "alice", LookupHash: []byte("L0"), Params: []byte("{}"), Salt: []byte("s0"), Blob: []byte("b"), UpdatedAt: t0}, nil); !errors.Is(err, twoman.ErrNotFound) {
		t.Fatalf("a passphrase change without a backup: %v, want twoman.ErrNotFound", err)
	}
	if err := st.PutPassword(ctx, PasswordRecord{UserID: "alice", LookupHash: []byte("L0"), Params: []byte("{}"), Salt: []byte("s0"), Blob: []byte("b"), UpdatedAt: t0}, email); err != nil {
		t.Fatal(err)
	}
	if err := st.PutPassword(ctx, PasswordRecord{UserID: "alice", LookupHash: []byte("X"), Params: []byte("{}"), Salt: []byte("sx"), Blob: []byte("junk"), UpdatedAt: t0},
		&Proof{FactorType: twoman.Email, FactorHash: []byte("other")}); !errors.Is(err, twoman.ErrFactorMismatch) {
		t.Fatalf("a replace proved on another factor: %v, want twoman.ErrFactorMismatch", err)
	}
	if err := st.PutPassword(ctx, PasswordRecord{UserID: "alice", LookupHash: []byte("L1"), Params: []byte("{}"), Salt: []byte("s1"), Blob: []byte("b1"), UpdatedAt: t0}, email); err != nil {
		t.Fatalf("a replace proved on the same factor: %v", err)
	}
	if got, err := st.Password(ctx, "alice"); err != nil || string(got.Salt) != "s1" {
		t.Fatalf("after a replace: salt %q (%v), want the new one", got.Salt, err)
	}
	// A passphrase change keeps the binding.
	if err := st.PutPassword(ctx, PasswordRecord{UserID: "alice", LookupHash: []byte("L"), Params: []byte("{}"), Salt: []byte("s2"), Blob: []byte("b2"), UpdatedAt: t0}, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Password(ctx, "alice"); err != nil || string(got.Blob) != "b2" || string(got.Salt) != "s2" || !email.matches(got.FactorType, got.FactorHash) {
		t.Fatalf("after a passphrase change: %+v %v", got, err)
	}
	lock := func(int) time.Duration { return time.Hour }
	match := func(p PasswordRecord) bool { return string(p.LookupHash) == "L" }
	fail := func(PasswordRecord) bool { return false }
	for i := 1; i <= 3; i++ {
		rec, ok, err := st.PasswordAttempt(ctx, "alice", t0, fail, 3, lock)
		if err != nil || ok || rec.Failures != i {
			t.Fatalf("failure %d: %+v %v %v", i, rec, ok, err)
		}
	}
	rec, ok, _ := st.PasswordAttempt(ctx, "alice", t0.Add(time.Minute), match, 3, lock)
	if ok || !rec.LockedUntil.Equal(t0.Add(time.Hour)) || rec.Failures != 3 {
		t.Fatalf("while locked: %+v %v; want refused and unchanged", rec, ok)
	}
	rec, ok, _ = st.PasswordAttempt(ctx, "alice", t0.Add(2*time.Hour), match, 3, lock)
	if !ok || rec.Failures != 0 || !rec.LockedUntil.IsZero() {
		t.Fatalf("after the lock: %+v %v", rec, ok)
	}
	if _, _, err := st.PasswordAttempt(ctx, "bob", t0, match, 3, lock); !errors.Is(err, twoman.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
}

// storeConcurrentRedeem: many right answers at once, one wins.
func storeConcurrentRedeem(t *testing.T, st Store) {
	ctx := context.Background()
	rec := ChallengeRecord{ID: [16]byte{7}, UserID: "alice", FactorType: twoman.Email, FactorHash: []byte("f"), CodeHash: []byte("c"),
		MustAuth: true, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := st.CreateChallenge(ctx, rec, t0.Add(-time.Hour), 5); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	accepted := 0
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			_, v, err := st.Redeem(ctx, rec.ID, t0, 5, func(ChallengeRecord) bool { return true })
			if err != nil {
				t.Error(err)
			}
			if v == Accepted {
				mu.Lock()
				accepted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if accepted != 1 {
		t.Fatalf("%d concurrent redemptions accepted, want exactly 1", accepted)
	}
}

// storeConcurrentChallenges: many sessions for one user and factor at
// once; exactly the limit is stored.
func storeConcurrentChallenges(t *testing.T, st Store) {
	ctx := context.Background()
	const limit = 5
	var mu sync.Mutex
	created, limited := 0, 0
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			rec := ChallengeRecord{ID: [16]byte{byte(i), 0xcc}, UserID: "alice", FactorType: twoman.Email, FactorHash: []byte("f"), CodeHash: []byte("c"),
				MustAuth: true, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
			err := st.CreateChallenge(ctx, rec, t0.Add(-time.Hour), limit)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case errors.Is(err, twoman.ErrRateLimited):
				limited++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if created != limit || limited != 40-limit {
		t.Fatalf("40 concurrent challenges with a limit of %d: %d stored, %d limited", limit, created, limited)
	}
}

// storeConcurrentSignups: first pushes for one user with different factors
// at once; one registers, the others are refused, and the identity stored
// is the winner's.
func storeConcurrentSignups(t *testing.T, st Store) {
	ctx := context.Background()
	var mu sync.Mutex
	var winners []int
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			p := Proof{FactorType: twoman.Email, FactorHash: []byte{byte(i)}}
			err := st.PutIdentity(ctx, IdentityRecord{UserID: "alice", FactorType: p.FactorType, FactorHash: p.FactorHash, Blob: []byte{byte(i)}, UpdatedAt: t0}, p)
			if err != nil && !errors.Is(err, twoman.ErrFactorMismatch) {
				t.Error(err)
			}
			if err == nil {
				mu.Lock()
				winners = append(winners, i)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	got, err := st.Identity(ctx, "alice")
	if len(winners) != 1 || err != nil || got.Blob[0] != byte(winners[0]) || got.FactorHash[0] != byte(winners[0]) {
		t.Fatalf("16 concurrent sign-ups with different factors: winners %v, stored %+v %v", winners, got, err)
	}
}

func TestKeyStore(t *testing.T) {
	stores := map[string]backend.KeyStore{"memory": &backend.MemoryKeyStore{}}
	sq, err := backend.OpenKeyStore(context.Background(), filepath.Join(t.TempDir(), "backend.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	stores["sqlite"] = sq
	if pgtest.Available() {
		pg, err := backend.OpenKeyStore(context.Background(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		defer pg.Close()
		stores["postgres"] = pg
	}
	for name, ks := range stores {
		ctx := context.Background()
		if _, err := ks.RuleKey(ctx, "alice"); !errors.Is(err, twoman.ErrNotFound) {
			t.Errorf("%s: missing key: %v", name, err)
		}
		k, _ := twoman.NewRuleKey(nil)
		if err := ks.PutRuleKey(ctx, "alice", k); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		other, _ := twoman.NewRuleKey(nil)
		if err := ks.PutRuleKey(ctx, "alice", other); !errors.Is(err, twoman.ErrConflict) {
			t.Errorf("%s: replacing a key: %v, want twoman.ErrConflict", name, err)
		}
		if got, err := ks.RuleKey(ctx, "alice"); err != nil || !got.Equal(k) {
			t.Errorf("%s: read back: %v", name, err)
		}
	}
}

// TestWorldReadableDatabaseRefused: the SSKS and the backend's key store
// refuse a SQLite file others can read, saying which file and how to fix
// it, and create their own files private.
func TestWorldReadableDatabaseRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		open   func(path string) (io.Closer, error)
		reason string
	}{
		{"ssks", func(path string) (io.Closer, error) { return OpenStore(context.Background(), path) }, "encrypted identities and code hashes"},
		{"backend", func(path string) (io.Closer, error) { return backend.OpenKeyStore(context.Background(), path) }, "the twoManRuleKeys themselves"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "store.db")
			st, err := tc.open(path)
			if err != nil {
				t.Fatal(err)
			}
			st.Close()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o600 {
				t.Fatalf("new database has mode %04o, want 0600 (%s)", got, tc.reason)
			}
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
			st, err = tc.open(path)
			if err == nil {
				st.Close()
				t.Fatalf("a world-readable database was opened (%s)", tc.reason)
			}
			if !strings.Contains(err.Error(), "chmod 600 "+path) {
				t.Errorf("error %q does not name the file and the fix", err)
			}
		})
	}
}
