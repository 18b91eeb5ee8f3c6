package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/auth"
	"github.com/pulsehq/pulse/bench"
	"github.com/pulsehq/pulse/httpapi"
)

// benchCommand runs a load against a server and prints what it measured.
type benchCommand struct {
	stdout, stderr io.Writer
	env            func(string) (string, bool)
}

// workerFlag, as the first argument, makes pulse bench a worker of another
// pulse bench: requests on stdin, answers on stdout (bench.ServeWorker).
// It is not a flag users set, so --help does not show it.
const workerFlag = "--worker"

const benchExamples = `  pulse bench                                       # 1,000 clients for 30s; 1% fall silent at 10s
  pulse bench --clients 19000 --server-pid "$(pgrep -nx pulse)"
  pulse bench --clients 5000 --silence 0.02 --disconnect 0.01 --fail-at 5s --duration 40s
  pulse bench --no-ack --json | jq .server_usage
  pulse bench --raw --server 127.0.0.1:7399 --server-pid "$(pgrep -n epoll_floor)"
  pulse bench --flood idle --flood-conns 5000 --silence 0 --duration 20s
  pulse bench --token-key jwt.secret --flood hello-storm --silence 0   # against serve --auth-jwt-key jwt.secret
`

const benchAbout = `Each client connects, registers as --name-prefix and its number, and beats
every --interval at its own phase, so that the beats are spread evenly over
time. Clients connect at --ramp a second; then the window of --duration
begins, which every rate is measured over. At --fail-at into it, a share of
the clients fall silent (--silence) or disconnect (--disconnect); after it,
the others go on beating until the server has declared every silent one
dead, as its event stream (--http) tells. Then every client says BYE.

A progress line comes every second on stderr, the summary at the end on
stdout: beats sent and acknowledged, the ACK round trip, how late each death
was declared (its event's time minus last beat + timeout), false suspects
and deaths among the healthy clients, and with --server-pid, the server's
CPU time per beat and memory per session (from /proc; the CPU time counts in
ticks of 10 ms).

Client sockets are bound in turn to --source-ips, past the ~28,000 ephemeral
ports of one address. Beyond --per-process clients, pulse bench runs the
rest in worker processes of its own. --raw sends HELLO and BEAT lines
without waiting for WELCOME, and reads nothing but to discard it: the same
load runs against a yardstick that does not speak the protocol; it then
follows the events only if --http is given.

--flood opens hostile connections beside the healthy clients once the
window begins, --flood-conns in all at --flood-rate a second, and reports
what the server answered each and how it ended them: idle (never a HELLO:
cut by the hello timeout), garbage (random bytes, NUL, invalid UTF-8, lower
case, endless lines: ERR and close), hello-storm (HELLO with a bad token:
ERR unauthorized from a server that checks tokens, WELCOME and BYE from one
that does not), nonreader (beats with ACKs on, never a read: cut past the
beat-rate limit, or as a slow consumer). The healthy clients' false suspects and deaths say whether the
flood cost them anything.

Against a server with --auth-jwt-key, give --token-key the same HMAC secret,
or the private key of its public key: each client then sends a token for its
name, valid for an hour (as pulse token makes them). So does each non-reader
of --flood nonreader (a client with valid credentials that misbehaves); the
hello-storm's tokens are always bad.`

