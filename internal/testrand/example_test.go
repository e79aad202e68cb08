package testrand_test

import (
	"bytes"
	"fmt"

	"github.com/veilchat/veil/internal/testrand"
)

func Example() {
	a, b := make([]byte, 40), make([]byte, 40)
	testrand.New("seed").Read(a)
	testrand.New("seed").Read(b)
	fmt.Println(bytes.Equal(a, b))
	// Output: true
}
