package veil_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"

	"github.com/veilchat/veil/internal/attach"
	"github.com/veilchat/veil/internal/testrand"
	"github.com/veilchat/veil/session"
)

type attachmentVector struct {
	Comment         string `json:"comment"`
	FileKey         string `json:"file_key"`
	Nonce           string `json:"nonce"`
	PlaintextSeed   string `json:"plaintext_seed"` // plaintext = first plaintext_length bytes of the testrand stream of this seed (SHA-256(seed ‖ u64 counter) blocks)
	PlaintextLength int    `json:"plaintext_length"`
	Ciphertext      string `json:"ciphertext,omitempty"`
	CiphertextSHA   string `json:"ciphertext_sha256"`
}

func init() {
	extraVectors = append(extraVectors, func(t *testing.T) (string, any) {
		var out []attachmentVector
		for i, n := range []int{0, 300, attach.ChunkSize, attach.ChunkSize + 1000} {
			var key [32]byte
			var nonce [16]byte
			testrand.New("vector/attachment/key").Read(key[:])
			testrand.New("vector/attachment/nonce").Read(nonce[:])
			nonce[0] = byte(i)
			seed := "vector/attachment/plaintext"
			plain := make([]byte, n)
			testrand.New(seed).Read(plain)
			var buf bytes.Buffer
			w, err := attach.NewWriter(&buf, &key, &nonce)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(plain)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(buf.Bytes())
			v := attachmentVector{
				Comment:         "VEILATT1 header, STREAM chunks of 64 KiB; empty, short, exactly one chunk, one chunk and a bit",
				FileKey:         hex.EncodeToString(key[:]),
				Nonce:           hex.EncodeToString(nonce[:]),
				PlaintextSeed:   seed,
				PlaintextLength: n,
				CiphertextSHA:   hex.EncodeToString(sum[:]),
			}
			if buf.Len() <= 1024 {
				v.Ciphertext = hex.EncodeToString(buf.Bytes())
			}
			out = append(out, v)
		}
		return "attachments.json", out
	})
}

// TestVectorsAttachments decrypts the stored attachment vectors that carry
// their ciphertext.
func TestVectorsAttachments(t *testing.T) {
	var av []attachmentVector
	readVectors(t, "attachments.json", &av)
	checked := 0
	for _, v := range av {
		if v.Ciphertext == "" {
			continue
		}
		key, _ := session.ParseFileKey(unhex(t, v.FileKey))
		r, err := session.DecryptStream(bytes.NewReader(unhex(t, v.Ciphertext)), key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		want := make([]byte, v.PlaintextLength)
		testrand.New(v.PlaintextSeed).Read(want)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("attachment of %d bytes: %v", v.PlaintextLength, err)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no attachment vector carries a ciphertext")
	}
}
