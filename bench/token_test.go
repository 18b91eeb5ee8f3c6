package bench

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/auth"
	"github.com/pulsehq/pulse/server"
)

// newSecret returns a random HMAC secret, as a server's --auth-jwt-key
// file would hold one.
func newSecret(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 48)
	rand.Read(b)
	for i := range b { // printable, no line ends: the file's bytes are the secret
		b[i] = 'a' + b[i]%26
	}
	return b
}

// startAuthServer runs a server that demands a JWT signed with secret in
// every HELLO, and returns its heartbeat and API addresses.
func startAuthServer(t *testing.T, secret []byte) (*server.Server, string, string) {
	t.Helper()
	v, err := auth.NewJWTVerifier(secret, auth.JWTOptions{Audience: "pulse.test"})
	if err != nil {
		t.Fatal(err)
	}
	return startServerConfig(t, server.Config{Timing: generous, Logger: quiet, Authenticator: v})
}

func signer(t *testing.T, secret []byte) *auth.Signer {
	t.Helper()
	s, err := auth.ParseSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Against a server that authenticates, clients with tokens signed by its
// key register, in this process and in workers; the same run without
// tokens, or with tokens of another key, has not one client registered.
func TestRunWithTokens(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	srv, addr, api := startAuthServer(t, secret)
	tokens := SignedTokens(signer(t, secret), TokenOptions{Audience: "pulse.test"})

	res := run(t, Config{Server: addr, HTTP: api, Clients: 20, Duration: 2 * time.Second,
		Silence: 0.1, Disconnect: 0.1, FailAt: 500 * time.Millisecond, Token: tokens})
	checkAddsUp(t, res, 20, 2, 2)
	awaitNoSessions(t, srv)

	res = run(t, Config{Server: addr, HTTP: api, Clients: 20, Duration: 2 * time.Second,
		Silence: 0.1, Disconnect: 0.1, FailAt: 500 * time.Millisecond, Token: tokens,
		PerProcess: 8, WorkerCommand: []string{os.Args[0], workerArg}, WorkerStderr: os.Stderr})
	if res.Processes != 3 {
		t.Errorf("%d processes, want 3", res.Processes)
	}
	checkAddsUp(t, res, 20, 2, 2)
	awaitNoSessions(t, srv)

	for _, tc := range []struct {
		name  string
		token func(string) (string, error)
		says  string
	}{
		{"no token", nil, "unauthorized"},
		{"another key", SignedTokens(signer(t, newSecret(t)), TokenOptions{Audience: "pulse.test"}), "signature"},
		{"another audience", SignedTokens(signer(t, secret), TokenOptions{Audience: "elsewhere"}), "unauthorized"},
		{"expired", func(name string) (string, error) {
			return signer(t, secret).Sign("", auth.Claims{Subject: name, Expires: time.Now().Add(-time.Hour), Audience: "pulse.test"})
		}, "expired"},
		{"another name's", func(string) (string, error) { return tokens("someone-else") }, "unauthorized"},
	} {
		_, err := Run(context.Background(), Config{Server: addr, Clients: 3, Duration: time.Second, Token: tc.token})
		if !errors.Is(err, ErrNoClients) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, ErrNoClients, tc.says)
		}
	}
}

// tokenIsName accepts a HELLO whose token is "t-" and the name.
type tokenIsName struct{}

func (tokenIsName) Authenticate(name, token string, _ []*x509.Certificate) error {
	if token != "t-"+name {
		return fmt.Errorf("token %q for %s", token, name)
	}
	return nil
}

// Each client gets the token of its own name, and an error of the token
// function stops the run before any client connects.
func TestRunTokenPerName(t *testing.T) {
	t.Parallel()
	srv, addr, _ := startServerConfig(t, server.Config{Timing: generous, Logger: quiet, Authenticator: tokenIsName{}})
	var names []string
	res := run(t, Config{Server: addr, Clients: 5, Duration: 500 * time.Millisecond, NamePrefix: "tok-",
		Token: func(name string) (string, error) { names = append(names, name); return "t-" + name, nil }})
	if res.Connections.Connected != 5 || strings.Join(names, ",") != "tok-0,tok-1,tok-2,tok-3,tok-4" {
		t.Errorf("connected %d; tokens asked for %v", res.Connections.Connected, names)
	}
	awaitNoSessions(t, srv)

	boom := errors.New("no key")
	_, err := Run(context.Background(), Config{Server: addr, Clients: 5, Duration: time.Second,
		Token: func(string) (string, error) { return "", boom }})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "the token of client 0") {
		t.Errorf("token error: %v", err)
	}
}
