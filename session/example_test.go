package session_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/session"
)

// newManager gives a new user an identity, publishes its card in dir, and
// returns the user's manager over svc. A real application uses the key
// service's client (package keyservice) as Service and Directory.
func newManager(dir *session.MemoryDirectory, svc *session.MemoryService, user string) *session.Manager {
	id, err := identity.Generate(nil, user, identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := dir.Publish(id.Card()); err != nil {
		log.Fatal(err)
	}
	m, err := session.NewManager(session.Config{Identity: id, Service: svc.As(user), Directory: dir})
	if err != nil {
		log.Fatal(err)
	}
	return m
}

func Example() {
	ctx := context.Background()
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	alice, bob, carol := newManager(&dir, &svc, "alice"), newManager(&dir, &svc, "bob"), newManager(&dir, &svc, "carol")

	// Alice creates the channel's session for the three of them.
	s, err := alice.Create(ctx, "messaging:general", []string{"bob", "carol"})
	if err != nil {
		log.Fatal(err)
	}
	msg := session.Binding{ChannelCID: "messaging:general", MessageID: "m1", SenderID: "alice"}
	text, err := alice.SealText(ctx, s.ID(), msg, []byte("hello"), 5000)
	if err != nil {
		log.Fatal(err)
	}

	// Bob retrieves the session from his grant and reads it.
	plain, err := bob.OpenText(ctx, text, msg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("bob reads %q\n", plain)

	// Alice removes Carol: the session rotates to epoch 1.
	if err := alice.Revoke(ctx, s.ID(), []string{"carol"}); err != nil {
		log.Fatal(err)
	}
	msg2 := session.Binding{ChannelCID: "messaging:general", MessageID: "m2", SenderID: "alice"}
	text2, err := alice.SealText(ctx, s.ID(), msg2, []byte("carol is gone"), 5000)
	if err != nil {
		log.Fatal(err)
	}
	if plain, err = bob.OpenText(ctx, text2, msg2); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("bob reads %q\n", plain)
	_, err = carol.OpenText(ctx, text2, msg2)
	fmt.Println("carol:", err)
	// Output:
	// bob reads "hello"
	// bob reads "carol is gone"
	// carol: session: forbidden
}

func ExampleNewManager() {
	alice, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	var dir session.MemoryDirectory
	if err := dir.Publish(alice.Card()); err != nil {
		log.Fatal(err)
	}
	svc := session.MemoryService{Directory: &dir}
	// Identity, Service and Directory are required; the zero value of every
	// other field is the safe default (Pins in memory, crypto/rand, an
	// epoch check before every seal).
	m, err := session.NewManager(session.Config{Identity: alice, Service: svc.As("alice"), Directory: &dir})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Identity().UserID())

	_, err = session.NewManager(session.Config{Identity: alice})
	fmt.Println(err != nil)
	// Output:
	// alice
	// true
}

func ExampleManager_Create() {
	ctx := context.Background()
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	alice, bob := newManager(&dir, &svc, "alice"), newManager(&dir, &svc, "bob")

	s, err := alice.Create(ctx, "messaging:general", []string{"bob"})
	if err != nil {
		log.Fatal(err)
	}
	// The ID goes in the Stream channel's session_id custom field.
	fmt.Println(s.ChannelCID(), s.Epoch(), len(s.ID().String()))

	// A second creator is told the channel has a session, and opens it
	// from the ID the channel's session_id holds: never silently adopted.
	_, err = bob.Create(ctx, "messaging:general", []string{"alice"})
	var exists *session.SessionExistsError
	fmt.Println(errors.As(err, &exists) && exists.ID == s.ID())
	joined, err := bob.OpenSession(ctx, s.ID(), "messaging:general")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(joined.ID() == s.ID())
	// Output:
	// messaging:general 0 32
	// true
	// true
}

func ExampleManager_SealText() {
	ctx := context.Background()
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	alice := newManager(&dir, &svc, "alice")
	newManager(&dir, &svc, "bob")
	s, err := alice.Create(ctx, "messaging:general", []string{"bob"})
	if err != nil {
		log.Fatal(err)
	}

	msg := session.Binding{ChannelCID: "messaging:general", MessageID: "m1", SenderID: "alice"}
	text, err := alice.SealText(ctx, s.ID(), msg, []byte("hello"), 5000)
	if err != nil {
		log.Fatal(err)
	}
	// The text goes in Stream's text field.
	fmt.Println(session.IsText(text), len(text) <= 5000)

	// What does not fit fails before any cryptography.
	_, err = alice.SealText(ctx, s.ID(), msg, make([]byte, 4000), 5000)
	var tooLong *session.TooLongError
	fmt.Println(errors.As(err, &tooLong), tooLong.Max)
	// Output:
	// true true
	// true 3583
}

func ExampleManager_OpenText() {
	ctx := context.Background()
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	alice, bob := newManager(&dir, &svc, "alice"), newManager(&dir, &svc, "bob")
	s, err := alice.Create(ctx, "messaging:general", []string{"bob"})
	if err != nil {
		log.Fatal(err)
	}
	msg := session.Binding{ChannelCID: "messaging:general", MessageID: "m1", SenderID: "alice"}
	text, err := alice.SealText(ctx, s.ID(), msg, []byte("hello"), 5000)
	if err != nil {
		log.Fatal(err)
	}

	// Bob opens it with the Binding of the message as Stream delivers it.
	plain, err := bob.OpenText(ctx, text, msg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", plain)

	// The same text under another message ID (a replay) does not open.
	replay := msg
	replay.MessageID = "m2"
	_, err = bob.OpenText(ctx, text, replay)
	fmt.Println(err)
	// Output:
	// hello
	// session: message cannot be decrypted or authenticated
}

func ExampleManager_Extend() {
	ctx := context.Background()
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	alice := newManager(&dir, &svc, "alice")
	carol, dave := newManager(&dir, &svc, "carol"), newManager(&dir, &svc, "dave")
	s, err := alice.Create(ctx, "messaging:general", nil)
	if err != nil {
		log.Fatal(err)
	}
	msg := session.Binding{ChannelCID: "messaging:general", MessageID: "m1", SenderID: "alice"}
	text, err := alice.SealText(ctx, s.ID(), msg, []byte("before they joined"), 5000)
	if err != nil {
		log.Fatal(err)
	}

	// Carol joins at the current epoch: she reads what was sent in it.
	if err := alice.Extend(ctx, s.ID(), []string{"carol"}, false); err != nil {
		log.Fatal(err)
	}
	plain, err := carol.OpenText(ctx, text, msg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("carol reads %q\n", plain)

	// Dave joins with the history hidden: a new epoch starts for everyone.
	if err := alice.Extend(ctx, s.ID(), []string{"dave"}, true); err != nil {
		log.Fatal(err)
	}
	_, err = dave.OpenText(ctx, text, msg)
	fmt.Println("dave:", err)
	// Output:
	// carol reads "before they joined"
	// dave: session: no key for this epoch
}

func ExampleManager_Revoke() {
	ctx := context.Background()
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	alice, bob := newManager(&dir, &svc, "alice"), newManager(&dir, &svc, "bob")
	s, err := alice.Create(ctx, "messaging:general", []string{"bob"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := bob.Retrieve(ctx, s.ID()); err != nil { // Bob holds the epoch-0 key.
		log.Fatal(err)
	}

	if err := alice.Revoke(ctx, s.ID(), []string{"bob"}); err != nil {
		log.Fatal(err)
	}
	msg := session.Binding{ChannelCID: "messaging:general", MessageID: "m1", SenderID: "alice"}
	text, err := alice.SealText(ctx, s.ID(), msg, []byte("after bob left"), 5000)
	if err != nil {
		log.Fatal(err)
	}
	// The service no longer answers Bob, and no key he kept opens epoch 1.
	_, err = bob.OpenText(ctx, text, msg)
	fmt.Println(errors.Is(err, session.ErrForbidden))
	// Output: true
}

func ExampleManager_Rotate() {
	ctx := context.Background()
	var dir session.MemoryDirectory
	svc := session.MemoryService{Directory: &dir}
	alice, bob := newManager(&dir, &svc, "alice"), newManager(&dir, &svc, "bob")
	s, err := alice.Create(ctx, "messaging:general", []string{"bob"})
	if err != nil {
		log.Fatal(err)
	}

	// A periodic rotation: same members, a new epoch key.
	if err := alice.Rotate(ctx, s.ID()); err != nil {
		log.Fatal(err)
	}
	msg := session.Binding{ChannelCID: "messaging:general", MessageID: "m1", SenderID: "alice"}
	text, err := alice.SealText(ctx, s.ID(), msg, []byte("new epoch"), 5000)
	if err != nil {
		log.Fatal(err)
	}
	plain, err := bob.OpenText(ctx, text, msg)
	if err != nil {
		log.Fatal(err)
	}
	// The header names the epoch, readable without any key.
	env, err := session.DecodeText(text)
	if err != nil {
		log.Fatal(err)
	}
	h, err := session.ParseHeader(env)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (epoch %d)\n", plain, h.Epoch)
	// Output: new epoch (epoch 1)
}

func ExampleEncryptStream() {
	key, err := session.NewFileKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	file := bytes.NewReader(make([]byte, 100_000)) // any io.Reader: a file, a request body
	var uploaded bytes.Buffer                      // any io.Writer: an upload stream

	w, err := session.EncryptStream(&uploaded, key)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := io.Copy(w, file); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil { // writes the last chunk
		log.Fatal(err)
	}
	// The key travels in the encrypted message that announces the file.
	fmt.Println(int64(uploaded.Len()) == session.EncryptedSize(100_000))
	// Output: true
}

func ExampleDecryptStream() {
	key, err := session.NewFileKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	var ct bytes.Buffer
	w, err := session.EncryptStream(&ct, key)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := io.WriteString(w, "the attachment\n"); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	downloaded := ct.Bytes()

	r, err := session.DecryptStream(bytes.NewReader(downloaded), key)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := io.Copy(os.Stdout, r); err != nil {
		log.Fatal(err)
	}

	// A tampered file releases nothing that did not authenticate.
	downloaded[len(downloaded)-1] ^= 1
	r, err = session.DecryptStream(bytes.NewReader(downloaded), key)
	if err == nil {
		_, err = io.Copy(io.Discard, r)
	}
	fmt.Println(err)
	// Output:
	// the attachment
	// session: attachment cannot be decrypted
}

func ExampleNewGrant() {
	alice, err := identity.Generate(nil, "alice", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	bob, err := identity.Generate(nil, "bob", identity.Options{})
	if err != nil {
		log.Fatal(err)
	}
	s, err := session.New(nil, "messaging:general")
	if err != nil {
		log.Fatal(err)
	}

	// Alice wraps epoch 0's key for Bob's card; the key service stores it.
	grant, err := session.NewGrant(alice, bob.Card(), s, 0)
	if err != nil {
		log.Fatal(err)
	}

	// Bob opens it, checking Alice's signature against her trusted card.
	lookup := func(userID string, gen uint32) (*identity.Card, error) {
		if userID != "alice" || gen != 0 {
			return nil, errors.New("unknown granter")
		}
		return alice.Card(), nil
	}
	g, err := session.OpenGrant(grant, bob, lookup)
	if err != nil {
		log.Fatal(err)
	}
	key, err := s.Key(0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(g.Granter, g.Grantee, g.Epoch, g.SessionID == s.ID(), g.Key.Equal(key))
	// Output: alice bob 0 true true
}

func ExampleMaxPlaintext() {
	// Stream's default message limit is 5,000 characters.
	n := session.MaxPlaintext(5000)
	fmt.Println(n, len(session.EncodeText(make([]byte, session.SealedSize(n)))) <= 5000)
	// Output: 3583 true
}
