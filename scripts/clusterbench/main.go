// Command clusterbench measures what joining a cluster (pulse serve
// --redis) costs one node and its Redis, against the same node without
// --redis in the same run, and writes the figures docs/benchmarks.md
// quotes:
//
//	go run ./scripts/clusterbench                        # 1k, 10k, 19k sessions; 3 runs; 20 s windows
//	go run ./scripts/clusterbench -sessions 19000 -runs 5
//
// Every run of a point measures the node twice with the same `pulse bench`
// load (clients beating once a second, none failing, so that the window
// is all beats and no events: what an event costs is in docs/cluster.md):
// once alone, once with --redis against a fresh redis-server
// (no persistence), in an order that alternates from run to run. During the
// Redis run it samples Redis every second (INFO, HLEN pulse:sessions) and
// takes, over the samples where every session is registered: Redis
// commands per second (total_commands_processed, less the sampler's own),
// Redis CPU per beat (used_cpu_user + used_cpu_sys), and at the last of
// them Redis memory per session, both as used_memory over the empty
// Redis and as MEMORY USAGE of the per-session keys (pulse:sessions,
// pulse:beats, pulse:owned:{node}). Server CPU per beat is pulse bench's
// (--server-pid).
//
// It appends every run to -out (JSON lines) and prints the Markdown table
// of medians.
package main

import (
	"bytes"
	"context"
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

	goredis "github.com/redis/go-redis/v9"

	"github.com/pulsehq/pulse/bench"
)

func main() {
	var (
		sessions = flag.String("sessions", "1000,10000,19000", "session counts to measure, comma-separated")
		runs     = flag.Int("runs", 3, "runs of every point; the table gives medians")
		window   = flag.Duration("window", 20*time.Second, "measurement window of every run")
		out      = flag.String("out", "docs/bench/cluster.jsonl", "file the runs are appended to")
		pulseBin = flag.String("pulse", "", "pulse binary to measure; empty builds ./cmd/pulse")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := exec.LookPath("redis-server"); err != nil {
		fail(errors.New("redis-server is not installed (Debian: apt-get install redis-server)"))
	}
	bin := *pulseBin
	if bin == "" {
		dir, err := os.MkdirTemp("", "clusterbench")
		if err != nil {
			fail(err)
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "pulse")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/pulse").CombinedOutput(); err != nil {
			fail(fmt.Errorf("go build: %v\n%s", err, out))
		}
	}
	var ns []int
	for _, f := range strings.Split(*sessions, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fail(fmt.Errorf("-sessions: %q is not a count", f))
		}
		ns = append(ns, n)
	}
	f, err := os.OpenFile(*out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fail(err)
	}
	defer f.Close()
	b := bencher{pulse: bin, window: *window}
	var all []run
	for _, n := range ns {
		for i := range *runs {
			r := run{Sessions: n, Run: i + 1}
			order := []bool{false, true}
			if i%2 == 1 {
				order = []bool{true, false}
			}
			for _, withRedis := range order {
				fmt.Fprintf(os.Stderr, "%d sessions, run %d, redis %v\n", n, i+1, withRedis)
				if err := b.measure(ctx, &r, withRedis); err != nil {
					fail(err)
				}
			}
			line, _ := json.Marshal(r)
			fmt.Fprintf(f, "%s\n", line)
			all = append(all, r)
		}
	}
	report(all)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "clusterbench:", err)
	os.Exit(1)
}

// run is one run of one point: the node alone and in a cluster.
type run struct {
	Sessions int           `json:"sessions"`
	Run      int           `json:"run"`
	Alone    *bench.Result `json:"alone"`
	Cluster  *bench.Result `json:"cluster"`
	Redis    *redisFigures `json:"redis"`
}

