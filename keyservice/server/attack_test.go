package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/memberlog"
	"github.com/veilchat/veil/internal/pgtest"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/keyservice"
	"github.com/veilchat/veil/keyservice/internal/wire"
	"github.com/veilchat/veil/session"
)

// The attacks on channel membership, played against the real key service
// over HTTP, on SQLite and PostgreSQL. Each must fail with a clear error.

var streamSecret = bytes.Repeat([]byte("s"), 32)

// streamToken is what Stream, which knows its own API secret, can sign for
// any user.
func streamToken(t testing.TB, user string) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"user_id": user, "exp": time.Now().Add(time.Hour).Unix()}).SignedString(streamSecret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// channelMembers is Stream's member list of a channel, as the application
// reads it.
type channelMembers struct {
	mu    sync.Mutex
	users []string
}

func (a *channelMembers) list(context.Context, string) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.users), nil
}

func (a *channelMembers) remove(u string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.users = slices.DeleteFunc(a.users, func(x string) bool { return x == u })
}

func sealAs(t *testing.T, m *member, id session.ID, cid, msgID, text string) string {
	t.Helper()
	out, err := m.mgr.SealText(context.Background(), id, session.Binding{ChannelCID: cid, MessageID: msgID, SenderID: m.id.UserID()}, []byte(text), 5000)
	if err != nil {
		t.Fatalf("%s seals %s: %v", m.id.UserID(), msgID, err)
	}
	return out
}

func openAs(m *member, sender, cid, msgID, text string) (string, error) {
	b, err := m.mgr.OpenText(context.Background(), text, session.Binding{ChannelCID: cid, MessageID: msgID, SenderID: sender})
	return string(b), err
}

// isStreamRefusal reports whether err is the key service refusing a write
// made with a Stream-signed token.
func isStreamRefusal(err error) bool {
	var ae *keyservice.APIError
	return errors.As(err, &ae) && ae.Code == keyservice.CodeStreamToken && errors.Is(err, session.ErrForbidden)
}

func header(t *testing.T, text string) session.Header {
	t.Helper()
	env, err := session.DecodeText(text)
	if err != nil {
		t.Fatal(err)
	}
	h, err := session.ParseHeader(env)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func forEachBackend(t *testing.T, fn func(t *testing.T, open func(t *testing.T) Store)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			if b.name == "postgres" && !pgtest.Available() {
				t.Skip(pgtest.EnvVar + " not set")
			}
			fn(t, b.open)
		})
	}
}

