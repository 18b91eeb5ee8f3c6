package auth

import (
	"bytes"
	"crypto"
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
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultLeeway is the clock skew allowed when exp and nbf are checked.
const DefaultLeeway = 30 * time.Second

// MinSecretBytes is the shortest HMAC secret accepted: 256 bits, as
// RFC 7518 asks of HS256.
const MinSecretBytes = 32

// JWTOptions are the checks of a JWTVerifier beyond the signature, exp,
// nbf and sub, which are always made.
type JWTOptions struct {
	// Leeway is the clock skew allowed for exp and nbf. Zero means
	// DefaultLeeway; negative means none.
	Leeway time.Duration
	// Audience, if set, must be in the token's aud claim.
	Audience string
	// Issuer, if set, must be the token's iss claim.
	Issuer string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// JWTVerifier checks the tokens of HELLO: signed with its key by an
// algorithm of that key's type, with an exp claim that is not past, an
// nbf, if any, that is not ahead, and a sub claim that is the name being
// registered. It implements server.Authenticator, and is safe for
// concurrent use; its key can be replaced while it is in use (SetKey). A
// verification does no I/O; it costs about 8 µs with an HMAC secret and
// 50-100 µs with an RSA, ECDSA or Ed25519 key (BenchmarkVerify).
type JWTVerifier struct {
	parser *jwt.Parser
	key    atomic.Pointer[jwtKey]
	// audience and issuer are the aud and iss demanded, if any: a token
	// without them fails as ErrTokenRequiredClaimMissing, like one
	// without exp, and classify tells the three apart by them.
	audience, issuer string
}

// jwtKey is a verification key and the algorithms it is for.
type jwtKey struct {
	key  any
	algs []string
	kind string
}

// NewJWTVerifier returns a verifier for key: a PEM public key (PKIX
// "PUBLIC KEY", PKCS#1 "RSA PUBLIC KEY", or a "CERTIFICATE" whose key is
// taken) for RS256/384/512 and PS256/384/512 (RSA), ES256/384/512 (ECDSA
// P-256/P-384/P-521) or EdDSA (Ed25519); or else an HMAC secret, the
// bytes as given less trailing line ends, of at least MinSecretBytes, for
// HS256/384/512. Only the algorithms of the key's type are accepted, never
// "none".
func NewJWTVerifier(key []byte, opts JWTOptions) (*JWTVerifier, error) {
	k, err := parseJWTKey(key)
	if err != nil {
		return nil, err
	}
	po := []jwt.ParserOption{jwt.WithExpirationRequired()}
	switch {
	case opts.Leeway == 0:
		po = append(po, jwt.WithLeeway(DefaultLeeway))
	case opts.Leeway > 0:
		po = append(po, jwt.WithLeeway(opts.Leeway))
	}
	if opts.Audience != "" {
		po = append(po, jwt.WithAudience(opts.Audience))
	}
	if opts.Issuer != "" {
		po = append(po, jwt.WithIssuer(opts.Issuer))
	}
	if opts.Now != nil {
		po = append(po, jwt.WithTimeFunc(opts.Now))
	}
	v := &JWTVerifier{parser: jwt.NewParser(po...), audience: opts.Audience, issuer: opts.Issuer}
	v.key.Store(k)
	return v, nil
}

// LoadJWTVerifier returns a verifier for the key in file, as
// NewJWTVerifier reads it.
func LoadJWTVerifier(file string, opts JWTOptions) (*JWTVerifier, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("auth: JWT key: %w", err)
	}
	return NewJWTVerifier(b, opts)
}

// SetKey replaces the key, as NewJWTVerifier reads it, for the
// verifications that start from now on. If key is not valid, the old key
// stays and SetKey returns why.
func (v *JWTVerifier) SetKey(key []byte) error {
	k, err := parseJWTKey(key)
	if err != nil {
		return err
	}
	v.key.Store(k)
	return nil
}

// ReloadFile replaces the key with the one in file, or keeps the old one
// and returns why not.
func (v *JWTVerifier) ReloadFile(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("auth: JWT key: %w", err)
	}
	return v.SetKey(b)
}

// KeyType describes the key: "HMAC secret", "RSA public key", ….
func (v *JWTVerifier) KeyType() string { return v.key.Load().kind }

// Algorithms returns the algorithms the key accepts.
func (v *JWTVerifier) Algorithms() []string { return slices.Clone(v.key.Load().algs) }

// Authenticate implements server.Authenticator: it verifies token for
// name, and ignores the certificates.
func (v *JWTVerifier) Authenticate(name, token string, _ []*x509.Certificate) error {
	return v.Verify(token, name)
}

// Verify checks that token is valid and that its subject is name. It
// returns nil or an *Error.
func (v *JWTVerifier) Verify(token, name string) error {
	if token == "" {
		return refuse(ReasonMissingToken, "a token is required: send HELLO <name> {\"token\":\"<JWT>\"}", nil)
	}
	k := v.key.Load()
	var claims jwt.RegisteredClaims
	_, err := v.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		// The algorithms are pinned to the key's type here, in the key
		// function, rather than with jwt.WithValidMethods, so that a
		// refused algorithm can be told from a bad signature.
		if alg := t.Method.Alg(); !slices.Contains(k.algs, alg) {
			return nil, &algError{alg: alg, want: k.algs}
		}
		return k.key, nil
	})
	if err != nil {
		return v.classify(err, &claims)
	}
	if claims.Subject != name {
		return refuse(ReasonSubjectMismatch, fmt.Sprintf("the token's subject %q is not the name %q", claims.Subject, name), nil)
	}
	return nil
}

