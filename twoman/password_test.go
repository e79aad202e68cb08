package twoman

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/twoman/internal/wire"
)

// fastParams are the cheapest parameters the bounds allow: tests derive
// with them.
var fastParams = PasswordParams{Alg: "argon2id", Time: 1, Memory: MinPasswordMemory, Threads: 1, Version: 1}

// fakeSSKS serves fixed password parameters and salt, records the
// password-backup uploads it receives, and answers every other request
// with wrong_passphrase, counting them.
type fakeSSKS struct {
	params PasswordParams
	salt   []byte

	mu     sync.Mutex
	stores []wire.PasswordStoreRequest
	others int
}

func newFakeSSKS(t *testing.T, params PasswordParams, salt []byte) (*fakeSSKS, string) {
	t.Helper()
	f := &fakeSSKS{params: params, salt: salt}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		f.mu.Lock()
		defer f.mu.Unlock()
		switch r.URL.Path {
		case "/v1/password/params":
			p, _ := json.Marshal(f.params)
			json.NewEncoder(w).Encode(wire.PasswordParamsResponse{Params: p, Salt: f.salt})
		case "/v1/password/store":
			var req wire.PasswordStoreRequest
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				t.Error(err)
			}
			f.stores = append(f.stores, req)
			w.Write([]byte(`{}`))
		default:
			f.others++
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"error":{"code":"wrong_passphrase","message":"no"}}`))
		}
	}))
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *fakeSSKS) requests() ([]wire.PasswordStoreRequest, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]wire.PasswordStoreRequest(nil), f.stores...), f.others
}

// TestServedParamsNotDowngraded: an SSKS that serves parameters cheaper
// than the client's floor gets no lookup secret derived under them: the
// client refuses before it sends anything but the parameters request.
func TestServedParamsNotDowngraded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, reason string
		served       PasswordParams
		min          *PasswordParams
		want         error
	}{
		{"minimum served", "the bounds' minimum is 5x cheaper than the defaults", fastParams, nil, ErrWeakPasswordParams},
		{"fewer passes", "passes are half the cost", PasswordParams{Alg: "argon2id", Time: 2, Memory: 64 << 10, Threads: 4, Version: 1}, nil, ErrWeakPasswordParams},
		{"less memory", "memory is the other half", PasswordParams{Alg: "argon2id", Time: 3, Memory: 32 << 10, Threads: 4, Version: 1}, nil, ErrWeakPasswordParams},
		{"lowered floor", "an application that saved cheaper backups says so", fastParams, &PasswordParams{Time: 1, Memory: MinPasswordMemory}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, url := newFakeSSKS(t, tc.served, bytes.Repeat([]byte{1}, wire.PasswordSaltSize))
			c, err := NewClient(ClientConfig{BaseURL: url, MinPasswordParams: tc.min})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.RetrievePassword(context.Background(), "alice", "correct horse")
			_, retrieves := f.requests()
			if tc.want != nil {
				if !errors.Is(err, tc.want) || retrieves != 0 {
					t.Fatalf("err = %v after %d retrieve requests, want %v and none (%s)", err, retrieves, tc.want, tc.reason)
				}
				return
			}
			if !errors.Is(err, ErrWrongPassphrase) || retrieves != 1 {
				t.Fatalf("err = %v after %d retrieve requests, want the SSKS's answer (%s)", err, retrieves, tc.reason)
			}
		})
	}
}

// TestServedSaltChecked: a client derives nothing under a salt that is
// missing or not PasswordSaltSize bytes (a salt-less derivation would be
// the same in every deployment), for a retrieval and for a passphrase
// change alike.
func TestServedSaltChecked(t *testing.T) {
	t.Parallel()
	alice, err := identity.Generate(testrand.New("alice"), "alice", identity.Options{Kind: identity.KindX25519})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, reason string
		salt         []byte
		ok           bool
	}{
		{"missing", "an SSKS that serves no salt", nil, false},
		{"empty", "an empty salt is no salt", []byte{}, false},
		{"16 bytes", "the length of the salt derived from the user ID alone", make([]byte, 16), false},
		{"one byte short", "the length is exact", make([]byte, wire.PasswordSaltSize-1), false},
		{"one byte long", "the length is exact", make([]byte, wire.PasswordSaltSize+1), false},
		{"right length", "the control: a well-formed answer reaches the SSKS", make([]byte, wire.PasswordSaltSize), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, url := newFakeSSKS(t, fastParams, tc.salt)
			c, err := NewClient(ClientConfig{BaseURL: url, MinPasswordParams: &fastParams})
			if err != nil {
				t.Fatal(err)
			}
			_, errRetrieve := c.RetrievePassword(context.Background(), "alice", "correct horse")
			errChange := c.ChangePassword(context.Background(), "correct horse", "new", alice, &fastParams)
			stores, retrieves := f.requests()
			if tc.ok {
				if !errors.Is(errRetrieve, ErrWrongPassphrase) || retrieves != 1 || errChange != nil || len(stores) != 1 {
					t.Fatalf("retrieve: %v, change: %v, after %d retrieve and %d store requests; want the SSKS's answers (%s)", errRetrieve, errChange, retrieves, len(stores), tc.reason)
				}
				return
			}
			if errRetrieve == nil || errChange == nil || retrieves != 0 || len(stores) != 0 {
				t.Fatalf("retrieve: %v, change: %v, after %d retrieve and %d store requests; want refusals before any (%s)", errRetrieve, errChange, retrieves, len(stores), tc.reason)
			}
		})
	}
}

// TestSaveDrawsFreshSalt: every save, of the same passphrase for the same
// user, draws a new salt and so sends a new lookup secret; the salt sent is
// the one the lookup secret was derived under; a passphrase change proves
// the old passphrase under the served salt and saves under a fresh one.
func TestSaveDrawsFreshSalt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	alice, err := identity.Generate(testrand.New("alice"), "alice", identity.Options{Kind: identity.KindX25519})
	if err != nil {
		t.Fatal(err)
	}
	served := bytes.Repeat([]byte{7}, wire.PasswordSaltSize)
	f, url := newFakeSSKS(t, fastParams, served)
	c, err := NewClient(ClientConfig{BaseURL: url, MinPasswordParams: &fastParams})
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{UserID: "alice", SessionID: "00"}
	for range 2 {
		if err := c.SavePassword(ctx, s, "12345678", "correct horse", alice, &fastParams); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.ChangePassword(ctx, "correct horse", "correct horse", alice, &fastParams); err != nil {
		t.Fatal(err)
	}
	stores, _ := f.requests()
	if len(stores) != 3 {
		t.Fatalf("%d uploads, want 3", len(stores))
	}
	for i, req := range stores {
		if len(req.Salt) != wire.PasswordSaltSize {
			t.Fatalf("upload %d: a %d-byte salt, want %d", i, len(req.Salt), wire.PasswordSaltSize)
		}
		lookup, key := fastParams.derive("alice", req.Salt, "correct horse")
		clear(key)
		if !bytes.Equal(lookup, req.Lookup) {
			t.Fatalf("upload %d: the lookup secret was not derived under the salt sent with it", i)
		}
		for j, other := range stores[:i] {
			if bytes.Equal(req.Salt, other.Salt) || bytes.Equal(req.Lookup, other.Lookup) {
				t.Fatalf("uploads %d and %d of the same passphrase share a salt or a lookup secret", j, i)
			}
		}
		if bytes.Equal(req.Salt, served) {
			t.Fatalf("upload %d reuses the salt the SSKS served", i)
		}
	}
	oldLookup, key := fastParams.derive("alice", served, "correct horse")
	clear(key)
	if !bytes.Equal(stores[2].OldLookup, oldLookup) {
		t.Fatal("the passphrase change did not prove the old passphrase under the served salt")
	}
}

// TestDeriveBindsSaltAndUser: the lookup secret and the key depend on the
// salt and on the user ID, so neither a salt served to every user nor a
// user ID alone gives one table for all.
func TestDeriveBindsSaltAndUser(t *testing.T) {
	t.Parallel()
	salt := bytes.Repeat([]byte{1}, wire.PasswordSaltSize)
	other := bytes.Repeat([]byte{2}, wire.PasswordSaltSize)
	base, baseKey := fastParams.derive("alice", salt, "pw")
	for _, tc := range []struct {
		name, reason string
		user         string
		salt         []byte
	}{
		{"other salt", "a re-save, or another deployment, needs its own guesses", "alice", other},
		{"other user", "one salt served to every user still gives a table per user", "bob", salt},
	} {
		lookup, key := fastParams.derive(tc.user, tc.salt, "pw")
		if bytes.Equal(lookup, base) || bytes.Equal(key, baseKey) {
			t.Errorf("%s: same lookup secret or key as alice under her salt (%s)", tc.name, tc.reason)
		}
	}
}
