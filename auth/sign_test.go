package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func pemPrivate(t *testing.T, priv any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// A token a Signer makes is one the verifier of the matching key accepts,
// with every algorithm the key takes, and refuses for another name.
func TestSignerTokensVerify(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tc := range []struct {
		name          string
		signKey, verf []byte
		algs          []string
	}{
		{"HMAC", append(secret, '\n'), secret, []string{"HS256", "HS384", "HS512"}},
		{"RSA", pemPrivate(t, rs), pemPublic(t, &rs.PublicKey), []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}},
		{"ECDSA P-384", pemPrivate(t, ec), pemPublic(t, &ec.PublicKey), []string{"ES384"}},
		{"Ed25519", pemPrivate(t, edPriv), pemPublic(t, edPub), []string{"EdDSA"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSigner(tc.signKey)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Algorithms(); !slices.Equal(got, tc.algs) {
				t.Errorf("algorithms %v, want %v", got, tc.algs)
			}
			v := verifier(t, tc.verf, JWTOptions{Audience: "pulse.test", Issuer: "ops"})
			for _, alg := range append([]string{""}, tc.algs...) {
				tok, err := s.Sign(alg, Claims{Subject: "web-1", IssuedAt: now, Expires: now.Add(time.Minute), Audience: "pulse.test", Issuer: "ops"})
				if err != nil {
					t.Fatalf("%q: %v", alg, err)
				}
				if err := v.Verify(tok, "web-1"); err != nil {
					t.Errorf("%q: the verifier refused the signer's token: %v", alg, err)
				}
				if err := v.Verify(tok, "web-2"); ReasonOf(err) != ReasonSubjectMismatch {
					t.Errorf("%q: a token for web-1 presented as web-2: %v, want %s", alg, err, ReasonSubjectMismatch)
				}
			}
			expired, err := s.Sign("", Claims{Subject: "web-1", Expires: now.Add(-time.Hour), Audience: "pulse.test", Issuer: "ops"})
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Verify(expired, "web-1"); ReasonOf(err) != ReasonExpired {
				t.Errorf("expired token: %v, want %s", err, ReasonExpired)
			}
		})
	}
}

func TestSignerRefuses(t *testing.T) {
	s, err := ParseSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign("RS256", Claims{Subject: "a", Expires: now}); err == nil || !strings.Contains(err.Error(), "an HMAC secret signs with HS256, HS384, HS512, not RS256") {
		t.Errorf("RS256 with a secret: %v", err)
	}
	if _, err := s.Sign("none", Claims{Subject: "a", Expires: now}); err == nil {
		t.Error("signed with none")
	}
	if _, err := s.Sign("", Claims{Subject: "a"}); err == nil || !strings.Contains(err.Error(), "needs an expiry") {
		t.Errorf("no expiry: %v", err)
	}

	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	for _, tc := range []struct {
		name string
		key  []byte
		says string
	}{
		{"short secret", secret[:31], "at least 32 bytes"},
		{"public key", pemPublic(t, &ec.PublicKey), `found PEM "PUBLIC KEY", not a private key`},
		{"small RSA", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)}), "at least 2048 bits, got 1024"},
		{"P-224", pemPrivate(t, p224), "ECDSA curve P-224"},
		{"encrypted", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("x")}), "encrypted"},
		{"two keys", append(pemPrivate(t, ec), pemPrivate(t, ec)...), "more than one private key"},
		{"garbage", []byte("-----BEGIN PRIVATE KEY-----\nnot base64\n"), "does not decode"},
	} {
		if _, err := ParseSigner(tc.key); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.says)
		}
	}
}

func TestLoadSigner(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "jwt.secret")
	if err := os.WriteFile(file, append(secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSigner(file)
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind() != "an HMAC secret" {
		t.Errorf("kind %q", s.Kind())
	}
	if _, err := LoadSigner(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	if err := os.WriteFile(file, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigner(file); err == nil || !strings.Contains(err.Error(), file+": ") {
		t.Errorf("short secret: %v, want the file named", err)
	}
}
