package server

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pulsehq/pulse/wire"
)

// Defaults of the limits, for Config fields left zero.
const (
	// DefaultMaxConnsPerIP is how many connections one client address may
	// hold open: generous for a NAT in front of many agents, small beside
	// the default connection limit, so that one address cannot take every
	// descriptor.
	DefaultMaxConnsPerIP = 1000
	// DefaultMaxBeatRate is the least number of lines a second a
	// connection may send, sustained, before it is cut with ERR
	// rate_limited, beyond a burst of a minute of them (1,200). A session
	// may send 10 × its granted beat rate if that is more (see
	// Config.MaxBeatRate).
	DefaultMaxBeatRate = 20.0
	// beatRateFactor: a session may beat this many times as often as its
	// granted interval says, sustained, before it is rate limited.
	beatRateFactor = 10
	// minLineBurst is the least number of lines a connection may send at
	// once, beyond its sustained rate, before it is rate limited.
	minLineBurst = 20
	// lineBurstWindow: a connection may save up this long of lines at its
	// sustained rate, and send them at once. The beats that a stall of
	// the server (or a network hold-up) kept unread arrive together, and
	// must not look like a flood: a minute of them is 60 at a 1 s
	// interval, far from the 1,200 that 20 a second allow.
	lineBurstWindow = time.Minute
	// fdHeadroom is how many file descriptors the default connection
	// limit leaves for everything else: listeners, the HTTP API and its
	// clients, log and recording files, the event loop's own, and the
	// moment a new connection's descriptor is duplicated into the loop.
	fdHeadroom = 128
	// fallbackMaxConns is the default connection limit where the file
	// descriptor limit cannot be read.
	fallbackMaxConns = 20_000
	// refusalLogEvery is the shortest time between two log lines about
	// refused connections: a flood is summarised, not logged line by line.
	refusalLogEvery = time.Second
	// refuseTLSTimeout bounds the refusal of a TLS connection over a limit:
	// the handshake, then the ERR line.
	refuseTLSTimeout = time.Second
)

// DefaultMaxConns returns the connection limit that a zero
// Config.MaxConns stands for: the process's file descriptor limit
// (RLIMIT_NOFILE, which Go raises to its hard limit at start) less 128 for
// everything else the server opens, or half the limit if it is under 256.
// Past it, accept would fail with EMFILE; this way the clients past it are
// told. Where the limit cannot be read, 20,000.
func DefaultMaxConns() int {
	n, ok := fdLimit()
	if !ok {
		return fallbackMaxConns
	}
	if n < 2*fdHeadroom {
		return max(int(n/2), 1)
	}
	return int(min(n-fdHeadroom, math.MaxInt32))
}

// peerIP is the address that Config.MaxConnsPerIP counts connections of;
// the zero Addr (not counted) for a connection that is not IP.
func peerIP(nc net.Conn) netip.Addr {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// admit counts a new connection from ip, or says why it may not be opened
// (ERR too_many_connections). Called with s.mu held.
func (s *Server) admit(ip netip.Addr) *wire.Error {
	if m := s.cfg.MaxConns; m > 0 && s.open >= m {
		return &wire.Error{Code: wire.CodeTooManyConnections,
			Message: "the server holds its limit of " + strconv.Itoa(m) + " connections; retry later or elsewhere"}
	}
	if m := s.cfg.MaxConnsPerIP; m > 0 && ip.IsValid() && s.perIP[ip] >= m {
		return &wire.Error{Code: wire.CodeTooManyConnections,
			Message: "this address holds its limit of " + strconv.Itoa(m) + " connections"}
	}
	s.open++
	if ip.IsValid() && s.cfg.MaxConnsPerIP > 0 {
		s.perIP[ip]++
	}
	return nil
}

// release uncounts a connection from ip. Called with s.mu held.
func (s *Server) release(ip netip.Addr) {
	s.open--
	if ip.IsValid() && s.cfg.MaxConnsPerIP > 0 {
		if n := s.perIP[ip]; n <= 1 {
			delete(s.perIP, ip)
		} else {
			s.perIP[ip] = n - 1
		}
	}
}

// MaxConns returns the connection limit, Config.MaxConns with its default
// filled in; negative means none.
func (s *Server) MaxConns() int { return s.cfg.MaxConns }

// Connections returns the number of connections open, registered or not.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// refuse tells a connection over a limit why, and closes it without
// reading a byte. A plain TCP socket takes the line at once (its send
// buffer is empty); any other connection, such as TLS, which would shake
// hands first, is told on a goroutine of its own, for refuseTLSTimeout at
// most: the deadline covers the handshake's reads too, or a client that
// never sent its ClientHello would hold the goroutine and its descriptor,
// uncounted by the limits, and Shutdown with them, for as long as it liked.
func (s *Server) refuse(nc net.Conn, e *wire.Error) {
	s.cfg.Observer.Rejected(e.Code)
	s.refusals.note(nc.RemoteAddr().String(), e)
	line := wire.AppendErr(nil, e.Code, e.Message)
	if _, ok := nc.(*net.TCPConn); ok {
		_ = nc.SetWriteDeadline(time.Now().Add(lingerTimeout))
		_, _ = nc.Write(line)
		nc.Close()
		return
	}
	say := func() {
		_ = nc.SetDeadline(time.Now().Add(refuseTLSTimeout))
		_, _ = nc.Write(line)
		nc.Close()
	}
	s.connsWG.Add(1)
	go func() {
		defer s.connsWG.Done()
		say()
	}()
}

// refusalLog logs refused connections without flooding the log: the first
// refusal is logged, then at most one summary a second while they go on.
type refusalLog struct {
	log *slog.Logger

	mu      sync.Mutex
	timer   *time.Timer // while a window is open
	counts  map[wire.Code]int
	stopped bool
}

// note logs, or counts for the next summary, a refused connection.
func (l *refusalLog) note(peer string, e *wire.Error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return // shutting down: the log says so
	}
	if l.timer != nil {
		l.counts[e.Code]++
		return
	}
	l.log.Warn("connection refused", "peer", peer, "code", string(e.Code), "error", e.Message)
	l.counts = map[wire.Code]int{}
	l.timer = time.AfterFunc(refusalLogEvery, l.summarise)
}

