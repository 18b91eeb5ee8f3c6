package pulse

import (
	"errors"
	"fmt"
	"time"
)

// Defaults, from the seed design: a beat every 3 s, dead after 5 missed beats
// (15 s after the last one), suspect after 1.5 intervals (4.5 s).
const (
	DefaultInterval     = 3 * time.Second
	DefaultMisses       = 5
	DefaultHelloTimeout = 10 * time.Second
)

// SuspectFactor is how many intervals of silence make a session suspect when
// Timing.SuspectAfter is left zero.
const SuspectFactor = 1.5

// Timing says how often sessions beat and when a silent one is judged.
type Timing struct {
	// Interval is how often a client beats.
	Interval time.Duration
	// Misses is how many intervals without a beat make a session dead:
	// the timeout is Interval × Misses after the last beat.
	Misses int
	// SuspectAfter is how long after the last beat a silent session becomes
	// suspect. Zero means SuspectFactor × Interval.
	SuspectAfter time.Duration
}

// DefaultTiming returns the seed's timing: 3 s, 5 misses, suspect after 4.5 s.
func DefaultTiming() Timing {
	return Timing{Interval: DefaultInterval, Misses: DefaultMisses}
}

// Timeout is how long after its last beat a silent session is dead.
func (t Timing) Timeout() time.Duration {
	return t.Interval * time.Duration(t.Misses)
}

// Suspect is how long after its last beat a silent session is suspect.
func (t Timing) Suspect() time.Duration {
	if t.SuspectAfter > 0 {
		return t.SuspectAfter
	}
	return time.Duration(float64(t.Interval) * SuspectFactor)
}

// ForInterval returns the timing of a session granted its own beat
// interval d: the same number of misses, so the timeout is d × Misses, and
// the suspect delay scaled with the interval, so that it keeps its ratio
// to it (1.5 intervals by default). A valid timing stays valid for any
// valid interval. detect.Fixed judges a session with this timing.
func (t Timing) ForInterval(d time.Duration) Timing {
	if d == t.Interval {
		return t
	}
	t.SuspectAfter = time.Duration(float64(t.Suspect()) * float64(d) / float64(t.Interval))
	t.Interval = d
	return t
}

// MaxInterval is the longest beat interval a Timing may have.
const MaxInterval = 24 * time.Hour

// ErrInvalidTiming is wrapped by the errors Timing.Validate returns.
var ErrInvalidTiming = errors.New("invalid timing")

// Validate reports timing that cannot work: an interval that is not
// positive or is over MaxInterval; fewer than 2 misses (with one, a client
// that beats on time is dead whenever a beat is late by any amount); a
// suspect delay not longer than the interval (every healthy client would be
// suspect between its beats) or not shorter than the timeout.
func (t Timing) Validate() error {
	switch {
	case t.Interval <= 0:
		return fmt.Errorf("%w: the interval must be positive, got %v", ErrInvalidTiming, t.Interval)
	case t.Interval < time.Millisecond:
		return fmt.Errorf("%w: the interval must be at least 1ms, got %v", ErrInvalidTiming, t.Interval)
	case t.Interval > MaxInterval:
		return fmt.Errorf("%w: the interval must be at most %v, got %v", ErrInvalidTiming, MaxInterval, t.Interval)
	case t.Misses < 2:
		return fmt.Errorf("%w: misses must be at least 2, got %d: with fewer, a client that beats on time is dead whenever a beat is a little late",
			ErrInvalidTiming, t.Misses)
	case t.Misses > 1000:
		return fmt.Errorf("%w: misses must be at most 1000, got %d", ErrInvalidTiming, t.Misses)
	case t.SuspectAfter < 0:
		return fmt.Errorf("%w: the suspect delay must not be negative, got %v", ErrInvalidTiming, t.SuspectAfter)
	case t.Suspect() <= t.Interval:
		return fmt.Errorf("%w: the suspect delay (%v) must be longer than the interval (%v), or every healthy client is suspect between its beats",
			ErrInvalidTiming, t.Suspect(), t.Interval)
	case t.Suspect() >= t.Timeout():
		return fmt.Errorf("%w: the suspect delay (%v) must be shorter than the timeout, interval × misses (%v)",
			ErrInvalidTiming, t.Suspect(), t.Timeout())
	}
	return nil
}
