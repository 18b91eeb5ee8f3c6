package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tokenFile writes token to a file of its own and returns its path.
func tokenFile(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAPITokenEndToEnd: pulse serve --api-token-file; pulse ls without the
// token is refused and told what to do, with --token-file or
// PULSE_TOKEN_FILE it lists, and with another token it is refused; kick
// wants it too.
func TestAPITokenEndToEnd(t *testing.T) {
	const token = "4f9c2b7e1a0d3c5b8e6f4a2d1c0b9e8f"
	srv := start(t, "serve", "--listen", "127.0.0.1:0", "--api-token-file", tokenFile(t, token))
	web := srv.await(t, "http listening", map[string]any{"token": true})["addr"].(string)
	addr := srv.await(t, "listening", nil)["addr"].(string)
	a := start(t, "agent", "--server", addr, "--name", "web-1")
	a.await(t, "registered", nil)

	_, errOut, code := pulseOnce(t, "ls", "--http", web)
	if code != 1 || !strings.Contains(errOut, "wants the API token") || !strings.Contains(errOut, "--token-file") {
		t.Errorf("ls without the token: exit %d, %q", code, errOut)
	}
	_, errOut, code = pulseOnce(t, "ls", "--http", web, "--token-file", tokenFile(t, "not-the-token-at-all"))
	if code != 1 || !strings.Contains(errOut, "not this server's") {
		t.Errorf("ls with another token: exit %d, %q", code, errOut)
	}
	out, errOut, code := pulseOnce(t, "ls", "--http", web, "--token-file", tokenFile(t, token))
	if code != 0 || !strings.Contains(out, "web-1 ") {
		t.Errorf("ls --token-file: exit %d\n%s%s", code, out, errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "ls", "--http", web)
	cmd.Env = append(os.Environ(), "PULSE_TOKEN_FILE="+tokenFile(t, token))
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "web-1 ") {
		t.Errorf("ls with PULSE_TOKEN_FILE: %v\n%s", err, out)
	}
	if _, errOut, code := pulseOnce(t, "watch", "--http", web); code != 1 || !strings.Contains(errOut, "--token-file") {
		t.Errorf("watch without the token: exit %d, %q", code, errOut)
	}
	watch, watchErr := startLong(t, "watch", "--http", web, "--token-file", tokenFile(t, token))
	watchErr.await(t, "pulse watch: watching http://"+web)
	if _, errOut, code := pulseOnce(t, "kick", "web-1", "--http", web); code != 1 || !strings.Contains(errOut, "--token-file") {
		t.Errorf("kick without the token: exit %d, %q", code, errOut)
	}
	if out, errOut, code := pulseOnce(t, "kick", "web-1", "--http", web, "--token-file", tokenFile(t, token)); code != 0 {
		t.Errorf("kick --token-file: exit %d\n%s%s", code, out, errOut)
	}
	watch.await(t, "kicked", "web-1")
	if code := srv.exit(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
}

// TestNonLoopbackHTTPWantsAToken: without a token, pulse serve refuses an
// HTTP address other than loopback, says why and what to do, unless
// --insecure-http is given; loopback needs nothing.
func TestNonLoopbackHTTPWantsAToken(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "example.com:7071"} {
		var stdout, stderr bytes.Buffer
		code := runWith(context.Background(), []string{"serve", "--listen", "127.0.0.1:0", "--http", addr}, &stdout, &stderr,
			func(string) (string, bool) { return "", false })
		if msg := stderr.String(); code != 2 || !strings.Contains(msg, "not a loopback address, without a token") ||
			!strings.Contains(msg, "--api-token-file") || !strings.Contains(msg, "--insecure-http") {
			t.Errorf("serve --http %s: exit %d, %q", addr, code, msg)
		}
	}
	for _, addr := range []string{"127.0.0.1:7071", "localhost:7071", "[::1]:7071", "127.0.0.2:0"} {
		if !loopbackAddr(addr) {
			t.Errorf("%s is not taken for loopback", addr)
		}
	}
	srv := start(t, "serve", "--listen", "127.0.0.1:0", "--http", "0.0.0.0:0", "--insecure-http")
	srv.await(t, "serving the HTTP API without a token on a non-loopback address (--insecure-http): anyone who reaches it may list and kick sessions", nil)
	srv.await(t, "http listening", map[string]any{"token": false})
	if code := srv.exit(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
}

func TestLimitAndTokenUsageErrors(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	_ = os.WriteFile(short, []byte("abc\n"), 0o600)
	for _, tt := range []struct {
		args []string
		out  string
	}{
		{[]string{"serve", "--max-conns", "-2"}, "--max-conns must be -1 or more"},
		{[]string{"serve", "--max-conns-per-ip", "-1"}, "--max-conns-per-ip and --max-beat-rate 0 or more"},
		{[]string{"serve", "--max-beat-rate", "-5"}, "--max-beat-rate 0 or more"},
		{[]string{"serve", "--api-token-file", filepath.Join(dir, "missing")}, "--api-token-file: token file: open"},
		{[]string{"serve", "--api-token-file", short}, "fewer than 16; make one with: openssl rand -hex 32"},
		{[]string{"ls", "--token-file", filepath.Join(dir, "missing")}, "--token-file: token file: open"},
	} {
		var stdout, stderr bytes.Buffer
		code := runWith(context.Background(), tt.args, &stdout, &stderr, func(string) (string, bool) { return "", false })
		if code != 2 || !strings.Contains(stderr.String(), tt.out) {
			t.Errorf("pulse %v: exit %d, %q; want 2 and %q", tt.args, code, stderr.String(), tt.out)
		}
	}
}

// TestMaxConnsFlag: pulse serve --max-conns 1 refuses a second connection
// with ERR too_many_connections, and /metrics counts it.
func TestMaxConnsFlag(t *testing.T) {
	srv := start(t, "serve", "--listen", "127.0.0.1:0", "--max-conns", "1")
	web := srv.await(t, "http listening", nil)["addr"].(string)
	addr := srv.await(t, "listening", nil)["addr"].(string)
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := first.Write([]byte("HELLO first\n")); err != nil {
		t.Fatal(err)
	}
	_ = first.SetDeadline(time.Now().Add(patience))
	if line, err := bufio.NewReader(first).ReadString('\n'); err != nil || !strings.HasPrefix(line, "WELCOME ") {
		t.Fatalf("first: %q, %v", line, err)
	}
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	_ = second.SetDeadline(time.Now().Add(patience))
	if line, err := bufio.NewReader(second).ReadString('\n'); err != nil || !strings.HasPrefix(line, "ERR too_many_connections ") {
		t.Fatalf("second: %q, %v", line, err)
	}
	srv.await(t, "connection refused", map[string]any{"code": "too_many_connections"})
	out := httpGet(t, "http://"+web+"/metrics")
	for _, want := range []string{`pulse_connections_rejected_total{code="too_many_connections"} 1`, "pulse_connections 1", "pulse_connections_max 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
