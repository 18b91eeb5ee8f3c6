package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pulsehq/pulse/bench"
)

// startServe runs pulse serve with a timing a loaded machine keeps (a
// healthy client is dead only if a beat is 1.8 s late) and returns it with
// its heartbeat and HTTP addresses.
func startServe(t *testing.T) (srv *proc, addr, web string) {
	t.Helper()
	srv = start(t, "serve", "--listen", "127.0.0.1:0", "--interval", "200ms", "--misses", "10", "--suspect-after", "1s")
	web = srv.await(t, "http listening", nil)["addr"].(string)
	addr = srv.await(t, "listening", nil)["addr"].(string)
	go func() {
		for range srv.logs { // every session's join and end: never let the server block on its log
		}
	}()
	return srv, addr, web
}

// pulse bench against pulse serve, in three processes: the summary adds
// up.
func TestBenchAgainstServe(t *testing.T) {
	t.Parallel()
	srv, addr, web := startServe(t)
	out, errOut, code := pulseOnce(t, "bench", "--server", addr, "--http", web, "--clients", "20", "--per-process", "8",
		"--silence", "10%", "--disconnect", "0.1", "--duration", "2s", "--fail-at", "500ms",
		"--server-pid", strconv.Itoa(srv.cmd.Process.Pid), "--json")
	if code != 0 {
		t.Fatalf("pulse bench: exit %d\n%s", code, errOut)
	}
	var res bench.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("the summary is not JSON: %v\n%s", err, out)
	}
	cn, b, f, d := res.Connections, res.Beats, res.Failures, res.Detection
	if res.Processes != 3 || cn.Connected != 20 || cn.Failed != 0 || cn.Dropped != 0 {
		t.Errorf("%d processes, connections %+v: want 20 clients connected by 3 processes", res.Processes, cn)
	}
	if !res.Acks || b.Sent == 0 || b.Acked != b.Sent || res.RTT == nil {
		t.Errorf("beats %+v, rtt %+v: want every beat of the window acknowledged", b, res.RTT)
	}
	if f.Silenced != 2 || f.Disconnected != 2 || d == nil || d.Dead != 2 || d.Undetected != 0 ||
		d.Lateness == nil || d.Lateness.MinMS < 0 || d.Left["closed"] != 2 || d.FalseDeaths != 0 {
		t.Errorf("failures %+v, detection %+v: want 2 silenced dead and 2 disconnected left closed", f, d)
	}
	if u := res.ServerUsage; u == nil || u.PID != srv.cmd.Process.Pid || u.RSSIdleKiB <= 0 || u.CPUMS < 0 || u.CPUMicrosPerBeat < 0 {
		t.Errorf("server usage %+v", res.ServerUsage)
	}
	// Progress went to stderr, a line a second when it is not a terminal.
	if !strings.Contains(errOut, "window") || !strings.Contains(errOut, "conns ") || strings.Contains(errOut, "\r") {
		t.Errorf("progress on stderr: %q", errOut)
	}
	if code := srv.exit(t, syscall.SIGTERM); code != 0 {
		t.Errorf("serve exit %d", code)
	}
}

// The summary for people has every figure on its own line.
func TestBenchTextSummary(t *testing.T) {
	t.Parallel()
	_, addr, web := startServe(t)
	out, errOut, code := pulseOnce(t, "bench", "--server", addr, "--http", web, "--clients", "10", "--duration", "1s",
		"--silence", "0", "--name-prefix", "text-")
	if code != 0 {
		t.Fatalf("pulse bench: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{
		"pulse bench: 10 clients of text-N against " + addr + " (acks on; 1 process",
		"beat          every 200ms, dead after 2s",
		"connections   10 connected, 0 failed, 0 dropped",
		"acknowledged, 0 unanswered", "ack rtt       p50 ",
		"failures      0 silenced",
		"deaths        none expected: no client was silenced",
		"false alarms  ", "generator     ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the summary lacks %q:\n%s", want, out)
		}
	}
}

