// Package bench is pulse's load generator: it opens many simulated client
// connections to a heartbeat server, beats on each at an interval, makes a
// share of them fall silent or disconnect at a chosen moment, and measures
// what the server does: beats sent and acknowledged, the round trip of each
// ACK, how late the server declares the silent clients dead (from its event
// stream), false alarms among the healthy clients, and, given the server's
// process id, its CPU time per beat and memory per session.
//
//	res, err := bench.Run(ctx, bench.Config{
//		Server:   "127.0.0.1:7070",
//		HTTP:     "127.0.0.1:7071",
//		Clients:  10_000,
//		Duration: 30 * time.Second,
//		Silence:  0.01,
//		FailAt:   10 * time.Second,
//	})
//
// A run has three phases: the ramp, when the clients connect at RampRate;
// the window, Duration long, which every rate and CPU figure is measured
// over, and FailAt into which the failing clients fail; and the settle,
// when the healthy clients go on beating until every expected death has
// been declared (or could no longer be). Then every client says BYE.
//
// One process holds at most PerProcess clients (each is one open file).
// Beyond that Run starts worker processes (Config.WorkerCommand, a program
// that calls ServeWorker) and shares the clients among them; they answer
// its requests as JSON lines on their standard output, and stop when their
// standard input ends, so that they never outlive it.
//
// The generator is meant to run on the same machine as the server it
// measures, so it is frugal: no timer per client (a few goroutines sweep the
// connections, each at its own phase of the interval, so that beats are
// spread evenly in time), one goroutine per connection blocked in Read with
// a small buffer, counters and a histogram updated with atomic adds.
package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/pulsehq/pulse"
)

// Errors Run returns, for callers to test with errors.Is.
var (
	// ErrInvalidConfig is wrapped by the errors of Config.Validate.
	ErrInvalidConfig = errors.New("invalid bench config")
	// ErrUnreachable: the heartbeat server (or its HTTP API) could not be
	// reached at all.
	ErrUnreachable = errors.New("cannot reach the server")
	// ErrNoClients: not one client could connect and register.
	ErrNoClients = errors.New("no client could connect")
)

// Defaults of the zero fields of a Config.
const (
	// DefaultInterval is the beat interval in raw mode, where no WELCOME
	// says what it is.
	DefaultInterval = time.Second
	// DefaultConnectTimeout bounds one client's connection and handshake.
	DefaultConnectTimeout = 10 * time.Second
	// FileLimitMargin is how many of a process's open files PerProcess
	// leaves for everything but client sockets when it is derived from the
	// open-file limit.
	FileLimitMargin = 1000
)

