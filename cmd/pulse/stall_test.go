package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pulsehq/pulse/client"
	"github.com/pulsehq/pulse/httpapi"
)

// sigstopCase is the size of a SIGSTOP run.
type sigstopCase struct {
	clients  int
	interval time.Duration
	misses   int
	stop     time.Duration // how long the server is stopped; longer than interval × misses
}

// The case: a server stopped for 20 s, longer than its 15 s
// timeout, while 1,000 healthy clients beat. It takes about a minute; run
// it with
//
//	PULSE_SIGSTOP_FULL=1 go test -run TestSIGSTOPDeclaresNoDeath -v ./cmd/pulse
var fullSIGSTOP = sigstopCase{clients: 1000, interval: 3 * time.Second, misses: 5, stop: 20 * time.Second}

// quickSIGSTOP is the same case scaled down for the test suite: a 2 s stop
// against a 1 s timeout.
var quickSIGSTOP = sigstopCase{clients: 50, interval: 100 * time.Millisecond, misses: 10, stop: 2 * time.Second}

// TestSIGSTOPDeclaresNoDeath stops a real pulse serve process with SIGSTOP
// for longer than its timeout while healthy clients beat, then resumes it
// with SIGCONT: it must notice its stall, say so (log, event stream,
// metric), read what the clients sent meanwhile before judging anyone, and
// declare no death: every session lives on until its client says BYE. It
// runs on both transports. What it asserts holds however slow the machine
// is; it measures no latency.
func TestSIGSTOPDeclaresNoDeath(t *testing.T) {
	c := quickSIGSTOP
	if os.Getenv("PULSE_SIGSTOP_FULL") != "" {
		c = fullSIGSTOP
	}
	for _, transport := range []string{"epoll", "goroutine"} {
		t.Run(transport, func(t *testing.T) { sigstopRun(t, transport, c) })
	}
}

func sigstopRun(t *testing.T, transport string, c sigstopCase) {
	timeout := c.interval * time.Duration(c.misses)
	srv := start(t, "serve", "--listen", "127.0.0.1:0", "--transport", transport, "--log-level", "info",
		"--interval", c.interval.String(), "--misses", strconv.Itoa(c.misses))
	web := srv.await(t, "http listening", nil)["addr"].(string)
	addr := srv.await(t, "listening", nil)["addr"].(string)
	logs := follow(srv)
	watch, watchErr := startLong(t, "watch", "--http", web)
	watchErr.await(t, "pulse watch: watching")

	wait := patience + 2*c.stop + 2*timeout // bounds each wait below; not a timing assertion
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	clients := make([]*client.Client, c.clients)
	var wg sync.WaitGroup
	errs := make(chan error, c.clients)
	for i := range clients {
		wg.Go(func() {
			// Without acks, a client never gives up on a silent server:
			// its session must live through the stall.
			cl, err := client.Dial(ctx, addr, fmt.Sprintf("c%04d", i), client.WithoutAck())
			clients[i] = cl
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	logs.await(t, wait, "session joined", c.clients)

	if err := srv.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(c.stop) // the stall: the clients beat into the server's socket buffers
	if err := srv.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stalled := logs.await(t, wait, "server stalled; holding judgments", 1)
	resumed := logs.await(t, wait, "stall: judging again", 1)
	t.Logf("%s: stalled %v: %v sessions past a deadline; judging again after %v (caught up in %v), %v judged then",
		transport, stalled["stall"], stalled["overdue"], resumed["held"], resumed["caught_up_in"], resumed["judged"])

	// Every client beats again after judgments resume, and no session died.
	at, err := time.Parse(time.RFC3339Nano, resumed["time"].(string))
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.NewClient(web, nil)
	if err != nil {
		t.Fatal(err)
	}
	for {
		all, _, err := api.AllSessions(ctx, httpapi.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fresh := 0
		for _, s := range all {
			if s.LastBeat.After(at) {
				fresh++
			}
		}
		if fresh == c.clients {
			break
		}
		if len(all) < c.clients {
			t.Fatalf("%d sessions left of %d; the log counts %d dead", len(all), c.clients, logs.count("session dead"))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("only %d of %d sessions beat after judgments resumed", fresh, c.clients)
		case <-time.After(c.interval):
		}
	}
	for _, cl := range clients {
		cl.Close() // BYE
	}
	logs.await(t, wait, "session left", c.clients)
	t.Logf("%s: %d of %d sessions declared suspect at any time", transport, logs.count("session suspect"), c.clients)
	if n := logs.count("session dead"); n != 0 {
		t.Fatalf("%d sessions declared dead", n)
	}
	if n := logs.count("session left"); n != c.clients {
		t.Fatalf("%d sessions left, want %d (each by its BYE)", n, c.clients)
	}
	watch.await(t, "stall", "(server)", "late_wakeup: the server did not run for at least")
	metrics := httpGet(t, "http://"+web+"/metrics")
	if !strings.Contains(metrics, "\npulse_server_stalls_total ") || strings.Contains(metrics, "\npulse_server_stalls_total 0\n") ||
		strings.Contains(metrics, `kind="dead"`+",reason=") {
		t.Errorf("/metrics after the stall:\n%s", grep(metrics, "pulse_server_stall", "pulse_events_total"))
	}
	if code := srv.exit(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
}

// logTally reads every log record of a process, so that it never blocks
// on its log, and counts them by message.
type logTally struct {
	mu      sync.Mutex
	counts  map[string]int
	last    map[string]map[string]any
	changed chan struct{} // closed and replaced at each record
	ended   bool
}

func follow(p *proc) *logTally {
	lt := &logTally{counts: map[string]int{}, last: map[string]map[string]any{}, changed: make(chan struct{})}
	go func() {
		for rec := range p.logs {
			msg, _ := rec["msg"].(string)
			lt.mu.Lock()
			lt.counts[msg]++
			lt.last[msg] = rec
			close(lt.changed)
			lt.changed = make(chan struct{})
			lt.mu.Unlock()
		}
		lt.mu.Lock()
		lt.ended = true
		close(lt.changed)
		lt.mu.Unlock()
	}()
	return lt
}

func (lt *logTally) count(msg string) int {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return lt.counts[msg]
}

// await waits until n records with the message msg have been logged and
// returns the last of them.
func (lt *logTally) await(t *testing.T, patience time.Duration, msg string, n int) map[string]any {
	t.Helper()
	timeout := time.After(patience)
	for {
		lt.mu.Lock()
		got, rec, changed, ended := lt.counts[msg], lt.last[msg], lt.changed, lt.ended
		lt.mu.Unlock()
		switch {
		case got >= n:
			return rec
		case ended:
			t.Fatalf("the process exited after %d of %d %q", got, n, msg)
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("%d of %d %q logged", got, n, msg)
		}
	}
}

// grep returns the lines of s that contain any of words.
func grep(s string, words ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
