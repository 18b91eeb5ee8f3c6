package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/pulsehq/pulse/httpapi"
)

// How the coordinator paces itself.
const (
	pollEvery     = 200 * time.Millisecond // how often it gathers the counters
	progressEvery = time.Second
	streamWait    = 10 * time.Second // for the event stream to start
	ackGrace      = 2 * time.Second  // after the window, at least, for its last ACKs
	rawMisses     = 10               // raw mode knows no timeout: deaths are awaited this many intervals
)

// Run runs the load cfg describes and returns what it measured. It first
// checks that the server can be reached (ErrUnreachable if not) and, with
// Config.HTTP, starts following its events; then the clients connect,
// beat through the window, fail as told, and go on beating until the
// server has declared what it should (or no longer could); then they say
// BYE and close.
//
// When ctx ends, Run stops the clients early and returns the figures so
// far, with Result.Interrupted set. An error means there are no figures:
// a bad Config, a server that cannot be reached, not one client
// connected, a worker that failed.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.NamePrefix == "" {
		cfg.NamePrefix = randomPrefix()
	}
	if err := probe(ctx, cfg); err != nil {
		return nil, err
	}
	rl := newRoles(cfg.Clients, cfg.Silence, cfg.Disconnect)
	c := &coordinator{cfg: cfg, roles: rl}

	if cfg.HTTP != "" {
		cl, err := httpapi.NewClient(cfg.HTTP, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: the HTTP API: %w", ErrInvalidConfig, err)
		}
		if cfg.APIToken != "" {
			cl.SetToken(cfg.APIToken)
		}
		c.w = newWatcher(cl, names{prefix: cfg.NamePrefix, n: cfg.Clients}, rl)
		// The stream outlives ctx: after a Ctrl-C, the run still gathers
		// its figures, and its events, before it stops.
		streamCtx, stopStream := context.WithCancel(context.Background())
		defer func() { stopStream(); <-c.w.done }()
		if err := c.w.start(streamCtx, ctx, streamWait); err != nil {
			return nil, err
		}
	}
	if cfg.ServerPID > 0 {
		u, err := ReadProcess(cfg.ServerPID)
		if err != nil {
			return nil, fmt.Errorf("the server's process: %w", err)
		}
		c.idle = u
	}
	if err := c.startGroups(); err != nil {
		return nil, err
	}
	defer c.closeGroups()
	return c.run(ctx)
}

// probe checks that something listens at the server's address.
func probe(ctx context.Context, cfg Config) error {
	d := net.Dialer{Timeout: orDefault(cfg.ConnectTimeout, DefaultConnectTimeout)}
	nc, err := d.DialContext(ctx, "tcp", cfg.Server)
	if err != nil {
		return fmt.Errorf("%w at %s: %w", ErrUnreachable, cfg.Server, err)
	}
	return nc.Close()
}

// coordinator drives the groups of clients through the phases of a run.
type coordinator struct {
	cfg    Config
	roles  roles
	w      *watcher // nil without the HTTP API
	idle   Usage    // the server's, before any client connected
	groups []group
	remote bool // the groups are worker processes

	phase        string
	phaseStart   time.Time
	shown        stats // the counters at the last progress
	shownAt      time.Time
	interrupted  bool
	silencedWant int // silenced clients, as the fail request said
}

