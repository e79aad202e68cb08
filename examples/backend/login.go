package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"

	"golang.org/x/crypto/argon2"

	"github.com/veilchat/veil/internal/atomicfile"
	"github.com/veilchat/veil/twoman"
)

// ---------------------------------------------------------------------
// STUB: the app's own accounts and login. Replace this file with your
// app's authentication (sessions, OAuth, passkeys, ...). Veil needs only
// what check returns: the ID of a user the app has authenticated, and the
// email address it verified for that user.
// ---------------------------------------------------------------------

// logins is the stand-in for the app's user accounts: a user ID, an email
// address and a password, checked with HTTP Basic authentication on every
// call. Passwords are stored as Argon2id hashes, in a file (mode 0600)
// rewritten at each sign-up, so that accounts outlive a restart as the key
// service's data does. It never checks that the email address is the
// user's, as a real app must before it sends recovery codes there. Safe
// for concurrent use.
type logins struct {
	path string
	sem  chan struct{} // bounds the memory of concurrent hashes

	mu       sync.Mutex
	accounts map[string]account
}

// account is one user's login.
type account struct {
	Email string `json:"email"`
	Salt  []byte `json:"salt"`
	Hash  []byte `json:"hash"`
}

// Argon2id parameters: OWASP's minimum (19 MiB, 2 passes, 1 lane).
const (
	argonTime   = 2
	argonMemory = 19 << 10
	argonLanes  = 1
)

// maxHashing bounds the hashes computed at once (19 MiB each).
const maxHashing = 4

var (
	errUserExists = errors.New("the user ID is taken")
	errBadLogin   = errors.New("wrong user ID or password")
)

// openLogins loads the accounts kept in path, if any.
func openLogins(path string) (*logins, error) {
	l := &logins{path: path, sem: make(chan struct{}, maxHashing), accounts: map[string]account{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &l.accounts); err != nil {
		return nil, fmt.Errorf("%s: not a logins file: move it away to start without accounts", path)
	}
	return l, nil
}

func (l *logins) hash(password string, salt []byte) []byte {
	l.sem <- struct{}{}
	defer func() { <-l.sem }()
	return argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonLanes, 32)
}

// create adds an account, or returns errUserExists.
func (l *logins) create(userID, password string, email twoman.Factor) error {
	salt := make([]byte, 16)
	rand.Read(salt)
	a := account{Email: email.Value, Salt: salt, Hash: l.hash(password, salt)}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.accounts[userID]; ok {
		return errUserExists
	}
	l.accounts[userID] = a
	if err := l.save(); err != nil {
		delete(l.accounts, userID)
		return err
	}
	return nil
}

// remove deletes an account (a sign-up that failed half way).
func (l *logins) remove(userID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.accounts, userID)
	l.save()
}

// save replaces the file with the accounts (mode 0600). l.mu is held.
func (l *logins) save() error {
	b, err := json.Marshal(l.accounts)
	if err != nil {
		return err
	}
	return atomicfile.Replace(l.path, b, 0o600)
}

// dummySalt is hashed against for unknown users, so that a login takes
// as long whether the user exists or not.
var dummySalt = make([]byte, 16)

// check authenticates a request's HTTP Basic credentials and returns the
// user and the email factor of the account, or errBadLogin.
func (l *logins) check(r *http.Request) (string, twoman.Factor, error) {
	userID, password, ok := r.BasicAuth()
	if !ok {
		return "", twoman.Factor{}, errBadLogin
	}
	l.mu.Lock()
	a, found := l.accounts[userID]
	l.mu.Unlock()
	salt := a.Salt
	if !found {
		salt = dummySalt
	}
	got := l.hash(password, salt)
	if subtle.ConstantTimeCompare(got, a.Hash) != 1 || !found {
		return "", twoman.Factor{}, errBadLogin
	}
	return userID, twoman.Factor{Type: twoman.Email, Value: a.Email}, nil
}