type algError struct {
	alg  string
	want []string
}

func (e *algError) Error() string {
	return fmt.Sprintf("algorithm %q is not accepted; the server's key takes %s", e.alg, strings.Join(e.want, ", "))
}

// classify turns an error of the parser into an *Error. claims are what
// the parser read of the token: jwt reports a missing exp, aud or iss
// alike, as ErrTokenRequiredClaimMissing.
func (v *JWTVerifier) classify(err error, claims *jwt.RegisteredClaims) *Error {
	var ae *algError
	missing := errors.Is(err, jwt.ErrTokenRequiredClaimMissing)
	switch {
	case errors.As(err, &ae):
		return refuse(ReasonBadAlgorithm, "token "+ae.Error(), err)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return refuse(ReasonMalformed, "the token is not a well-formed JWT", err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// The only other cause: an alg that the library does not know.
		return refuse(ReasonBadAlgorithm, "the token's algorithm is unknown or missing", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return refuse(ReasonBadSignature, "the token's signature is not valid for the server's key", err)
	case missing && claims.ExpiresAt == nil:
		return refuse(ReasonNoExpiry, "the token has no exp (expiry) claim", err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return refuse(ReasonExpired, "the token has expired", err)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return refuse(ReasonNotYetValid, "the token is not valid yet (nbf)", err)
	case missing && v.audience != "" && len(claims.Audience) == 0:
		return refuse(ReasonBadAudience, "the token has no audience (aud); this server wants one that names it", err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return refuse(ReasonBadAudience, "the token's audience (aud) does not name this server", err)
	case missing && v.issuer != "" && claims.Issuer == "":
		return refuse(ReasonBadIssuer, "the token has no issuer (iss); this server wants one", err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return refuse(ReasonBadIssuer, "the token's issuer (iss) is not the one expected", err)
	}
	return refuse(ReasonInvalidClaims, "the token's claims are not valid", err)
}

var (
	hmacAlgs    = []string{"HS256", "HS384", "HS512"}
	rsaAlgs     = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	ed25519Algs = []string{"EdDSA"}
)

// IsPEM reports whether key is PEM data, that is, whether it begins,
// after white space, with "-----BEGIN ". A JWT key that is not PEM is an
// HMAC secret (HMACSecret).
func IsPEM(key []byte) bool {
	return bytes.HasPrefix(bytes.TrimSpace(key), []byte("-----BEGIN "))
}

// HMACSecret returns the HMAC secret that key holds, as NewJWTVerifier
// reads one and as tokens should be signed with it: the bytes as given
// less trailing carriage returns and line feeds, at least MinSecretBytes
// of them. It does not check IsPEM. The secret returned is a copy.
func HMACSecret(key []byte) ([]byte, error) {
	secret := bytes.TrimRight(key, "\r\n")
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("auth: JWT key: an HMAC secret must be at least %d bytes (not counting a trailing newline), got %d", MinSecretBytes, len(secret))
	}
	return bytes.Clone(secret), nil
}

// parseJWTKey reads a PEM public key or else an HMAC secret.
func parseJWTKey(b []byte) (*jwtKey, error) {
	if !IsPEM(b) {
		secret, err := HMACSecret(b)
		if err != nil {
			return nil, fmt.Errorf("%w; or give a PEM public key", err)
		}
		return &jwtKey{key: secret, algs: hmacAlgs, kind: "HMAC secret"}, nil
	}
	trimmed := bytes.TrimSpace(b)
	block, rest := pem.Decode(trimmed)
	if block == nil {
		return nil, errors.New("auth: JWT key: the PEM data does not decode")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("auth: JWT key: more than one PEM block; give one public key")
	}
	var pub crypto.PublicKey
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = c.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("auth: JWT key: a %s; the server needs only the public key (openssl pkey -pubout)", block.Type)
		}
		return nil, fmt.Errorf("auth: JWT key: PEM block %q: want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: JWT key: %w", err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("auth: JWT key: an RSA key must have at least 2048 bits, got %d", k.N.BitLen())
		}
		return &jwtKey{key: k, algs: rsaAlgs, kind: "RSA public key"}, nil
	case *ecdsa.PublicKey:
		var alg string
		switch k.Curve {
		case elliptic.P256():
			alg = "ES256"
		case elliptic.P384():
			alg = "ES384"
		case elliptic.P521():
			alg = "ES512"
		default:
			return nil, fmt.Errorf("auth: JWT key: ECDSA curve %s: want P-256, P-384 or P-521", k.Curve.Params().Name)
		}
		return &jwtKey{key: k, algs: []string{alg}, kind: "ECDSA public key"}, nil
	case ed25519.PublicKey:
		return &jwtKey{key: k, algs: ed25519Algs, kind: "Ed25519 public key"}, nil
	}
	return nil, fmt.Errorf("auth: JWT key: a %T: want an RSA, ECDSA or Ed25519 public key", pub)
}
