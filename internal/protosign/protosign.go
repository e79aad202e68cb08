package protosign

import "strings"

// Prefix starts every purpose reserved to the protocol.
const Prefix = "veil/v1/"

// Reserved reports whether purpose is reserved to the protocol.
func Reserved(purpose string) bool { return strings.HasPrefix(purpose, Prefix) }

var sign func(signer any, purpose string, msg []byte) []byte

// Register installs the signing function of package identity, which calls
// it once from its init; a second call panics.
func Register(f func(signer any, purpose string, msg []byte) []byte) {
	if sign != nil {
		panic("protosign: registered twice")
	}
	sign = f
}

// Sign returns the signature of msg under purpose, which must be reserved,
// by signer's current generation; signer must be an *identity.Identity.
// Anything else is a programming error and panics.
func Sign(signer any, purpose string, msg []byte) []byte {
	if !Reserved(purpose) {
		panic("protosign: " + purpose + " is not a protocol purpose")
	}
	return sign(signer, purpose, msg)
}
