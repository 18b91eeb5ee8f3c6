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

// Config configures a Server. The zero value is the seed's defaults: beats
// every 3 s, suspect after 4.5 s, dead after 15 s.
type Config struct {
	// Timing is the beat interval and the allowed misses. The zero value
	// means pulse.DefaultTiming().
	Timing pulse.Timing
	// HelloTimeout is how long a new connection may take to send HELLO.
	// Zero means 10 s.
	HelloTimeout time.Duration
	// WriteTimeout is how long a write to a client may stay blocked, the
	// client not reading, before the connection is cut. Zero means 10 s.
	WriteTimeout time.Duration
	// Policy decides when a silent session is suspect and dead. Nil means
	// the fixed timeout of Timing (detect.NewFixed).
	Policy detect.Policy
	// Logger receives the server's log: every session event, every
	// rejected connection. Nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the configuration that the zero Config stands for,
// with every default filled in.
func DefaultConfig() Config {
	c := Config{}
	_ = c.setDefaults()
	return c
}

// ErrInvalidConfig is wrapped by the errors of Config.Validate.
var ErrInvalidConfig = errors.New("invalid server config")

// Validate reports nonsense before anything starts.
func (c Config) Validate() error {
	if c.Timing != (pulse.Timing{}) {
		if err := c.Timing.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	if c.HelloTimeout < 0 {
		return fmt.Errorf("%w: hello timeout must not be negative, got %v", ErrInvalidConfig, c.HelloTimeout)
	}
	if c.WriteTimeout < 0 {
		return fmt.Errorf("%w: write timeout must not be negative, got %v", ErrInvalidConfig, c.WriteTimeout)
	}
	return nil
}

func (c *Config) setDefaults() error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.Timing == (pulse.Timing{}) {
		c.Timing = pulse.DefaultTiming()
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
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}
