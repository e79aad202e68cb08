package protosign_test

import (
	"testing"

	"github.com/veilchat/veil/identity"
	"github.com/veilchat/veil/internal/protosign"
	"github.com/veilchat/veil/internal/testrand"
)

func TestSignRefusesWhatIsNotProtocol(t *testing.T) {
	t.Parallel()
	id, err := identity.Generate(testrand.New("alice"), "alice", identity.Options{Kind: identity.KindX25519})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, reason string
		signer       any
		purpose      string
	}{
		{"application purpose", "applications sign with Identity.Sign", id, "app/v1/receipt"},
		{"prefix without its slash", "only veil/v1/ is reserved", id, "veil/v1"},
		{"not an identity", "only an *identity.Identity signs", "alice", "veil/v1/grant"},
	}
	for _, tc := range tests {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Sign did not panic; %s", tc.name, tc.reason)
				}
			}()
			protosign.Sign(tc.signer, tc.purpose, nil)
		}()
	}
	defer func() {
		if recover() == nil {
			t.Error("a second Register did not panic: package identity registers once")
		}
	}()
	protosign.Register(func(any, string, []byte) []byte { return nil })
}
