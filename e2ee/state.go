package e2ee

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/veilchat/veil/identity"
)

// ErrNoState is returned by [StateStore.Load] when nothing was saved yet.
var ErrNoState = errors.New("e2ee: no saved state")

// ErrStateKey is returned when the saved state does not decrypt with the
// configured StateKey (wrong key, or a tampered file).
var ErrStateKey = errors.New("e2ee: local state cannot be decrypted with this key")

// StateStore keeps a [Client]'s local state between runs. It stores one opaque
// blob that the Client has already encrypted; it never sees keys in the
// clear. Implementations must be safe for concurrent use.
type StateStore interface {
	// Load returns the saved blob, or [ErrNoState].
	Load(ctx context.Context) ([]byte, error)
	// Save replaces the saved blob atomically: after a crash, Load returns
	// the old or the new blob, never a mix.
	Save(ctx context.Context, blob []byte) error
}

// FileStore is a [StateStore] in one file, written atomically (temporary
// file, fsync, rename) with mode 0600.
type FileStore struct {
	Path string
	mu   sync.Mutex
}

// Load implements [StateStore].
func (f *FileStore) Load(context.Context) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoState
	}
	return b, err
}

// Save implements [StateStore].
func (f *FileStore) Save(_ context.Context, blob []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir := filepath.Dir(f.Path)
	tmp, err := os.CreateTemp(dir, ".veil-state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(blob); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// MemoryStore is a [StateStore] in memory, for tests and short-lived
// programs. The zero value is ready.
type MemoryStore struct {
	mu   sync.Mutex
	blob []byte
}

// Load implements [StateStore].
func (m *MemoryStore) Load(context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.blob == nil {
		return nil, ErrNoState
	}
	return append([]byte(nil), m.blob...), nil
}

// Save implements [StateStore].
func (m *MemoryStore) Save(_ context.Context, blob []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blob = append([]byte(nil), blob...)
	return nil
}

// state is what is saved, before encryption.
type state struct {
	Version  int            `json:"version"`
	Identity []byte         `json:"identity"` // identity.Export text
	Pins     [][]byte       `json:"pins"`     // pinned cards
	Sessions []savedSession `json:"sessions,omitempty"`
}

// savedSession is a session's keys as the local state keeps them.
type savedSession struct {
	ID         string            `json:"id"`
	ChannelCID string            `json:"channel_cid"`
	Keys       map[uint32][]byte `json:"keys"` // epoch → key
}

const (
	stateVersion = 1
	labelState   = "veil/v1/local-state"
	// StateKeySize is the size of [Config.StateKey].
	StateKeySize = 32
)

// seal encrypts the state: version byte ‖ nonce ‖ XChaCha20-Poly1305 under
// HKDF(stateKey, "veil/v1/local-state"), with the user ID as associated data.
func sealState(stateKey []byte, userID string, st *state) ([]byte, error) {
	plain, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	aead, err := stateAEAD(stateKey)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+chacha20poly1305.NonceSizeX, 1+chacha20poly1305.NonceSizeX+len(plain)+aead.Overhead())
	out[0] = stateVersion
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[1:], plain, []byte(labelState+"\x00"+userID)), nil
}

func openState(stateKey []byte, userID string, blob []byte) (*state, error) {
	aead, err := stateAEAD(stateKey)
	if err != nil {
		return nil, err
	}
	if len(blob) < 1+chacha20poly1305.NonceSizeX+aead.Overhead() || blob[0] != stateVersion {
		return nil, ErrStateKey
	}
	nonce := blob[1 : 1+chacha20poly1305.NonceSizeX]
	plain, err := aead.Open(nil, nonce, blob[1+len(nonce):], []byte(labelState+"\x00"+userID))
	if err != nil {
		return nil, ErrStateKey
	}
	defer clear(plain)
	var st state
	if err := json.Unmarshal(plain, &st); err != nil || st.Version != stateVersion {
		return nil, fmt.Errorf("e2ee: saved state is malformed")
	}
	return &st, nil
}

func stateAEAD(stateKey []byte) (interface {
	Seal(dst, nonce, plaintext, ad []byte) []byte
	Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
	Overhead() int
}, error) {
	if len(stateKey) != StateKeySize {
		return nil, fmt.Errorf("e2ee: StateKey must be %d bytes", StateKeySize)
	}
	k, err := hkdf.Key(sha256.New, stateKey, nil, labelState, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	return chacha20poly1305.NewX(k)
}

// pins is an [identity.Pins] that saves the client's state on every change.
type pins struct {
	mu   sync.Mutex
	m    map[string]*identity.Card
	save func() error
}

func (p *pins) Pinned(userID string) (*identity.Card, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[userID], nil
}

func (p *pins) Pin(card *identity.Card) error {
	p.mu.Lock()
	p.m[card.UserID()] = card
	p.mu.Unlock()
	return p.save()
}

func (p *pins) snapshot() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([][]byte, 0, len(p.m))
	for _, c := range p.m {
		out = append(out, c.Marshal())
	}
	return out
}
