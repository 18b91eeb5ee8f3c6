package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pulsehq/pulse/fdbench"
	"github.com/pulsehq/pulse/registry"
)

// fdbenchJSON runs pulse fdbench in this process and decodes its JSON.
func fdbenchJSON(t *testing.T, args ...string) []fdbench.Result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := runWith(context.Background(), append([]string{"fdbench", "--json", "--no-cost"}, args...), &stdout, &stderr, noEnv); code != 0 {
		t.Fatalf("pulse fdbench %v: exit %d\n%s", args, code, stderr.String())
	}
	var out struct{ Results []fdbench.Result }
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout.String())
	}
	return out.Results
}

func noEnv(string) (string, bool) { return "", false }

// A tiny calm LAN, as a user would run it: the fixed timeout makes no
// mistake there, declares a closed connection within a network delay, and
// a silent client between 12 and 15 s after it failed (the 15 s timeout
// less the failure's phase in the 3 s interval, plus the sub-millisecond
// delay). The figures are the same whatever the number of workers.
func TestFdbenchTinyScenario(t *testing.T) {
	args := []string{"--scenario", "lan", "--sessions", "20", "--duration", "3h", "--detector", "fixed;fixed:suspect=4s,dead=11s"}
	res := fdbenchJSON(t, append(args, "--workers", "1")...)
	if len(res) != 1 || len(res[0].Detectors) != 2 {
		t.Fatalf("results %+v, want one scenario with two detectors", res)
	}
	s := res[0].Scenario
	if s.Name != "lan" || s.Sessions != 20 || s.Failures < 20 || s.Beats < 20*3*1200-20 {
		t.Fatalf("scenario %+v", s)
	}
	for i, timeout := range []float64{15000, 11000} {
		d := res[0].Detectors[i]
		if d.Suspect.Count != 0 || d.Dead.Count != 0 || d.Suspect.QueryAccuracy != 1 {
			t.Errorf("%s: mistakes on a calm LAN: suspect %+v, dead %+v", d.Spec, d.Suspect, d.Dead)
		}
		if c := d.Detection[fdbench.Closed]; c.Count != s.Failures || c.Max > 5 {
			t.Errorf("%s: closed connections declared after %+v ms, want within the LAN's delay", d.Spec, c)
		}
		for _, k := range []fdbench.Kind{fdbench.Silent, fdbench.Hang} {
			if p := d.Detection[k]; p.P50 < timeout-3000 || p.Max > timeout+5 {
				t.Errorf("%s: %s failures declared after %+v ms, want within the timeout %v less up to one interval", d.Spec, k, p, timeout)
			}
		}
	}
	again := fdbenchJSON(t, append(args, "--workers", "3")...)
	a, _ := json.Marshal(res)
	b, _ := json.Marshal(again)
	if !bytes.Equal(a, b) {
		t.Fatalf("figures differ with 3 workers:\n%s\n%s", a, b)
	}
}

// The text report and the sweep's table, as a person reads them.
func TestFdbenchText(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := runWith(context.Background(), []string{"fdbench", "--scenario", "stalls", "--sessions", "10", "--duration", "1h", "--no-cost"}, &stdout, &stderr, noEnv); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"stalls: calm LAN", "stall grace " + registry.DefaultStallGrace.String(), "DETECTOR", "SUSPECT/h", "HANG p50/p99/p99.9", "fixed ", "phi ", "chen ", "quantile "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, stdout.String())
		}
	}
	stdout.Reset()
	if code := runWith(context.Background(), []string{"fdbench", "--sweep", "--detector", "fixed", "--sessions", "10", "--duration", "1h"}, &stdout, &stderr, noEnv); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"DEAD: mistakes per client-hour", "SUSPECT: mistakes", "fixed:suspect=4.5s,dead=11s", "skipped (raise --misses to allow them)"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("sweep lacks %q:\n%s", want, stdout.String())
		}
	}
	if strings.Contains(stdout.String(), "phi") {
		t.Errorf("sweep of --detector fixed shows other detectors:\n%s", stdout.String())
	}
}

// pulse serve --record-arrivals writes what pulse fdbench --replay reads:
// a client registers, beats 40 times and leaves; the replay sees one
// session with its 41 arrivals.
func TestRecordAndReplay(t *testing.T) {
	file := filepath.Join(t.TempDir(), "arrivals.bin")
	srv := start(t, "serve", "--listen", "127.0.0.1:0", "--detector", "chen", "--record-arrivals", file)
	srv.await(t, "recording arrivals", map[string]any{"file": file})
	addr := srv.await(t, "listening", map[string]any{"detector": "chen"})["addr"].(string)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	rd := bufio.NewReader(nc)
	fmt.Fprintf(nc, "HELLO rec-1\n")
	if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "WELCOME ") {
		t.Fatalf("got %q, %v", line, err)
	}
	for i := range 40 {
		fmt.Fprintf(nc, "BEAT %d\n", i)
		if line, err := rd.ReadString('\n'); err != nil || line != fmt.Sprintf("ACK %d\n", i) {
			t.Fatalf("got %q, %v", line, err)
		}
	}
	fmt.Fprintf(nc, "BYE done\n")
	srv.await(t, "session left", map[string]any{"name": "rec-1", "reason": "bye"})
	if code := srv.exit(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	res := fdbenchJSON(t, "--replay", file, "--detector", "fixed", "--warmup", "0s")
	if len(res) != 1 || res[0].Scenario.Name != "replay" || res[0].Scenario.Sessions != 1 || res[0].Scenario.Beats != 41 {
		t.Fatalf("replay %+v, want one session with 41 arrivals", res)
	}
	if d := res[0].Detectors[0]; d.Dead.Count != 0 || d.Suspect.Count != 0 {
		t.Fatalf("mistakes on beats a few milliseconds apart: %+v", d)
	}
}
