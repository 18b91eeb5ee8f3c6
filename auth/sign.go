package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ecdsaAlgs are the algorithms of an ECDSA key, by its curve.
var ecdsaAlgs = map[elliptic.Curve]string{elliptic.P256(): "ES256", elliptic.P384(): "ES384", elliptic.P521(): "ES512"}

// SigningAlgorithms returns every algorithm a Signer may sign with, by
// kind of key: HMAC, RSA, ECDSA, Ed25519.
func SigningAlgorithms() []string {
	return slices.Concat(hmacAlgs, rsaAlgs, []string{"ES256", "ES384", "ES512"}, ed25519Algs)
}

// Signer signs the tokens that a JWTVerifier with the matching key
// accepts: with an HMAC secret (the same file the server reads), or with
// a private key whose public key the server holds. It is safe for
// concurrent use.
type Signer struct {
	key  any // []byte, *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey
	algs []string
	kind string
}

// Claims are the claims of a token to sign.
type Claims struct {
	// Subject is the sub claim: the session name the token is for.
	Subject string
	// IssuedAt is the iat claim; zero means none.
	IssuedAt time.Time
	// Expires is the exp claim, which a JWTVerifier demands.
	Expires time.Time
	// Audience, if set, is the aud claim.
	Audience string
	// Issuer, if set, is the iss claim.
	Issuer string
}

// LoadSigner reads the key file of ParseSigner.
func LoadSigner(file string) (*Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	s, err := ParseSigner(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return s, nil
}

// ParseSigner reads a signing key: an HMAC secret, read as NewJWTVerifier
// reads one (HMACSecret), for HS256/384/512; or a PEM private key (PKCS#8
// "PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY" or SEC1 "EC PRIVATE KEY"): RSA
// of at least 2048 bits for RS256/384/512 and PS256/384/512, ECDSA
// P-256/P-384/P-521 for the curve's ES256/384/512, Ed25519 for EdDSA.
// Other PEM blocks beside the private key, such as EC PARAMETERS or a
// certificate, are passed over. An encrypted private key is refused.
func ParseSigner(b []byte) (*Signer, error) {
	if !IsPEM(b) {
		secret, err := HMACSecret(b)
		if err != nil {
			return nil, fmt.Errorf("%w; or give a PEM private key", err)
		}
		return &Signer{key: secret, algs: hmacAlgs, kind: "an HMAC secret"}, nil
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
	}
	switch {
	case found == nil && public != "":
		return nil, fmt.Errorf("found PEM %q, not a private key; tokens are signed with the private key, and the server is given the public key", public)
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
		return &Signer{key: k, algs: rsaAlgs, kind: "an RSA private key"}, nil
	case *ecdsa.PrivateKey:
		alg, ok := ecdsaAlgs[k.Curve]
		if !ok {
			return nil, fmt.Errorf("ECDSA curve %s: want P-256, P-384 or P-521", k.Curve.Params().Name)
		}
		return &Signer{key: k, algs: []string{alg}, kind: "an ECDSA " + k.Curve.Params().Name + " private key"}, nil
	case ed25519.PrivateKey:
		return &Signer{key: k, algs: ed25519Algs, kind: "an Ed25519 private key"}, nil
	}
	return nil, fmt.Errorf("a %T: want an RSA, ECDSA or Ed25519 private key", priv)
}

// Algorithms returns the algorithms the key signs with, the default first.
func (s *Signer) Algorithms() []string { return slices.Clone(s.algs) }

// Kind says what the key is, such as "an RSA private key".
func (s *Signer) Kind() string { return s.kind }

// Sign returns a token with claims c, signed by alg, one of Algorithms;
// empty means the first.
func (s *Signer) Sign(alg string, c Claims) (string, error) {
	if alg == "" {
		alg = s.algs[0]
	}
	if !slices.Contains(s.algs, alg) {
		return "", fmt.Errorf("auth: %s signs with %s, not %s", s.kind, strings.Join(s.algs, ", "), alg)
	}
	if c.Expires.IsZero() {
		return "", errors.New("auth: a token needs an expiry")
	}
	claims := jwt.MapClaims{"sub": c.Subject, "exp": c.Expires.Unix()}
	if !c.IssuedAt.IsZero() {
		claims["iat"] = c.IssuedAt.Unix()
	}
	if c.Audience != "" {
		claims["aud"] = c.Audience
	}
	if c.Issuer != "" {
		claims["iss"] = c.Issuer
	}
	tok, err := jwt.NewWithClaims(jwt.GetSigningMethod(alg), claims).SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("auth: signing with %s: %w", alg, err)
	}
	return tok, nil
}
