package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/arrivals"
	"github.com/pulsehq/pulse/detect"
	"github.com/pulsehq/pulse/httpapi"
	"github.com/pulsehq/pulse/metrics"
	"github.com/pulsehq/pulse/redis"
	"github.com/pulsehq/pulse/registry"
	"github.com/pulsehq/pulse/server"
)

// serveCommand runs the heartbeat server until SIGINT or SIGTERM.
type serveCommand struct {
	stdout, stderr io.Writer
	env            func(string) (string, bool)
	// ready, if set, is called with the addresses the server listens on:
	// heartbeats, and HTTP (nil when off).
	ready func(heartbeat, http net.Addr)
}

const serveExamples = `  pulse serve
  pulse serve --listen 0.0.0.0:7070 --interval 1s --misses 3
  pulse serve --min-interval 1s --max-interval 1m   # phones may beat every 30s, racks every 1s
  pulse serve --http 127.0.0.1:9090        # the API, dashboard and /metrics elsewhere
  pulse serve --http ""                     # no HTTP at all
  pulse serve --http 0.0.0.0:7071 --api-token-file /etc/pulse/api-token   # the API for others, with a token
  pulse serve --max-conns 50000 --max-conns-per-ip 0   # many clients behind one NAT
  PULSE_INTERVAL=10s pulse serve --log-format json
  pulse serve --suspect-after 4s --detector 'fixed:dead=11s'   # see docs/detection.md
  pulse serve --detector quantile --misses 10               # adaptive, never later than 30 s
  pulse serve --record-arrivals arrivals.bin                # then: pulse fdbench --replay arrivals.bin
  pulse serve --listen 0.0.0.0:7070 --tls-cert server.crt --tls-key server.key --auth-jwt-key jwt.pub
  pulse serve --tls-cert server.crt --tls-key server.key --tls-client-ca clients-ca.crt   # mTLS
  pulse serve --redis redis://127.0.0.1:6379/0 --node a   # one node of a cluster: docs/cluster.md
`

// detectorHelp explains --detector, with each detector's defaults.
var detectorHelp = func() string {
	phi, chen, q := detect.DefaultPhiConfig(), detect.DefaultChenConfig(), detect.DefaultQuantileConfig()
	return fmt.Sprintf(`--detector chooses how silence is judged: fixed (the above), or an
adaptive detector that learns each session's beats: phi (phi accrual),
chen (Chen's estimator) or quantile (a quantile of its own silences),
with parameters as name:key=value,... (defaults in brackets):
  fixed     suspect=DURATION, dead=DURATION [the flags above]
  phi       suspect=PHI, dead=PHI [%v, %v], min-std=DURATION [%v],
            pause=DURATION [%v], window=N [%d]
  chen      suspect=DURATION, dead=DURATION: margins after the expected
            beat [%v, %v]; window=N [%d]
  quantile  q=QUANTILE [%v]; suspect=X, dead=X: multiples of it [%v, %v];
            window=N [%d], warmup=N [%d]
Whatever the detector, no session is declared dead later than --interval ×
--misses after its last beat, the timeout WELCOME tells clients.
docs/detection.md measures each and recommends settings; pulse fdbench
measures them on your own traffic.`,
		phi.Suspect, phi.Dead, phi.MinStd, phi.Pause, phi.Window,
		chen.Suspect, chen.Dead, chen.Window,
		q.Q, q.Suspect, q.Dead, q.Window, q.Warmup)
}()

