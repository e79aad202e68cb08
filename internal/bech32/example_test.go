package bech32_test

import (
	"fmt"

	"github.com/veilchat/veil/internal/bech32"
)

func Example() {
	s, _ := bech32.Encode("age", make([]byte, 32))
	hrp, data, err := bech32.Decode(s)
	fmt.Println(s[:8], hrp, len(data), err)
	// Output: age1qqqq age 32 <nil>
}
