package attach_test

import (
	"bytes"
	"fmt"
	"io"

	"github.com/veilchat/veil/internal/attach"
)

func Example() {
	var key [attach.KeySize]byte
	var nonce [attach.NonceSize]byte
	var file bytes.Buffer
	w, _ := attach.NewWriter(&file, &key, &nonce)
	w.Write([]byte("a photo"))
	w.Close()
	fmt.Println(file.Len() == int(attach.EncryptedSize(7)))

	r, _ := attach.NewReader(&file, &key)
	plain, err := io.ReadAll(r)
	fmt.Println(string(plain), err)
	// Output:
	// true
	// a photo <nil>
}