// Run parses the flags and serves until ctx ends.
func (c *serveCommand) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("serve", "Run the pulse heartbeat server.",
		"Clients send BEAT every --interval. A client silent for --suspect-after is\n"+
			"suspect; silent for --interval × --misses it is dead: its connection is\n"+
			"closed and its session removed. Every session event is logged. A client may\n"+
			"ask for its own interval, within --min-interval and --max-interval; it keeps\n"+
			"the misses, and its suspect delay scales with its interval.\n\n"+
			"If the server itself stops running for a while (a long GC, CPU starvation,\n"+
			"a paused VM, SIGSTOP), it notices by its own timer firing --stall-threshold\n"+
			"late, logs \"server stalled\", and judges no one until it has read what the\n"+
			"clients sent meanwhile, and --stall-grace more.\n\n"+
			detectorHelp,
		serveExamples, c.stdout, c.env)
	var (
		listenAddr      = fs.addr("listen", "127.0.0.1:7070", "TCP address to listen on for heartbeats")
		httpAddr        = fs.optionalAddr("http", "127.0.0.1:7071", `TCP address of the HTTP API, dashboard and /metrics; "" or off for none`)
		history         = fs.int("event-history", httpapi.DefaultHistory, "events kept for event streams that resume (Last-Event-ID)")
		interval        = fs.duration("interval", pulse.DefaultInterval, "how often clients beat")
		misses          = fs.int("misses", pulse.DefaultMisses, "missed intervals after which a silent session is dead")
		suspectAfter    = fs.duration("suspect-after", 0, "silence after which a session is suspect")
		minInterval     = fs.duration("min-interval", 0, "shortest beat interval a client may ask for (HELLO interval_ms); shorter requests get this")
		maxInterval     = fs.duration("max-interval", 0, "longest beat interval a client may ask for; longer requests get this")
		helloTimeout    = fs.duration("hello-timeout", pulse.DefaultHelloTimeout, "time a new connection has to send HELLO")
		writeTimeout    = fs.duration("write-timeout", server.DefaultWriteTimeout, "time a write to a client that does not read may stay blocked before the client is cut")
		stallThreshold  = fs.duration("stall-threshold", registry.DefaultStallThreshold, "a wake-up of the server this late is a stall of its own, after which judgments are held; 0 turns the guard off")
		stallGrace      = fs.duration("stall-grace", registry.DefaultStallGrace, "after a stall, how long judgments stay held once what arrived during it is read; 0 for no more")
		detector        = fs.String("detector", "fixed", "how silence is judged: `spec` fixed, phi, chen or quantile, optionally with :key=value,... (see below)")
		recordArrivals  = fs.String("record-arrivals", "", "record every registration, beat and end to this `file`, for pulse fdbench --replay (6 to 8 bytes a beat)")
		transport       = fs.choice("transport", "auto", []string{"auto", "epoll", "goroutine"}, "how connections are run: auto is one epoll event loop for plain TCP on Linux; goroutine gives each connection its own")
		cpuProfile      = fs.String("cpu-profile", "", "write a CPU profile of the whole run to this `file` (go tool pprof reads it)")
		shutdownTimeout = fs.duration("shutdown-timeout", 10*time.Second, "on SIGINT or SIGTERM, time to say BYE and drain before closing what remains")
		maxConns        = fs.int("max-conns", 0, "most connections held open at once; past it a client gets ERR too_many_connections; 0 for the default, -1 for no limit")
		maxConnsPerIP   = fs.int("max-conns-per-ip", server.DefaultMaxConnsPerIP, "most connections one client IP address may hold open; 0 for no limit")
		maxBeatRate     = fs.int("max-beat-rate", int(server.DefaultMaxBeatRate), "lines a second a connection may send, sustained (a session may send 10 × its beat rate if more), beyond a burst of a minute of them; past it ERR rate_limited; 0 for no limit")
		apiTokenFile    = fs.String("api-token-file", "", "`file` holding the token that every HTTP request but /healthz and the dashboard's files must send as Authorization: Bearer <token>")
		insecureHTTP    = fs.bool("insecure-http", false, "serve the HTTP API on an address other than loopback without --api-token-file: anyone who reaches it may list and kick sessions")
		redisURL        = fs.String("redis", "", "join a cluster through the Redis at this `url`, redis://host:port/db: every node's API shows every node's sessions (docs/cluster.md); empty for a single server")
		nodeName        = fs.String("node", "", "this node's `name` in the cluster, unique among its nodes (with --redis)")
		nodeTTL         = fs.duration("node-ttl", redis.DefaultNodeTTL, "with --redis: a node silent in Redis this long is lost, and the others declare its sessions dead")
		logs            logFlags
		secFlags        securityFlags
	)
	secFlags.register(fs)
	fs.defaults["max-conns"] = fmt.Sprintf("the file descriptor limit less 128: %d here", server.DefaultMaxConns())
	fs.defaults["suspect-after"] = "1.5 × interval"
	fs.defaults["min-interval"] = server.DefaultMinInterval.String() + ", or --interval if shorter"
	fs.defaults["max-interval"] = "5m, or --interval if longer"
	fs.defaults["node"] = "host-pid"
	logs.register(fs)
	if err := fs.parse(args); err != nil {
		return err
	}
	log, err := logs.logger(c.stderr)
	if err != nil {
		return err
	}
	timing := pulse.Timing{Interval: *interval, Misses: *misses, SuspectAfter: *suspectAfter}
	if err := timing.Validate(); err != nil {
		return usageErrorf("--interval %v, --misses %d, --suspect-after %v: %v", *interval, *misses, timing.Suspect(), err)
	}
	if err := checkIntervalBounds(*interval, minInterval, maxInterval); err != nil {
		return err
	}
	policy, err := detect.New(*detector, timing)
	if err != nil {
		return detectorError(*detector, err)
	}
	if *history < 1 {
		return usageErrorf("--event-history must be at least 1, got %d", *history)
	}
	for name, d := range map[string]time.Duration{"hello-timeout": *helloTimeout, "write-timeout": *writeTimeout, "shutdown-timeout": *shutdownTimeout} {
		if d <= 0 {
			return usageErrorf("--%s must be positive, got %v", name, d)
		}
	}
	for name, d := range map[string]time.Duration{"stall-threshold": *stallThreshold, "stall-grace": *stallGrace} {
		if d < 0 {
			return usageErrorf("--%s must not be negative (0 turns it off), got %v", name, d)
		}
	}
	if *maxConns < -1 || *maxConnsPerIP < 0 || *maxBeatRate < 0 {
		return usageErrorf("--max-conns must be -1 or more, --max-conns-per-ip and --max-beat-rate 0 or more; got %d, %d and %d", *maxConns, *maxConnsPerIP, *maxBeatRate)
	}
	apiToken, err := httpToken(*httpAddr, *apiTokenFile, *insecureHTTP, log)
	if err != nil {
		return err
	}
	if *stallThreshold > 0 && *stallThreshold < server.MinStallThreshold {
		return usageErrorf("--stall-threshold must be at least %v, or 0 for no stall guard, got %v", server.MinStallThreshold, *stallThreshold)
	}
	sec, err := secFlags.load()
	if err != nil {
		return err
	}
	if *redisURL != "" {
		if *nodeTTL <= 0 {
			return usageErrorf("--node-ttl must be positive, got %v", *nodeTTL)
		}
		if *nodeName == "" {
			host, _ := os.Hostname()
			*nodeName = fmt.Sprintf("%s-%d", host, os.Getpid())
		}
		if !pulse.ValidName(*nodeName) {
			return usageErrorf("--node %q: a node name is 1 to %d of A-Z a-z 0-9 . _ - :", *nodeName, pulse.MaxNameLen)
		}
		if _, err := goredis.ParseURL(*redisURL); err != nil {
			return usageErrorf("--redis %q: %v (want redis://host:port/db)", *redisURL, err)
		}
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(serveGCPercent)
	}
	tr := server.Transport(*transport)
	if tr == "auto" {
		tr = server.TransportAuto
	}
	m := metrics.New()
	cfg := server.Config{
		Timing:         timing,
		MinInterval:    *minInterval,
		MaxInterval:    *maxInterval,
		HelloTimeout:   *helloTimeout,
		WriteTimeout:   *writeTimeout,
		StallThreshold: offIfZero(*stallThreshold),
		StallGrace:     offIfZero(*stallGrace),
		Policy:         policy,
		Logger:         log,
		Observer:       m,
		Transport:      tr,
		Authenticator:  sec.authenticator(),
		MaxConns:       *maxConns, // 0: the default; -1: none
		MaxConnsPerIP:  noLimitIfZero(*maxConnsPerIP),
		MaxBeatRate:    float64(noLimitIfZero(*maxBeatRate)),
	}
	if *recordArrivals != "" {
		rec, err := arrivals.Create(*recordArrivals)
		if err != nil {
			return fmt.Errorf("--record-arrivals: %w", err)
		}
		defer closeRecording(rec, *recordArrivals, log)
		cfg.ArrivalRecorder = rec
		log.Info("recording arrivals", "file", *recordArrivals)
	}
	srv, err := server.New(cfg)
	if err != nil {
		return usageErrorf("%v", err)
	}
	ln, err := listen(*listenAddr, "--listen")
	if err != nil {
		srv.Close()
		return err
	}
	ln = sec.heartbeatListener(ln)
	sec.logSetup(log)
	stopReloads := sec.reloadOnSIGHUP(ctx, log)
	defer stopReloads()
	var (
		web    *webServer
		src    httpapi.Source = srv
		member *redis.Node
	)
	if *redisURL != "" {
		member, err = redis.New(srv, redis.Config{
			URL: *redisURL, Node: *nodeName, TTL: *nodeTTL, Interval: timing.Interval,
			Addr: ln.Addr().String(), HTTP: *httpAddr, History: *history, Logger: log, Observer: m,
		})
		if err != nil {
			ln.Close()
			srv.Close()
			if errors.Is(err, redis.ErrNodeInUse) {
				return usageErrorf("--node %s: %v; give every node its own name", *nodeName, err)
			}
			return usageErrorf("--redis: %v", err)
		}
		src = member
		log.Info("cluster node", "node", *nodeName, "redis", *redisURL, "node_ttl", *nodeTTL)
	}
	if *httpAddr != "" {
		web, err = startWeb(*httpAddr, srv, src, m, *history, *writeTimeout, apiToken, log, sec.httpTLS())
		if err != nil {
			ln.Close()
			srv.Close()
			if member != nil {
				_ = member.Close(context.Background())
			}
			return err
		}
	}
	if c.ready != nil {
		c.ready(ln.Addr(), web.addr())
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var failed error
	select {
	case err := <-served:
		failed = fmt.Errorf("serving %s: %w", ln.Addr(), err)
	case err := <-web.failed():
		failed = fmt.Errorf("serving HTTP on %s: %w", web.addr(), err)
	case <-ctx.Done():
		log.Info("signal received; saying BYE to every client", "timeout", *shutdownTimeout)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	// Heartbeats first, so that event streams carry the last events.
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) && failed == nil {
		failed = fmt.Errorf("shutdown: %w", err)
	}
	if failed == nil {
		<-served
	}
	if member != nil {
		// After the server: its sessions' last events reach the cluster.
		if err := member.Close(shutdownCtx); err != nil {
			log.Warn("leaving the cluster", "error", err)
		}
	}
	web.shutdown(shutdownCtx)
	if failed != nil {
		return failed
	}
	log.Info("stopped")
	return nil
}

