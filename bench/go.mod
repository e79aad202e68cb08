module github.com/veilchat/veil/bench

go 1.26.0

require (
	filippo.io/age v1.3.2
	github.com/ProtonMail/gopenpgp/v3 v3.5.2
	github.com/veilchat/veil v0.0.0
	maunium.net/go/mautrix v0.32.0
)

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	filippo.io/hpke v0.4.0 // indirect
	github.com/ProtonMail/go-crypto v1.5.2 // indirect
	github.com/cloudflare/circl v1.6.3 // indirect
	github.com/hdevalence/ed25519consensus v0.2.0 // indirect
	go.mau.fi/util v0.11.0 // indirect
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)

replace github.com/veilchat/veil => ../