// redisFigures are what Redis did during the cluster run's steady state.
type redisFigures struct {
	Samples           int     `json:"samples"`
	Seconds           float64 `json:"seconds"`
	Sessions          int64   `json:"sessions"`
	CommandsPerSecond float64 `json:"commands_per_second"`
	CPUUsPerBeat      float64 `json:"cpu_us_per_beat"`
	UsedMemoryPerSess float64 `json:"used_memory_bytes_per_session"`
	KeysPerSession    float64 `json:"keys_bytes_per_session"`
	StreamBytes       int64   `json:"stream_bytes"`
}

type bencher struct {
	pulse  string
	window time.Duration
}

func (b bencher) measure(ctx context.Context, r *run, withRedis bool) error {
	addr, haddr := freeAddr(), freeAddr()
	serveArgs := []string{"serve", "--listen", addr, "--http", haddr, "--interval", "1s", "--log-level", "warn"}
	var rdb *goredis.Client
	if withRedis {
		dir, err := os.MkdirTemp("", "clusterbench-redis")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		raddr := freeAddr()
		_, port, _ := net.SplitHostPort(raddr)
		rs := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--logfile", "redis.log")
		if err := rs.Start(); err != nil {
			return err
		}
		defer func() { _ = rs.Process.Kill(); _ = rs.Wait() }()
		if err := waitListening(ctx, raddr); err != nil {
			return err
		}
		rdb = goredis.NewClient(&goredis.Options{Addr: raddr})
		defer rdb.Close()
		serveArgs = append(serveArgs, "--redis", "redis://"+raddr+"/0", "--node", "bench")
	}
	srv := exec.Command(b.pulse, serveArgs...)
	var serverErr bytes.Buffer
	srv.Stderr = &serverErr
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = srv.Process.Kill()
			<-done
		}
	}()
	if err := waitListening(ctx, addr); err != nil {
		return fmt.Errorf("%w; the server said: %s", err, serverErr.String())
	}
	var base redisSample
	var samples chan []redisSample
	sctx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	if rdb != nil {
		var err error
		if base, err = sample(ctx, rdb); err != nil {
			return err
		}
		samples = make(chan []redisSample, 1)
		go func() { samples <- sampleEverySecond(sctx, rdb, r.Sessions) }()
	}
	args := []string{"bench", "--server", addr, "--http", haddr, "--clients", strconv.Itoa(r.Sessions),
		"--duration", b.window.String(), "--interval", "1s", "--ramp", "5000", "--silence", "0",
		"--json", "--server-pid", strconv.Itoa(srv.Process.Pid)}
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, b.pulse, args...)
	cmd.Stdout, cmd.Stderr = &stdout, io.Discard
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pulse %s: %w; the server said: %s", strings.Join(args, " "), err, serverErr.String())
	}
	var res bench.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return fmt.Errorf("reading the summary: %w", err)
	}
	if res.ServerUsage == nil {
		return errors.New("the summary has no server usage")
	}
	if rdb == nil {
		r.Alone = &res
		return nil
	}
	r.Cluster = &res
	stopSampling()
	ss := <-samples
	fig, err := figures(base, ss, res.Beats.PerSecond)
	if err != nil {
		return err
	}
	r.Redis = fig
	return nil
}

// redisSample is one reading of Redis.
type redisSample struct {
	at         time.Time
	sessions   int64
	commands   float64
	cpu        float64 // seconds
	usedMemory float64
	keysBytes  int64
	stream     int64
	// cmds is how many commands the reading itself made
	cmds int
}

func sample(ctx context.Context, rdb *goredis.Client) (redisSample, error) {
	s := redisSample{at: time.Now()}
	info, err := rdb.Info(ctx, "stats", "memory", "cpu").Result()
	if err != nil {
		return s, err
	}
	s.cmds++
	field := func(name string) float64 {
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, name+":"); ok {
				f, _ := strconv.ParseFloat(v, 64)
				return f
			}
		}
		return 0
	}
	s.commands = field("total_commands_processed")
	s.cpu = field("used_cpu_user") + field("used_cpu_sys")
	s.usedMemory = field("used_memory")
	s.sessions, _ = rdb.HLen(ctx, "pulse:sessions").Result()
	s.cmds++
	return s, nil
}

