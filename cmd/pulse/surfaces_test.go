package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pulseOnce runs a one-shot pulse command and returns its output and exit
// code.
func pulseOnce(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("pulse %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// lineReader reads the stdout of a long-running command line by line.
type lineReader struct {
	lines chan string
}

// startLong starts a long-running pulse command and reads its stdout and
// stderr line by line.
func startLong(t *testing.T, args ...string) (stdout, stderr *lineReader) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return readLines(outPipe), readLines(errPipe)
}

func readLines(r io.Reader) *lineReader {
	lr := &lineReader{lines: make(chan string, 1000)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lr.lines <- sc.Text()
		}
		close(lr.lines)
	}()
	return lr
}

// await returns the first line that contains every one of want.
func (lr *lineReader) await(t *testing.T, want ...string) string {
	t.Helper()
	timeout := time.After(patience)
	for {
		select {
		case l, ok := <-lr.lines:
			if !ok {
				t.Fatalf("output ended before a line with %q", want)
			}
			match := true
			for _, w := range want {
				match = match && strings.Contains(l, w)
			}
			if match {
				return l
			}
		case <-timeout:
			t.Fatalf("no line with %q", want)
		}
	}
}

// TestOperatorCommands drives ls, watch and kick against a real server, and
// reads its /metrics, as an operator would.
func TestOperatorCommands(t *testing.T) {
	srv := start(t, "serve", "--listen", "127.0.0.1:0", "--interval", "100ms")
	web := srv.await(t, "http listening", nil)["addr"].(string)
	addr := srv.await(t, "listening", nil)["addr"].(string)

	watch, watchErr := startLong(t, "watch", "--http", web)
	watchErr.await(t, "pulse watch: watching http://"+web) // following the stream from here on
	a := start(t, "agent", "--server", addr, "--name", "web-1", "--meta", "role=web")
	b := start(t, "agent", "--server", addr, "--name", "db-1")
	a.await(t, "registered", nil)
	b.await(t, "registered", nil)
	// The two joins, in either order.
	for seen := map[string]bool{}; len(seen) < 2; {
		l := watch.await(t, "joined")
		if strings.Contains(l, "\x1b[") {
			t.Fatalf("piped watch output is coloured: %q", l)
		}
		for _, name := range []string{"web-1", "db-1"} {
			if strings.Contains(l, " "+name+" ") {
				seen[name] = true
			}
		}
	}

	out, errOut, code := pulseOnce(t, "ls", "--http", web)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "NAME STATE PEER AGE LAST-BEAT RTT" ||
		!strings.HasPrefix(lines[1], "db-1 ") || !strings.HasPrefix(lines[2], "web-1 ") || !strings.Contains(lines[2], " alive ") {
		t.Fatalf("pulse ls: exit %d\n%s%s", code, out, errOut)
	}
	out, _, code = pulseOnce(t, "ls", "--http", "http://"+web, "-o", "json", "--name", "web")
	var sessions []struct {
		Name  string
		State string
		Meta  map[string]string
		Beats int
	}
	if err := json.Unmarshal([]byte(out), &sessions); err != nil || code != 0 || len(sessions) != 1 ||
		sessions[0].Name != "web-1" || sessions[0].Meta["role"] != "web" || sessions[0].State != "alive" {
		t.Fatalf("pulse ls -o json --name web: exit %d, %v\n%s", code, err, out)
	}
	if out, errOut, code := pulseOnce(t, "ls", "--http", web, "--state", "suspect"); code != 0 || out != "" || !strings.Contains(errOut, "No sessions.") {
		t.Fatalf("pulse ls --state suspect: exit %d %q %q", code, out, errOut)
	}

	out, errOut, code = pulseOnce(t, "kick", "db-1", "--http", web, "--reason", "drained")
	if code != 0 || !strings.HasPrefix(out, "kicked db-1 ") {
		t.Fatalf("pulse kick: exit %d %q %q", code, out, errOut)
	}
	watch.await(t, "kicked", "db-1", "drained")
	b.await(t, "rejected by the server; stopping", nil)
	if _, errOut, code := pulseOnce(t, "kick", "--http", web, "db-1"); code != 1 || !strings.Contains(errOut, `no live session is named "db-1"`) {
		t.Fatalf("kicking a gone session: exit %d %q", code, errOut)
	}

	metrics := httpGet(t, "http://"+web+"/metrics")
	for _, want := range []string{
		`pulse_sessions{state="alive"} 1`,
		`pulse_sessions{state="suspect"} 0`,
		`pulse_events_total{kind="kicked",reason="kicked"} 1`,
		`pulse_events_total{kind="joined",reason="hello"} 2`,
		`pulse_connections_rejected_total{code="kicked"} 1`,
		`pulse_detection_lateness_seconds_bucket{kind="dead",le="0.001"}`,
		"pulse_beats_total ", "pulse_rtt_seconds_count ", "go_goroutines ", "process_resident_memory_bytes ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !strings.Contains(httpGet(t, "http://"+web+"/"), "<html") {
		t.Error("no dashboard at /")
	}

	if code := a.exit(t, syscall.SIGINT); code != 0 {
		t.Fatalf("agent exit %d", code)
	}
	watch.await(t, "left", "web-1", "bye")
	if code := srv.exit(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
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

// The operator commands say clearly when there is no server to talk to.
func TestOperatorCommandsWithoutAServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nowhere := ln.Addr().String()
	ln.Close()
	for _, args := range [][]string{{"ls"}, {"watch"}, {"kick", "web-1"}} {
		_, errOut, code := pulseOnce(t, append(args, "--http", nowhere)...)
		if code != 1 || !strings.Contains(errOut, "cannot reach the pulse HTTP API at http://"+nowhere) ||
			!strings.Contains(errOut, "connection refused") || !strings.Contains(errOut, "Is pulse serve running") {
			t.Errorf("pulse %v with no server: exit %d, %q", args, code, errOut)
		}
	}
}

// pulse serve --http "" serves no HTTP.
func TestServeWithoutHTTP(t *testing.T) {
	srv := start(t, "serve", "--listen", "127.0.0.1:0", "--http", "")
	for rec := range srv.logs {
		if rec["msg"] == "http listening" {
			t.Fatalf("--http \"\" still serves HTTP: %v", rec)
		}
		if rec["msg"] == "listening" { // logged after the HTTP side starts
			break
		}
	}
	if code := srv.exit(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
}