// TestStreamActingAsAnyoneAddsNoReader: with Stream tokens accepted (Stream
// can sign one for any user), Stream registers an agent user and tries to
// give it, or a key of its choosing, to the channel — as the agent and as
// a member. Every write is refused, the log does not move, and members go
// on sealing under the key only they hold.
func TestStreamActingAsAnyoneAddsNoReader(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) Store) {
		ctx := context.Background()
		srv := newTestServer(t, open(t), func(c *Config) { c.Auth.StreamSecret = NewSecret(streamSecret) })
		alice, bob := srv.member(t, "alice"), srv.member(t, "bob")
		const cid = "messaging:general"
		s, err := alice.mgr.Create(ctx, cid, []string{"bob"})
		if err != nil {
			t.Fatal(err)
		}
		before, err := bob.c.Head(ctx, s.ID())
		if err != nil {
			t.Fatal(err)
		}

		// Stream's agent: a card of its own, published with a Stream token.
		agent, err := identity.Generate(testrand.New("agent"), "agent", identity.Options{Kind: identity.KindX25519})
		if err != nil {
			t.Fatal(err)
		}
		asStream := func(user string) *keyservice.Client {
			c, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: srv.URL, Token: keyservice.StaticToken(streamToken(t, user))})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		// Every write with a Stream-signed token is refused, saying why.
		if err := asStream("agent").PublishCard(ctx, agent.Card()); !isStreamRefusal(err) {
			t.Fatalf("Stream publishes a card: %v, want %s", err, keyservice.CodeStreamToken)
		}
		for _, tc := range []struct {
			name, method, path string
			body               any
		}{
			{"publish a card", http.MethodPut, "/v1/users/alice/cards", map[string][]byte{"card": alice.id.Card().Marshal()}},
			{"create a session", http.MethodPost, "/v1/sessions", map[string]any{"genesis": []byte{1}, "grants": []any{}}},
			{"append a record", http.MethodPost, logPath(s.ID()), map[string]any{"record": []byte{1}, "grants": []any{}}},
			{"delete the session", http.MethodDelete, "/v1/sessions/" + s.ID().String(), nil},
		} {
			r := request(t, srv, tc.method, tc.path, streamToken(t, "alice"), tc.body)
			if r.status != http.StatusForbidden || r.err.Code != keyservice.CodeStreamToken || !strings.Contains(r.err.Message, "Stream") {
				t.Errorf("%s with a Stream token as alice: %d %+v, want 403 %s saying why", tc.name, r.status, r.err, keyservice.CodeStreamToken)
			}
		}
		// Reading with it is allowed: alice's own grants are sealed to her.
		if _, err := asStream("alice").Head(ctx, s.ID()); err != nil {
			t.Fatalf("a Stream token reads: %v", err)
		}
		// From here the agent is a user of the app with a backend token, as
		// an insider or a compromised backend would be: still no reader.
		agentClient := srv.client(t, "agent")
		if err := agentClient.PublishCard(ctx, agent.Card()); err != nil {
			t.Fatal(err)
		}
		recs, err := bob.c.Log(ctx, s.ID(), 0)
		if err != nil {
			t.Fatal(err)
		}
		st, err := memberlog.Verify(recs[0], [memberlog.IDSize]byte(s.ID()), func(u string, a memberlog.Anchor, gen uint32) ([]*identity.Card, error) {
			h, err := bob.c.History(ctx, u)
			if err != nil {
				return nil, err
			}
			return h[a.Generation : gen+1], nil
		})
		if err != nil {
			t.Fatal(err)
		}
		chosen, _ := session.ParseEpochKey([]byte("0123456789abcdef0123456789abcdef"))
		evil, _ := session.FromKeys(nil, s.ID(), cid, map[uint32]session.EpochKey{1: chosen})
		grantTo := func(granter *identity.Identity, card *identity.Card) session.GrantRecord {
			g, err := session.NewGrant(granter, card, evil, 1)
			if err != nil {
				t.Fatal(err)
			}
			return session.GrantRecord{Grantee: card.UserID(), Epoch: 1, Grant: g}
		}
		// A rotation adding the agent, signed by the agent.
		forged := &memberlog.Change{SessionID: st.ID(), Seq: 1, Prev: st.Head(), Actor: "agent", ActorGen: 0, NewEpoch: true, Epoch: 1,
			Ops: []memberlog.Op{{Kind: memberlog.OpAdd, Member: memberlog.Member{UserID: "agent", Anchor: memberlog.AnchorOf(agent.Card())}}}}
		asAgent, err := memberlog.SignChange(agent, forged)
		if err != nil {
			t.Fatal(err)
		}
		// The same record claiming to be alice's: her name in the actor
		// field (version, type, session ID, seq and prev come first, then
		// the actor's length byte), the agent's signature.
		asAlice := bytes.Clone(asAgent)
		actor := 1 + 1 + memberlog.IDSize + 4 + memberlog.HashSize + 1
		copy(asAlice[actor:actor+len("alice")], "alice")
		grants := []session.GrantRecord{grantTo(agent, alice.id.Card()), grantTo(agent, bob.id.Card()), grantTo(agent, agent.Card())}
		for _, tc := range []struct {
			name, reason string
			c            *keyservice.Client
			record       []byte
			want         error
		}{
			{"Stream as alice, forged signature", "a Stream token never writes", asStream("alice"), asAlice, session.ErrForbidden},
			{"Stream as the agent", "a Stream token never writes", asStream("agent"), asAgent, session.ErrForbidden},
			{"the agent, its record", "the agent is no member: its record has no authority", agentClient, asAgent, session.ErrForbidden},
			{"alice's token, the agent's record", "a member may publish another's record, but the log takes none signed by a non-member", srv.client(t, "alice"), asAgent, session.ErrInvalidLog},
			{"alice's token, the forged record", "only alice's key signs for alice", srv.client(t, "alice"), asAlice, session.ErrInvalidLog},
		} {
			err := tc.c.Append(ctx, s.ID(), tc.record, grants)
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: Append = %v, want %v (%s)", tc.name, err, tc.want, tc.reason)
			}
		}
		if _, err := agentClient.Grants(ctx, s.ID()); !errors.Is(err, session.ErrForbidden) {
			t.Errorf("the agent reads grants: %v, want ErrForbidden", err)
		}
		after, err := bob.c.Head(ctx, s.ID())
		if err != nil || after != before {
			t.Fatalf("the log moved: %v -> %v (%v)", before, after, err)
		}
		text := sealAs(t, bob, s.ID(), cid, "m1", "only us")
		if h := header(t, text); h.Epoch != 0 {
			t.Fatalf("bob sealed under epoch %d", h.Epoch)
		}
		if got, err := openAs(alice, "bob", cid, "m1", text); err != nil || got != "only us" {
			t.Fatalf("alice: %q, %v", got, err)
		}
	})
}

