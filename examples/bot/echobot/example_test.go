package echobot_test

import (
	"fmt"

	"github.com/veilchat/veil/examples/bot/echobot"
)

// Reply is what the bot answers to a decrypted text.
func ExampleReply() {
	fmt.Println(echobot.Reply("hello", "0123abcd"))
	fmt.Println(echobot.Reply("/fingerprint", "0123abcd"))
	// Output:
	// you said: hello
	// My identity's fingerprint: 0123abcd. Compare our safety number in your app to be sure you talk to me.
}
