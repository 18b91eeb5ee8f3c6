package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pulsehq/pulse/bench"
	"github.com/pulsehq/pulse/internal/testpki"
)

// pulse bench --flood garbage against pulse serve: the flood's figures
// come in the summary, and the healthy clients lose nothing.
func TestBenchFlood(t *testing.T) {
	t.Parallel()
	srv, addr, web := startServe(t)
	out, errOut, code := pulseOnce(t, "bench", "--server", addr, "--http", web, "--clients", "10", "--silence", "0",
		"--duration", "2s", "--flood", "garbage", "--flood-conns", "70", "--json")
	if code != 0 {
		t.Fatalf("pulse bench: exit %d\n%s", code, errOut)
	}
	var res bench.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("the summary is not JSON: %v\n%s", err, out)
	}
	f := res.Flood
	if f == nil {
		t.Fatalf("no flood in the summary:\n%s", out)
	}
	answered := 0
	for answer, n := range f.Answers {
		if !strings.HasPrefix(answer, "ERR ") {
			t.Errorf("%d garbage connections answered %q", n, answer)
		}
		answered += n
	}
	if f.Kind != "garbage" || f.Attempted != 70 || f.Connected != 70 || answered != 70 || f.StillOpen != 0 {
		t.Errorf("flood %+v: want 70 garbage connections, each answered ERR and closed", *f)
	}
	if d := res.Detection; d == nil || d.FalseSuspects != 0 || d.FalseDeaths != 0 || res.Connections.Dropped != 0 {
		t.Errorf("healthy clients: detection %+v, connections %+v", d, res.Connections)
	}
	if code := srv.exit(t, syscall.SIGTERM); code != 0 {
		t.Errorf("serve exit %d", code)
	}
}

func TestBenchFloodUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--flood", "tsunami"}, `--flood "tsunami": want idle, garbage, hello-storm or nonreader`},
		{[]string{"--flood", "idle", "--flood-conns", "0"}, "--flood-conns must be at least 1"},
		{[]string{"--flood-conns", "10"}, "--flood-conns and --flood-rate need --flood"},
	} {
		var stdout, stderr bytes.Buffer
		code := runWith(context.Background(), append([]string{"bench"}, tt.args...), &stdout, &stderr,
			func(string) (string, bool) { return "", false })
		if code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("pulse bench %v: exit %d, %q; want 2 and %q", tt.args, code, stderr.String(), tt.want)
		}
	}
}

// pulse bench --token-key against pulse serve --auth-jwt-key: the healthy
// clients and the non-readers register with tokens signed by the same
// secret; without --token-key not one client does; a hello-storm's bad
// tokens are all refused.
func TestBenchTokenKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "jwt.secret")
	testpki.WriteFile(t, secretFile, []byte(strings.Repeat("bench-secret-", 4)+"\n"))
	srv := start(t, "serve", "--listen", "127.0.0.1:0", "--interval", "200ms", "--misses", "10", "--suspect-after", "1s",
		"--auth-jwt-key", secretFile)
	web := srv.await(t, "http listening", nil)["addr"].(string)
	addr := srv.await(t, "listening", nil)["addr"].(string)
	go func() {
		for range srv.logs {
		}
	}()

	for _, tc := range []struct {
		flood string
		check func(f *bench.FloodResult) bool
	}{
		{"hello-storm", func(f *bench.FloodResult) bool { return f.Answers["ERR unauthorized"] == 20 && f.Left == 0 }},
		// Registered with valid tokens, then cut as slow consumers
		// (their socket is never read): none is answered unauthorized.
		{"nonreader", func(f *bench.FloodResult) bool { return f.Answers["unread"] == 20 && f.StillOpen == 0 }},
	} {
		out, errOut, code := pulseOnce(t, "bench", "--server", addr, "--http", web, "--clients", "10", "--silence", "0",
			"--duration", "2s", "--token-key", secretFile, "--flood", tc.flood, "--flood-conns", "20", "--json")
		if code != 0 {
			t.Fatalf("pulse bench --flood %s: exit %d\n%s", tc.flood, code, errOut)
		}
		var res bench.Result
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("the summary is not JSON: %v\n%s", err, out)
		}
		if cn := res.Connections; cn.Connected != 10 || cn.Failed != 0 || cn.Dropped != 0 {
			t.Errorf("--flood %s: healthy connections %+v, want all 10 registered with their tokens", tc.flood, cn)
		}
		if f := res.Flood; f == nil || f.Attempted != 20 || !tc.check(f) {
			t.Errorf("--flood %s: %+v", tc.flood, f)
		}
		if d := res.Detection; d == nil || d.FalseSuspects != 0 || d.FalseDeaths != 0 {
			t.Errorf("--flood %s: detection %+v", tc.flood, d)
		}
	}

	// The server refused the 20 of the storm, and not one non-reader: they
	// registered with their tokens.
	resp, err := http.Get("http://" + web + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `pulse_connections_rejected_total{code="unauthorized"} 20` + "\n"; !strings.Contains(string(metrics), want) {
		t.Errorf("metrics lack %q:\n%s", want, grepLines(string(metrics), "rejected_total"))
	}

	_, errOut, code := pulseOnce(t, "bench", "--server", addr, "--http", "off", "--clients", "3", "--duration", "1s")
	if code != 1 || !strings.Contains(errOut, "unauthorized") {
		t.Errorf("no --token-key: exit %d, %q; want 1 and unauthorized", code, errOut)
	}
	_, errOut, code = pulseOnce(t, "bench", "--server", addr, "--token-key", filepath.Join(dir, "missing"))
	if code != 1 || !strings.Contains(errOut, "--token-key: ") || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing key: exit %d, %q", code, errOut)
	}
	_, errOut, code = pulseOnce(t, "bench", "--server", addr, "--token-audience", "pulse")
	if code != 2 || !strings.Contains(errOut, "need --token-key") {
		t.Errorf("--token-audience alone: exit %d, %q", code, errOut)
	}
	if code := srv.exit(t, syscall.SIGTERM); code != 0 {
		t.Errorf("serve exit %d", code)
	}
}
