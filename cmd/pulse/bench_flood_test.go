package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"

	"github.com/pulsehq/pulse/bench"
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
