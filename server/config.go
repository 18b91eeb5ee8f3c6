package server

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/detect"
)

// Defaults for Config fields left zero.
const (
	DefaultWriteTimeout = 10 * time.Second
	// DefaultMinInterval is the shortest interval a client may ask for:
	// a beat a second is as often as presence needs, and it bounds what
	// one client can cost.
	DefaultMinInterval = time.Second
	// DefaultMaxInterval is the longest interval a client may ask for:
	// with 5 misses, a silent client is dead within 25 minutes, which
	// battery-powered devices on slow beats can live with and a presence
	// table should not exceed.
	DefaultMaxInterval = 5 * time.Minute
	// MinStallThreshold is the shortest Config.StallThreshold: the
	// scheduler wakes four times per threshold, and the Go runtime's own
	// timer lateness on a busy machine is a few milliseconds.
	MinStallThreshold = 10 * time.Millisecond
	// lingerTimeout bounds how long a connection is held open after its
	// last line (an ERR or BYE) so that the line reaches the client before
	// the close.
	lingerTimeout = 500 * time.Millisecond
)

// Config configures a Server. Zero fields mean the defaults, which are the
// seed's: beats every 3 s, suspect after 4.5 s, dead after 15 s.
type Config struct {
	// Timing is the beat interval, the allowed misses and the suspect
	// delay. Zero fields mean pulse.DefaultInterval, pulse.DefaultMisses
	// and pulse.SuspectFactor × the interval.
	Timing pulse.Timing
	// MinInterval and MaxInterval bound the beat interval a client may ask
	// for with the HELLO option interval_ms: a request outside them is
	// clamped to the nearer bound, and WELCOME says what was granted.
	// Each session keeps the misses of Timing and a suspect delay scaled
	// with its interval (pulse.Timing.ForInterval). Zero MinInterval
	// means DefaultMinInterval, or Timing.Interval if that is shorter;
	// zero MaxInterval means DefaultMaxInterval, or Timing.Interval if
	// that is longer. Set both to Timing.Interval to grant every client
	// the same interval.
	MinInterval time.Duration
	MaxInterval time.Duration
	// HelloTimeout is how long a new connection may take to send HELLO.
	// Zero means 10 s.
	HelloTimeout time.Duration
	// WriteTimeout is how long a write to a client may stay blocked, the
	// client not reading, before the connection is cut. Zero means 10 s.
	WriteTimeout time.Duration
	// Policy decides when a silent session is suspect and dead. Nil means
	// the fixed timeout of Timing (detect.NewFixed). WELCOME tells clients
	// the suspect delay and timeout of Timing whatever the policy, and
	// clients judge the server lost after that timeout: a policy must not
	// declare a death later than it. The policies of package detect, made
	// for this Timing, never do; an adaptive one may declare it sooner,
	// and may judge suspect before or after the suspect delay told.
	Policy detect.Policy
	// Logger receives the server's log: every session event, every
	// rejected connection. Nil means slog.Default().
	Logger *slog.Logger
	// Observer is told of every beat, rejection and event, for metrics.
	// Nil means none.
	Observer Observer
	// StallThreshold: a server whose own timer fires this much later than
	// it was set for has been stalled (a long GC, CPU starvation, a paused
	// VM, SIGSTOP), and every session may look silent only because its
	// beats have not been read yet. It then holds every suspect and dead
	// judgment until its transports have read what arrived during the
	// stall, and StallGrace more, and emits a stall event. Zero means
	// 500 ms; negative turns the guard off. It must be at least 10 ms, and
	// should be well under the suspect delay minus the interval, the
	// lateness a healthy client's beat may have.
	StallThreshold time.Duration
	// StallGrace is how long judgments stay held after a stall once the
	// transports have read what arrived during it: for beats that the
	// stall delayed on their way, and for connections on goroutines,
	// which cannot say when they have read their backlog. Zero means 2 s;
	// negative means no grace beyond the catch-up.
	StallGrace time.Duration
	// ArrivalRecorder, if set, records every registration, beat and end
	// of a session (pulse serve --record-arrivals). Nil means none, and
	// costs a beat one comparison.
	ArrivalRecorder ArrivalRecorder
	// Transport chooses how connections are run. The zero value,
	// TransportAuto, runs plain TCP connections on an event loop where the
	// platform has one (Linux) and any other net.Conn, such as TLS, on a
	// goroutine of its own.
	Transport Transport
	// Authenticator, if set, decides whether each HELLO may register its
	// name (see Authenticator); nil lets every valid name register.
	Authenticator Authenticator
	// MaxConns is how many connections the server holds open at once,
	// registered or not; one more is told "ERR too_many_connections" and
	// closed without a byte read. Zero means DefaultMaxConns() (the file
	// descriptor limit less a headroom); negative means no limit.
	MaxConns int
	// MaxConnsPerIP is how many of them one client IP address may hold.
	// Zero means DefaultMaxConnsPerIP (1,000); negative means no limit.
	MaxConnsPerIP int
	// MaxBeatRate is how many lines a second a connection may send,
	// sustained, beyond a burst of a minute of them: past it, it gets
	// "ERR rate_limited" and is closed, its session leaving with the
	// reason "protocol". A session may send 10 times its granted beat
	// rate if that is more (20 a second at a 1 s interval, 100 at 100 ms).
	// Zero means DefaultMaxBeatRate (20); negative means no limit.
	MaxBeatRate float64

	// beforePoll, in tests, runs in the event loop's goroutine before each
	// poll.
	beforePoll func(*eventLoop)
}

