// Command benchmatrix measures pulse against the epoll floor
// (../shared/floor/epoll_floor.c) over a matrix of session counts, with
// acks on and off, several runs each, and writes the figures that
// docs/benchmarks.md quotes:
//
//	go run ./scripts/benchmatrix                       # 1k, 5k, 10k, 19k; 3 runs; 20 s windows
//	go run ./scripts/benchmatrix -sessions 19000 -runs 5
//	go run ./scripts/plot -in docs/bench/results.csv -out docs/benchmarks.png   (from scripts/plot)
//
// Every point is one server process and one `pulse bench` load against it:
// the same generator, the same clients beating once a second, in the same
// run for pulse and for the floor (their order alternates from run to
// run). pulse is measured through its whole protocol (HELLO, WELCOME, BEAT,
// ACK) with 1% of the clients falling silent, so that each run also gives
// how late their deaths were declared; the floor, which speaks no protocol,
// gets the same lines with `pulse bench --raw`.
//
// It writes, under -out: runs.jsonl, every run's bench.Result with its
// labels; results.csv, the medians the plot script draws; and it prints the
// Markdown tables of docs/benchmarks.md on standard output.
package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pulsehq/pulse/bench"
)

func main() {
	var (
		sessions = flag.String("sessions", "1000,5000,10000,19000", "session counts to measure, comma-separated")
		runs     = flag.Int("runs", 3, "runs of every point; the tables give medians")
		window   = flag.Duration("window", 20*time.Second, "measurement window of every run")
		out      = flag.String("out", "docs/bench", "directory for runs.jsonl and results.csv")
		pulseBin = flag.String("pulse", "", "pulse binary to measure; empty builds ./cmd/pulse")
		floorSrc = flag.String("floor-src", "../shared/floor/epoll_floor.c", "source of the epoll floor, built with cc -O2")
		acks     = flag.String("acks", "on,off", "ack settings to measure: on, off or both")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := matrix{window: *window, out: *out}
	var err error
	if m.sessions, err = parseInts(*sessions); err != nil {
		fail(err)
	}
	for _, a := range strings.Split(*acks, ",") {
		switch a {
		case "on":
			m.acks = append(m.acks, true)
		case "off":
			m.acks = append(m.acks, false)
		default:
			fail(fmt.Errorf("-acks %q: want on, off or on,off", *acks))
		}
	}
	if *runs < 1 {
		fail(fmt.Errorf("-runs must be at least 1"))
	}
	m.runs = *runs
	tmp, err := os.MkdirTemp("", "benchmatrix")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(tmp)
	if m.pulse = *pulseBin; m.pulse == "" {
		m.pulse = filepath.Join(tmp, "pulse")
		if err := command(ctx, "go", "build", "-o", m.pulse, "./cmd/pulse"); err != nil {
			fail(fmt.Errorf("building pulse: %w", err))
		}
	}
	m.floor = filepath.Join(tmp, "epoll_floor")
	if err := command(ctx, "cc", "-O2", "-o", m.floor, *floorSrc); err != nil {
		fail(fmt.Errorf("building the floor from %s: %w", *floorSrc, err))
	}
	if err := m.run(ctx); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchmatrix:", err)
	os.Exit(1)
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("session count %q: want a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func command(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// matrix is the set of points to measure and where the results go.
type matrix struct {
	sessions     []int
	acks         []bool
	runs         int
	window       time.Duration
	out          string
	pulse, floor string
}

// sample is one measured run of one system at one point.
type sample struct {
	System   string       `json:"system"` // pulse or floor
	Acks     bool         `json:"acks"`
	Sessions int          `json:"sessions"`
	Run      int          `json:"run"`
	Result   bench.Result `json:"result"`
}

func (m matrix) run(ctx context.Context) error {
	if err := os.MkdirAll(m.out, 0o755); err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(m.out, "runs.jsonl"))
	if err != nil {
		return err
	}
	defer log.Close()
	var samples []sample
	for run := 1; run <= m.runs; run++ {
		for _, n := range m.sessions {
			for _, acks := range m.acks {
				systems := []string{"floor", "pulse"}
				if run%2 == 0 {
					slices.Reverse(systems)
				}
				for _, system := range systems {
					fmt.Fprintf(os.Stderr, "run %d/%d: %s, %d sessions, acks %v\n", run, m.runs, system, n, acks)
					res, err := m.measure(ctx, system, n, acks)
					if err != nil {
						return fmt.Errorf("%s, %d sessions, acks %v: %w", system, n, acks, err)
					}
					s := sample{System: system, Acks: acks, Sessions: n, Run: run, Result: res}
					samples = append(samples, s)
					line, _ := json.Marshal(s)
					fmt.Fprintf(log, "%s\n", line)
				}
			}
		}
	}
	return m.report(samples)
}

// measure starts one server, runs one load against it and stops it.
func (m matrix) measure(ctx context.Context, system string, n int, acks bool) (bench.Result, error) {
	port, err := freePort()
	if err != nil {
		return bench.Result{}, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"bench", "--server", addr, "--clients", strconv.Itoa(n), "--duration", m.window.String(),
		"--interval", "1s", "--ramp", "5000", "--json"}
	if !acks {
		args = append(args, "--no-ack")
	}
	var srv *exec.Cmd
	switch system {
	case "floor":
		fargs := []string{strconv.Itoa(port)}
		if acks {
			fargs = []string{"--ack", strconv.Itoa(port)}
		}
		srv = exec.Command(m.floor, fargs...)
		args = append(args, "--raw", "--http", "off", "--silence", "0")
	case "pulse":
		hport, err := freePort()
		if err != nil {
			return bench.Result{}, err
		}
		haddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(hport))
		srv = exec.Command(m.pulse, "serve", "--listen", addr, "--http", haddr, "--interval", "1s", "--log-level", "warn")
		args = append(args, "--http", haddr, "--silence", "0.01", "--fail-at", (m.window / 3).String())
	}
	var serverErr bytes.Buffer
	srv.Stderr = &serverErr
	if err := srv.Start(); err != nil {
		return bench.Result{}, err
	}
	defer func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = srv.Process.Kill()
			<-done
		}
	}()
	if err := waitListening(ctx, addr); err != nil {
		return bench.Result{}, fmt.Errorf("%w; the server said: %s", err, serverErr.String())
	}
	args = append(args, "--server-pid", strconv.Itoa(srv.Process.Pid))
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, m.pulse, args...)
	cmd.Stdout, cmd.Stderr = &stdout, io.Discard
	if err := cmd.Run(); err != nil {
		return bench.Result{}, fmt.Errorf("pulse %s: %w", strings.Join(args, " "), err)
	}
	var res bench.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return bench.Result{}, fmt.Errorf("reading the summary: %w", err)
	}
	if res.ServerUsage == nil {
		return bench.Result{}, errors.New("the summary has no server usage")
	}
	return res, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitListening waits until addr accepts connections.
