package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signer signs the key service's user tokens with the backend's Ed25519
// private key (EdDSA). The key service holds only the public key: its
// configuration lets nobody act as a user, unlike an HS256 secret it would
// share with the backend.
type signer struct {
	key   ed25519.PrivateKey
	keyID string // the tokens' "kid", from the public key
}

// tokenTTL is how long the tokens the backend issues are valid; devices
// ask for new ones at /v1/tokens.
const tokenTTL = time.Hour

// newSigner returns a signer for key, whose tokens name a key ID derived
// from the public key (so that the key service can hold several keys
// during a rotation).
func newSigner(key ed25519.PrivateKey) *signer {
	sum := sha256.Sum256(key.Public().(ed25519.PublicKey))
	return &signer{key: key, keyID: "backend-" + hex.EncodeToString(sum[:4])}
}

func (s *signer) public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// userClaims are a key-service user token's claims.
type userClaims struct {
	UserID string `json:"user_id"`
	jwt.RegisteredClaims
}

// userToken returns a key-service token for userID, expiring at exp.
func (s *signer) userToken(userID string, now, exp time.Time) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, userClaims{
		UserID:           userID,
		RegisteredClaims: jwt.RegisteredClaims{IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp)},
	})
	t.Header["kid"] = s.keyID
	return t.SignedString(s.key)
}

// signingKeyIn returns the Ed25519 private key in path, a PEM PKCS#8 file
// (what `openssl genpkey -algorithm ed25519` writes), or a new one saved
// there (mode 0600) when create is set and the file does not exist. It
// refuses a file that group or others may access. Its errors never quote
// the file's content.
func signingKeyIn(path string, create bool) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && create {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		defer clear(der)
		out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("saving a new signing key: %w", err)
		}
		err = pem.Encode(out, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err == nil {
			err = out.Sync()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return nil, fmt.Errorf("saving a new signing key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("the signing key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: group or others may access it: chmod 600 it", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 16<<10))
	defer clear(b)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s is not a PEM private key: write one with 'openssl genpkey -algorithm ed25519 -out %s'", path, path)
	}
	defer clear(block.Bytes)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	key, ok := k.(ed25519.PrivateKey)
	if err != nil || !ok {
		return nil, fmt.Errorf("%s is not an Ed25519 private key (PKCS#8): write one with 'openssl genpkey -algorithm ed25519 -out %s'", path, path)
	}
	return key, nil
}