// Transport is how a server runs its connections.
type Transport string

// The transports.
const (
	// TransportAuto is the event loop for plain TCP on Linux, goroutines
	// otherwise.
	TransportAuto Transport = ""
	// TransportEventLoop runs plain TCP connections on one epoll loop: no
	// goroutine or buffer per idle connection. Linux only; elsewhere, and
	// for connections that are not plain TCP, it means goroutines.
	TransportEventLoop Transport = "epoll"
	// TransportGoroutines gives every connection a goroutine of its own.
	TransportGoroutines Transport = "goroutine"
)

// DefaultConfig returns the configuration that the zero Config stands for,
// with every default filled in.
func DefaultConfig() Config {
	c := Config{}
	c.fillDefaults()
	return c
}

// ErrInvalidConfig is wrapped by the errors of Config.Validate.
var ErrInvalidConfig = errors.New("invalid server config")

// Validate reports nonsense, with the defaults filled in, before anything
// starts.
func (c Config) Validate() error {
	if c.HelloTimeout < 0 {
		return fmt.Errorf("%w: hello timeout must not be negative, got %v", ErrInvalidConfig, c.HelloTimeout)
	}
	if c.WriteTimeout < 0 {
		return fmt.Errorf("%w: write timeout must not be negative, got %v", ErrInvalidConfig, c.WriteTimeout)
	}
	if c.StallThreshold > 0 && c.StallThreshold < MinStallThreshold {
		return fmt.Errorf("%w: the stall threshold must be at least %v (or negative for no stall guard), got %v",
			ErrInvalidConfig, MinStallThreshold, c.StallThreshold)
	}
	switch c.Transport {
	case TransportAuto, TransportEventLoop, TransportGoroutines:
	default:
		return fmt.Errorf("%w: transport %q: want %q, %q or empty for automatic", ErrInvalidConfig, c.Transport, TransportEventLoop, TransportGoroutines)
	}
	if math.IsNaN(c.MaxBeatRate) || math.IsInf(c.MaxBeatRate, 0) {
		return fmt.Errorf("%w: the beat rate limit must be a number, got %v", ErrInvalidConfig, c.MaxBeatRate)
	}
	if c.MinInterval < 0 || c.MaxInterval < 0 {
		return fmt.Errorf("%w: interval bounds must not be negative, got %v and %v", ErrInvalidConfig, c.MinInterval, c.MaxInterval)
	}
	c.fillDefaults()
	if err := c.Timing.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	switch {
	case c.MinInterval > c.Timing.Interval:
		return fmt.Errorf("%w: the shortest interval a client may ask for (%v) is longer than the interval (%v)",
			ErrInvalidConfig, c.MinInterval, c.Timing.Interval)
	case c.MaxInterval < c.Timing.Interval:
		return fmt.Errorf("%w: the longest interval a client may ask for (%v) is shorter than the interval (%v)",
			ErrInvalidConfig, c.MaxInterval, c.Timing.Interval)
	}
	for _, d := range []time.Duration{c.MinInterval, c.MaxInterval} {
		if err := c.Timing.ForInterval(d).Validate(); err != nil {
			return fmt.Errorf("%w: a client granted %v: %w", ErrInvalidConfig, d, err)
		}
	}
	return nil
}

// grant returns the interval granted to a client that asked for asked
// (zero: the server's own).
func (c *Config) grant(asked time.Duration) time.Duration {
	if asked <= 0 {
		return c.Timing.Interval
	}
	return min(max(asked, c.MinInterval), c.MaxInterval)
}

func (c *Config) fillDefaults() {
	if c.Timing.Interval == 0 {
		c.Timing.Interval = pulse.DefaultInterval
	}
	if c.Timing.Misses == 0 {
		c.Timing.Misses = pulse.DefaultMisses
	}
	if c.MinInterval == 0 {
		c.MinInterval = min(DefaultMinInterval, c.Timing.Interval)
	}
	if c.MaxInterval == 0 {
		c.MaxInterval = max(DefaultMaxInterval, c.Timing.Interval)
	}
	if c.HelloTimeout == 0 {
		c.HelloTimeout = pulse.DefaultHelloTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns()
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if c.MaxBeatRate == 0 {
		c.MaxBeatRate = DefaultMaxBeatRate
	}
	if c.Policy == nil {
		c.Policy = detect.NewFixed(c.Timing)
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// setDefaults checks the configuration and fills in the defaults.
func (c *Config) setDefaults() error {
	if err := c.Validate(); err != nil {
		return err
	}
	c.fillDefaults()
	return nil
}