// --raw runs against something that does not speak the protocol.
func TestBenchRaw(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // read it all and say nothing, as epoll_floor does
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	out, errOut, code := pulseOnce(t, "bench", "--raw", "--server", ln.Addr().String(), "--clients", "10",
		"--duration", "1s", "--interval", "100ms", "--json")
	var res bench.Result
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil {
		t.Fatalf("pulse bench --raw: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if !res.Raw || res.Connections.Connected != 10 || res.Beats.Sent == 0 || res.Beats.Acked != 0 ||
		res.Detection != nil || res.RTT != nil || res.IntervalMS != 100 {
		t.Errorf("raw result %+v", res)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--clients", "0"}, nil, "--clients must be at least 1"},
		{[]string{"--silence", "2"}, nil, "want a share from 0 to 1"},
		{[]string{"--silence", "60%", "--disconnect", "0.5"}, nil, "add up to more than every client"},
		{[]string{"--duration", "1s", "--fail-at", "5s"}, nil, "--fail-at 5s must be within the window"},
		{nil, map[string]string{"PULSE_DURATION": "1s", "PULSE_FAIL_AT": "5s"}, "--fail-at 5s must be within the window"},
		{[]string{"--ramp", "fast"}, nil, "want a number a second"},
		{[]string{"--source-ips", "127.0.0.9-127.0.0.1"}, nil, "--source-ips: source range"},
		{[]string{"--name-prefix", "no spaces"}, nil, "--name-prefix"},
		{[]string{"--http", "ftp://x"}, nil, "--http"},
		{[]string{"--server", "7070"}, nil, "want host:port"},
		{[]string{"--interval", "-1s"}, nil, "--interval must not be negative"},
		{[]string{"stray"}, nil, `unexpected argument "stray"`},
	} {
		var stdout, stderr bytes.Buffer
		env := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
		code := runWith(context.Background(), append([]string{"bench"}, tt.args...), &stdout, &stderr, env)
		if code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("pulse bench %v: exit %d, %q; want 2 and %q", tt.args, code, stderr.String(), tt.want)
		}
	}
}

func TestBenchHelp(t *testing.T) {
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"bench", "--help"}, &stdout, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"Usage: pulse bench", "Examples:", "--clients N", "PULSE_CLIENTS", "--silence SHARE",
		"--ramp RATE", "(default 2000/s)", "--server-pid N", "PULSE_HTTP", "--raw"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("bench --help lacks %q", want)
		}
	}
	if strings.Contains(stdout.String(), workerFlag) {
		t.Errorf("bench --help shows %s, which is for pulse bench alone", workerFlag)
	}
	stdout.Reset()
	run(context.Background(), nil, io.Discard, &stdout)
	if !strings.Contains(stdout.String(), "bench ") {
		t.Error("pulse's usage does not list bench")
	}
}

// No server, or no HTTP API: exit 1 with what to do.
func TestBenchUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nowhere := ln.Addr().String()
	ln.Close()
	_, errOut, code := pulseOnce(t, "bench", "--server", nowhere, "--clients", "1", "--duration", "1s")
	if code != 1 || !strings.Contains(errOut, "cannot reach the server at "+nowhere) || !strings.Contains(errOut, "Point --server at it") {
		t.Errorf("no server: exit %d, %q", code, errOut)
	}
	_, addr, _ := startServe(t)
	_, errOut, code = pulseOnce(t, "bench", "--server", addr, "--http", nowhere, "--clients", "1", "--duration", "1s")
	if code != 1 || !strings.Contains(errOut, "cannot reach the pulse HTTP API") || !strings.Contains(errOut, "--http off") {
		t.Errorf("no HTTP API: exit %d, %q", code, errOut)
	}
}

