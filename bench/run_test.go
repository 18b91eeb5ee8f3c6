package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/httpapi"
	"github.com/pulsehq/pulse/server"
)

// workerArg, as the test binary's first argument, makes it a bench worker:
// the multi-process tests start it so.
const workerArg = "bench-test-worker"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == workerArg {
		if err := ServeWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// patience bounds every wait: a way to fail instead of hanging, not a
// timing assertion.
const patience = 30 * time.Second

// generous is a timing that a loaded machine running the race detector
// keeps: a healthy client is suspect only if a beat is 800 ms late, dead
// if 1.8 s late.
var generous = pulse.Timing{Interval: 200 * time.Millisecond, Misses: 10, SuspectAfter: time.Second}

var quiet = slog.New(slog.DiscardHandler)

// startServer runs a pulse server and its HTTP API on loopback ports and
// returns it, its heartbeat address and the API's.
func startServer(t *testing.T, timing pulse.Timing) (*server.Server, string, string) {
	t.Helper()
	return startServerConfig(t, server.Config{Timing: timing, Logger: quiet})
}

// startServerConfig is startServer with the server's whole configuration.
func startServerConfig(t *testing.T, cfg server.Config) (*server.Server, string, string) {
	t.Helper()
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	api, err := httpapi.New(httpapi.Config{Source: srv, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(api)
	t.Cleanup(func() {
		api.Close()
		hs.Close()
		srv.Close()
		<-done
	})
	return srv, ln.Addr().String(), hs.URL
}

func run(t *testing.T, cfg Config) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Interrupted {
		t.Fatalf("the run did not finish within %v", patience)
	}
	return res
}

// checkAddsUp checks the figures of a run of n clients against a pulse
// server that answers beats, a share of which were silenced and
// disconnected, with its events followed.
func checkAddsUp(t *testing.T, res *Result, n, silenced, disconnected int) {
	t.Helper()
	cn := res.Connections
	if cn.Connected != n || cn.Failed != 0 || len(cn.FailedBy) != 0 {
		t.Errorf("connections %+v, want all %d connected", cn, n)
	}
	if cn.Dropped != 0 {
		t.Errorf("healthy clients dropped: %v", cn.DroppedBy)
	}
	b := res.Beats
	if !res.Acks || b.Sent == 0 || b.Acked != b.Sent || b.Unanswered != 0 || b.Total < b.Sent {
		t.Errorf("beats %+v (acks %v): want every beat sent in the window acknowledged", b, res.Acks)
	}
	if res.RTT == nil || res.RTT.Count == 0 || res.RTT.Count > b.Acked || res.RTT.MinMS <= 0 ||
		res.RTT.MinMS > res.RTT.P50MS || res.RTT.P50MS > res.RTT.P99MS || res.RTT.P99MS > res.RTT.MaxMS {
		t.Errorf("rtt %+v", res.RTT)
	}
	if f := res.Failures; f.Silenced != silenced || f.SilencedCut != silenced || f.Disconnected != disconnected {
		t.Errorf("failures %+v, want %d silenced (all cut off) and %d disconnected", f, silenced, disconnected)
	}
	d := res.Detection
	if d == nil {
		t.Fatal("no detection figures")
	}
	if d.Dead != silenced || d.Undetected != 0 || d.EventsLost {
		t.Errorf("detection %+v: want the %d silenced dead", d, silenced)
	}
	if silenced > 0 && (d.Lateness == nil || d.Lateness.Count != uint64(silenced) || d.Lateness.MinMS < 0) {
		t.Errorf("lateness %+v: want %d deaths, none before its deadline", d.Lateness, silenced)
	}
	if d.Left["closed"] != disconnected || len(d.Left) > min(disconnected, 1) {
		t.Errorf("the disconnected clients ended %v, want %d left closed", d.Left, disconnected)
	}
	// With a generous timing, a healthy client is not declared dead (it
	// may be suspect if the machine stalls for most of a second).
	if d.FalseDeaths != 0 || len(d.Other) != 0 {
		t.Errorf("false deaths %d, other events %v", d.FalseDeaths, d.Other)
	}
	if res.WindowMS <= 0 || b.PerSecond <= 0 || res.IntervalMS != millis(generous.Interval) || res.TimeoutMS != millis(generous.Timeout()) {
		t.Errorf("window %vms, %v beats/s, interval %vms, timeout %vms", res.WindowMS, b.PerSecond, res.IntervalMS, res.TimeoutMS)
	}
}

// awaitNoSessions waits until every client's session has ended.
func awaitNoSessions(t *testing.T, srv *server.Server) {
	t.Helper()
	for deadline := time.Now().Add(patience); srv.Counts().Total() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions left after the run", srv.Counts().Total())
		}
	}
}