// Run parses the flags, runs the load and prints the summary.
func (c *benchCommand) Run(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == workerFlag {
		// The parent hears of a Ctrl-C too, and stops its workers once it
		// has their figures: a worker answers to it alone.
		return bench.ServeWorker(context.WithoutCancel(ctx), os.Stdin, c.stdout)
	}
	fs := newFlagSet("bench", "Run a heartbeat load against a pulse server, and measure it.",
		benchAbout, benchExamples, c.stdout, c.env)
	var (
		server     = fs.addr("server", "127.0.0.1:7070", "heartbeat address of the server")
		httpAddr   = fs.String("http", defaultHTTP, "`address` of the server's HTTP API, for the detection figures: host:port or http://host:port; \"\" or off for none")
		clients    = fs.int("clients", 1000, "number of simulated clients")
		interval   = fs.duration("interval", 0, "how often each client beats; not longer than the server grants")
		duration   = fs.duration("duration", 30*time.Second, "length of the measurement window, after the ramp")
		ramp       = fs.rate("ramp", 2000, "connections opened per second; 0 for as fast as they can be")
		noAck      = fs.bool("no-ack", false, "ask the server not to answer beats")
		silence    = fs.fraction("silence", 0.01, "share of the clients that stop beating at --fail-at but keep their connection")
		disconnect = fs.fraction("disconnect", 0, "share of the clients that close their connection at --fail-at")
		failAt     = fs.duration("fail-at", 10*time.Second, "when, into the window, the silent and disconnecting clients fail")
		raw        = fs.bool("raw", false, "skip the handshake and never wait for an answer (for a server that does not speak the protocol)")
		serverPID  = fs.int("server-pid", 0, "process id of the server, to measure its CPU time and memory (Linux)")
		jsonOut    = fs.bool("json", false, "print the summary as one JSON object")
		prefix     = fs.String("name-prefix", "", "start of every client's name, the `prefix` of its number")
		sourceIPs  = fs.String("source-ips", "auto", "local `addresses` to bind the client sockets to, in turn: FIRST-LAST, a list A,B,C, a count N (from 127.0.0.1), auto or off")
		perProcess = fs.int("per-process", 0, "most clients one process holds; beyond, worker processes share them")
		floodKind  = fs.String("flood", "", "`kind` of hostile connections to open beside the clients: idle, garbage, hello-storm or nonreader")
		floodConns = fs.int("flood-conns", 5000, "connections the flood opens in all")
		floodRate  = fs.rate("flood-rate", bench.DefaultFloodRate, "flood connections opened per second")
		tokenKey   = fs.String("token-key", "", "sign a token for each client with this `file`, for a server with --auth-jwt-key: its HMAC secret, or the PEM private key of its public key")
		tokenAud   = fs.String("token-audience", "", "the tokens' aud, for a server with --auth-jwt-audience")
		tokenIss   = fs.String("token-issuer", "", "the tokens' iss, for a server with --auth-jwt-issuer")
		apiToken   = fs.String("api-token-file", "", "`file` holding the token of a server run with --api-token-file, for the detection figures from its HTTP API")
	)
	fs.defaults["token-key"] = "none: the clients send no token"
	fs.defaults["flood"] = "none"
	fs.defaults["server-pid"] = "none"
	fs.defaults["interval"] = "as the server grants in WELCOME; 1s with --raw"
	fs.defaults["http"] = defaultHTTP + "; off with --raw"
	fs.defaults["fail-at"] = "10s, or a third of a shorter --duration"
	fs.defaults["name-prefix"] = "bench- and a random tag, new every run"
	fs.defaults["source-ips"] = "auto: 127.0.0.1-127.0.0.250 against a loopback server on Linux, else off"
	fs.defaults["per-process"] = fmt.Sprintf("the open-file limit less %d: %d here", bench.FileLimitMargin, bench.DefaultPerProcess())
	if err := fs.parse(args); err != nil {
		return err
	}
	given := map[string]bool{} // on the command line or from the environment
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	if *clients < 1 {
		return usageErrorf("--clients must be at least 1, got %d", *clients)
	}
	if *duration <= 0 {
		return usageErrorf("--duration must be positive, got %v", *duration)
	}
	if *interval < 0 {
		return usageErrorf("--interval must not be negative, got %v", *interval)
	}
	if *silence+*disconnect > 1 {
		return usageErrorf("--silence %v and --disconnect %v add up to more than every client", *silence, *disconnect)
	}
	if !given["fail-at"] && *failAt > *duration {
		*failAt = *duration / 3
	}
	if *failAt < 0 || *failAt > *duration {
		return usageErrorf("--fail-at %v must be within the window of --duration %v", *failAt, *duration)
	}
	if *serverPID < 0 || *perProcess < 0 {
		return usageErrorf("--server-pid and --per-process must not be negative")
	}
	if *prefix != "" && !pulse.ValidName(*prefix+strconv.Itoa(*clients-1)) {
		return usageErrorf("--name-prefix %q: the names must be 1-64 of A-Z a-z 0-9 . _ - :", *prefix)
	}
	var flood *bench.FloodConfig
	if *floodKind != "" {
		kind, err := bench.ParseFloodKind(*floodKind)
		if err != nil {
			return usageErrorf("--flood %q: want idle, garbage, hello-storm or nonreader", *floodKind)
		}
		if *floodConns < 1 {
			return usageErrorf("--flood-conns must be at least 1, got %d", *floodConns)
		}
		flood = &bench.FloodConfig{Server: *server, Kind: kind, Conns: *floodConns, Rate: *floodRate}
	} else if given["flood-conns"] || given["flood-rate"] {
		return usageErrorf("--flood-conns and --flood-rate need --flood")
	}
	var token func(string) (string, error)
	switch {
	case *tokenKey != "":
		signer, err := auth.LoadSigner(*tokenKey)
		if err != nil {
			return fmt.Errorf("--token-key: %w", err)
		}
		token = bench.SignedTokens(signer, bench.TokenOptions{Audience: *tokenAud, Issuer: *tokenIss})
	case *tokenAud != "" || *tokenIss != "":
		return usageErrorf("--token-audience and --token-issuer need --token-key")
	}
	if *httpAddr == "off" || (*raw && !given["http"]) {
		*httpAddr = ""
	}
	if *httpAddr != "" {
		if _, err := httpapi.NewClient(*httpAddr, nil); err != nil {
			return usageErrorf("--http: %v", err)
		}
	}
	var ips []netip.Addr
	switch *sourceIPs {
	case "auto":
		ips = bench.DefaultSourceIPs(*server)
	case "off", "":
	default:
		var err error
		if ips, err = bench.ParseSourceIPs(*sourceIPs); err != nil {
			return usageErrorf("--source-ips: %v", strings.TrimPrefix(err.Error(), bench.ErrInvalidConfig.Error()+": "))
		}
	}
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	progress := &progressLine{w: c.stderr, terminal: isTerminal(c.stderr)}
	var apiTokenValue string
	if *apiToken != "" {
		if apiTokenValue, err = httpapi.ReadTokenFile(*apiToken); err != nil {
			return usageErrorf("--api-token-file: %v", err)
		}
	}
	cfg := bench.Config{
		Server: *server, HTTP: *httpAddr, APIToken: apiTokenValue, Clients: *clients, Interval: *interval, Duration: *duration,
		RampRate: *ramp, NoAck: *noAck, Silence: *silence, Disconnect: *disconnect, FailAt: *failAt,
		Raw: *raw, ServerPID: *serverPID, NamePrefix: *prefix, SourceIPs: ips, PerProcess: *perProcess,
		WorkerCommand: []string{exe, "bench", workerFlag}, WorkerStderr: c.stderr,
		Token: token, Progress: progress.show,
	}
	if err := cfg.Validate(); err != nil {
		return usageErrorf("%s", strings.TrimPrefix(err.Error(), bench.ErrInvalidConfig.Error()+": "))
	}
	var fl *floodRun
	if flood != nil {
		flood.SourceIPs, flood.Token = ips, token
		fl = startFloodAtWindow(ctx, *flood, &cfg)
	}
	res, err := bench.Run(ctx, cfg)
	progress.done()
	if fl != nil {
		fres, ferr := fl.stop()
		if err == nil && ferr != nil {
			err = fmt.Errorf("flood: %w", ferr)
		}
		if res != nil {
			res.Flood = fres
		}
	}
	var apiErr *httpapi.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Code == httpapi.CodeUnauthorized:
		return fmt.Errorf("%w\nThis server's HTTP API wants its token: give the file that holds it with --api-token-file, or --http off to run without the detection figures", err)
	case errors.Is(err, httpapi.ErrUnreachable):
		return fmt.Errorf("%w\nIs pulse serve running, with its HTTP API there? Point --http at it, or give --http off to run without the detection figures", err)
	case errors.Is(err, bench.ErrUnreachable):
		return fmt.Errorf("%w\nIs pulse serve running there? Point --server at it", err)
	case err != nil:
		return err
	}
	if *jsonOut {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return printSummary(c.stdout, res)
}