// Every figure of a result has its line in the summary, and the progress
// is rewritten in place on a terminal only.
func TestBenchSummaryAndProgressFormats(t *testing.T) {
	res := &bench.Result{
		Server: "127.0.0.1:7070", Acks: true, Clients: 100, Processes: 2, SourceIPs: 250, NamePrefix: "bench-ab12-",
		IntervalMS: 1000, TimeoutMS: 5000, RampMS: 50, WindowMS: 20000, SettleMS: 1500,
		Connections: bench.Connections{Connected: 98, Failed: 2, FailedBy: map[string]int{"refused": 1, "timeout": 1},
			FirstError: "dial tcp: connection refused", Dropped: 1, DroppedBy: map[string]int{"replaced": 1}},
		Beats:    bench.Beats{Sent: 1900, Acked: 1899, Unanswered: 1, PerSecond: 95},
		RTT:      &bench.Percentiles{Count: 1899, P50MS: 0.25, P99MS: 2.5, MaxMS: 12},
		Failures: bench.Failures{Silenced: 2, SilencedCut: 2, Disconnected: 1},
		Detection: &bench.Detection{Dead: 2, Lateness: &bench.Percentiles{Count: 2, P50MS: 1, P99MS: 2, MaxMS: 2},
			Left: map[string]int{"closed": 1}, FalseSuspects: 3, RampFalseSuspects: 3, Other: map[string]int{"kicked": 1}},
		ServerUsage: &bench.ServerUsage{PID: 42, CPUMS: 400, CPUPercent: 2, CPUMicrosPerBeat: 210.5, CPUMicrosPerAck: 210.6,
			RSSIdleKiB: 10240, RSSEndKiB: 10640, RSSPerSessionKiB: 4.08},
		GeneratorCPUPercent: 1.5,
	}
	var out bytes.Buffer
	if err := printSummary(&out, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"100 clients of bench-ab12-N against 127.0.0.1:7070 (acks on; 2 worker processes, 250 source addresses)",
		"every 1s, dead after 5s", "ramp 50ms, window 20s, settle 1.5s",
		"98 connected, 2 failed (refused 1, timeout 1), 1 dropped (replaced 1)", "first failure: dial tcp: connection refused",
		"1900 sent in the window (95/s), 1899 acknowledged, 1 unanswered", "p50 0.250ms  p99 2.50ms  max 12.0ms",
		"2 silenced (2 cut off by the server), 1 disconnected", "2 of 2 silenced declared dead, late by p50 1.00ms",
		"1 of 1 disconnected seen leaving (closed 1)", "3 suspects, 0 deaths among healthy clients (3 and 0 of them during the ramp)",
		"other events  kicked 1", "pid 42: 400ms CPU in the window (2.0% of a core), 210.50µs per beat, 210.60µs per ack",
		"RSS 10.0 MiB idle, 10.4 MiB at the window's end: 4.08 KiB per session", "1.5% CPU in the window",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the summary lacks %q:\n%s", want, out.String())
		}
	}

	p := bench.Progress{Phase: "window", Elapsed: 1500 * time.Millisecond, Window: 20 * time.Second, Clients: 100, Open: 98,
		BeatsPerSecond: 95, AcksPerSecond: 95, RTTP50: 250 * time.Microsecond, RTTP99: 2 * time.Millisecond,
		Detection: true, Suspects: 1, Deaths: 1, Dead: 1, Silenced: 2}
	var plain, term bytes.Buffer
	pl := &progressLine{w: &plain}
	pl.show(p)
	pl.show(p)
	pl.done()
	want := "window   1.5s/20s  conns 98/100  beats 95/s  acks 95/s  rtt p50 0.250ms p99 2.00ms  suspect 1  dead 1 (1/2 silenced)\n"
	if plain.String() != want+want {
		t.Errorf("progress when piped:\n%q\nwant twice\n%q", plain.String(), want)
	}
	tl := &progressLine{w: &term, terminal: true}
	tl.show(p)
	tl.done()
	if term.String() != "\r"+strings.TrimSuffix(want, "\n")+"\x1b[K\n" {
		t.Errorf("progress on a terminal: %q", term.String())
	}
}

// pulse bench against a server whose API wants a token: refused without
// it, with a word on what to do; with --api-token-file it gets the
// detection figures.
func TestBenchAPIToken(t *testing.T) {
	t.Parallel()
	const token = "0d3c5b8e6f4a2d1c0b9e8f4f9c2b7e1a"
	srv := start(t, "serve", "--listen", "127.0.0.1:0", "--interval", "200ms", "--misses", "10", "--suspect-after", "1s",
		"--api-token-file", tokenFile(t, token))
	web := srv.await(t, "http listening", map[string]any{"token": true})["addr"].(string)
	addr := srv.await(t, "listening", nil)["addr"].(string)
	go func() {
		for range srv.logs {
		}
	}()
	_, errOut, code := pulseOnce(t, "bench", "--server", addr, "--http", web, "--clients", "4", "--duration", "1s", "--silence", "0")
	if code != 1 || !strings.Contains(errOut, "--api-token-file") {
		t.Errorf("bench without the API token: exit %d, %q; want a refusal that names the token", code, errOut)
	}
	out, errOut, code := pulseOnce(t, "bench", "--server", addr, "--http", web, "--clients", "4", "--duration", "1s",
		"--silence", "25%", "--fail-at", "200ms", "--api-token-file", tokenFile(t, token), "--json")
	if code != 0 {
		t.Fatalf("bench --api-token-file: exit %d\n%s", code, errOut)
	}
	var res bench.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("the summary is not JSON: %v\n%s", err, out)
	}
	if d := res.Detection; d == nil || d.Dead != 1 || d.FalseDeaths != 0 {
		t.Errorf("detection %+v: want the one silenced client dead, from the API's events", d)
	}
	if _, errOut, code := pulseOnce(t, "bench", "--server", addr, "--api-token-file", "/nonexistent/token"); code != 2 || !strings.Contains(errOut, "--api-token-file") {
		t.Errorf("bench with a missing token file: exit %d, %q; want a usage error", code, errOut)
	}
}