// startGroups shares the clients among this process or workers.
func (c *coordinator) startGroups() error {
	n := c.cfg.Clients
	procs := (n + c.cfg.perProcess() - 1) / c.cfg.perProcess()
	sh := share{
		Server: c.cfg.Server, Prefix: c.cfg.NamePrefix, Roles: c.roles, Interval: c.cfg.Interval,
		NoAck: c.cfg.NoAck, Raw: c.cfg.Raw, SourceIPs: c.cfg.SourceIPs, ConnectTimeout: c.cfg.ConnectTimeout,
	}
	var tokens []string
	if c.cfg.Token != nil {
		tokens = make([]string, n)
		for i := range n {
			tok, err := c.cfg.Token(c.cfg.NamePrefix + strconv.Itoa(i))
			if err != nil {
				return fmt.Errorf("the token of client %d: %w", i, err)
			}
			tokens[i] = tok
		}
	}
	if procs <= 1 {
		sh.Count, sh.RampRate, sh.Tokens = n, c.cfg.RampRate, tokens
		c.groups = []group{local{newRunner(sh)}}
		return nil
	}
	c.remote = true
	for p := range procs {
		sh.First = n * p / procs
		sh.Count = n*(p+1)/procs - sh.First
		sh.RampRate = c.cfg.RampRate * float64(sh.Count) / float64(n)
		if tokens != nil {
			sh.Tokens = tokens[sh.First : sh.First+sh.Count]
		}
		w, err := startWorker(p+1, c.cfg.WorkerCommand, c.cfg.WorkerStderr, sh)
		if err != nil {
			c.closeGroups()
			return err
		}
		c.groups = append(c.groups, w)
	}
	return nil
}

func (c *coordinator) closeGroups() {
	var wg sync.WaitGroup
	for _, g := range c.groups {
		wg.Add(1)
		go func() { defer wg.Done(); g.close() }()
	}
	wg.Wait()
	c.groups = nil
}

