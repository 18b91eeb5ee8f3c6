package server

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/detect"
)

// Defaults for Config fields left zero.
const (
	DefaultWriteTimeout = 10 * time.Second
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
	// ArrivalRecorder, if set, records every registration, beat and end
	// of a session (pulse serve --record-arrivals). Nil means none, and
	// costs a beat one comparison.
	ArrivalRecorder ArrivalRecorder
	// Transport chooses how connections are run. The zero value,
	// TransportAuto, runs plain TCP connections on an event loop where the
	// platform has one (Linux) and any other net.Conn, such as TLS, on a
	// goroutine of its own.
	Transport Transport
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
	switch c.Transport {
	case TransportAuto, TransportEventLoop, TransportGoroutines:
	default:
		return fmt.Errorf("%w: transport %q: want %q, %q or empty for automatic", ErrInvalidConfig, c.Transport, TransportEventLoop, TransportGoroutines)
	}
	c.fillDefaults()
	if err := c.Timing.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

func (c *Config) fillDefaults() {
	if c.Timing.Interval == 0 {
		c.Timing.Interval = pulse.DefaultInterval
	}
	if c.Timing.Misses == 0 {
		c.Timing.Misses = pulse.DefaultMisses
	}
	if c.HelloTimeout == 0 {
		c.HelloTimeout = pulse.DefaultHelloTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
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
