package ssks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/veilchat/veil/internal/pgtest"
	"github.com/veilchat/veil/internal/sqlstore"
	"github.com/veilchat/veil/twoman"
	"github.com/veilchat/veil/twoman/internal/wire"
)

// post sends body as JSON to the fixture's SSKS and returns the status and
// the raw answer.
func (f *fixture) post(t *testing.T, path string, body any) (int, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(f.srv.URL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// storeBackup uploads a password backup for user over HTTP, through a
// challenge session, with the lookup secret, parameters and salt given
// (no passphrase is derived: the SSKS never sees one).
func (f *fixture) storeBackup(t *testing.T, user string, lookup, params, salt []byte) {
	t.Helper()
	s, err := f.backend.StartChallenge(context.Background(), user, twoman.Factor{Type: twoman.Email, Value: user + "@example.com"}, false)
	if err != nil {
		t.Fatal(err)
	}
	status, raw := f.post(t, "/v1/password/store", wire.PasswordStoreRequest{UserID: user, SessionID: s.SessionID, Code: f.sender.code(user),
		Lookup: lookup, Params: params, Salt: salt, Blob: []byte("an encrypted identity")})
	if status != http.StatusOK {
		t.Fatalf("storing %s's backup: %d %s", user, status, raw)
	}
}

func filled(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// TestPasswordSaltPerSave: saving the same passphrase twice for the same
// user stores two salts and two lookup hashes, and each save opens with
// its passphrase.
func TestPasswordSaltPerSave(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	alice := mustIdentity(t)
	fast := &twoman.PasswordParams{Alg: "argon2id", Time: 1, Memory: twoman.MinPasswordMemory, Threads: 1, Version: 1}
	var stored []PasswordRecord
	for range 2 {
		s, err := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.client.SavePassword(ctx, s, f.sender.code("alice"), "correct horse battery", alice, fast); err != nil {
			t.Fatal(err)
		}
		rec, err := f.store.Password(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, rec)
		if got, err := f.client.RetrievePassword(ctx, "alice", "correct horse battery"); err != nil || !got.Equal(alice) {
			t.Fatalf("retrieve after save %d: %v", len(stored), err)
		}
	}
	if len(stored[0].Salt) != wire.PasswordSaltSize || len(stored[1].Salt) != wire.PasswordSaltSize {
		t.Fatalf("stored salts of %d and %d bytes, want %d", len(stored[0].Salt), len(stored[1].Salt), wire.PasswordSaltSize)
	}
	if bytes.Equal(stored[0].Salt, stored[1].Salt) || bytes.Equal(stored[0].LookupHash, stored[1].LookupHash) {
		t.Fatal("two saves of the same passphrase stored the same salt or the same lookup hash: equal hashes reveal a reused passphrase")
	}
}

// TestLookupHashKeyed: the stored lookup hash is keyed under the SSKS's
// HashKey: two deployments store different hashes for the same lookup
// secret (so one precomputed table does not serve both, and equal
// passphrases do not show across them), neither is SHA-256 of the lookup
// secret, and each still recognizes its lookup secret.
func TestLookupHashKeyed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	lookup, salt := filled(3, 32), filled(4, wire.PasswordSaltSize)
	params, _ := json.Marshal(twoman.PasswordParams{Alg: "argon2id", Time: 1, Memory: twoman.MinPasswordMemory, Threads: 1, Version: 1})
	plain := sha256.Sum256(lookup)
	var hashes [][]byte
	for _, key := range [][]byte{filled('h', 32), filled('k', 32)} {
		f := newFixture(t, func(c *Config) { c.HashKey = NewSecret(key) })
		f.storeBackup(t, "alice", lookup, params, salt)
		rec, err := f.store.Password(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(rec.LookupHash, plain[:]) || bytes.Equal(rec.LookupHash, lookup) {
			t.Fatal("the stored lookup hash is the lookup secret or its plain SHA-256: anyone with the database can test passphrases")
		}
		hashes = append(hashes, rec.LookupHash)
		if status, raw := f.post(t, "/v1/password/retrieve", wire.PasswordRetrieveRequest{UserID: "alice", Lookup: lookup}); status != http.StatusOK {
			t.Fatalf("the stored lookup secret is refused: %d %s", status, raw)
		}
	}
	if bytes.Equal(hashes[0], hashes[1]) {
		t.Fatal("two deployments with different hash keys store the same lookup hash")
	}
}

// TestPasswordParamsHideBackups: /v1/password/params answers a user
// without a backup like one whose backup has the default parameters (a
// salt of the same size, the same answer to every query, different per
// user and per deployment), and /v1/password/retrieve answers such a user
// exactly like a wrong passphrase.
func TestPasswordParamsHideBackups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	defaults, _ := json.Marshal(twoman.DefaultPasswordParams)
	f.storeBackup(t, "bob", filled(1, 32), defaults, filled(2, wire.PasswordSaltSize))

	params := func(f *fixture, user string) (int, []byte, wire.PasswordParamsResponse) {
		t.Helper()
		status, raw := f.post(t, "/v1/password/params", wire.PasswordParamsRequest{UserID: user})
		var resp wire.PasswordParamsResponse
		if err := json.Unmarshal(raw, &resp); err != nil {
			t.Fatalf("%s: %v in %s", user, err, raw)
		}
		return status, raw, resp
	}
	fields := func(raw []byte) []string {
		var m map[string]json.RawMessage
		json.Unmarshal(raw, &m)
		var keys []string
		for k, v := range m {
			keys = append(keys, k+":"+strings.Repeat("x", len(v)))
		}
		slices.Sort(keys)
		return keys
	}
	bobStatus, bobRaw, bob := params(f, "bob")
	carolStatus, carolRaw, carol := params(f, "carol")
	if bobStatus != carolStatus || !bytes.Equal(bob.Params, carol.Params) || len(bob.Salt) != len(carol.Salt) ||
		strings.Join(fields(bobRaw), ",") != strings.Join(fields(carolRaw), ",") {
		t.Fatalf("a user with a backup and one without are told apart:\n%d %s\n%d %s", bobStatus, bobRaw, carolStatus, carolRaw)
	}
	if _, again, _ := params(f, "carol"); !bytes.Equal(again, carolRaw) {
		t.Fatalf("two queries for a user without a backup differ:\n%s\n%s", carolRaw, again)
	}
	if _, _, dave := params(f, "dave"); bytes.Equal(dave.Salt, carol.Salt) {
		t.Fatal("two users without a backup are served the same salt")
	}
	other := newFixture(t, func(c *Config) { c.HashKey = NewSecret(filled('k', 32)) })
	if _, _, elsewhere := params(other, "carol"); bytes.Equal(elsewhere.Salt, carol.Salt) {
		t.Fatal("two deployments serve a user without a backup the same salt")
	}

	// Retrieval, and a passphrase change, for a user without a backup:
	// the wrong-passphrase answer, byte for byte.
	wrongStatus, wrongRaw := f.post(t, "/v1/password/retrieve", wire.PasswordRetrieveRequest{UserID: "bob", Lookup: filled(9, 32)})
	for _, r := range []struct {
		name, path string
		body       any
	}{
		{"retrieve", "/v1/password/retrieve", wire.PasswordRetrieveRequest{UserID: "carol", Lookup: filled(9, 32)}},
		{"change", "/v1/password/store", wire.PasswordStoreRequest{UserID: "carol", OldLookup: filled(9, 32), Lookup: filled(8, 32), Params: defaults, Salt: filled(7, wire.PasswordSaltSize), Blob: []byte("x")}},
	} {
		if status, raw := f.post(t, r.path, r.body); status != wrongStatus || !bytes.Equal(raw, wrongRaw) {
			t.Fatalf("%s for a user without a backup: %d %s; a wrong passphrase gets %d %s", r.name, status, raw, wrongStatus, wrongRaw)
		}
	}
	if _, err := f.client.RetrievePassword(ctx, "carol", "any passphrase"); !errors.Is(err, twoman.ErrWrongPassphrase) {
		t.Fatalf("the client for a user without a backup: %v, want ErrWrongPassphrase", err)
	}
	if _, err := f.store.Password(ctx, "carol"); !errors.Is(err, twoman.ErrNotFound) {
		t.Fatalf("answering for carol stored something: %v", err)
	}
}

// TestPasswordStoreNeedsSalt: the SSKS stores no backup without a salt of
// PasswordSaltSize bytes.
func TestPasswordStoreNeedsSalt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	params, _ := json.Marshal(twoman.DefaultPasswordParams)
	for _, tc := range []struct {
		name, reason string
		salt         []byte
	}{
		{"missing", "a backup without a salt would be the same everywhere", nil},
		{"16 bytes", "the length is exact", filled(1, 16)},
		{"one byte long", "the length is exact", filled(1, wire.PasswordSaltSize+1)},
	} {
		s, err := f.backend.StartChallenge(ctx, "alice", aliceEmail, false)
		if err != nil {
			t.Fatal(err)
		}
		status, raw := f.post(t, "/v1/password/store", wire.PasswordStoreRequest{UserID: "alice", SessionID: s.SessionID, Code: f.sender.code("alice"),
			Lookup: filled(1, 32), Params: params, Salt: tc.salt, Blob: []byte("x")})
		if status != http.StatusBadRequest || !strings.Contains(string(raw), twoman.CodeInvalidRequest) {
			t.Errorf("%s: %d %s, want 400 %s (%s)", tc.name, status, raw, twoman.CodeInvalidRequest, tc.reason)
		}
	}
	if _, err := f.store.Password(ctx, "alice"); !errors.Is(err, twoman.ErrNotFound) {
		t.Fatalf("a backup was stored: %v", err)
	}
}

// TestMigrationDropsUnsaltedBackups: a database from before salts loses
// its password backups (no client derives their lookup secrets any more)
// and keeps everything else, on every store.
func TestMigrationDropsUnsaltedBackups(t *testing.T) {
	t.Parallel()
	dsns := map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "ssks.db") },
	}
	if pgtest.Available() {
		dsns["postgres"] = func(t *testing.T) string { return pgtest.DSN(t) }
	}
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dsn := dsn(t)
			old, err := sqlstore.Open(ctx, dsn, "ssks", ssksMigrations[:2])
			if err != nil {
				t.Fatal(err)
			}
			err = old.Tx(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, old.Dialect().Rebind(`INSERT INTO ssks_passwords (user_id, lookup_hash, params, blob, updated_at) VALUES (?, ?, ?, ?, 1)`),
					"alice", []byte("h"), []byte("{}"), []byte("b")); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, old.Dialect().Rebind(`INSERT INTO ssks_identities (user_id, factor_type, factor_hash, blob, updated_at) VALUES (?, ?, ?, ?, 1)`),
					"alice", "email", []byte("f"), []byte("b"))
				return err
			})
			old.Close()
			if err != nil {
				t.Fatal(err)
			}
			st, err := OpenStore(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := st.Password(ctx, "alice"); !errors.Is(err, twoman.ErrNotFound) {
				t.Fatalf("an unsalted backup survived the migration: %v", err)
			}
			if _, err := st.Identity(ctx, "alice"); err != nil {
				t.Fatalf("the migration lost an identity: %v", err)
			}
		})
	}
}
