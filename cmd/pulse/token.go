package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/auth"
)

// tokenCommand mints the JWTs that pulse serve --auth-jwt-key verifies.
type tokenCommand struct {
	stdout, stderr io.Writer
	env            func(string) (string, bool)
}

const tokenExamples = `  # An HMAC secret: the same file signs here and verifies on the server.
  openssl rand -base64 48 > jwt.secret && chmod 600 jwt.secret
  pulse serve --auth-jwt-key jwt.secret
  pulse token --key jwt.secret --name web-1 -o web-1.jwt
  pulse agent --name web-1 --token-file web-1.jwt

  # A key pair: the private key signs here, the server holds only the public key.
  openssl genpkey -algorithm ed25519 -out key.pem
  openssl pkey -in key.pem -pubout -out pub.pem
  pulse serve --auth-jwt-key pub.pem
  pulse token --key key.pem --name web-1 --ttl 720h -o web-1.jwt

  # Other keys: ECDSA P-256 (ES256), RSA (RS256, or PS256 by --alg).
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out rsa.pem
  pulse token --key rsa.pem --alg PS256 --name web-1 --audience pulse.example --issuer ops

  # Renew before it expires; the agent reads --token-file before every connection.
  pulse token --key key.pem --name "$(hostname)" --ttl 48h -o /run/pulse/token.jwt
`

// Run signs a token for --name and prints it or writes it to --output.
func (c *tokenCommand) Run(_ context.Context, args []string) error {
	fs := newFlagSet("token", "Make a JSON Web Token for a session name, as pulse serve --auth-jwt-key demands.",
		"The token's claims are sub (the name), exp (now + --ttl), iat (now) and, if\n"+
			"given, aud and iss. --key is the HMAC secret the server has too (at least 32\n"+
			"bytes; the file's bytes less a trailing newline, not decoded), or a PEM\n"+
			"private key (PKCS#8, PKCS#1 RSA or SEC1 EC) whose public key the server has.\n"+
			"The algorithm follows from the key: HS256 for a secret (or HS384, HS512),\n"+
			"RS256 for RSA (or RS384, RS512, PS256, PS384, PS512), ES256, ES384 or ES512\n"+
			"for ECDSA P-256, P-384 or P-521, EdDSA for Ed25519.\n\n"+
			"A server checks a token only at HELLO, so a session outlives its token; an\n"+
			"agent that reconnects needs one that is still valid, so renew the token\n"+
			"file before it expires. With -o the file is replaced whole, mode 0600.",
		tokenExamples, c.stdout, c.env)
	// PULSE_KEY and PULSE_OUTPUT belong to other commands (the agent's TLS
	// key, the output format of ls and watch): reading them here would sign
	// with the wrong key, or write the token to a file named "json".
	fs.envNames = map[string]string{"key": "PULSE_TOKEN_KEY", "output": "PULSE_TOKEN_OUTPUT"}
	var (
		keyFile  = fs.String("key", "", "sign with this `file`: an HMAC secret or a PEM private key (required)")
		name     = fs.String("name", "", "the session `name` the token is for, its sub: 1-64 of A-Z a-z 0-9 . _ - : (required)")
		ttl      = fs.duration("ttl", 24*time.Hour, "how long the token is valid: its exp is now + ttl")
		alg      = fs.String("alg", "", "signing `algorithm`, one that the key's kind allows")
		audience = fs.String("audience", "", "the token's aud, for a server with --auth-jwt-audience")
		issuer   = fs.String("issuer", "", "the token's iss, for a server with --auth-jwt-issuer")
		output   = new(string)
	)
	fs.Var((*pathValue)(output), "output", "write the token to this `file` (mode 0600) instead of standard output")
	fs.alias("o", "output")
	fs.defaults["alg"] = "HS256, RS256, the curve's ES*, or EdDSA, by the key"
	if err := fs.parse(args); err != nil {
		return err
	}
	switch {
	case *keyFile == "":
		return usageErrorf("--key is required: the HMAC secret or PEM private key file to sign with")
	case *name == "":
		return usageErrorf("--name is required: the session name the token is for")
	case !pulse.ValidName(*name):
		return usageErrorf("--name %q is not 1-64 of A-Z a-z 0-9 . _ - :", *name)
	case *ttl <= 0:
		return usageErrorf("--ttl must be positive, got %v", *ttl)
	case *alg != "" && !slices.Contains(auth.SigningAlgorithms(), *alg):
		return usageErrorf("--alg %q: want one of %s", *alg, strings.Join(auth.SigningAlgorithms(), ", "))
	}
	b, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("--key: %w", err)
	}
	key, err := auth.ParseSigner(b)
	if err != nil {
		return fmt.Errorf("--key %s: %w", *keyFile, err)
	}
	method := key.Algorithms()[0]
	if *alg != "" {
		if !slices.Contains(key.Algorithms(), *alg) {
			return usageErrorf("--alg %s does not go with --key %s, %s: it takes %s", *alg, *keyFile, key.Kind(), strings.Join(key.Algorithms(), ", "))
		}
		method = *alg
	}

	now := time.Now()
	exp := now.Add(*ttl)
	tok, err := key.Sign(method, auth.Claims{Subject: *name, IssuedAt: now, Expires: exp, Audience: *audience, Issuer: *issuer})
	if err != nil {
		return err
	}
	if *output == "" {
		_, err := fmt.Fprintln(c.stdout, tok)
		return err
	}
	if err := writeFileReplacing(*output, []byte(tok+"\n"), 0o600); err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	fmt.Fprintf(c.stderr, "pulse token: wrote the token for %s (%s) to %s; it expires at %s\n",
		*name, method, *output, exp.UTC().Format(time.RFC3339))
	return nil
}

// pathValue is a file name, shown as FILE in --help, also for -o.
type pathValue string

func (p *pathValue) Set(s string) error { *p = pathValue(s); return nil }
func (p *pathValue) String() string     { return string(*p) }
func (p *pathValue) argName() string    { return "FILE" }

// writeFileReplacing writes data to file with perm, through a temporary
// file in the same directory renamed over it, so that a reader (an agent
// reading its --token-file) sees the old content or the new, never part.
func writeFileReplacing(file string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
