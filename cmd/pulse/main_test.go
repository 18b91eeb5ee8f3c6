package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// patience bounds every wait: a way to fail instead of hanging, not a
// timing assertion.
const patience = 15 * time.Second

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pulse-cmd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "pulse")
	if out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput(); err != nil {
		// without -race where the race detector is not available
		if out2, err2 := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err2 != nil {
			fmt.Fprintf(os.Stderr, "building pulse: %v\n%s\n%s", err, out, out2)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a pulse process whose JSON log lines the test reads.
type proc struct {
	cmd  *exec.Cmd
	logs chan map[string]any
	done chan error
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, append(args, "--log-format", "json")...)
	// A free HTTP port for every server, so that tests run side by side.
	cmd.Env = append(os.Environ(), "PULSE_LOG_LEVEL=debug", "PULSE_HTTP=127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: make(chan map[string]any, 1000), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec map[string]any
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				rec = map[string]any{"msg": "(not JSON) " + sc.Text()}
			}
			p.logs <- rec
		}
		close(p.logs)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	return p
}

// await returns the first log record with the message msg whose attributes
// include want.
func (p *proc) await(t *testing.T, msg string, want map[string]any) map[string]any {
	t.Helper()
	timeout := time.After(patience)
	for {
		select {
		case rec, ok := <-p.logs:
			if !ok {
				t.Fatalf("%s exited before logging %q %v", p.cmd.Args[1], msg, want)
			}
			if rec["msg"] != msg {
				continue
			}
			match := true
			for k, v := range want {
				if fmt.Sprint(rec[k]) != fmt.Sprint(v) {
					match = false
				}
			}
			if match {
				return rec
			}
		case <-timeout:
			t.Fatalf("%s did not log %q %v", p.cmd.Args[1], msg, want)
		}
	}
}

// exit signals the process and returns its exit code.
func (p *proc) exit(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
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
		t.Fatalf("%s did not exit after %v", p.cmd.Args[1], sig)
	}
	return -1
}

// TestServeAndAgent runs the two commands as a user would: the agent
// registers and beats; Ctrl-C makes it say BYE and exit 0; SIGTERM makes
// the server say BYE to its clients and exit 0, and the agent retries.
func TestServeAndAgent(t *testing.T) {
	srv := start(t, "serve", "--listen", "127.0.0.1:0", "--interval", "100ms")
	addr := srv.await(t, "listening", map[string]any{"interval": "100ms", "timeout": "500ms", "suspect_after": "150ms"})["addr"].(string)

	agent := start(t, "agent", "--server", addr, "--name", "web-1", "--meta", "role=web", "--status-every", "250ms")
	reg := agent.await(t, "registered", map[string]any{"name": "web-1", "interval": "100ms"})
	joined := srv.await(t, "session joined", map[string]any{"name": "web-1", "reason": "hello"})
	if reg["session"] != joined["id"] {
		t.Fatalf("agent registered as %v, server says %v", reg["session"], joined["id"])
	}
	if beating := agent.await(t, "beating", nil); beating["beats"].(float64) < 1 || beating["rtt"] == "0s" {
		t.Fatalf("agent status %v: no beats or no round trip", beating)
	}
	if code := agent.exit(t, syscall.SIGINT); code != 0 {
		t.Fatalf("agent exited %d after SIGINT, want 0", code)
	}
	if left := srv.await(t, "session left", map[string]any{"name": "web-1", "reason": "bye"}); left["beats"].(float64) < 1 {
		t.Fatalf("the server counted %v beats", left["beats"])
	}

	second := start(t, "agent", "--server", addr, "--name", "web-2", "--backoff-min", "50ms", "--backoff-max", "100ms")
	second.await(t, "registered", map[string]any{"name": "web-2"})
	srv.await(t, "session joined", map[string]any{"name": "web-2"})
	if code := srv.exit(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM, want 0", code)
	}
	retry := second.await(t, "connection lost; retrying", nil)
	if !strings.Contains(retry["error"].(string), "BYE") {
		t.Fatalf("agent retried after %v, want the server's BYE", retry["error"])
	}
	second.await(t, "connecting", map[string]any{"attempt": 2}) // it keeps trying
	if code := second.exit(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("agent exited %d after SIGTERM while retrying, want 0", code)
	}
}

