package attach_test

import (
	"bytes"
	"fmt"
	"io"
	"log"

	"github.com/veilchat/veil/internal/attach"
)

func Example() {
	var key [attach.KeySize]byte
	var nonce [attach.NonceSize]byte
	var file bytes.Buffer
	w, err := attach.NewWriter(&file, &key, &nonce)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := w.Write([]byte("a photo")); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(file.Len() == int(attach.EncryptedSize(7)))

	r, err := attach.NewReader(&file, &key)
	if err != nil {
		log.Fatal(err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(plain))
	// Output:
	// true
	// a photo
}