// floodRun is a flood beside a bench run, started when the run's window
// begins.
type floodRun struct {
	cancel  context.CancelFunc
	started chan struct{} // closed when the flood starts
	done    chan struct{} // closed when it returns
	res     *bench.FloodResult
	err     error
}

// startFloodAtWindow makes cfg's progress start the flood fc once the
// window begins.
func startFloodAtWindow(ctx context.Context, fc bench.FloodConfig, cfg *bench.Config) *floodRun {
	fl := &floodRun{started: make(chan struct{}), done: make(chan struct{})}
	floodCtx, cancel := context.WithCancel(ctx)
	fl.cancel = cancel
	show := cfg.Progress
	cfg.Progress = func(p bench.Progress) {
		if show != nil {
			show(p)
		}
		if p.Phase != "window" {
			return
		}
		select {
		case <-fl.started:
			return
		default:
		}
		close(fl.started)
		go func() {
			defer close(fl.done)
			fl.res, fl.err = bench.Flood(floodCtx, fc)
		}()
	}
	return fl
}

// stop ends the flood, if it started, and returns what it saw.
func (fl *floodRun) stop() (*bench.FloodResult, error) {
	fl.cancel()
	select {
	case <-fl.started:
		<-fl.done
		return fl.res, fl.err
	default:
		return nil, errors.New("the run ended before its window began: no flood")
	}
}

