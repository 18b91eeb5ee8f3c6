package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

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

// The signing algorithms of each kind of key; the first is the default.
var (
	tokenHMACAlgs  = []string{"HS256", "HS384", "HS512"}
	tokenRSAAlgs   = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	tokenEdAlgs    = []string{"EdDSA"}
	tokenECDSAAlgs = map[elliptic.Curve]string{elliptic.P256(): "ES256", elliptic.P384(): "ES384", elliptic.P521(): "ES512"}
	tokenAllAlgs   = slices.Concat(tokenHMACAlgs, tokenRSAAlgs, []string{"ES256", "ES384", "ES512"}, tokenEdAlgs)
)

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
	case *alg != "" && !slices.Contains(tokenAllAlgs, *alg):
		return usageErrorf("--alg %q: want one of %s", *alg, strings.Join(tokenAllAlgs, ", "))
	}
	b, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("--key: %w", err)
	}
	key, err := parseSigningKey(b)
	if err != nil {
		return fmt.Errorf("--key %s: %w", *keyFile, err)
	}
	method := key.algs[0]
	if *alg != "" {
		if !slices.Contains(key.algs, *alg) {
			return usageErrorf("--alg %s does not go with --key %s, %s: it takes %s", *alg, *keyFile, key.kind, strings.Join(key.algs, ", "))
		}
		method = *alg
	}

	now := time.Now()
	exp := now.Add(*ttl)
	claims := jwt.MapClaims{"sub": *name, "iat": now.Unix(), "exp": exp.Unix()}
	if *audience != "" {
		claims["aud"] = *audience
	}
	if *issuer != "" {
		claims["iss"] = *issuer
	}
	tok, err := jwt.NewWithClaims(jwt.GetSigningMethod(method), claims).SignedString(key.key)
	if err != nil {
		return fmt.Errorf("signing with %s: %w", method, err)
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

// signingKey is a key to sign tokens with and the algorithms it takes, the
// default first.
type signingKey struct {
	key  any // []byte, *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey
	algs []string
	kind string // such as "an RSA private key"
}

// parseSigningKey reads an HMAC secret, as auth reads one for the server,
// or a PEM private key.
func parseSigningKey(b []byte) (*signingKey, error) {
	if !auth.IsPEM(b) {
		secret, err := auth.HMACSecret(b)
		if err != nil {
			return nil, fmt.Errorf("%w; or give a PEM private key", err)
		}
		return &signingKey{key: secret, algs: tokenHMACAlgs, kind: "an HMAC secret"}, nil
	}
	var found *pem.Block
	var public string // the type of a public key or certificate met
	for rest := bytes.TrimSpace(b); len(rest) > 0; rest = bytes.TrimSpace(rest) {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if found == nil {
				return nil, errors.New("the PEM data does not decode")
			}
			break
		}
		switch {
		case block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] != "":
			return nil, errors.New("the private key is encrypted; write a plain copy for pulse token with: openssl pkey -in KEY -out PLAIN")
		case strings.HasSuffix(block.Type, "PRIVATE KEY"):
			if found != nil {
				return nil, errors.New("more than one private key; give one")
			}
			found = block
		case public == "" && (strings.HasSuffix(block.Type, "PUBLIC KEY") || block.Type == "CERTIFICATE"):
			public = block.Type
		}
		// Anything else, such as the EC PARAMETERS that openssl ecparam
		// writes before the key, or a certificate beside the key, is
		// passed over.
	}
	switch {
	case found == nil && public != "":
		return nil, fmt.Errorf("found PEM %q, not a private key; pulse token signs with the private key, and the server is given the public key", public)
	case found == nil:
		return nil, errors.New("no PRIVATE KEY in the PEM data")
	}
	var priv any
	var err error
	switch found.Type {
	case "PRIVATE KEY":
		priv, err = x509.ParsePKCS8PrivateKey(found.Bytes)
	case "RSA PRIVATE KEY":
		priv, err = x509.ParsePKCS1PrivateKey(found.Bytes)
	case "EC PRIVATE KEY":
		priv, err = x509.ParseECPrivateKey(found.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q: want PRIVATE KEY (PKCS#8), RSA PRIVATE KEY or EC PRIVATE KEY", found.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", found.Type, err)
	}
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		if n := k.N.BitLen(); n < 2048 {
			return nil, fmt.Errorf("an RSA key must have at least 2048 bits, got %d", n)
		}
		return &signingKey{key: k, algs: tokenRSAAlgs, kind: "an RSA private key"}, nil
	case *ecdsa.PrivateKey:
		alg, ok := tokenECDSAAlgs[k.Curve]
		if !ok {
			return nil, fmt.Errorf("ECDSA curve %s: want P-256, P-384 or P-521", k.Curve.Params().Name)
		}
		return &signingKey{key: k, algs: []string{alg}, kind: "an ECDSA " + k.Curve.Params().Name + " private key"}, nil
	case ed25519.PrivateKey:
		return &signingKey{key: k, algs: tokenEdAlgs, kind: "an Ed25519 private key"}, nil
	}
	return nil, fmt.Errorf("a %T: want an RSA, ECDSA or Ed25519 private key", priv)
}

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
