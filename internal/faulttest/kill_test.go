package faulttest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pulsehq/pulse/httpapi"
)

// buildPulse builds the pulse command into a temporary directory.
func buildPulse(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "pulse")
	cmd := exec.Command("go", "build", "-o", exe, "github.com/pulsehq/pulse/cmd/pulse")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// process starts a long-running pulse subcommand, stopped with SIGKILL at
// the end of the test if it is still running. Its log goes to stderr (to
// logged if that is set) when the test is verbose.
func process(t *testing.T, exe string, logged io.Writer, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(exe, args...)
	if testing.Verbose() {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if logged != nil {
		cmd.Stderr = logged
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

// names asks the API for the names of the sessions, polling until want
// says they are what it waits for; it returns when they came.
func names(t *testing.T, api *httpapi.Client, want func([]string) bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(patience)
	var last []string
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		list, _, err := api.AllSessions(ctx, httpapi.ListOptions{})
		cancel()
		lastErr = err
		if err == nil {
			last = last[:0]
			for _, s := range list {
				last = append(last, s.Name)
			}
			slices.Sort(last)
			if want(last) {
				return time.Now()
			}
		}
		time.Sleep(20 * time.Millisecond) // polling the API
	}
	t.Fatalf("sessions %v (last error %v) within %v", last, lastErr, patience)
	return time.Time{}
}

// retry is an agent's log line saying it is retrying after so many
// failures.
type retry struct {
	name    string
	attempt int
}

var attemptRE = regexp.MustCompile(`retrying.* attempt=(\d+)`)

// watchRetries reads an agent's log, copies it to stderr if the test is
// verbose, and reports each retry.
func watchRetries(name string, log io.Reader, out chan<- retry) {
	sc := bufio.NewScanner(log)
	for sc.Scan() {
		if testing.Verbose() {
			fmt.Fprintln(os.Stderr, sc.Text())
		}
		if m := attemptRE.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.Atoi(m[1])
			select {
			case out <- retry{name, n}:
			default: // nobody is counting any more
			}
		}
	}
	io.Copy(io.Discard, log)
}

// The server killed with SIGKILL and started again on the same port: every
// agent notices the broken connection, backs off, and is registered again
// within its longest backoff of the restart.
func TestServerKilledAndRestarted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the pulse command")
	}
	exe := buildPulse(t)
	hb, web := freePort(t), freePort(t)
	serve := func() *exec.Cmd {
		return process(t, exe, nil, "serve", "--listen", hb, "--http", web,
			"--interval", "200ms", "--misses", "5", "--log-level", "warn")
	}
	const agents = 5
	const minBackoff, maxBackoff = 100 * time.Millisecond, time.Second
	want := make([]string, agents)
	for i := range want {
		want[i] = "agent-" + strconv.Itoa(i)
	}
	api, err := httpapi.NewClient(web, nil)
	if err != nil {
		t.Fatal(err)
	}
	all := func(got []string) bool { return slices.Equal(got, want) }

	srv := serve()
	retries := make(chan retry, 100)
	for _, name := range want {
		pr, pw := io.Pipe()
		t.Cleanup(func() { pw.Close() })
		go watchRetries(name, pr, retries)
		process(t, exe, pw, "agent", "--server", hb, "--name", name,
			"--backoff-min", minBackoff.String(), "--backoff-max", maxBackoff.String(), "--log-level", "warn")
	}
	names(t, api, all)

	if err := srv.Process.Kill(); err != nil { // SIGKILL: no BYE, no close
		t.Fatal(err)
	}
	srv.Wait()
	// The agents retry into a closed port meanwhile: wait until each has
	// failed often enough that its backoff reached its longest (100, 200,
	// 400, 800 ms, then 1 s).
	longest := map[string]bool{}
	deadline := time.After(patience)
	for len(longest) < agents {
		select {
		case r := <-retries:
			if r.attempt >= 5 {
				longest[r.name] = true
			}
		case <-deadline:
			t.Fatalf("agents at their longest backoff within %v: only %v", patience, longest)
		}
	}
	restarted := time.Now()
	serve()
	names(t, api, func(got []string) bool { return len(got) > 0 }) // the new server answers
	back := names(t, api, all)
	// The new server is up within a moment of its start; each agent's
	// next attempt comes at most maxBackoff after its last.
	bound := maxBackoff + time.Second
	within(t, fmt.Sprintf("all %d agents back after the restart", agents), back.Sub(restarted), 0, bound)
}