// Config describes a load: how many clients, how they beat, which of them
// fail and when. Server, Clients and Duration are required; zero values of
// the other fields mean what their comments say.
type Config struct {
	// Server is the heartbeat address, host:port.
	Server string
	// HTTP is the address of the server's HTTP API (host:port or
	// http://host:port), whose event stream gives the detection figures.
	// Empty means none: no detection figures.
	HTTP string
	// APIToken is the bearer token of an HTTP API that demands one
	// (pulse serve --api-token-file). Empty means none is sent.
	APIToken string
	// Clients is how many clients to simulate.
	Clients int
	// Interval is how often each client beats. Zero means the interval
	// the server grants in WELCOME, or DefaultInterval in raw mode. A
	// positive value may be shorter than the one granted, never longer.
	Interval time.Duration
	// Duration is the measurement window, which starts once every client
	// has connected (or failed to).
	Duration time.Duration
	// RampRate is how many connections are opened per second, across all
	// processes. Zero means as fast as they can be.
	RampRate float64
	// NoAck asks the server not to answer beats.
	NoAck bool
	// Silence is the share of the clients (0 to 1) that stop beating at
	// FailAt but keep their connection open: the server should declare
	// each of them dead one timeout after its last beat.
	Silence float64
	// Disconnect is the share of the clients that close their connection
	// (without BYE) at FailAt: the server should see each of them leave at
	// once, with the reason closed.
	Disconnect float64
	// FailAt is how far into the window the silenced and disconnecting
	// clients fail. The silenced stop at once: their last beat is the
	// one before FailAt. Each disconnecting client closes in its next
	// beat slot, once its last beat has been answered.
	FailAt time.Duration
	// Raw skips the handshake: each client sends HELLO and then BEAT lines
	// without waiting for WELCOME, and never reads what comes back but to
	// discard it. The same load then runs against a server that does not
	// speak the protocol, such as a yardstick. No round trips are measured.
	Raw bool
	// ServerPID, if positive, is the server's process id: its CPU time and
	// resident memory are read from /proc (Linux).
	ServerPID int
	// NamePrefix starts the name of every client, which is the prefix and
	// the client's number (from 0). Empty means "bench-", a random tag and
	// "-", so that two runs never replace each other's sessions.
	NamePrefix string
	// SourceIPs are the local addresses the client sockets are bound to,
	// in turn, so that more connections can be opened than the ephemeral
	// ports of one address allow (about 28,000 on Linux). Empty means the
	// kernel chooses. DefaultSourceIPs gives a good choice.
	SourceIPs []netip.Addr
	// PerProcess is the most clients one process runs. Beyond it, Run
	// starts worker processes with WorkerCommand and shares the clients
	// among them. Zero means this process's open-file limit less
	// FileLimitMargin.
	PerProcess int
	// WorkerCommand is the command line that starts a worker: a program
	// that calls ServeWorker with its standard input and output. It is
	// needed only when Clients exceeds PerProcess.
	WorkerCommand []string
	// WorkerStderr receives what the workers write on their standard
	// error. Nil means it is discarded.
	WorkerStderr io.Writer
	// Token, if set, gives the token each client sends in HELLO's token
	// option, for a server that authenticates sessions (pulse serve
	// --auth-jwt-key): it is called once with each client's name before
	// the clients connect (the tokens of worker processes are minted here
	// and sent to them). Nil means no token. TokenSigner makes one.
	Token func(name string) (string, error)
	// ConnectTimeout bounds one client's connection and handshake. Zero
	// means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// Progress, if set, is called about once a second with the figures so
	// far, from the goroutine that called Run.
	Progress func(Progress)
}

// Validate reports a Config that cannot run, with an error wrapping
// ErrInvalidConfig. It does not check that anything is reachable.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if _, _, err := net.SplitHostPort(c.Server); err != nil {
		return bad("server %q: want host:port", c.Server)
	}
	switch {
	case c.Clients < 1:
		return bad("clients must be at least 1, got %d", c.Clients)
	case c.Duration <= 0:
		return bad("the duration must be positive, got %v", c.Duration)
	case c.Interval < 0 || c.Interval > pulse.MaxInterval:
		return bad("the interval must be between 0 (as granted) and %v, got %v", pulse.MaxInterval, c.Interval)
	case c.RampRate < 0 || math.IsNaN(c.RampRate) || math.IsInf(c.RampRate, 0):
		return bad("the ramp rate must be 0 (as fast as possible) or positive, got %v", c.RampRate)
	case !fraction(c.Silence) || !fraction(c.Disconnect):
		return bad("silence %v and disconnect %v: each must be a share from 0 to 1", c.Silence, c.Disconnect)
	case c.Silence+c.Disconnect > 1:
		return bad("silence %v and disconnect %v add up to more than every client", c.Silence, c.Disconnect)
	case c.FailAt < 0 || (c.FailAt > c.Duration && c.Silence+c.Disconnect > 0):
		return bad("fail-at %v must be within the window (0 to %v)", c.FailAt, c.Duration)
	case c.ServerPID < 0:
		return bad("server pid %d", c.ServerPID)
	case c.PerProcess < 0:
		return bad("per-process %d must be positive, or 0 for the open-file limit", c.PerProcess)
	case c.ConnectTimeout < 0:
		return bad("connect timeout %v must be positive, or 0 for %v", c.ConnectTimeout, DefaultConnectTimeout)
	}
	if c.NamePrefix != "" {
		longest := c.NamePrefix + strconv.Itoa(c.Clients-1)
		if !pulse.ValidName(longest) {
			return bad("name prefix %q: names such as %q must be 1-64 of A-Z a-z 0-9 . _ - :", c.NamePrefix, longest)
		}
	}
	for _, ip := range c.SourceIPs {
		if !ip.IsValid() {
			return bad("a source address is not an IP address")
		}
	}
	if c.Clients > c.perProcess() && len(c.WorkerCommand) == 0 {
		return bad("%d clients exceed the %d one process may hold, and no worker command is given to start more processes", c.Clients, c.perProcess())
	}
	return nil
}

