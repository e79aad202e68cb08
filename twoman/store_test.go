package twoman

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/veilchat/veil/internal/pgtest"

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
		})
	}
}

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func storeChallenges(t *testing.T, st Store) {
	ctx := context.Background()
	rec := ChallengeRecord{ID: [16]byte{1}, UserID: "alice", FactorType: Email, FactorHash: []byte("fh"), CodeHash: []byte("ch"),
		MustAuth: true, CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
	if err := st.CreateChallenge(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateChallenge(ctx, rec); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate ID: %v", err)
	}
	other := rec
	other.ID, other.UserID, other.CreatedAt = [16]byte{2}, "bob", t0.Add(-2*time.Hour)
	st.CreateChallenge(ctx, other)
	u, f, err := st.CountChallenges(ctx, "alice", []byte("fh"), t0.Add(-time.Hour))
	if err != nil || u != 1 || f != 1 {
		t.Fatalf("CountChallenges = %d, %d, %v; want 1, 1 (bob's is older than the window)", u, f, err)
	}
	wrong := func(ChallengeRecord) bool { return false }
	right := func(r ChallengeRecord) bool { return bytes.Equal(r.CodeHash, []byte("ch")) }
	for i := range 3 {
		got, v, err := st.Redeem(ctx, rec.ID, t0, 3, wrong)
		if err != nil || v != WrongCode || got.Attempts != i || got.UserID != "alice" || !got.MustAuth || got.FactorType != Email {
			t.Fatalf("wrong answer %d: %+v %v %v", i, got, v, err)
		}
	}
	if _, v, _ := st.Redeem(ctx, rec.ID, t0, 3, right); v != Dead {
		t.Fatalf("after maxAttempts wrong answers: %v, want Dead", v)
	}
	third := rec
	third.ID = [16]byte{3}
	st.CreateChallenge(ctx, third)
	if _, v, _ := st.Redeem(ctx, third.ID, t0.Add(10*time.Minute), 5, right); v != Dead {
		t.Fatalf("at expiry: %v, want Dead", v)
	}
	if got, v, err := st.Redeem(ctx, third.ID, t0, 5, right); v != Accepted || err != nil || !got.ExpiresAt.Equal(third.ExpiresAt) {
		t.Fatalf("right answer: %v %v", v, err)
	}
	if _, v, _ := st.Redeem(ctx, third.ID, t0, 5, right); v != Dead {
		t.Fatalf("replayed answer: %v, want Dead", v)
	}
	if _, _, err := st.Redeem(ctx, [16]byte{9}, t0, 5, right); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
}

func storeIdentities(t *testing.T, st Store) {
	ctx := context.Background()
	if _, err := st.Identity(ctx, "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty store: %v", err)
	}
	rec := IdentityRecord{UserID: "alice", FactorType: SMS, FactorHash: []byte("f"), Blob: []byte("blob1"), UpdatedAt: t0}
	if err := st.PutIdentity(ctx, rec); err != nil {
		t.Fatal(err)
	}
	rec.Blob, rec.FactorType = []byte("blob2"), Email
	if err := st.PutIdentity(ctx, rec); err != nil {
		t.Fatal(err)
	}
	got, err := st.Identity(ctx, "alice")
	if err != nil || string(got.Blob) != "blob2" || got.FactorType != Email || !got.UpdatedAt.Equal(t0) {
		t.Fatalf("after replace: %+v %v", got, err)
	}
	if err := st.DeleteIdentity(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteIdentity(ctx, "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func storePasswords(t *testing.T, st Store) {
	ctx := context.Background()
	if _, err := st.Password(ctx, "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty store: %v", err)
	}
	if err := st.PutPassword(ctx, PasswordRecord{UserID: "alice", LookupHash: []byte("L"), Params: []byte("{}"), Blob: []byte("b"), UpdatedAt: t0}); err != nil {
		t.Fatal(err)
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
	if _, _, err := st.PasswordAttempt(ctx, "bob", t0, match, 3, lock); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
}

// storeConcurrentRedeem: many right answers at once, one wins.
func storeConcurrentRedeem(t *testing.T, st Store) {
	ctx := context.Background()
	rec := ChallengeRecord{ID: [16]byte{7}, UserID: "alice", FactorType: Email, FactorHash: []byte("f"), CodeHash: []byte("c"),
		MustAuth: true, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := st.CreateChallenge(ctx, rec); err != nil {
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

func TestKeyStore(t *testing.T) {
	stores := map[string]KeyStore{"memory": &MemoryKeyStore{}}
	sq, err := OpenKeyStore(context.Background(), filepath.Join(t.TempDir(), "backend.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	stores["sqlite"] = sq
	if pgtest.Available() {
		pg, err := OpenKeyStore(context.Background(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		defer pg.Close()
		stores["postgres"] = pg
	}
	for name, ks := range stores {
		ctx := context.Background()
		if _, err := ks.RuleKey(ctx, "alice"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: missing key: %v", name, err)
		}
		k, _ := NewRuleKey(nil)
		if err := ks.PutRuleKey(ctx, "alice", k); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		other, _ := NewRuleKey(nil)
		if err := ks.PutRuleKey(ctx, "alice", other); !errors.Is(err, ErrConflict) {
			t.Errorf("%s: replacing a key: %v, want ErrConflict", name, err)
		}
		if got, err := ks.RuleKey(ctx, "alice"); err != nil || !got.Equal(k) {
			t.Errorf("%s: read back: %v", name, err)
		}
	}
}