// TestAgentAsksForAnInterval: an agent given --interval is granted it
// within the server's bounds, or the nearer bound, and says so.
func TestAgentAsksForAnInterval(t *testing.T) {
	srv := start(t, "serve", "--listen", "127.0.0.1:0", "--interval", "100ms", "--max-interval", "300ms")
	addr := srv.await(t, "listening", map[string]any{"min_interval": "100ms", "max_interval": "300ms"})["addr"].(string)

	slow := start(t, "agent", "--server", addr, "--name", "slow", "--interval", "200ms")
	slow.await(t, "registered", map[string]any{"name": "slow", "interval": "200ms", "timeout": "1s"})
	srv.await(t, "session joined", map[string]any{"name": "slow", "interval": "200ms"})

	sleepy := start(t, "agent", "--server", addr, "--name", "sleepy", "--interval", "1m")
	sleepy.await(t, "registered", map[string]any{"name": "sleepy", "interval": "300ms"})
	sleepy.await(t, "the server granted another interval than asked", map[string]any{"asked": "1m0s", "granted": "300ms"})
	srv.await(t, "session joined", map[string]any{"name": "sleepy", "interval": "300ms"})
	for _, p := range []*proc{slow, sleepy, srv} {
		if code := p.exit(t, syscall.SIGINT); code != 0 {
			t.Fatalf("%s exited %d", p.cmd.Args[1], code)
		}
	}
}

// TestAgentReplacedExitsOne: an agent whose name another agent takes stops
// with exit code 1 and says why.
func TestAgentReplacedExitsOne(t *testing.T) {
	srv := start(t, "serve", "--listen", "127.0.0.1:0")
	addr := srv.await(t, "listening", nil)["addr"].(string)
	first := start(t, "agent", "--server", addr, "--name", "twin")
	first.await(t, "registered", nil)
	second := start(t, "agent", "--server", addr, "--name", "twin")
	second.await(t, "registered", nil)
	first.await(t, "rejected by the server; stopping", nil)
	select {
	case err := <-first.done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("replaced agent: %v, want exit 1", err)
		}
	case <-time.After(patience):
		t.Fatal("the replaced agent did not exit")
	}
	second.exit(t, syscall.SIGINT)
	srv.exit(t, syscall.SIGINT)
}