// summarise logs what was refused since the last line, and keeps the
// window open while refusals go on.
func (l *refusalLog) summarise() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	if !l.flush() {
		l.timer = nil // quiet: the next refusal is logged at once
		return
	}
	l.timer.Reset(refusalLogEvery)
}

// flush logs the counts, if any, and reports whether there were.
func (l *refusalLog) flush() bool {
	if len(l.counts) == 0 {
		return false
	}
	for code, n := range l.counts {
		l.log.Warn("connections refused", "code", string(code), "count", n, "during", refusalLogEvery.String())
	}
	clear(l.counts)
	return true
}

// stop logs what is still counted and stops the timer.
func (l *refusalLog) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	l.stopped = true
	if l.timer != nil {
		l.timer.Stop()
	}
	l.flush()
}

// lineBudget limits how fast a connection may send lines, as a token
// bucket kept as one instant (the generic cell rate algorithm): every
// line moves tat, the theoretical arrival time, on by every; a line that
// comes while tat is more than slack ahead of now is over the limit. It
// costs a line a few integer operations, with no lock and no allocation.
type lineBudget struct {
	every int64 // nanoseconds a line at the sustained rate; 0: no limit
	slack int64 // how far ahead of now tat may be: (burst − 1) × every
	tat   int64
}

// newLineBudget returns the budget of perSecond lines a second, sustained,
// and bursts of a minute of them (at least 20); perSecond ≤ 0 means no
// limit.
func newLineBudget(perSecond float64) lineBudget {
	if perSecond <= 0 || math.IsInf(perSecond, 1) || math.IsNaN(perSecond) {
		return lineBudget{}
	}
	every := max(int64(float64(time.Second)/perSecond), 1)
	burst := max(minLineBurst, int64(math.Ceil(perSecond*lineBurstWindow.Seconds())))
	return lineBudget{every: every, slack: (burst - 1) * every}
}

// resize changes the rate, keeping what the connection has used up.
func (b *lineBudget) resize(perSecond float64) {
	tat := b.tat
	*b = newLineBudget(perSecond)
	b.tat = tat
}

// allow takes a line's token at now (nanoseconds on any monotonic clock),
// and reports false if there is none.
func (b *lineBudget) allow(now int64) bool {
	if b.every == 0 {
		return true
	}
	tat := max(b.tat, now)
	if tat-now > b.slack {
		return false
	}
	b.tat = tat + b.every
	return true
}

// lineRate returns how many lines a second a connection granted interval
// may send, sustained: Config.MaxBeatRate, or beatRateFactor times its
// beat rate if that is more; zero (an unregistered connection) means
// Config.MaxBeatRate. It is 0 when the limit is off.
func (c *Config) lineRate(interval time.Duration) float64 {
	if c.MaxBeatRate < 0 {
		return 0
	}
	r := c.MaxBeatRate
	if interval > 0 {
		r = max(r, beatRateFactor*float64(time.Second)/float64(interval))
	}
	return r
}

// errSlowConsumer is the ERR of a client cut for not reading its replies.
var errSlowConsumer = &wire.Error{Code: wire.CodeSlowConsumer,
	Message: "the client left its replies unread too long or too many; it was cut"}

// errRateLimited is the ERR of a connection over its line rate.
func errRateLimited(rate float64) *wire.Error {
	return &wire.Error{Code: wire.CodeRateLimited,
		Message: fmt.Sprintf("more than %s lines a second; beat at the interval WELCOME granted", strconv.FormatFloat(rate, 'g', 4, 64))}
}
