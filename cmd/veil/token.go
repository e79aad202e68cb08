package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/veilchat/veil/keyservice/server"
)

const tokenUsage = `Usage: veil token --user ID [--ttl 1h] [--secret-env VEIL_JWT_SECRET]

Prints a key-service user token for ID: an HS256 JWT with the user in its
"user_id" claim and an expiry ("exp") --ttl from now, signed with the secret in
the environment variable --secret-env names (VEIL_JWT_SECRET by default,
the variable 'veil dev' prints; its value is used as given, as the key
service reads VEIL_JWT_SECRETS). It is what an app backend issues its
users, for trying the key service from a shell:

  export VEIL_KEYSERVICE_TOKEN=$(veil token --user alice)

(for 'veil verify', or curl against $VEIL_KEYSERVICE_URL).

In production the backend signs tokens itself, preferably with an Ed25519
key (docs/DEPLOY.md, "Tokens").

Flags:
`

func tokenCommand(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, tokenUsage); fs.PrintDefaults() }
	user := fs.String("user", "", "the user the token acts as (required)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid, at most 24h")
	env := fs.String("secret-env", "VEIL_JWT_SECRET", "the environment variable holding the HS256 secret")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	secret := os.Getenv(*env)
	switch {
	case len(rest) > 0:
		return usagef("token", "token takes no arguments")
	case *user == "":
		return usagef("token", "--user is required: the user the token acts as")
	case *ttl <= 0 || *ttl > 24*time.Hour:
		return usagef("token", "--ttl must be more than 0 and at most 24h")
	case secret == "":
		return usagef("token", "%s is empty: export the secret 'veil dev' prints, or name another variable with --secret-env", *env)
	case len(secret) < 32:
		return usagef("token", "%s holds fewer than 32 bytes: the key service refuses such HS256 secrets", *env)
	}
	tok, err := server.UserToken([]byte(secret), "", *user, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