// all makes a request of every group at once and adds up their counters.
func (c *coordinator) all(op string) (stats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	res := make([]stats, len(c.groups))
	errs := make([]error, len(c.groups))
	var wg sync.WaitGroup
	for i, g := range c.groups {
		wg.Add(1)
		go func() { defer wg.Done(); res[i], errs[i] = g.call(ctx, op) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return stats{}, err
	}
	sum := res[0]
	for _, s := range res[1:] {
		sum = sum.merge(s)
	}
	if c.remote {
		if u, err := ReadProcess(0); err == nil {
			sum.CPU += u.CPU // the coordinator's own
		}
	}
	if sum.Fatal != "" {
		return sum, errors.New(sum.Fatal)
	}
	return sum, nil
}

// run is the run proper, once everything has started.
func (c *coordinator) run(ctx context.Context) (*Result, error) {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()

	// Ramp: every client connects.
	start := time.Now()
	c.enter("ramp", start)
	c.shownAt = start // the first progress tells the rates since the start
	s, err := c.all(opStart)
	for err == nil && !s.Ramped && !c.interrupted {
		select {
		case <-ctx.Done():
			c.interrupted = true
		case <-tick.C:
			s, err = c.all(opStats)
			c.progress(s)
		}
	}
	if err != nil {
		return nil, c.abort(err)
	}
	if s.Connected == 0 && !c.interrupted {
		return nil, c.abort(fmt.Errorf("%w to %s: %s", ErrNoClients, c.cfg.Server, s.FirstError))
	}
	rampEnd := time.Now()
	res := &Result{Server: c.cfg.Server, Raw: c.cfg.Raw, Clients: c.cfg.Clients, Processes: len(c.groups),
		SourceIPs: len(c.cfg.SourceIPs), NamePrefix: c.cfg.NamePrefix, RampMS: millis(rampEnd.Sub(start))}

	// Window: beats are counted; the failing clients fail at FailAt.
	var (
		s0, s1        = s, s
		cpu0, cpu1    Usage
		winStart      = rampEnd
		winEnd        = rampEnd
		failedAt      time.Time
		serverSampled bool
	)
	failing := c.roles.Silent+c.roles.Leave > 0
	fail := func() error {
		if c.w != nil {
			c.w.fail() // first, so that no expected event is taken for a false alarm
		}
		failedAt = time.Now()
		sf, err := c.all(opFail)
		c.silencedWant = sf.Silenced
		return err
	}
	if !c.interrupted {
		cpu0, _ = c.sampleServer()
		if c.w != nil {
			c.w.window()
		}
		if s0, err = c.all(opWindow); err != nil {
			return nil, c.abort(err)
		}
		winStart = time.Now()
		c.enter("window", winStart)
		endTimer := time.NewTimer(c.cfg.Duration)
		defer endTimer.Stop()
		var failC <-chan time.Time
		if failing {
			failTimer := time.NewTimer(c.cfg.FailAt)
			defer failTimer.Stop()
			failC = failTimer.C
		}
		for ended := false; !ended && err == nil; {
			select {
			case <-ctx.Done():
				c.interrupted, ended = true, true
			case <-endTimer.C:
				ended = true
			case <-failC:
				failC = nil
				err = fail()
			case <-tick.C:
				s, err = c.all(opStats)
				c.progress(s)
			}
		}
		if err == nil && failing && failedAt.IsZero() && !c.interrupted { // fail-at = duration
			err = fail()
		}
		if err == nil {
			s1, err = c.all(opEnd)
		}
		if err != nil {
			return nil, c.abort(err)
		}
		winEnd = time.Now()
		cpu1, serverSampled = c.sampleServer()
	}
	res.WindowMS = millis(winEnd.Sub(winStart))

	// Settle: the healthy clients go on beating until the window's beats
	// are answered and the failed clients' ends have been declared.
	c.enter("settle", winEnd)
	iv := time.Duration(s1.Interval)
	deadline := winEnd.Add(max(ackGrace, 2*iv))
	if !failedAt.IsZero() {
		timeout := time.Duration(s1.Timeout)
		if timeout == 0 {
			timeout = rawMisses * iv
		}
		// The last to fail does so maxDeferrals slots late; its death
		// comes a timeout later, and its event a moment after that.
		deadline = later(deadline, failedAt.Add(iv*(maxDeferrals+1)+timeout+max(ackGrace, iv)))
	}
	settleTimer := time.NewTimer(time.Until(deadline))
	defer settleTimer.Stop()
	for s, expired := s1, false; !c.interrupted && !expired && !c.settled(s); {
		select {
		case <-ctx.Done():
			c.interrupted = true
		case <-settleTimer.C:
			expired = true
		case <-tick.C:
			if s, err = c.all(opStats); err != nil {
				return nil, c.abort(err)
			}
			c.progress(s)
		}
	}
	if c.w != nil {
		c.w.freeze()
	}
	settleEnd := time.Now()
	final, err := c.all(opStop)
	if err != nil {
		return nil, err
	}
	res.SettleMS = millis(settleEnd.Sub(winEnd))
	res.Interrupted = c.interrupted
	c.fill(res, s0, s1, final, winEnd.Sub(winStart))
	if serverSampled {
		res.ServerUsage = c.serverUsage(cpu0, cpu1, res, winEnd.Sub(winStart), final.Connected)
	}
	return res, nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// abort stops the clients after an error.
func (c *coordinator) abort(err error) error {
	c.all(opStop)
	return err
}

func (c *coordinator) enter(phase string, at time.Time) {
	c.phase, c.phaseStart = phase, at
}

// settled says whether the settle phase has nothing left to wait for.
func (c *coordinator) settled(s stats) bool {
	if s.Acks && s.Acked[tagWindow] < s.Sent[tagWindow] {
		return false
	}
	if s.Disconnected+s.LeaversCut < s.Leaving { // some have yet to close
		return false
	}
	if c.w != nil {
		t := c.w.tally()
		if t.deadSilenced < s.Silenced || t.leaversEnded < s.Leaving {
			return false
		}
	} else if !c.cfg.Raw && s.SilencedClosed < s.Silenced {
		// No events: the server cutting a silenced client off is the sign
		// of its death (a raw server may never do so).
		return false
	}
	return true
}

// sampleServer reads the server's usage, if its pid is known.
func (c *coordinator) sampleServer() (Usage, bool) {
	if c.cfg.ServerPID <= 0 {
		return Usage{}, false
	}
	u, err := ReadProcess(c.cfg.ServerPID)
	return u, err == nil
}

// progress hands the figures to Config.Progress once a second.
func (c *coordinator) progress(s stats) {
	now := time.Now()
	if c.cfg.Progress == nil || now.Sub(c.shownAt) < progressEvery {
		return
	}
	p := Progress{Phase: c.phase, Elapsed: now.Sub(c.phaseStart), Window: c.cfg.Duration,
		Clients: c.cfg.Clients, Connected: s.Connected, Failed: total(s.Failed), Open: s.Open,
		Silenced: c.silencedWant}
	if !c.shownAt.IsZero() {
		dt := now.Sub(c.shownAt).Seconds()
		p.BeatsPerSecond = float64(sumTags(s.Sent)-sumTags(c.shown.Sent)) / dt
		p.AcksPerSecond = float64(sumTags(s.Acked)-sumTags(c.shown.Acked)) / dt
		recent := s.RTT.since(c.shown.RTT)
		p.RTTP50, p.RTTP99 = recent.quantile(0.5), recent.quantile(0.99)
	}
	if c.w != nil {
		t := c.w.tally()
		p.Detection, p.Suspects, p.Deaths, p.Dead = true, t.suspects, t.deaths, t.deadSilenced
	}
	c.shown, c.shownAt = s, now
	c.cfg.Progress(p)
}

// fill computes the result's figures from the counters at the window's
// start (s0) and end (s1), and at the very end (final).
func (c *coordinator) fill(res *Result, s0, s1, final stats, window time.Duration) {
	res.Acks = final.Acks
	res.IntervalMS = millis(final.Interval)
	res.TimeoutMS = millis(final.Timeout)
	res.Connections = Connections{
		Connected: final.Connected, Failed: total(final.Failed), FailedBy: final.Failed,
		FirstError: final.FirstError, Dropped: total(final.Dropped), DroppedBy: final.Dropped,
	}
	res.Beats = Beats{Sent: final.Sent[tagWindow], Total: sumTags(final.Sent)}
	if final.Acks {
		res.Beats.Acked = final.Acked[tagWindow]
		res.Beats.Unanswered = res.Beats.Sent - min(res.Beats.Acked, res.Beats.Sent)
		res.RTT = final.WindowRTT.percentiles()
	}
	if c.cfg.Raw {
		res.Beats.Replies = final.Replies
	}
	if window > 0 {
		res.Beats.PerSecond = float64(res.Beats.Sent) / window.Seconds()
		if s1.CPU > 0 && s0.CPU > 0 {
			res.GeneratorCPUPercent = 100 * (s1.CPU - s0.CPU).Seconds() / window.Seconds()
		}
	}
	res.Failures = Failures{Silenced: final.Silenced, SilencedCut: final.SilencedClosed, Disconnected: final.Disconnected}
	if c.w != nil {
		t := c.w.tally()
		d := &Detection{Dead: t.deadSilenced, Undetected: max(final.Silenced-t.deadSilenced, 0),
			Lateness: exactPercentiles(t.late), Left: t.ends, FalseSuspects: t.falseSuspects,
			FalseDeaths: t.falseDeaths, RampFalseSuspects: t.rampSuspects, RampFalseDeaths: t.rampDeaths,
			Other: t.other, EventsLost: t.resets > 0}
		if len(d.Other) == 0 {
			d.Other = nil
		}
		res.Detection = d
	}
}

// serverUsage works out the server's figures from its usage at the
// window's start and end.
func (c *coordinator) serverUsage(cpu0, cpu1 Usage, res *Result, window time.Duration, sessions int) *ServerUsage {
	cpu := cpu1.CPU - cpu0.CPU
	u := &ServerUsage{PID: c.cfg.ServerPID, CPUMS: millis(cpu),
		RSSIdleKiB: float64(c.idle.RSS) / 1024, RSSEndKiB: float64(cpu1.RSS) / 1024}
	if window > 0 {
		u.CPUPercent = 100 * cpu.Seconds() / window.Seconds()
	}
	if res.Beats.Sent > 0 {
		u.CPUMicrosPerBeat = float64(cpu.Microseconds()) / float64(res.Beats.Sent)
	}
	if res.Beats.Acked > 0 {
		u.CPUMicrosPerAck = float64(cpu.Microseconds()) / float64(res.Beats.Acked)
	}
	if sessions > 0 {
		u.RSSPerSessionKiB = (u.RSSEndKiB - u.RSSIdleKiB) / float64(sessions)
	}
	return u
}