// progressLine shows the progress of a run on one line of a terminal,
// rewritten in place, or as a line a second elsewhere.
type progressLine struct {
	w        io.Writer
	terminal bool
	shown    bool
}

func (p *progressLine) show(pr bench.Progress) {
	var b strings.Builder
	fmt.Fprintf(&b, "%-6s %5.1fs", pr.Phase, pr.Elapsed.Seconds())
	if pr.Phase == "window" {
		fmt.Fprintf(&b, "/%v", pr.Window)
	}
	fmt.Fprintf(&b, "  conns %d/%d", pr.Open, pr.Clients)
	if pr.Failed > 0 {
		fmt.Fprintf(&b, " (%d failed)", pr.Failed)
	}
	fmt.Fprintf(&b, "  beats %.0f/s", pr.BeatsPerSecond)
	if pr.AcksPerSecond > 0 || pr.RTTP50 > 0 {
		fmt.Fprintf(&b, "  acks %.0f/s  rtt p50 %s p99 %s", pr.AcksPerSecond, ms(pr.RTTP50), ms(pr.RTTP99))
	}
	if pr.Detection {
		fmt.Fprintf(&b, "  suspect %d  dead %d", pr.Suspects, pr.Deaths)
		if pr.Silenced > 0 {
			fmt.Fprintf(&b, " (%d/%d silenced)", pr.Dead, pr.Silenced)
		}
	}
	if p.terminal {
		fmt.Fprintf(p.w, "\r%s\x1b[K", b.String())
	} else {
		fmt.Fprintln(p.w, b.String())
	}
	p.shown = true
}