// A small load against a real server: every figure adds up.
func TestRunAddsUp(t *testing.T) {
	t.Parallel()
	srv, addr, api := startServer(t, generous)
	var progress []Progress
	res := run(t, Config{
		Server: addr, HTTP: api, Clients: 50, Duration: 2 * time.Second,
		Silence: 0.1, Disconnect: 0.1, FailAt: 500 * time.Millisecond,
		ServerPID: os.Getpid(), // the server is this process
		Progress:  func(p Progress) { progress = append(progress, p) },
	})
	checkAddsUp(t, res, 50, 5, 5)
	if res.Processes != 1 || res.Raw || !strings.HasPrefix(res.NamePrefix, "bench-") {
		t.Errorf("processes %d, raw %v, name prefix %q", res.Processes, res.Raw, res.NamePrefix)
	}
	if u := res.ServerUsage; u == nil || u.PID != os.Getpid() || u.RSSIdleKiB <= 0 || u.RSSEndKiB <= 0 || u.CPUMS < 0 {
		t.Errorf("server usage %+v", res.ServerUsage)
	}
	if len(progress) == 0 || progress[len(progress)-1].Clients != 50 || !progress[0].Detection {
		t.Errorf("progress %+v", progress)
	}
	awaitNoSessions(t, srv) // every client said BYE
}

// Beats without acks: nothing is acknowledged, no round trip measured.
func TestRunWithoutAcks(t *testing.T) {
	t.Parallel()
	srv, addr, api := startServer(t, generous)
	res := run(t, Config{Server: addr, HTTP: api, Clients: 20, Duration: time.Second, NoAck: true, NamePrefix: "quiet-"})
	if res.Acks || res.Beats.Sent == 0 || res.Beats.Acked != 0 || res.Beats.Unanswered != 0 || res.RTT != nil {
		t.Errorf("acks %v, beats %+v, rtt %+v: want beats sent and none answered", res.Acks, res.Beats, res.RTT)
	}
	if res.Connections.Connected != 20 || res.NamePrefix != "quiet-" || res.Failures != (Failures{}) {
		t.Errorf("connections %+v, prefix %q, failures %+v", res.Connections, res.NamePrefix, res.Failures)
	}
	if d := res.Detection; d == nil || d.Dead != 0 || d.FalseDeaths != 0 || d.Lateness != nil {
		t.Errorf("detection %+v", res.Detection)
	}
	awaitNoSessions(t, srv)
}

// The clients of several processes add up as those of one.
func TestRunInWorkerProcesses(t *testing.T) {
	t.Parallel()
	srv, addr, api := startServer(t, generous)
	res := run(t, Config{
		Server: addr, HTTP: api, Clients: 20, Duration: 2 * time.Second,
		Silence: 0.1, Disconnect: 0.1, FailAt: 500 * time.Millisecond,
		PerProcess: 8, WorkerCommand: []string{os.Args[0], workerArg}, WorkerStderr: os.Stderr,
	})
	if res.Processes != 3 {
		t.Errorf("%d processes, want 3 for 20 clients at most 8 each", res.Processes)
	}
	checkAddsUp(t, res, 20, 2, 2)
	awaitNoSessions(t, srv)
}

// sink is a TCP server that does not speak the protocol: it counts the
// lines it reads and answers each with "ACK".
type sink struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	lines map[string]int // by first word
	bad   []string       // lines of a shape the bench should not send
}

func startSink(t *testing.T) *sink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{ln: ln, lines: map[string]int{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go s.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *sink) serve(c net.Conn) {
	defer s.wg.Done()
	defer c.Close()
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		s.mu.Lock()
		if len(f) == 0 || (f[0] == "BEAT" && len(f) != 2) || (f[0] == "HELLO" && len(f) != 2) {
			s.bad = append(s.bad, sc.Text())
		} else {
			s.lines[f[0]]++
		}
		s.mu.Unlock()
		if _, err := c.Write([]byte("ACK\n")); err != nil {
			return
		}
	}
}