// TestSquattingOverHTTP: a user who creates the session of a channel before
// its creator does is not adopted: the creator gets ErrSessionExists, and a
// member checking the channel's member list refuses the squatter's session.
func TestSquattingOverHTTP(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) Store) {
		ctx := context.Background()
		srv := newTestServer(t, open(t))
		const cid = "messaging:next"
		app := &channelMembers{users: []string{"alice", "bob"}}
		alice, mallory := srv.member(t, "alice"), srv.member(t, "mallory")
		bob := srv.member(t, "bob", func(c *session.Config) { c.Members = app.list })
		squat, err := mallory.mgr.Create(ctx, cid, []string{"alice", "bob"})
		if err != nil {
			t.Fatal(err)
		}
		var exists *session.SessionExistsError
		if _, err := alice.mgr.Create(ctx, cid, []string{"bob"}); !errors.As(err, &exists) || exists.ID != squat.ID() {
			t.Fatalf("alice creates a squatted channel: %v, want a SessionExistsError naming %s", err, squat.ID())
		}
		if _, err := bob.mgr.ForChannel(ctx, cid); !errors.Is(err, session.ErrNotMember) {
			t.Fatalf("bob opens the squatter's session: %v, want ErrNotMember", err)
		}
	})
}

// lyingProxy forwards to the key service but can rewrite what it answers
// about a session's log and head, as a lying key service would.
type lyingProxy struct {
	*httptest.Server
	mu   sync.Mutex
	keep int // > 0: serve only the first keep records
	fork bool
}

func newLyingProxy(t *testing.T, target string) *lyingProxy {
	t.Helper()
	p := &lyingProxy{}
	up, _ := url.Parse(target)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, up.String()+r.URL.RequestURI(), r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		p.mu.Lock()
		keep, fork := p.keep, p.fork
		p.mu.Unlock()
		if resp.StatusCode == http.StatusOK {
			body = p.rewrite(r.URL.Path, r.URL.Query().Get("from"), body, keep, fork)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *lyingProxy) set(keep int, fork bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keep, p.fork = keep, fork
}

func (p *lyingProxy) rewrite(path, from string, body []byte, keep int, fork bool) []byte {
	switch {
	case strings.HasSuffix(path, "/head") && keep > 0:
		var h wire.Head
		if json.Unmarshal(body, &h) == nil && int(h.Seq) >= keep {
			h.Seq = uint32(keep - 1)
			b, _ := json.Marshal(h)
			return b
		}
	case strings.HasSuffix(path, "/head") && fork:
		var h wire.Head
		if json.Unmarshal(body, &h) == nil && len(h.Hash) > 0 {
			h.Hash[0] ^= 1
			b, _ := json.Marshal(h)
			return b
		}
	case strings.HasSuffix(path, "/log") && keep > 0:
		var l wire.LogResponse
		if json.Unmarshal(body, &l) == nil {
			start := 0
			if from != "" {
				json.Unmarshal([]byte(from), &start)
			}
			if n := keep - start; n < len(l.Records) {
				l.Records = l.Records[:max(n, 0)]
				l.Next = nil
			}
			b, _ := json.Marshal(l)
			return b
		}
	}
	return body
}

// TestLyingKeyServiceOverHTTP: after a removal, a key service that serves
// an older log (forgotten or hidden records) or another head at a record
// the client verified is caught — whether the client's cache kept the
// session, evicted it, or forgot it after a conflict.
func TestLyingKeyServiceOverHTTP(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) Store) {
		ctx := context.Background()
		srv := newTestServer(t, open(t))
		proxy := newLyingProxy(t, srv.URL)
		const cid = "messaging:general"
		alice := srv.member(t, "alice")
		srv.member(t, "carol")
		floors := new(session.MemoryFloors)
		bobID := srv.member(t, "bob").id
		bobClient := func(t *testing.T, cache int) *member {
			// bob talks to the key service through the proxy; every
			// Manager of his shares his floors.
			c, err := keyservice.NewClient(keyservice.ClientConfig{BaseURL: proxy.URL, Token: keyservice.StaticToken(userToken(t, "bob")), Backoff: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			mgr, err := session.NewManager(session.Config{Identity: bobID, Service: c, Directory: c, Floors: floors, CacheSize: cache})
			if err != nil {
				t.Fatal(err)
			}
			return &member{id: bobID, c: c, mgr: mgr}
		}
		bob := bobClient(t, 0)
		s, err := alice.mgr.Create(ctx, cid, []string{"bob", "carol"})
		if err != nil {
			t.Fatal(err)
		}
		if err := alice.mgr.Revoke(ctx, s.ID(), []string{"carol"}); err != nil {
			t.Fatal(err)
		}
		sealAs(t, bob, s.ID(), cid, "m1", "after carol left") // bob's floor: record 1
		for _, tc := range []struct {
			name, reason string
			keep         int
			fork         bool
			reader       func(t *testing.T) *member
			want         error
		}{
			{"head rolled back, cached", "the head is compared with the verified log", 1, false, func(*testing.T) *member { return bob }, session.ErrRollback},
			{"log rolled back, new cache", "floors outlive the cache", 1, false, func(t *testing.T) *member { return bobClient(t, 1) }, session.ErrRollback},
			{"log rolled back, forgotten", "Forget keeps the floor", 1, false, func(t *testing.T) *member { bob.mgr.Forget(s.ID()); return bob }, session.ErrRollback},
			{"another head", "two histories", 0, true, func(t *testing.T) *member {
				if _, err := bob.mgr.Retrieve(ctx, s.ID()); err != nil {
					t.Fatal(err)
				}
				return bob
			}, session.ErrFork},
		} {
			t.Run(tc.name, func(t *testing.T) {
				m := tc.reader(t)
				proxy.set(tc.keep, tc.fork)
				defer proxy.set(0, false)
				_, err := m.mgr.SealText(ctx, s.ID(), session.Binding{ChannelCID: cid, MessageID: "m2", SenderID: "bob"}, []byte("x"), 5000)
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v (%s)", err, tc.want, tc.reason)
				}
			})
		}
	})
}