// done ends the progress line on a terminal.
func (p *progressLine) done() {
	if p.terminal && p.shown {
		fmt.Fprintln(p.w)
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// printSummary writes the result for people.
func printSummary(w io.Writer, r *bench.Result) error {
	mode := "acks on"
	switch {
	case r.Raw:
		mode = "raw"
	case !r.Acks:
		mode = "acks off"
	}
	procs := "1 process"
	if r.Processes > 1 {
		procs = fmt.Sprintf("%d worker processes", r.Processes)
	}
	src := "source addresses as the kernel chose"
	if r.SourceIPs > 0 {
		src = fmt.Sprintf("%d source addresses", r.SourceIPs)
	}
	fmt.Fprintf(w, "pulse bench: %d clients of %s against %s (%s; %s, %s)\n",
		r.Clients, r.NamePrefix+"N", r.Server, mode, procs, src)
	if r.Interrupted {
		fmt.Fprintln(w, "interrupted: the figures are those until then")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(label, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{label}, args...)...)
	}

	timing := fmt.Sprintf("every %s", msDuration(r.IntervalMS))
	if r.TimeoutMS > 0 {
		timing += fmt.Sprintf(", dead after %s", msDuration(r.TimeoutMS))
	}
	row("beat", "%s", timing)
	row("phases", "ramp %s, window %s, settle %s", msDuration(r.RampMS), msDuration(r.WindowMS), msDuration(r.SettleMS))
	cn := r.Connections
	row("connections", "%d connected, %d failed%s, %d dropped%s", cn.Connected, cn.Failed, byCause(cn.FailedBy),
		cn.Dropped, byCause(cn.DroppedBy))
	if cn.FirstError != "" {
		row("", "first failure: %s", cn.FirstError)
	}
	b := r.Beats
	beats := fmt.Sprintf("%d sent in the window (%.0f/s)", b.Sent, b.PerSecond)
	if r.Acks {
		beats += fmt.Sprintf(", %d acknowledged, %d unanswered", b.Acked, b.Unanswered)
	}
	row("beats", "%s", beats)
	if r.Raw {
		row("replies", "%d lines received", b.Replies)
	}
	if r.RTT != nil {
		row("ack rtt", "p50 %s  p99 %s  max %s", msf(r.RTT.P50MS), msf(r.RTT.P99MS), msf(r.RTT.MaxMS))
	}
	f := r.Failures
	row("failures", "%d silenced (%d cut off by the server), %d disconnected", f.Silenced, f.SilencedCut, f.Disconnected)
	if d := r.Detection; d != nil {
		deaths := "none expected: no client was silenced"
		if f.Silenced > 0 {
			deaths = fmt.Sprintf("%d of %d silenced declared dead", d.Dead, f.Silenced)
		}
		if d.Lateness != nil {
			deaths += fmt.Sprintf(", late by p50 %s  p99 %s  max %s", msf(d.Lateness.P50MS), msf(d.Lateness.P99MS), msf(d.Lateness.MaxMS))
		}
		row("deaths", "%s", deaths)
		if f.Disconnected > 0 || len(d.Left) > 0 {
			row("disconnects", "%d of %d disconnected seen leaving%s", total(d.Left), f.Disconnected, byCause(d.Left))
		}
		alarms := fmt.Sprintf("%d suspects, %d deaths among healthy clients", d.FalseSuspects, d.FalseDeaths)
		if d.RampFalseSuspects+d.RampFalseDeaths > 0 {
			alarms += fmt.Sprintf(" (%d and %d of them during the ramp)", d.RampFalseSuspects, d.RampFalseDeaths)
		}
		row("false alarms", "%s", alarms)
		if len(d.Other) > 0 {
			row("other events", "%s", strings.TrimSuffix(strings.TrimPrefix(byCause(d.Other), " ("), ")"))
		}
		if d.EventsLost {
			row("", "the event stream broke and some events were lost")
		}
	} else {
		row("deaths", "not measured: no --http")
	}
	if u := r.ServerUsage; u != nil {
		cpu := fmt.Sprintf("pid %d: %s CPU in the window (%.1f%% of a core), %.2fµs per beat", u.PID, msf(u.CPUMS), u.CPUPercent, u.CPUMicrosPerBeat)
		if u.CPUMicrosPerAck > 0 {
			cpu += fmt.Sprintf(", %.2fµs per ack", u.CPUMicrosPerAck)
		}
		row("server", "%s", cpu)
		row("", "RSS %.1f MiB idle, %.1f MiB at the window's end: %.2f KiB per session", u.RSSIdleKiB/1024, u.RSSEndKiB/1024, u.RSSPerSessionKiB)
	}
	row("generator", "%.1f%% CPU in the window", r.GeneratorCPUPercent)
	if fl := r.Flood; fl != nil {
		row("flood", "%s: %d attempted, %d connected%s, in %s", fl.Kind, fl.Attempted, fl.Connected,
			failedBy(fl.DialFailed), msDuration(fl.DurationMS))
		row("", "answered%s", byCause(fl.Answers))
		cut := fmt.Sprintf("%d cut by the server%s", total(fl.Cut), byCause(fl.Cut))
		if p := fl.CutAfter; p != nil {
			cut += fmt.Sprintf(", after p50 %s  p99 %s  max %s", msf(p.P50MS), msf(p.P99MS), msf(p.MaxMS))
		}
		row("", "%s; %d left with BYE; %d still open at the end", cut, fl.Left, fl.StillOpen)
		if fl.BeatsSent > 0 {
			row("", "%d beats sent unread, %d connections found their socket full", fl.BeatsSent, fl.Blocked)
		}
	}
	return tw.Flush()
}

// failedBy formats the dial failures of a flood, if any.
func failedBy(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	return fmt.Sprintf(", %d failed%s", total(m), byCause(m))
}

// byCause formats counts by cause, the largest first: " (refused 3, timeout 1)".
func byCause(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		return cmp.Or(cmp.Compare(m[b], m[a]), strings.Compare(a, b))
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string { return msf(float64(d) / float64(time.Millisecond)) }

// msf formats milliseconds with three significant digits or so.
func msf(v float64) string {
	switch {
	case v < 1:
		return fmt.Sprintf("%.3fms", v)
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 100:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.0fms", v)
}

// msDuration formats milliseconds as a duration rounded to 0.1 s, or to
// 1 ms below a second.
func msDuration(v float64) string {
	d := time.Duration(v * float64(time.Millisecond))
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// rate defines a flag of so many a second: "2000" or "2000/s".
func (fs *flagSet) rate(name string, value float64, usage string) *float64 {
	p := new(float64)
	*p = value
	fs.Var((*rateValue)(p), name, usage)
	return p
}

type rateValue float64

func (r *rateValue) Set(s string) error {
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "/s"), 64)
	if err != nil || v < 0 || v > 1e9 {
		return errors.New("want a number a second, such as 2000 or 2000/s; 0 for no limit")
	}
	*r = rateValue(v)
	return nil
}
func (r *rateValue) String() string  { return strconv.FormatFloat(float64(*r), 'f', -1, 64) + "/s" }
func (r *rateValue) argName() string { return "RATE" }

// fraction defines a flag of a share from 0 to 1: "0.01" or "1%".
func (fs *flagSet) fraction(name string, value float64, usage string) *float64 {
	p := new(float64)
	*p = value
	fs.Var((*fractionValue)(p), name, usage)
	return p
}

type fractionValue float64

func (f *fractionValue) Set(s string) error {
	scale := 1.0
	if t, ok := strings.CutSuffix(s, "%"); ok {
		s, scale = t, 100
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v/scale < 0 || v/scale > 1 {
		return errors.New("want a share from 0 to 1, such as 0.01 or 1%")
	}
	*f = fractionValue(v / scale)
	return nil
}
func (f *fractionValue) String() string  { return strconv.FormatFloat(float64(*f), 'f', -1, 64) }
func (f *fractionValue) argName() string { return "SHARE" }
