package ssks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
)

// newOTP returns a uniformly random code of n decimal digits.
func newOTP(rnd io.Reader, n int) (string, error) {
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	v, err := rand.Int(rnd, max)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%0*s", n, v.String()), nil
}

// keyedHash is HMAC-SHA256(key, label ‖ 0x00 ‖ parts with 2-byte lengths).
func keyedHash(key []byte, label string, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write([]byte{0})
	for _, p := range parts {
		var l [2]byte
		binary.BigEndian.PutUint16(l[:], uint16(len(p)))
		m.Write(l[:])
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// Labels of the SSKS's keyed hashes (see docs/RECOVERY.md).
const (
	labelOTP    = "veil/v1/ssks/otp"
	labelFactor = "veil/v1/ssks/factor"
	// labelLookup keys the stored hash of a password backup's lookup
	// secret: a copy of the database alone cannot test passphrases, and
	// equal lookup secrets (which the random salt makes rare anyway) do
	// not show as equal hashes across deployments.
	labelLookup = "veil/v1/ssks/password-lookup"
	// labelNoBackupSalt derives the salt served for a user without a
	// password backup, so that repeated queries agree.
	labelNoBackupSalt = "veil/v1/ssks/password-salt"
)