func TestUsageErrorsExitTwo(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		code int
		out  string // in stderr
	}{
		{nil, nil, 2, "Commands:"},
		{[]string{"frobnicate"}, nil, 2, `unknown command "frobnicate"`},
		{[]string{"serve", "--interval", "0"}, nil, 2, "the interval must be positive"},
		{[]string{"serve", "--interval", "3"}, nil, 2, `invalid value "3" for --interval: want a duration such as 3s`},
		{[]string{"serve", "--misses", "1"}, nil, 2, "misses must be at least 2"},
		{[]string{"serve", "--misses", "2", "--suspect-after", "6s"}, nil, 2, "must be shorter than the timeout"},
		{[]string{"serve", "--interval", "1s", "--suspect-after", "500ms"}, nil, 2, "must be longer than the interval"},
		{[]string{"serve", "--interval", "1000000h"}, nil, 2, "at most 24h0m0s"},
		{[]string{"serve", "--hello-timeout", "0s"}, nil, 2, "--hello-timeout must be positive"},
		{[]string{"serve", "--min-interval", "5s"}, nil, 2, "--min-interval 5s is longer than --interval 3s"},
		{[]string{"serve", "--max-interval", "2s"}, nil, 2, "--max-interval 2s is shorter than --interval 3s"},
		{[]string{"serve", "--interval", "10m", "--max-interval", "5m"}, nil, 2, "--max-interval 5m0s is shorter than --interval 10m0s"},
		{[]string{"serve", "--min-interval", "-1s"}, nil, 2, "must not be negative"},
		{[]string{"serve", "--max-interval", "48h"}, nil, 2, "--max-interval must be at most 24h0m0s"},
		{[]string{"serve"}, map[string]string{"PULSE_MIN_INTERVAL": "10s"}, 2, "--min-interval 10s is longer than --interval 3s"},
		{[]string{"agent", "--interval", "-1s"}, nil, 2, "--interval must be from 1ms to 24h0m0s, or 0 for the server's"},
		{[]string{"agent", "--interval", "25h"}, nil, 2, "--interval must be from 1ms"},
		{[]string{"serve", "--stall-threshold", "1ms"}, nil, 2, "--stall-threshold must be at least 10ms, or 0 for no stall guard"},
		{[]string{"serve", "--stall-grace", "-1s"}, nil, 2, "--stall-grace must not be negative"},
		{[]string{"serve", "--redis", "http://127.0.0.1:6379"}, nil, 2, `--redis "http://127.0.0.1:6379"`},
		{[]string{"serve", "--redis", "redis://127.0.0.1:6379/0", "--node", "a b"}, nil, 2, `--node "a b": a node name is 1 to 64`},
		{[]string{"serve"}, map[string]string{"PULSE_REDIS": "redis://127.0.0.1:6379/0", "PULSE_NODE_TTL": "0s"}, 2, "--node-ttl must be positive"},
		{[]string{"serve", "--nope"}, nil, 2, "unknown flag --nope"},
		{[]string{"serve", "--listen"}, nil, 2, "a value is missing after --listen"},
		{[]string{"serve", "stray"}, nil, 2, `unexpected argument "stray"`},
		{[]string{"serve"}, map[string]string{"PULSE_MISSES": "many"}, 2, `invalid value "many" for --misses from PULSE_MISSES: want a whole number`},
		{[]string{"serve", "--log-level", "loud"}, nil, 2, "--log-level"},
		{[]string{"serve", "--listen", "not-an-address"}, nil, 2, "want host:port"},
		{[]string{"serve", "--listen", ""}, nil, 2, "want host:port"},
		{[]string{"serve", "--listen", "127.0.0.1:70000"}, nil, 2, "not a port number"},
		{[]string{"agent", "--name", "no spaces"}, nil, 2, "is not 1-64 of"},
		{[]string{"agent", "--server", "localhost"}, nil, 2, "want host:port"},
		{[]string{"agent", "--backoff-min", "2s", "--backoff-max", "1s"}, nil, 2, "--backoff-min"},
		{[]string{"agent", "--meta", "novalue"}, nil, 2, "want key=value"},
		{[]string{"agent", "--meta", "bad key=v"}, nil, 2, `--meta: meta key "bad key" is not`},
		{[]string{"agent", "--no-ack=maybe"}, nil, 2, `invalid boolean value "maybe" for --no-ack: want true or false`},
		{[]string{"serve", "--http", "nowhere"}, nil, 2, "want host:port"},
		{[]string{"serve", "--event-history", "0"}, nil, 2, "--event-history must be at least 1"},
		{[]string{"ls", "--state", "dead"}, nil, 2, "want one of alive, suspect"},
		{[]string{"ls", "-o", "yaml"}, nil, 2, "want one of table, json"},
		{[]string{"ls"}, map[string]string{"PULSE_HTTP": "ftp://x"}, 2, "--http"},
		{[]string{"ls", "extra"}, nil, 2, `unexpected argument "extra"`},
		{[]string{"watch", "--color", "sometimes"}, nil, 2, "want one of auto, always, never"},
		{[]string{"kick"}, nil, 2, "missing the NAME of the session to kick"},
		{[]string{"kick", "a", "b"}, nil, 2, `unexpected argument "b"`},
		{[]string{"kick", "a", "--timeout", "0s"}, nil, 2, "--timeout must be positive"},
		{[]string{"serve", "--detector", "swim"}, nil, 2, `--detector "swim": want one of fixed, phi, chen, quantile`},
		{[]string{"serve", "--detector", "phi:threshold=8"}, nil, 2, `phi takes no parameter "threshold"; it takes suspect=PHI`},
		{[]string{"serve", "--detector", "fixed:dead=20s"}, nil, 2, "must not be longer than the timeout clients are told"},
		{[]string{"serve"}, map[string]string{"PULSE_DETECTOR": "chen:dead=soon"}, 2, `dead=soon: want a duration`},
		{[]string{"fdbench", "--scenario", "moon"}, nil, 2, `--scenario "moon": want all, or names from lan, cloud`},
		{[]string{"fdbench", "--detector", "phi;swim"}, nil, 2, `invalid value "phi;swim" for --detector: want one of`},
		{[]string{"fdbench", "--replay", "x.bin", "--sessions", "5"}, nil, 2, "--replay measures a recording"},
		{[]string{"fdbench", "--sessions", "0"}, nil, 2, "--sessions must be at least 1"},
		{[]string{"fdbench", "--misses", "1"}, nil, 2, "misses must be at least 2"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		cmdEnv := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
		code := runWith(context.Background(), tt.args, &stdout, &stderr, cmdEnv)
		if code != tt.code || !strings.Contains(stderr.String(), tt.out) {
			t.Errorf("pulse %v: exit %d, stderr %q; want %d and %q", tt.args, code, stderr.String(), tt.code, tt.out)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, cmd := range []string{"serve", "agent", "ls", "watch", "kick", "fdbench"} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{cmd, "--help"}, &stdout, &stderr); code != 0 {
			t.Fatalf("%s --help exited %d", cmd, code)
		}
		help := stdout.String()
		wants := []string{"Usage: pulse " + cmd, "Examples:"}
		if cmd == "serve" || cmd == "agent" {
			wants = append(wants, "PULSE_LOG_LEVEL", "--log-format FORMAT")
		}
		if cmd != "agent" && cmd != "fdbench" {
			wants = append(wants, "PULSE_HTTP")
		}
		if cmd == "serve" || cmd == "fdbench" {
			wants = append(wants, "--detector SPEC", "PULSE_DETECTOR")
		}
		for _, want := range wants {
			if !strings.Contains(help, want) {
				t.Errorf("%s --help lacks %q:\n%s", cmd, want, help)
			}
		}
	}
	var stdout bytes.Buffer
	run(context.Background(), []string{"serve", "-h"}, &stdout, io.Discard)
	for _, want := range []string{"--listen HOST:PORT", "PULSE_LISTEN", "(default 127.0.0.1:7070)", "--suspect-after DURATION", "(default 1.5 × interval)", "--misses N"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
	stdout.Reset()
	if run(context.Background(), []string{"version"}, &stdout, io.Discard) != 0 || !strings.HasPrefix(stdout.String(), "pulse ") {
		t.Fatalf("version printed %q", stdout.String())
	}
}

func TestMetaFlag(t *testing.T) {
	m := metaFlag{}
	for _, s := range []string{"region=eu", "a=1, b=2", "tags=x,y", "empty="} {
		if err := m.Set(s); err != nil {
			t.Fatalf("Set(%q): %v", s, err)
		}
	}
	want := map[string]string{"region": "eu", "a": "1", "b": "2", "tags": "x,y", "empty": ""}
	if len(m) != len(want) {
		t.Fatalf("meta %v, want %v", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Fatalf("meta %v, want %v", m, want)
		}
	}
}

func TestEmptyEnvironmentIsUnset(t *testing.T) {
	env := map[string]string{"PULSE_LISTEN": "", "PULSE_INTERVAL": ""}
	fs := newFlagSet("x", "", "", "", io.Discard, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	listen := fs.addr("listen", "127.0.0.1:7070", "")
	interval := fs.duration("interval", time.Second, "")
	if err := fs.parse(nil); err != nil {
		t.Fatal(err)
	}
	if *listen != "127.0.0.1:7070" || *interval != time.Second {
		t.Fatalf("listen %q, interval %v: an empty variable must leave the default", *listen, *interval)
	}
}

func TestEnvironmentSetsFlags(t *testing.T) {
	env := map[string]string{"PULSE_INTERVAL": "2s", "PULSE_MISSES": "4", "PULSE_LISTEN": "127.0.0.1:9"}
	fs := newFlagSet("x", "", "", "", io.Discard, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	interval := fs.duration("interval", time.Second, "")
	misses := fs.int("misses", 5, "")
	listen := fs.addr("listen", "127.0.0.1:7070", "")
	if err := fs.parse([]string{"--misses", "7"}); err != nil {
		t.Fatal(err)
	}
	if *interval != 2*time.Second || *misses != 7 || *listen != "127.0.0.1:9" {
		t.Fatalf("interval %v, misses %d, listen %s: the environment should fill what the command line left", *interval, *misses, *listen)
	}
	if envName("suspect-after") != "PULSE_SUSPECT_AFTER" {
		t.Fatal(envName("suspect-after"))
	}
}
