package e2ee

import (
	"bytes"
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
	"runtime"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/atomicfile"
	"github.com/veilchat/veil/session"
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
// file, fsync, rename, fsync of the directory) with mode 0600. Its file
// I/O cannot be interrupted: a context that is already done stops Load
// and Save before they start.
type FileStore struct {
	Path string
	mu   sync.Mutex
}

// Load implements [StateStore].
func (f *FileStore) Load(ctx context.Context) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoState
	}
	return b, err
}

// Save implements [StateStore]. Once it has replaced the file, an error
// means only that the directory could not be synced: the new state may
// not survive a power loss.
func (f *FileStore) Save(ctx context.Context, blob []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Dir(f.Path)
	if err := atomicfile.Replace(f.Path, blob, 0o600); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("e2ee: state written, but its directory could not be synced: %w", err)
	}
	return nil
}

// syncDir makes a rename in dir durable. Windows cannot open a directory
// for fsync: there a rename is as durable as the file system makes it.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
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
	Floors   []savedFloor   `json:"floors,omitempty"`
}

// savedFloor is the newest membership-log head verified for a session, and
// the channel the session is bound to.
type savedFloor struct {
	ID         string `json:"id"`
	ChannelCID string `json:"channel_cid"`
	Seq        uint32 `json:"seq"`
	Hash       []byte `json:"hash"`
	// Bound: the channel is bound to this session (created or opened for
	// it explicitly), not merely a session whose genesis names it.
	Bound bool `json:"bound,omitempty"`
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

// pins is a [session.ContextPins] that saves the client's state on every
// change.
type pins struct {
	mu   sync.Mutex
	m    map[string]*identity.Card
	save func(context.Context) error
}

func (p *pins) Pinned(userID string) (*identity.Card, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[userID], nil
}

// Pin pins card and saves the state. identity.Pins gives it no context,
// so the save has no deadline: the session.Manager calls PinContext, and
// callers that have a context should too.
func (p *pins) Pin(card *identity.Card) error {
	return p.PinContext(context.Background(), card)
}

// PinContext pins card and saves the state under ctx. If the save fails,
// the pin is withdrawn (unless another pin replaced it meanwhile) and the
// error returned: the session.Manager, which checks a card again when the
// first check fails, would otherwise find the card pinned and go on as if
// the pin had been recorded.
func (p *pins) PinContext(ctx context.Context, card *identity.Card) error {
	u := card.UserID()
	p.mu.Lock()
	prev, had := p.m[u]
	p.m[u] = card
	p.mu.Unlock()
	if err := p.save(ctx); err != nil {
		p.mu.Lock()
		if p.m[u] == card {
			if had {
				p.m[u] = prev
			} else {
				delete(p.m, u)
			}
		}
		p.mu.Unlock()
		return fmt.Errorf("e2ee: saving the pin of %q: %w", u, err)
	}
	return nil
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

// floors is a [session.Floors] kept in the client's state: it saves the state
// before a new floor counts, so a floor survives restarts and is never
// lowered. It also keeps which session each channel is bound to.
type floors struct {
	mu        sync.Mutex
	m         map[session.ID]session.Floor
	byChannel map[string]session.ID // bindings: set by bind only
	save      func(context.Context) error
}

// Floor implements [session.Floors].
func (f *floors) Floor(id session.ID) (session.Floor, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl, ok := f.m[id]
	return fl, ok
}

// SetFloor implements [session.Floors]: it records a newer floor and saves
// the state under ctx; if the save fails, the floor is withdrawn and the
// error returned, so that the Manager does not use the new head.
func (f *floors) SetFloor(ctx context.Context, id session.ID, fl session.Floor) error {
	f.mu.Lock()
	prev, had := f.m[id]
	if had && prev.Seq >= fl.Seq {
		f.mu.Unlock()
		return nil
	}
	f.m[id] = fl
	f.mu.Unlock()
	if err := f.save(ctx); err != nil {
		f.mu.Lock()
		if f.m[id] == fl {
			if had {
				f.m[id] = prev
			} else {
				delete(f.m, id)
			}
		}
		f.mu.Unlock()
		return fmt.Errorf("e2ee: saving the floor of session %s: %w", id, err)
	}
	return nil
}

// bind binds channelCID to session id and saves the state under ctx. A
// fetch never binds: a session whose genesis names a channel (one a message
// header pointed at, say) is not thereby the channel's session. A failed
// save withdraws the binding.
func (f *floors) bind(ctx context.Context, channelCID string, id session.ID) error {
	f.mu.Lock()
	if bound, ok := f.byChannel[channelCID]; ok {
		f.mu.Unlock()
		if bound != id {
			return fmt.Errorf("%w: %s is bound to session %s, not %s", ErrSessionChanged, channelCID, bound, id)
		}
		return nil
	}
	f.byChannel[channelCID] = id
	f.mu.Unlock()
	if err := f.save(ctx); err != nil {
		f.mu.Lock()
		delete(f.byChannel, channelCID)
		f.mu.Unlock()
		return fmt.Errorf("e2ee: saving the session of %s: %w", channelCID, err)
	}
	return nil
}

// sessionOf returns the session a channel is bound to, if any.
func (f *floors) sessionOf(channelCID string) (session.ID, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.byChannel[channelCID]
	return id, ok
}

func (f *floors) snapshot() []savedFloor {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]savedFloor, 0, len(f.m))
	for id, fl := range f.m {
		out = append(out, savedFloor{ID: id.String(), ChannelCID: fl.ChannelCID, Seq: fl.Seq, Hash: bytes.Clone(fl.Hash[:]),
			Bound: f.byChannel[fl.ChannelCID] == id})
	}
	return out
}

func (f *floors) restore(saved []savedFloor) error {
	for _, s := range saved {
		id, err := session.ParseID(s.ID)
		if err != nil || len(s.Hash) != 32 {
			return errors.New("e2ee: saved state: a malformed floor")
		}
		fl := session.Floor{ChannelCID: s.ChannelCID, Head: session.Head{Seq: s.Seq}}
		copy(fl.Hash[:], s.Hash)
		f.m[id] = fl
		if s.Bound {
			f.byChannel[fl.ChannelCID] = id
		}
	}
	return nil
}
