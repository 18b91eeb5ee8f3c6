package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pulsehq/pulse/auth"
	"github.com/pulsehq/pulse/internal/testpki"
)

// tokenRun runs pulse token in this process with env as the environment.
func tokenRun(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code = runWith(context.Background(), append([]string{"token"}, args...), &out, &errOut, lookup)
	return out.String(), errOut.String(), code
}

// pemFile writes a PEM block of der to a new file in dir.
func pemFile(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	f := filepath.Join(dir, name)
	testpki.WriteFile(t, f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	return f
}

func pkcs8(t *testing.T, priv any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func pkix(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// tokenKeys are key files made at run time: the file pulse token signs
// with, and the file the server verifies with.
type tokenKey struct {
	name          string
	private, verf string
	alg           string // the default algorithm of the key
}

func makeTokenKeys(t *testing.T, dir string) []tokenKey {
	t.Helper()
	secretFile := filepath.Join(dir, "jwt.secret")
	// As openssl rand -base64 48 writes it: text, with a line end.
	testpki.WriteFile(t, secretFile, []byte("hT3mZ0yq2pX8cVn4bL6wR9sK1dF5gJ7aQeYuIoPzXcVbNmLkJhGfDsAqWeRtYuIo\r\n"))
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(p384)
	if err != nil {
		t.Fatal(err)
	}
	return []tokenKey{
		{"HMAC", secretFile, secretFile, "HS256"},
		{"RSA PKCS#8", pemFile(t, dir, "rsa.pem", "PRIVATE KEY", pkcs8(t, rsaKey)), pemFile(t, dir, "rsa.pub", "PUBLIC KEY", pkix(t, &rsaKey.PublicKey)), "RS256"},
		{"RSA PKCS#1", pemFile(t, dir, "rsa1.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), pemFile(t, dir, "rsa1.pub", "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)), "RS256"},
		{"ECDSA P-256", pemFile(t, dir, "p256.pem", "PRIVATE KEY", pkcs8(t, p256)), pemFile(t, dir, "p256.pub", "PUBLIC KEY", pkix(t, &p256.PublicKey)), "ES256"},
		{"ECDSA P-384 SEC1", pemFile(t, dir, "p384.pem", "EC PRIVATE KEY", sec1), pemFile(t, dir, "p384.pub", "PUBLIC KEY", pkix(t, &p384.PublicKey)), "ES384"},
		{"Ed25519", pemFile(t, dir, "ed.pem", "PRIVATE KEY", pkcs8(t, edPriv)), pemFile(t, dir, "ed.pub", "PUBLIC KEY", pkix(t, edPub)), "EdDSA"},
	}
}

// claimsOf returns the header's alg and the claims of tok, unverified.
func claimsOf(t *testing.T, tok string) (string, jwt.MapClaims) {
	t.Helper()
	var c jwt.MapClaims
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, &c)
	if err != nil {
		t.Fatalf("token %q: %v", tok, err)
	}
	return parsed.Method.Alg(), c
}

// TestTokenVerifies: a token that pulse token makes with each kind of key
// is accepted by the server's verifier with the matching public key or
// secret, for its name and no other, with the sub and exp asked for.
func TestTokenVerifies(t *testing.T) {
	dir := t.TempDir()
	for _, k := range makeTokenKeys(t, dir) {
		t.Run(k.name, func(t *testing.T) {
			before := time.Now().Truncate(time.Second)
			out, errOut, code := tokenRun(t, nil, "--key", k.private, "--name", "web-1", "--ttl", "90m")
			after := time.Now()
			if code != 0 || !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and one line", code, out, errOut)
			}
			tok := strings.TrimSuffix(out, "\n")
			alg, c := claimsOf(t, tok)
			if alg != k.alg || c["sub"] != "web-1" {
				t.Fatalf("alg %s, claims %v; want %s and sub web-1", alg, c, k.alg)
			}
			exp, _ := c.GetExpirationTime()
			iat, _ := c.GetIssuedAt()
			if exp == nil || iat == nil || exp.Before(before.Add(90*time.Minute)) || exp.After(after.Add(90*time.Minute)) ||
				iat.Before(before) || iat.After(after) {
				t.Fatalf("exp %v, iat %v; want now+90m and now (now in %v..%v)", exp, iat, before, after)
			}
			if _, ok := c["aud"]; ok {
				t.Fatalf("an aud nobody asked for: %v", c)
			}
			v, err := auth.LoadJWTVerifier(k.verf, auth.JWTOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Verify(tok, "web-1"); err != nil {
				t.Fatalf("the server's verifier refuses the token: %v", err)
			}
			if err := v.Verify(tok, "web-2"); auth.ReasonOf(err) != auth.ReasonSubjectMismatch {
				t.Fatalf("a token for web-1 presented for web-2: %v, want %s", err, auth.ReasonSubjectMismatch)
			}
			// Past its expiry, beyond the leeway, the same token is refused.
			late, err := auth.LoadJWTVerifier(k.verf, auth.JWTOptions{Now: func() time.Time { return after.Add(91 * time.Minute) }})
			if err != nil {
				t.Fatal(err)
			}
			if err := late.Verify(tok, "web-1"); auth.ReasonOf(err) != auth.ReasonExpired {
				t.Fatalf("after its ttl: %v, want %s", err, auth.ReasonExpired)
			}
		})
	}
}

// TestTokenAlgAudienceIssuer: --alg picks among the key's algorithms, and
// --audience and --issuer make the claims a server with
// --auth-jwt-audience and --auth-jwt-issuer demands.
func TestTokenAlgAudienceIssuer(t *testing.T) {
	dir := t.TempDir()
	keys := makeTokenKeys(t, dir)
	for _, tc := range []struct {
		key tokenKey
		alg string
	}{{keys[0], "HS512"}, {keys[1], "PS256"}, {keys[2], "RS512"}, {keys[1], "PS384"}} {
		out, errOut, code := tokenRun(t, nil, "--key", tc.key.private, "--name", "db-7", "--alg", tc.alg,
			"--audience", "pulse.example", "--issuer", "ops")
		if code != 0 {
			t.Fatalf("%s --alg %s: exit %d, %s", tc.key.name, tc.alg, code, errOut)
		}
		tok := strings.TrimSpace(out)
		if alg, c := claimsOf(t, tok); alg != tc.alg || c["aud"] != "pulse.example" || c["iss"] != "ops" {
			t.Fatalf("%s --alg %s: alg %s, claims %v", tc.key.name, tc.alg, alg, c)
		}
		v, err := auth.LoadJWTVerifier(tc.key.verf, auth.JWTOptions{Audience: "pulse.example", Issuer: "ops"})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Verify(tok, "db-7"); err != nil {
			t.Fatalf("%s --alg %s: refused: %v", tc.key.name, tc.alg, err)
		}
		other, err := auth.LoadJWTVerifier(tc.key.verf, auth.JWTOptions{Audience: "elsewhere"})
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Verify(tok, "db-7"); auth.ReasonOf(err) != auth.ReasonBadAudience {
			t.Fatalf("a server of another audience: %v, want %s", err, auth.ReasonBadAudience)
		}
	}
}

// TestTokenOutputFile: -o writes the token and a line end to a file of
// mode 0600, replacing one that was there, and prints nothing on stdout.
func TestTokenOutputFile(t *testing.T) {
	dir := t.TempDir()
	k := makeTokenKeys(t, dir)[5]
	file := filepath.Join(dir, "web-1.jwt")
	if err := os.WriteFile(file, []byte("an old token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := tokenRun(t, nil, "--key", k.private, "--name", "web-1", "-o", file)
	if code != 0 || out != "" || !strings.Contains(errOut, "wrote the token for web-1 (EdDSA) to "+file) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	tok, err := readToken(file) // as the agent reads it
	if err != nil || string(b) != tok+"\n" {
		t.Fatalf("file %q (%v)", b, err)
	}
	v, err := auth.LoadJWTVerifier(k.verf, auth.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(tok, "web-1"); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 12 { // the 11 key files and the token; no temporary left
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("files left in the directory: %v", names)
	}
}

// TestTokenEnvironment: the flags come from PULSE_TOKEN_KEY, PULSE_NAME,
// PULSE_TTL …; PULSE_KEY, the agent's TLS key, and PULSE_OUTPUT, the
// format of ls and watch, are not read.
func TestTokenEnvironment(t *testing.T) {
	dir := t.TempDir()
	keys := makeTokenKeys(t, dir)
	t.Chdir(dir) // where a wrongly read PULSE_OUTPUT would write "json"
	env := map[string]string{"PULSE_TOKEN_KEY": keys[3].private, "PULSE_NAME": "edge-3", "PULSE_TTL": "2h", "PULSE_OUTPUT": "json", "PULSE_KEY": keys[5].private}
	out, errOut, code := tokenRun(t, env)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	alg, c := claimsOf(t, strings.TrimSpace(out))
	exp, _ := c.GetExpirationTime()
	if alg != "ES256" || c["sub"] != "edge-3" || time.Until(exp.Time) < 119*time.Minute || time.Until(exp.Time) > 2*time.Hour {
		t.Fatalf("alg %s, claims %v", alg, c)
	}
	if _, err := os.Stat("json"); err == nil {
		t.Fatal("PULSE_OUTPUT=json wrote a file named json")
	}
	if _, errOut, code := tokenRun(t, map[string]string{"PULSE_KEY": keys[5].private}, "--name", "x"); code != 2 || !strings.Contains(errOut, "--key is required") {
		t.Fatalf("PULSE_KEY alone: exit %d, %s; want 2, --key is required", code, errOut)
	}
}

// TestTokenErrors: mistakes in the command line exit 2, keys that cannot
// sign exit 1, and each says what is wrong.
func TestTokenErrors(t *testing.T) {
	dir := t.TempDir()
	keys := makeTokenKeys(t, dir)
	secret, rsaKey, p256, ed := keys[0], keys[1], keys[3], keys[5]
	short := filepath.Join(dir, "short.secret")
	testpki.WriteFile(t, short, []byte("only-31-bytes-long-0123456789ab\n"))
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	smallFile := pemFile(t, dir, "small.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small))
	p224File := pemFile(t, dir, "p224.pem", "PRIVATE KEY", pkcs8(t, p224))
	x25519File := pemFile(t, dir, "x25519.pem", "PRIVATE KEY", pkcs8(t, x25519))
	encrypted := pemFile(t, dir, "enc.pem", "ENCRYPTED PRIVATE KEY", []byte("not really"))
	ca := testpki.NewCA(t, "token test CA")
	certFile := filepath.Join(dir, "ca.crt")
	testpki.WriteFile(t, certFile, ca.PEM)
	garbage := filepath.Join(dir, "garbage.pem")
	testpki.WriteFile(t, garbage, []byte("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n"))

	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"--name", "web-1"}, 2, "--key is required"},
		{[]string{"--key", secret.private}, 2, "--name is required"},
		{[]string{"--key", secret.private, "--name", "web 1"}, 2, `--name "web 1" is not 1-64 of`},
		{[]string{"--key", secret.private, "--name", strings.Repeat("a", 65)}, 2, "is not 1-64 of"},
		{[]string{"--key", secret.private, "--name", "web-1", "--ttl", "0s"}, 2, "--ttl must be positive, got 0s"},
		{[]string{"--key", secret.private, "--name", "web-1", "--ttl", "-1h"}, 2, "--ttl must be positive"},
		{[]string{"--key", secret.private, "--name", "web-1", "--ttl", "soon"}, 2, "want a duration"},
		{[]string{"--key", secret.private, "--name", "web-1", "--alg", "none"}, 2, `--alg "none": want one of HS256`},
		{[]string{"--key", rsaKey.private, "--name", "web-1", "--alg", "ES256"}, 2, "--alg ES256 does not go with --key " + rsaKey.private + ", an RSA private key: it takes RS256, RS384, RS512, PS256, PS384, PS512"},
		{[]string{"--key", p256.private, "--name", "web-1", "--alg", "ES384"}, 2, "an ECDSA P-256 private key: it takes ES256"},
		{[]string{"--key", ed.private, "--name", "web-1", "--alg", "HS256"}, 2, "an Ed25519 private key: it takes EdDSA"},
		{[]string{"--key", secret.private, "--name", "web-1", "--alg", "RS256"}, 2, "an HMAC secret: it takes HS256, HS384, HS512"},
		{[]string{"--key", secret.private, "--name", "web-1", "stray"}, 2, `unexpected argument "stray"`},
		{[]string{"--key", filepath.Join(dir, "missing"), "--name", "web-1"}, 1, "no such file"},
		{[]string{"--key", short, "--name", "web-1"}, 1, "an HMAC secret must be at least 32 bytes (not counting a trailing newline), got 31; or give a PEM private key"},
		{[]string{"--key", p256.verf, "--name", "web-1"}, 1, `found PEM "PUBLIC KEY", not a private key`},
		{[]string{"--key", keys[2].verf, "--name", "web-1"}, 1, `found PEM "RSA PUBLIC KEY", not a private key`},
		{[]string{"--key", certFile, "--name", "web-1"}, 1, `found PEM "CERTIFICATE", not a private key`},
		{[]string{"--key", smallFile, "--name", "web-1"}, 1, "at least 2048 bits, got 1024"},
		{[]string{"--key", p224File, "--name", "web-1"}, 1, "ECDSA curve P-224: want P-256, P-384 or P-521"},
		{[]string{"--key", x25519File, "--name", "web-1"}, 1, "want an RSA, ECDSA or Ed25519 private key"},
		{[]string{"--key", encrypted, "--name", "web-1"}, 1, "the private key is encrypted"},
		{[]string{"--key", garbage, "--name", "web-1"}, 1, "the PEM data does not decode"},
		{[]string{"--key", secret.private, "--name", "web-1", "-o", filepath.Join(dir, "no-such-dir", "t.jwt")}, 1, "-o: "},
	} {
		out, errOut, code := tokenRun(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.says) || out != "" {
			t.Errorf("pulse token %v: exit %d, stdout %q, stderr %q; want %d and %q", tc.args, code, out, errOut, tc.code, tc.says)
		}
		if tc.code == 2 && !strings.Contains(errOut, "Run 'pulse token --help' for usage.") {
			t.Errorf("pulse token %v: a usage error without the pointer to --help: %q", tc.args, errOut)
		}
	}
}

func TestTokenHelp(t *testing.T) {
	out, _, code := tokenRun(t, nil, "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"Usage: pulse token", "--key FILE", "PULSE_TOKEN_KEY", "--name NAME", "PULSE_NAME", "--ttl DURATION", "(default 24h0m0s)",
		"--alg ALGORITHM", "--audience STRING", "--issuer STRING", "-o FILE", "PULSE_TOKEN_OUTPUT", "mode 0600",
		"openssl rand -base64 48 > jwt.secret", "openssl genpkey -algorithm ed25519 -out key.pem",
		"openssl pkey -in key.pem -pubout -out pub.pem", "pulse agent --name web-1 --token-file web-1.jwt",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("pulse token --help lacks %q:\n%s", want, out)
		}
	}
	var stdout bytes.Buffer
	run(context.Background(), []string{"help"}, &stdout, &bytes.Buffer{})
	if !strings.Contains(stdout.String(), "  token ") {
		t.Errorf("pulse help does not list token:\n%s", stdout.String())
	}
}

// TestTokenEndToEnd: a server with an HMAC --auth-jwt-key registers an
// agent whose --token-file pulse token wrote, and refuses an agent that
// presents that token for another name.
func TestTokenEndToEnd(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "jwt.secret")
	testpki.WriteFile(t, secretFile, []byte(strings.Repeat("e2e-secret-", 5)+"\n"))
	tokenFile := filepath.Join(dir, "web-1.jwt")
	if _, errOut, code := pulseOnce(t, "token", "--key", secretFile, "--name", "web-1", "--ttl", "10m", "-o", tokenFile); code != 0 {
		t.Fatalf("pulse token: exit %d, %s", code, errOut)
	}

	srv := start(t, "serve", "--listen", "127.0.0.1:0", "--interval", "100ms", "--auth-jwt-key", secretFile)
	addr := srv.await(t, "listening", nil)["addr"].(string)
	agent := start(t, "agent", "--server", addr, "--name", "web-1", "--token-file", tokenFile)
	reg := agent.await(t, "registered", map[string]any{"name": "web-1"})
	if joined := srv.await(t, "session joined", map[string]any{"name": "web-1"}); joined["id"] != reg["session"] {
		t.Fatalf("server: %v; agent: %v", joined, reg)
	}

	impostor := start(t, "agent", "--server", addr, "--name", "web-2", "--token-file", tokenFile)
	rejected := impostor.await(t, "rejected by the server; stopping", nil)
	if !strings.Contains(rejected["error"].(string), `the token's subject "web-1" is not the name "web-2"`) {
		t.Fatalf("impostor: %v", rejected)
	}
	if code := impostor.wait(t); code != 1 {
		t.Fatalf("impostor exited %d, want 1", code)
	}
	if code := agent.exit(t, syscall.SIGINT); code != 0 {
		t.Fatalf("agent exited %d", code)
	}
	if code := srv.exit(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
}