// sampleEverySecond reads Redis every second until ctx ends; the last
// steady reading also measures the keys.
func sampleEverySecond(ctx context.Context, rdb *goredis.Client, n int) []redisSample {
	var out []redisSample
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return out
		case <-t.C:
		}
		s, err := sample(ctx, rdb)
		if err != nil {
			return out
		}
		if s.sessions >= int64(n) {
			for _, k := range []string{"pulse:sessions", "pulse:beats", "pulse:owned:bench"} {
				v, _ := rdb.MemoryUsage(ctx, k, 0).Result()
				s.keysBytes += v
				s.cmds++
			}
			s.stream, _ = rdb.MemoryUsage(ctx, "pulse:events", 0).Result()
			s.cmds++
		}
		out = append(out, s)
	}
}

// figures reduces the steady samples (every session registered).
func figures(base redisSample, ss []redisSample, beatsPerSecond float64) (*redisFigures, error) {
	var steady []redisSample
	for _, s := range ss {
		if s.keysBytes > 0 {
			steady = append(steady, s)
		}
	}
	if len(steady) < 3 {
		return nil, fmt.Errorf("only %d steady Redis samples", len(steady))
	}
	// the first steady sample may still see the last joins: skip it
	first, last := steady[1], steady[len(steady)-1]
	dt := last.at.Sub(first.at).Seconds()
	own := first.cmds // the first reading's INFO is counted once it has run, and what followed it
	for _, s := range steady[2 : len(steady)-1] {
		own += s.cmds
	}
	return &redisFigures{
		Samples:           len(steady) - 1,
		Seconds:           dt,
		Sessions:          last.sessions,
		CommandsPerSecond: (last.commands - first.commands - float64(own)) / dt,
		CPUUsPerBeat:      (last.cpu - first.cpu) / dt / beatsPerSecond * 1e6,
		UsedMemoryPerSess: (last.usedMemory - base.usedMemory) / float64(last.sessions),
		KeysPerSession:    float64(last.keysBytes) / float64(last.sessions),
		StreamBytes:       last.stream,
	}, nil
}

func report(all []run) {
	fmt.Println("| sessions | server CPU µs/beat alone | with --redis | added | server RSS KiB/session alone | with --redis | Redis commands/s | Redis CPU µs/beat | Redis bytes/session (keys) | Redis used_memory/session | event stream |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var ns []int
	for _, r := range all {
		if !slices.Contains(ns, r.Sessions) {
			ns = append(ns, r.Sessions)
		}
	}
	for _, n := range ns {
		var alone, clus, added, rssAlone, rssClus, cps, rcpu, keys, used, stream []float64
		for _, r := range all {
			if r.Sessions != n {
				continue
			}
			a, c := r.Alone.ServerUsage.CPUMicrosPerBeat, r.Cluster.ServerUsage.CPUMicrosPerBeat
			alone, clus, added = append(alone, a), append(clus, c), append(added, c-a)
			rssAlone = append(rssAlone, r.Alone.ServerUsage.RSSPerSessionKiB)
			rssClus = append(rssClus, r.Cluster.ServerUsage.RSSPerSessionKiB)
			cps, rcpu = append(cps, r.Redis.CommandsPerSecond), append(rcpu, r.Redis.CPUUsPerBeat)
			keys, used = append(keys, r.Redis.KeysPerSession), append(used, r.Redis.UsedMemoryPerSess)
			stream = append(stream, float64(r.Redis.StreamBytes))
		}
		fmt.Printf("| %d | %.2f | %.2f | %+.2f | %.2f | %.2f | %.1f | %.2f | %.0f | %.0f | %.1f MiB |\n", n, median(alone), median(clus), median(added),
			median(rssAlone), median(rssClus), median(cps), median(rcpu), median(keys), median(used), median(stream)/(1<<20))
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	defer ln.Close()
	return ln.Addr().String()
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
			return fmt.Errorf("nothing listened on %s: %w", addr, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}
