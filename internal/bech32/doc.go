// Package bech32 encodes and decodes the Bech32 strings (BIP 173) that age
// uses for its keys. Unlike BIP 173 it places no 90-character limit on the
// string, because post-quantum age recipients are much longer than that.
package bech32