// --raw against a server that does not speak the protocol: every beat
// arrives, every answer is read, nothing is waited for.
func TestRunRaw(t *testing.T) {
	t.Parallel()
	s := startSink(t)
	res := run(t, Config{
		Server: s.ln.Addr().String(), Clients: 20, Duration: time.Second, Raw: true,
		Interval: 100 * time.Millisecond, Silence: 0.1, FailAt: 300 * time.Millisecond,
	})
	s.mu.Lock()
	lines, bad := s.lines, s.bad
	s.mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("lines of the wrong shape: %q", bad)
	}
	b := res.Beats
	if res.Connections.Connected != 20 || lines["HELLO"] != 20 || lines["BYE"] != 20 {
		t.Errorf("%d connected; the sink read %v", res.Connections.Connected, lines)
	}
	if b.Sent == 0 || b.Total != uint64(lines["BEAT"]) {
		t.Errorf("beats %+v; the sink read %d", b, lines["BEAT"])
	}
	if want := uint64(lines["HELLO"] + lines["BEAT"] + lines["BYE"]); b.Replies != want {
		t.Errorf("%d replies read, want one for each of the %d lines sent", b.Replies, want)
	}
	if !res.Raw || res.Acks || b.Acked != 0 || res.RTT != nil || res.Detection != nil || res.Failures.Silenced != 2 {
		t.Errorf("raw %v, acks %v, beats %+v, rtt %+v, detection %+v, failures %+v",
			res.Raw, res.Acks, b, res.RTT, res.Detection, res.Failures)
	}
	if res.IntervalMS != 100 || res.Processes != 1 {
		t.Errorf("interval %vms, %d processes", res.IntervalMS, res.Processes)
	}
}

// A server that is not there is an error, and so is its API.
func TestRunUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nowhere := ln.Addr().String()
	ln.Close()
	_, err = Run(context.Background(), Config{Server: nowhere, Clients: 1, Duration: time.Second})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), nowhere) {
		t.Errorf("no server: %v", err)
	}
	_, addr, _ := startServer(t, generous)
	_, err = Run(context.Background(), Config{Server: addr, HTTP: nowhere, Clients: 1, Duration: time.Second})
	if !errors.Is(err, ErrUnreachable) || !errors.Is(err, httpapi.ErrUnreachable) {
		t.Errorf("no HTTP API: %v", err)
	}
}

// A server that refuses every client leaves no figures, and says why.
func TestRunNoClientConnects(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("ERR too_many_connections the server is full\n"))
			c.Close()
		}
	}()
	_, err = Run(context.Background(), Config{Server: ln.Addr().String(), Clients: 3, Duration: time.Second})
	if !errors.Is(err, ErrNoClients) || !strings.Contains(err.Error(), "too_many_connections") {
		t.Errorf("every client refused: %v", err)
	}
}

// Canceling the context cuts the run short with the figures so far.
func TestRunInterrupted(t *testing.T) {
	t.Parallel()
	srv, addr, _ := startServer(t, generous)
	ctx, cancel := context.WithCancel(context.Background())
	res, err := Run(ctx, Config{Server: addr, Clients: 10, Duration: time.Hour, Progress: func(p Progress) {
		if p.Phase == "window" {
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || res.Connections.Connected != 10 || res.WindowMS <= 0 || res.WindowMS >= float64(time.Hour/time.Millisecond) {
		t.Errorf("interrupted %v, connections %+v, window %vms", res.Interrupted, res.Connections, res.WindowMS)
	}
	awaitNoSessions(t, srv)
}

// An interval longer than the server grants would kill every client.
func TestRunIntervalLongerThanGranted(t *testing.T) {
	t.Parallel()
	_, addr, _ := startServer(t, generous)
	_, err := Run(context.Background(), Config{Server: addr, Clients: 2, Duration: time.Second, Interval: time.Second})
	if err == nil || !strings.Contains(err.Error(), "longer than the 200ms the server grants") {
		t.Errorf("interval 1s against 200ms: %v", err)
	}
}

// A worker that is asked nonsense says so; one whose parent is gone ends.
func TestServeWorkerProtocol(t *testing.T) {
	var out bytes.Buffer
	in := strings.NewReader(`{"op":"stats"}` + "\n")
	if err := ServeWorker(context.Background(), in, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"error":"the first request must be a start`) {
		t.Errorf("answer %q", out.String())
	}
}
