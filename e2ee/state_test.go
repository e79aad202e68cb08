package e2ee

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/session"
)

type opKey struct{}

// recordingStore is a MemoryStore that records the operation named in the
// context of each Save, and fails Saves while failing is set.
type recordingStore struct {
	MemoryStore
	mu      sync.Mutex
	ops     []string
	failing bool
}

var errDiskFull = errors.New("disk full")

func (s *recordingStore) Save(ctx context.Context, blob []byte) error {
	s.mu.Lock()
	op, _ := ctx.Value(opKey{}).(string)
	s.ops = append(s.ops, op)
	failing := s.failing
	s.mu.Unlock()
	if failing {
		return errDiskFull
	}
	return s.MemoryStore.Save(ctx, blob)
}

// takeOps returns the operations recorded since the last call.
func (s *recordingStore) takeOps() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ops := s.ops
	s.ops = nil
	return ops
}

func (s *recordingStore) fail(on bool) {
	s.mu.Lock()
	s.failing = on
	s.mu.Unlock()
}

// TestStateSavedUnderCallersContext: the saves an operation causes (a
// pin, a session's keys) run under the operation's context; a failed pin
// save fails the operation, a failed session save is logged and caught up
// by the next save.
func TestStateSavedUnderCallersContext(t *testing.T) {
	t.Parallel()
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	key, err := ParseStateKey(bytes.Repeat([]byte{7}, StateKeySize))
	if err != nil {
		t.Fatal(err)
	}
	store := &recordingStore{}
	var logs bytes.Buffer
	newClient := func(u string, st StateStore, k StateKey, log *slog.Logger) *Client {
		c, err := New(t.Context(), Config{UserID: u, Service: svc.As(u), Directory: &dir, Publisher: &dir, State: st, StateKey: k, Kind: identity.KindX25519, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice := newClient("alice", store, key, slog.New(slog.NewTextHandler(&logs, nil)))
	bob := newClient("bob", nil, StateKey{}, nil)
	newClient("carol", nil, StateKey{}, nil)
	store.takeOps()
	op := func(name string) context.Context { return context.WithValue(t.Context(), opKey{}, name) }

	// Creating a session pins bob and keeps the session's keys: both
	// saves carry the caller's context.
	if _, err := alice.CreateSession(op("create"), "messaging:c", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	if got := store.takeOps(); len(got) < 2 || slices.ContainsFunc(got, func(o string) bool { return o != "create" }) {
		t.Fatalf("saves during CreateSession ran under %q, want the caller's context for the pin and the keys", got)
	}

	// A session opened while the store fails: the read succeeds, the
	// failure is logged.
	if _, err := bob.CreateSession(op("bob"), "messaging:d", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	msg := session.Binding{ChannelCID: "messaging:d", MessageID: "m1", SenderID: "bob"}
	text, err := bob.Encrypt(op("bob"), msg, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	store.fail(true)
	if got, err := alice.Decrypt(op("read"), msg, text); err != nil || string(got) != "hello" {
		t.Fatalf("Decrypt with a failing state store: %q, %v; want the message (the keys are fetched, only their save failed)", got, err)
	}
	if got := store.takeOps(); !slices.Contains(got, "read") {
		t.Fatalf("no save under the reader's context: %q", got)
	}
	if out := logs.String(); !strings.Contains(out, "saving the local state failed") || !strings.Contains(out, errDiskFull.Error()) {
		t.Fatalf("the failed save was not logged with its cause:\n%s", out)
	}

	// A pin that cannot be saved fails the operation that pins.
	if _, err := alice.CreateSession(op("pin"), "messaging:e", []string{"carol"}); !errors.Is(err, errDiskFull) {
		t.Fatalf("CreateSession whose pin could not be saved: %v, want the store's error", err)
	}
	if p, err := alice.Pins().Pinned("carol"); p != nil || err != nil {
		t.Fatalf("carol's unsaved pin is still held: %v, %v", p, err)
	}

	// The next successful save catches up: the state holds both sessions.
	store.fail(false)
	if err := alice.Pins().PinContext(op("verify"), bob.Identity().Card()); err != nil {
		t.Fatal(err)
	}
	blob, err := store.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	st, err := openState(key.k.Get()[:], "alice", blob)
	if err != nil {
		t.Fatal(err)
	}
	var channels []string
	for _, s := range st.Sessions {
		channels = append(channels, s.ChannelCID)
	}
	slices.Sort(channels)
	if !slices.Equal(channels, []string{"messaging:c", "messaging:d"}) {
		t.Fatalf("saved sessions %q, want messaging:c and messaging:d (the one whose save failed is caught up)", channels)
	}
}

// TestFileStoreHonoursContext: a context already done stops Load and Save
// before they touch the file.
func TestFileStoreHonoursContext(t *testing.T) {
	t.Parallel()
	f := &FileStore{Path: t.TempDir() + "/state"}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := f.Save(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Save under a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := f.Load(t.Context()); !errors.Is(err, ErrNoState) {
		t.Fatalf("a cancelled Save wrote the file: Load = %v, want ErrNoState", err)
	}
	if err := f.Save(t.Context(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Load(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Load under a cancelled context: %v, want context.Canceled", err)
	}
}
