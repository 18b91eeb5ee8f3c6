package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	now    = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	secret = []byte("0123456789abcdef0123456789abcdef") // 32 bytes
)

func claims(sub string, exp time.Duration) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "exp": now.Add(exp).Unix()}
}

func sign(t *testing.T, m jwt.SigningMethod, c jwt.Claims, key any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pemPublic(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func verifier(t *testing.T, key []byte, opts JWTOptions) *JWTVerifier {
	t.Helper()
	opts.Now = func() time.Time { return now }
	v, err := NewJWTVerifier(key, opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestJWTAccepts(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tc := range []struct {
		name   string
		key    []byte
		method jwt.SigningMethod
		signer any
	}{
		{"HS256", secret, jwt.SigningMethodHS256, secret},
		{"HS512 secret file with newline", append(secret, '\n'), jwt.SigningMethodHS512, secret},
		{"ES256", pemPublic(t, &ec.PublicKey), jwt.SigningMethodES256, ec},
		{"EdDSA", pemPublic(t, edPub), jwt.SigningMethodEdDSA, edPriv},
		{"RS256", pemPublic(t, &rs.PublicKey), jwt.SigningMethodRS256, rs},
		{"PS256", pemPublic(t, &rs.PublicKey), jwt.SigningMethodPS256, rs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := verifier(t, tc.key, JWTOptions{})
			if err := v.Verify(sign(t, tc.method, claims("web-1", time.Minute), tc.signer), "web-1"); err != nil {
				t.Fatalf("valid token refused: %v", err)
			}
		})
	}
}

func TestJWTRefuses(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPEM := pemPublic(t, &ec.PublicKey)
	other := []byte("another-secret-another-secret-xx")
	hs := verifier(t, secret, JWTOptions{})
	es := verifier(t, ecPEM, JWTOptions{})
	aud := verifier(t, secret, JWTOptions{Audience: "pulse-eu", Issuer: "ops"})
	noneToken := sign(t, jwt.SigningMethodNone, claims("web-1", time.Minute), jwt.UnsafeAllowNoneSignatureType)
	for _, tc := range []struct {
		name   string
		v      *JWTVerifier
		token  string
		reason string
	}{
		{"no token", hs, "", ReasonMissingToken},
		{"not a JWT", hs, "hello", ReasonMalformed},
		{"bad signature", hs, sign(t, jwt.SigningMethodHS256, claims("web-1", time.Minute), other), ReasonBadSignature},
		{"tampered", hs, tamper(sign(t, jwt.SigningMethodHS256, claims("web-1", time.Minute), secret)), ReasonBadSignature},
		{"none", hs, noneToken, ReasonBadAlgorithm},
		{"none with a public key", es, noneToken, ReasonBadAlgorithm},
		// Alg confusion: HS256 with the server's public key as the secret.
		{"HS256 keyed with the public key", es, sign(t, jwt.SigningMethodHS256, claims("web-1", time.Minute), ecPEM), ReasonBadAlgorithm},
		{"RS256 for an HMAC key", hs, rs256(t), ReasonBadAlgorithm},
		{"expired", hs, sign(t, jwt.SigningMethodHS256, claims("web-1", -time.Minute), secret), ReasonExpired},
		{"not yet valid", hs, sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"sub": "web-1", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(time.Minute).Unix()}, secret), ReasonNotYetValid},
		{"no exp", hs, sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"sub": "web-1"}, secret), ReasonNoExpiry},
		{"sub mismatch", hs, sign(t, jwt.SigningMethodHS256, claims("web-2", time.Minute), secret), ReasonSubjectMismatch},
		{"no sub", hs, sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"exp": now.Add(time.Minute).Unix()}, secret), ReasonSubjectMismatch},
		{"wrong audience", aud, sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"sub": "web-1", "exp": now.Add(time.Minute).Unix(), "aud": "pulse-us", "iss": "ops"}, secret), ReasonBadAudience},
		{"no audience", aud, sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"sub": "web-1", "exp": now.Add(time.Minute).Unix(), "iss": "ops"}, secret), ReasonBadAudience},
		{"no issuer", aud, sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"sub": "web-1", "exp": now.Add(time.Minute).Unix(), "aud": "pulse-eu"}, secret), ReasonBadIssuer},
		{"no exp, with audience and issuer", aud, sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"sub": "web-1", "aud": "pulse-eu", "iss": "ops"}, secret), ReasonNoExpiry},
		{"wrong issuer", aud, sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"sub": "web-1", "exp": now.Add(time.Minute).Unix(), "aud": "pulse-eu", "iss": "dev"}, secret), ReasonBadIssuer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.v.Verify(tc.token, "web-1")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Verify = %v, want an *Error", err)
			}
			if e.Reason != tc.reason {
				t.Fatalf("reason %q (%v), want %q", e.Reason, err, tc.reason)
			}
			if strings.ContainsAny(e.Message, "\r\n") || e.Message == "" {
				t.Fatalf("message %q is not one line for ERR", e.Message)
			}
		})
	}
	// With the right audience and issuer, the same verifier accepts.
	ok := sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"sub": "web-1", "exp": now.Add(time.Minute).Unix(), "aud": []string{"x", "pulse-eu"}, "iss": "ops"}, secret)
	if err := aud.Verify(ok, "web-1"); err != nil {
		t.Fatalf("token with the audience and issuer refused: %v", err)
	}
}