// TestRemovalShownByOneSideOverHTTP: a removal takes effect when either
// Stream (the application's member list) or the key service (the log)
// shows it.
func TestRemovalShownByOneSideOverHTTP(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) Store) {
		ctx := context.Background()
		srv := newTestServer(t, open(t))
		const cid = "messaging:general"
		app := &channelMembers{users: []string{"alice", "bob", "carol", "dave"}}
		withApp := func(c *session.Config) { c.Members = app.list }
		alice, bob, carol, dave := srv.member(t, "alice", withApp), srv.member(t, "bob", withApp), srv.member(t, "carol", withApp), srv.member(t, "dave", withApp)
		s, err := alice.mgr.Create(ctx, cid, []string{"bob", "carol", "dave"})
		if err != nil {
			t.Fatal(err)
		}
		// Stream only: carol leaves the channel on Stream; nobody touches
		// the log. bob's next message rotates her out first.
		app.remove("carol")
		m1 := sealAs(t, bob, s.ID(), cid, "m1", "stream removed carol")
		if h := header(t, m1); h.Epoch != 1 {
			t.Fatalf("sealed under epoch %d, want 1", h.Epoch)
		}
		if _, err := openAs(carol, "bob", cid, "m1", m1); err == nil {
			t.Fatal("carol, removed on Stream only, read a later message")
		}
		// Key service only: dave is removed in the log, Stream still lists
		// him.
		if err := alice.mgr.Revoke(ctx, s.ID(), []string{"dave"}); err != nil {
			t.Fatal(err)
		}
		m2 := sealAs(t, bob, s.ID(), cid, "m2", "the log removed dave")
		if h := header(t, m2); h.Epoch != 2 {
			t.Fatalf("sealed under epoch %d, want 2", h.Epoch)
		}
		if _, err := openAs(dave, "bob", cid, "m2", m2); err == nil {
			t.Fatal("dave, removed in the log only, read a later message")
		}
		if got, err := openAs(alice, "bob", cid, "m2", m2); err != nil || got != "the log removed dave" {
			t.Fatalf("alice: %q, %v", got, err)
		}
	})
}

// TestEditReplayOverHTTP: an older revision of an edited message, replayed
// after the reader opened the newer one, is refused.
func TestEditReplayOverHTTP(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) Store) {
		ctx := context.Background()
		srv := newTestServer(t, open(t))
		const cid = "messaging:general"
		alice, bob := srv.member(t, "alice"), srv.member(t, "bob")
		s, err := alice.mgr.Create(ctx, cid, []string{"bob"})
		if err != nil {
			t.Fatal(err)
		}
		seal := func(rev uint32, text string) (string, session.Binding) {
			b := session.Binding{ChannelCID: cid, MessageID: "m1", SenderID: "alice", Revision: rev}
			out, err := alice.mgr.SealText(ctx, s.ID(), b, []byte(text), 5000)
			if err != nil {
				t.Fatal(err)
			}
			return out, b
		}
		v0, b0 := seal(0, "meet at 5")
		v1, b1 := seal(1, "meet at 6")
		if _, err := bob.mgr.OpenText(ctx, v1, b1); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.mgr.OpenText(ctx, v0, b0); !errors.Is(err, session.ErrStaleRevision) {
			t.Fatalf("the original replayed after the edit: %v, want ErrStaleRevision", err)
		}
	})
}
