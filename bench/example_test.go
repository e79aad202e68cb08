package bench_test

import (
	"fmt"
	"log"

	"github.com/veilchat/veil/bench"
)

// Veil's sealed message is the same size whatever the channel's size; an
// age file per message grows with every member.
func Example() {
	msg := make([]byte, 64)
	for _, n := range []int{2, 10} {
		v, err := bench.NewVeil(n)
		if err != nil {
			log.Fatal(err)
		}
		a, err := bench.NewAge(n)
		if err != nil {
			log.Fatal(err)
		}
		vs, err := v.Seal(msg)
		if err != nil {
			log.Fatal(err)
		}
		as, err := a.Seal(msg)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d members: veil %d bytes, age %d bytes\n", n, len(vs), len(as))
	}
	// Output:
	// 2 members: veil 233 bytes, age 362 bytes
	// 10 members: veil 233 bytes, age 1146 bytes
}
