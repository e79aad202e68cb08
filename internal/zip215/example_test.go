package zip215_test

import (
	"crypto/ed25519"
	"fmt"

	"github.com/veilchat/veil/internal/zip215"
)

func Example() {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	b := zip215.NewBatch(3)
	for _, m := range []string{"one", "two", "three"} {
		b.Add(pub, []byte(m), ed25519.Sign(priv, []byte(m)))
	}
	b.Add(pub, []byte("four"), ed25519.Sign(priv, []byte("not four")))
	fmt.Println(b.Verify(), b.VerifyEach())
	// Output: false [true true true false]
}
