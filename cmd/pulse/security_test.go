package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pulsehq/pulse/internal/testpki"
)

// TestTLSAndJWTEndToEnd runs pulse serve with TLS and JWT authentication
// as a user would, with an agent that has its CA and token, one that has
// no token, pulse ls over https, /metrics, and a certificate reloaded on
// SIGHUP under a live session.
func TestTLSAndJWTEndToEnd(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "pulse e2e CA")
	caFile := filepath.Join(dir, "ca.crt")
	testpki.WriteFile(t, caFile, ca.PEM)
	certFile, keyFile := ca.Server(t, "server-1").WriteFiles(t, dir, "server")
	secret := []byte("an-hmac-secret-for-the-e2e-test-of-pulse")
	secretFile := filepath.Join(dir, "jwt.secret")
	testpki.WriteFile(t, secretFile, append(secret, '\n'))
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "web-1", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "web-1.jwt")
	testpki.WriteFile(t, tokenFile, []byte(tok+"\n"))

	srv := start(t, "serve", "--listen", "127.0.0.1:0", "--interval", "100ms",
		"--tls-cert", certFile, "--tls-key", keyFile, "--auth-jwt-key", secretFile)
	web := srv.await(t, "http listening", nil)["addr"].(string)
	addr := srv.await(t, "listening", nil)["addr"].(string)

	watch, watchErr := startLong(t, "watch", "--http", web, "--ca", caFile)
	watchErr.await(t, "pulse watch: watching https://"+web)
	agent := start(t, "agent", "--server", addr, "--name", "web-1", "--tls", "--ca", caFile, "--token-file", tokenFile)
	reg := agent.await(t, "registered", map[string]any{"name": "web-1"})
	srv.await(t, "session joined", map[string]any{"name": "web-1"})
	watch.await(t, "joined", " web-1 ")

	// Without a token: refused for good, and the agent says so.
	rogue := start(t, "agent", "--server", addr, "--name", "web-2", "--ca", caFile)
	rejected := rogue.await(t, "rejected by the server; stopping", nil)
	if !strings.Contains(rejected["error"].(string), "unauthorized") {
		t.Fatalf("rogue agent: %v", rejected)
	}
	srv.await(t, "connection rejected", map[string]any{"code": "unauthorized"})
	if code := rogue.wait(t); code != 1 {
		t.Fatalf("rogue agent exited %d, want 1", code)
	}

	// The API over https: pulse ls with the CA, and with an https:// address.
	out, errOut, code := pulseOnce(t, "ls", "--http", web, "--tls", "--ca", caFile, "-o", "json")
	var sessions []struct{ Name, ID string }
	if err := json.Unmarshal([]byte(out), &sessions); err != nil || code != 0 || len(sessions) != 1 || sessions[0].Name != "web-1" {
		t.Fatalf("pulse ls --tls: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if out, errOut, code := pulseOnce(t, "ls", "--http", "https://"+web, "--ca", caFile); code != 0 || !strings.Contains(out, "web-1") {
		t.Fatalf("pulse ls --http https://: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := pulseOnce(t, "ls", "--http", "https://"+web); code != 1 || !strings.Contains(errOut, "give the CA that signed it with --ca") {
		t.Fatalf("pulse ls without the CA: exit %d, %s", code, errOut)
	}
	if _, errOut, code := pulseOnce(t, "ls", "--http", web); code != 1 || !strings.Contains(errOut, "the server speaks https there") || !strings.Contains(errOut, "Add --tls") {
		t.Fatalf("pulse ls over plain http: exit %d, %s", code, errOut)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	metrics := get(t, hc, "https://"+web+"/metrics")
	if !strings.Contains(metrics, `pulse_auth_failures_total{reason="missing_token"} 1`) {
		t.Fatalf("/metrics does not count the refused agent:\n%s", grepLines(metrics, "pulse_auth"))
	}

	// SIGHUP: a new certificate for new connections on both ports, and the
	// live session untouched.
	ca.Server(t, "server-2").WriteFiles(t, dir, "server")
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	srv.await(t, "TLS certificate reloaded", nil)
	for _, a := range []string{addr, web} {
		nc, err := tls.Dial("tcp", a, &tls.Config{RootCAs: ca.Pool()})
		if err != nil {
			t.Fatal(err)
		}
		if cn := nc.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "server-2" {
			t.Errorf("%s presents %q after SIGHUP, want server-2", a, cn)
		}
		nc.Close()
	}
	before := sessions[0]
	deadline := time.Now().Add(patience)
	for { // the session is the same one, and keeps beating
		out, _, _ = pulseOnce(t, "ls", "--http", web, "--ca", caFile, "-o", "json")
		var now []struct {
			Name, ID string
			Beats    int
		}
		if err := json.Unmarshal([]byte(out), &now); err != nil || len(now) != 1 || now[0].ID != before.ID || now[0].ID != reg["session"] {
			t.Fatalf("after SIGHUP: %s (before: %v)", out, before)
		}
		if now[0].Beats > 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session stopped beating: %s", out)
		}
		time.Sleep(50 * time.Millisecond) // polling a real server for a condition
	}
	if code := agent.exit(t, syscall.SIGINT); code != 0 {
		t.Fatalf("agent exited %d", code)
	}
	if code := srv.exit(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
}

// wait waits for the process to exit by itself and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	go func() {
		for range p.logs { // keep draining so the process never blocks on its log
		}
	}()
	select {
	case err := <-p.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(patience):
		t.Fatalf("%s did not exit", p.cmd.Args[1])
	}
	return -1
}

func get(t *testing.T, hc *http.Client, url string) string {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestSecurityFlagErrors: flags that go together say so, and exit 2.
func TestSecurityFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"serve", "--tls-cert", "x.crt"}, "--tls-cert and --tls-key go together"},
		{[]string{"serve", "--tls-client-ca", "ca.crt"}, "--tls-client-ca needs TLS"},
		{[]string{"serve", "--auth-jwt-audience", "a"}, "need --auth-jwt-key"},
		{[]string{"serve", "--auth-jwt-leeway", "1m"}, "need --auth-jwt-key"},
		{[]string{"agent", "--cert", "x.crt"}, "needs both a certificate and a key"},
		{[]string{"ls", "--http", "http://127.0.0.1:1", "--tls"}, "plain http"},
	} {
		_, errOut, code := pulseOnce(t, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.says) {
			t.Errorf("pulse %v: exit %d, %q; want 2 and %q", tc.args, code, errOut, tc.says)
		}
	}
}