func waitListening(ctx context.Context, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the server never listened on %s: %w", addr, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// point is one (system, acks, sessions) cell of the matrix.
type point struct {
	system   string
	acks     bool
	sessions int
}

func (m matrix) report(samples []sample) error {
	by := map[point][]sample{}
	for _, s := range samples {
		p := point{s.System, s.Acks, s.Sessions}
		by[p] = append(by[p], s)
	}
	usage := func(p point, f func(bench.ServerUsage) float64) float64 {
		var xs []float64
		for _, s := range by[p] {
			xs = append(xs, f(*s.Result.ServerUsage))
		}
		return median(xs)
	}
	cpu := func(u bench.ServerUsage) float64 { return u.CPUMicrosPerBeat }
	rss := func(u bench.ServerUsage) float64 { return u.RSSPerSessionKiB }

	// results.csv, for the plot
	f, err := os.Create(filepath.Join(m.out, "results.csv"))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"system", "acks", "sessions", "cpu_us_per_beat", "rss_bytes_per_session"})
	for _, system := range []string{"pulse", "floor"} {
		for _, acks := range m.acks {
			for _, n := range m.sessions {
				p := point{system, acks, n}
				_ = w.Write([]string{system, strconv.FormatBool(acks), strconv.Itoa(n),
					strconv.FormatFloat(usage(p, cpu), 'f', 3, 64),
					strconv.FormatFloat(usage(p, rss)*1024, 'f', 0, 64)})
			}
		}
	}
	w.Flush()
	if err := errors.Join(w.Error(), f.Close()); err != nil {
		return err
	}

	fmt.Printf("Medians of %d runs, %v windows; each client beats once a second.\n\n", m.runs, m.window)
	for _, acks := range m.acks {
		fmt.Printf("Acks %s:\n\n", map[bool]string{true: "on", false: "off"}[acks])
		fmt.Println("| sessions | pulse CPU µs/beat | floor CPU µs/beat | ratio (median of runs) | pulse RSS KiB/session | ACK RTT p50 / p99 | death lateness p50 / p99 / max | false suspects / deaths |")
		fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, n := range m.sessions {
			pp, fp := point{"pulse", acks, n}, point{"floor", acks, n}
			var ratios []float64
			for _, ps := range by[pp] {
				for _, fs := range by[fp] {
					if fs.Run == ps.Run {
						ratios = append(ratios, ps.Result.ServerUsage.CPUMicrosPerBeat/fs.Result.ServerUsage.CPUMicrosPerBeat)
					}
				}
			}
			rtt, late, alarms := "–", "–", "–"
			var p50, p99, l50, l99, lmax []float64
			var suspects, deaths int
			for _, s := range by[pp] {
				if r := s.Result.RTT; r != nil {
					p50, p99 = append(p50, r.P50MS), append(p99, r.P99MS)
				}
				if d := s.Result.Detection; d != nil {
					suspects += d.FalseSuspects
					deaths += d.FalseDeaths
					if d.Lateness != nil {
						l50, l99, lmax = append(l50, d.Lateness.P50MS), append(l99, d.Lateness.P99MS), append(lmax, d.Lateness.MaxMS)
					}
				}
			}
			if len(p50) > 0 {
				rtt = fmt.Sprintf("%.2f / %.2f ms", median(p50), median(p99))
			}
			if len(l50) > 0 {
				late = fmt.Sprintf("%.1f / %.1f / %.1f ms", median(l50), median(l99), median(lmax))
				alarms = fmt.Sprintf("%d / %d", suspects, deaths)
			}
			fmt.Printf("| %d | %.2f | %.2f | %.2f× | %.2f | %s | %s | %s |\n", n, usage(pp, cpu), usage(fp, cpu), median(ratios), usage(pp, rss), rtt, late, alarms)
		}
		fmt.Println()
	}
	return nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}