// serveGCPercent is the garbage collector's target for pulse serve when
// the GOGC variable does not set one. A heartbeat server's heap is mostly
// long-lived session state and a beat allocates nothing, so collections
// are rare whatever the target; a lower target than Go's 100 leaves less
// room for garbage above the live heap: at 19,000 sessions, about a sixth
// less memory, for no CPU time a profile shows (docs/benchmarks.md).
const serveGCPercent = 50

// checkIntervalBounds fills in the defaults of --min-interval and
// --max-interval and checks that they hold --interval between them.
func checkIntervalBounds(interval time.Duration, minimum, maximum *time.Duration) error {
	if *minimum < 0 || *maximum < 0 {
		return usageErrorf("--min-interval and --max-interval must not be negative, got %v and %v", *minimum, *maximum)
	}
	if *minimum == 0 {
		*minimum = min(server.DefaultMinInterval, interval)
	}
	if *maximum == 0 {
		*maximum = max(server.DefaultMaxInterval, interval)
	}
	switch {
	case *minimum > interval:
		return usageErrorf("--min-interval %v is longer than --interval %v: the server's own interval must be one a client could ask for", *minimum, interval)
	case *maximum < interval:
		return usageErrorf("--max-interval %v is shorter than --interval %v: the server's own interval must be one a client could ask for", *maximum, interval)
	case *minimum < time.Millisecond:
		return usageErrorf("--min-interval must be at least 1ms, got %v", *minimum)
	case *maximum > pulse.MaxInterval:
		return usageErrorf("--max-interval must be at most %v, got %v", pulse.MaxInterval, *maximum)
	}
	return nil
}

// offIfZero maps a duration flag's 0, which turns a feature off, to the
// negative value that does in a Config, where zero means the default.
func offIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// noLimitIfZero maps a limit flag's 0, no limit, to the negative value
// that means none in a Config, where zero means the default.
func noLimitIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// closeRecording writes out the end of an arrival recording, and says
// what went wrong with it, if anything.
func closeRecording(rec *arrivals.Writer, file string, log *slog.Logger) {
	if err := rec.Close(); err != nil {
		log.Error("recording arrivals failed", "file", file, "error", err)
	}
	if n := rec.Dropped(); n > 0 {
		log.Warn("arrivals dropped: the disk did not keep up", "file", file, "records", n)
	}
}

// startCPUProfile profiles the process into file until stop is called.
func startCPUProfile(file string) (stop func(), err error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// listen listens on addr for the flag named, with a hint when the address
// is taken.
func listen(addr, flagName string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%w (is another server running there? choose another address with %s)", err, flagName)
	}
	return ln, err
}