func TestJWTLeeway(t *testing.T) {
	tok := sign(t, jwt.SigningMethodHS256, claims("web-1", -20*time.Second), secret)
	if err := verifier(t, secret, JWTOptions{}).Verify(tok, "web-1"); err != nil {
		t.Fatalf("expired 20 s ago, within the default 30 s leeway: %v", err)
	}
	if err := verifier(t, secret, JWTOptions{Leeway: -1}).Verify(tok, "web-1"); ReasonOf(err) != ReasonExpired {
		t.Fatalf("no leeway: got %v, want expired", err)
	}
}

func rs256(t *testing.T) string {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	return sign(t, jwt.SigningMethodRS256, claims("web-1", time.Minute), k)
}

// tamper changes the claims of a token, keeping its signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	c := jwt.MapClaims{"sub": "web-1", "exp": now.Add(time.Hour).Unix(), "admin": true}
	b, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SigningString()
	return b + "." + parts[2]
}

func TestJWTKeys(t *testing.T) {
	rs, _ := rsa.GenerateKey(rand.Reader, 1024)
	ec, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	privDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	for _, tc := range []struct {
		name string
		key  []byte
		want string // in the error; "" for none
		algs string
	}{
		{"short secret", []byte("short\n"), "at least 32 bytes", ""},
		{"small RSA", pemPublic(t, &rs.PublicKey), "at least 2048 bits", ""},
		{"private key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), "only the public key", ""},
		{"garbage PEM", []byte("-----BEGIN PUBLIC KEY-----\nnope\n"), "does not decode", ""},
		{"P-384", pemPublic(t, &ec.PublicKey), "", "ES384"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewJWTVerifier(tc.key, JWTOptions{})
			if tc.want == "" {
				if err != nil || strings.Join(v.Algorithms(), ",") != tc.algs {
					t.Fatalf("got %v, %v; want algorithms %s", v, err, tc.algs)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestJWTSetKey(t *testing.T) {
	v := verifier(t, secret, JWTOptions{})
	other := []byte("another-secret-another-secret-xx")
	oldTok := sign(t, jwt.SigningMethodHS256, claims("a", time.Minute), secret)
	newTok := sign(t, jwt.SigningMethodHS256, claims("a", time.Minute), other)
	if err := v.SetKey([]byte("short")); err == nil {
		t.Fatal("a bad key was taken")
	}
	if err := v.Verify(oldTok, "a"); err != nil {
		t.Fatalf("a failed SetKey lost the old key: %v", err)
	}
	if err := v.SetKey(other); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(newTok, "a"); err != nil {
		t.Fatalf("new key: %v", err)
	}
	if ReasonOf(v.Verify(oldTok, "a")) != ReasonBadSignature {
		t.Fatal("the old key still verifies after SetKey")
	}
}

func BenchmarkVerify(b *testing.B) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	t := &testing.T{}
	for _, bc := range []struct {
		name   string
		key    []byte
		method jwt.SigningMethod
		signer any
	}{
		{"HS256", secret, jwt.SigningMethodHS256, secret},
		{"ES256", pemPublic(t, &ec.PublicKey), jwt.SigningMethodES256, ec},
		{"EdDSA", pemPublic(t, edPub), jwt.SigningMethodEdDSA, edPriv},
		{"RS256", pemPublic(t, &rs.PublicKey), jwt.SigningMethodRS256, rs},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v, err := NewJWTVerifier(bc.key, JWTOptions{Now: func() time.Time { return now }})
			if err != nil {
				b.Fatal(err)
			}
			tok, err := jwt.NewWithClaims(bc.method, claims("web-1", time.Minute)).SignedString(bc.signer)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := v.Verify(tok, "web-1"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestHMACSecret: the secret is the bytes less trailing line ends, kept
// inside, and IsPEM tells a PEM file from a secret as NewJWTVerifier does.
func TestHMACSecret(t *testing.T) {
	raw := []byte("0123456789abcdef\n0123456789abcdef")
	for _, in := range [][]byte{raw, append(bytes.Clone(raw), '\n'), append(bytes.Clone(raw), "\r\n\n"...)} {
		got, err := HMACSecret(in)
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("HMACSecret(%q) = %q, %v; want %q", in, got, err, raw)
		}
	}
	if _, err := HMACSecret([]byte(strings.Repeat("x", MinSecretBytes-1) + "\r\n")); err == nil || !strings.Contains(err.Error(), "at least 32 bytes") {
		t.Fatalf("a 31-byte secret: %v", err)
	}
	if !IsPEM([]byte("\n  -----BEGIN PUBLIC KEY-----\n")) || IsPEM(raw) {
		t.Fatal("IsPEM")
	}
}
