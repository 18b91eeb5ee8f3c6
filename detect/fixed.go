package detect

import (
	"time"

	"github.com/pulsehq/pulse"
)

// Fixed is the seed's policy: a session is suspect a fixed delay after its
// last beat and dead a fixed timeout after it, by default the interval
// times the allowed misses. It keeps no state per session.
type Fixed struct {
	timing pulse.Timing
	// suspect and dead are the delays after the last beat for timing.Interval.
	suspect, dead time.Duration
}

// NewFixed returns the fixed-timeout policy for the given timing, which
// must be valid (see pulse.Timing.Validate).
func NewFixed(t pulse.Timing) *Fixed {
	return &Fixed{timing: t, suspect: t.Suspect(), dead: t.Timeout()}
}

// Name returns "fixed".
func (f *Fixed) Name() string { return "fixed" }

// Track returns a tracker for a session beating every interval. For the
// policy's own interval that is f itself; another interval scales both
// delays in proportion, which keeps the number of allowed misses.
func (f *Fixed) Track(interval time.Duration) Tracker {
	if interval == f.timing.Interval || interval <= 0 {
		return f
	}
	g := *f
	g.timing.Interval = interval
	g.suspect = scale(f.suspect, interval, f.timing.Interval)
	g.dead = scale(f.dead, interval, f.timing.Interval)
	return &g
}

// Beat returns the deadlines after a beat at the instant at.
func (f *Fixed) Beat(at time.Duration) Deadlines {
	return Deadlines{Suspect: at + f.suspect, Dead: at + f.dead}
}