func fraction(f float64) bool { return f >= 0 && f <= 1 }

// perProcess is PerProcess or its default.
func (c Config) perProcess() int {
	if c.PerProcess > 0 {
		return c.PerProcess
	}
	limit := openFileLimit()
	if limit <= 0 {
		return 10_000 // unknown: a limit most systems allow once raised
	}
	return max(limit-FileLimitMargin, 100)
}

// DefaultPerProcess is the number of clients one process holds when
// Config.PerProcess is zero: the open-file limit less FileLimitMargin.
func DefaultPerProcess() int { return Config{}.perProcess() }

// DefaultSourceIPs are the source addresses worth using against the server
// at addr: on Linux, where all of 127.0.0.0/8 is the loopback interface,
// 127.0.0.1 to 127.0.0.250 for a server on a loopback address; otherwise
// none (the kernel chooses).
func DefaultSourceIPs(addr string) []netip.Addr {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || runtime.GOOS != "linux" {
		return nil
	}
	if host != "localhost" {
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is4() || !ip.IsLoopback() {
			return nil
		}
	}
	ips, _ := ParseSourceIPs("127.0.0.1-127.0.0.250")
	return ips
}

// ParseSourceIPs parses a set of source addresses: a range
// ("127.0.0.1-127.0.0.250"), a list ("127.0.0.1,127.0.0.2"), one address,
// or a count N, which means N addresses from 127.0.0.1 up.
func ParseSourceIPs(s string) ([]netip.Addr, error) {
	const most = 1 << 16
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > most {
			return nil, fmt.Errorf("%w: %d source addresses: want 1 to %d", ErrInvalidConfig, n, most)
		}
		return addrRange(netip.AddrFrom4([4]byte{127, 0, 0, 1}), n), nil
	}
	if first, last, ok := strings.Cut(s, "-"); ok {
		a, err1 := netip.ParseAddr(first)
		b, err2 := netip.ParseAddr(last)
		if err1 != nil || err2 != nil || a.BitLen() != b.BitLen() || b.Less(a) {
			return nil, fmt.Errorf("%w: source range %q: want FIRST-LAST, such as 127.0.0.1-127.0.0.250", ErrInvalidConfig, s)
		}
		var ips []netip.Addr
		for ip := a; ip.IsValid() && !b.Less(ip); ip = ip.Next() {
			if len(ips) == most {
				return nil, fmt.Errorf("%w: source range %q holds more than %d addresses", ErrInvalidConfig, s, most)
			}
			ips = append(ips, ip)
		}
		return ips, nil
	}
	var ips []netip.Addr
	for one := range strings.SplitSeq(s, ",") {
		ip, err := netip.ParseAddr(one)
		if err != nil {
			return nil, fmt.Errorf("%w: source address %q: want an IP address, a range FIRST-LAST, a list A,B,C or a count", ErrInvalidConfig, one)
		}
		ips = append(ips, ip)
	}
	return ips, nil
}

func addrRange(first netip.Addr, n int) []netip.Addr {
	ips := make([]netip.Addr, 0, n)
	for ip := first; len(ips) < n && ip.IsValid(); ip = ip.Next() {
		ips = append(ips, ip)
	}
	return ips
}
