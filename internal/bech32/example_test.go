package bech32_test

import (
	"fmt"
	"log"

	"github.com/veilchat/veil/internal/bech32"
)

func Example() {
	s, err := bech32.Encode("age", make([]byte, 32))
	if err != nil {
		log.Fatal(err)
	}
	hrp, data, err := bech32.Decode(s)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s[:8], hrp, len(data))
	// Output: age1qqqq age 32
}
