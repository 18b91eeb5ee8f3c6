package detect

import (
	"fmt"
	"time"

	"github.com/pulsehq/pulse"
)

// ChenConfig configures Chen's estimator.
type ChenConfig struct {
	// Suspect and Dead are the safety margins α: how long after a beat's
	// expected arrival a session that is still silent becomes suspect, and
	// dead. 0 ≤ Suspect < Dead.
	Suspect, Dead time.Duration
	// Window is the number n of recent arrivals the expected arrival is
	// estimated from.
	Window int
}

// DefaultChenConfig returns the Chen settings that docs/detection.md
// measures: at the 3 s interval, a beat expected 3 s after the last is
// judged like the fixed 4 s and 11 s delays.
func DefaultChenConfig() ChenConfig {
	return ChenConfig{Suspect: time.Second, Dead: 8 * time.Second, Window: 32}
}

// Chen is the failure detector of Chen, Toueg and Aguilera ("On the
// Quality of Service of Failure Detectors", 2002): it estimates when the
// next beat is due from the last n arrivals, on the assumption that the
// client beats every interval Δ on a schedule of its own,
//
//	EA(l+1) = (1/n) Σ (A(i) - Δ·s(i)) + Δ·(s(l) + 1)
//
// where A(i) is the arrival of the beat with sequence number s(i), and
// suspects a session that is still silent a safety margin α after it.
// Pulse's registry does not see the clients' sequence numbers, so the
// number of a beat is inferred from its arrival: s grows by one plus the
// whole intervals (rounded) by which the beat missed its expected arrival,
// and by none for a beat that comes an interval or more early (the queued
// beats of a burst after an outage share a number).
//
// Unlike a timeout counted from the last arrival, the estimate is not
// moved by one late beat: after a beat delayed by a second, the next is
// still expected on the client's schedule. The dead deadline is never more
// than the timing's timeout after the last beat. State: 8 bytes an arrival
// in the window, and 64 more.
type Chen struct {
	timing pulse.Timing
	cfg    ChenConfig
	own    *chenParams
}

type chenParams struct {
	interval      time.Duration
	suspect, dead time.Duration // the margins α
	window        int
	limit         time.Duration
}

// NewChen returns a Chen policy for the timing, which must be valid.
func NewChen(t pulse.Timing, c ChenConfig) (*Chen, error) {
	switch {
	case c.Suspect < 0:
		return nil, fmt.Errorf("%w: chen suspect margin must not be negative, got %v", ErrBadSpec, c.Suspect)
	case c.Dead <= c.Suspect:
		return nil, fmt.Errorf("%w: chen dead margin must be longer than the suspect one (%v), got %v", ErrBadSpec, c.Suspect, c.Dead)
	case c.Window < 1 || c.Window > maxChenWindow:
		return nil, fmt.Errorf("%w: chen window must be from 1 to %d arrivals, got %d", ErrBadSpec, maxChenWindow, c.Window)
	}
	p := &Chen{timing: t, cfg: c}
	p.own = p.params(t.Interval)
	return p, nil
}

// maxChenWindow keeps a session's state within 2 KiB.
const maxChenWindow = 224

// Name returns "chen".
func (p *Chen) Name() string { return "chen" }

// Config returns the policy's settings.
func (p *Chen) Config() ChenConfig { return p.cfg }

func (p *Chen) params(interval time.Duration) *chenParams {
	base := p.timing.Interval
	return &chenParams{
		interval: interval,
		suspect:  scale(p.cfg.Suspect, interval, base),
		dead:     scale(p.cfg.Dead, interval, base),
		window:   p.cfg.Window,
		limit:    scale(p.timing.Timeout(), interval, base),
	}
}

// Track returns the tracker of a session beating every interval; the
// margins scale with the interval.
func (p *Chen) Track(interval time.Duration) Tracker {
	params := p.own
	if interval > 0 && interval != p.timing.Interval {
		params = p.params(interval)
	}
	return &chenTracker{p: params, offsets: make([]time.Duration, 0, params.window)}
}

// chenTracker holds the last n arrivals of one session, each as its offset
// A(i) - Δ·s(i) from the client's schedule.
type chenTracker struct {
	p        *chenParams
	offsets  []time.Duration // a ring once full
	next     int             // where the next offset goes once the ring is full
	sum      time.Duration   // of offsets
	seq      int64           // s(l), the inferred number of the last beat
	expected time.Duration   // EA(l+1)
}

// Beat records an arrival and returns the deadlines: the next expected
// arrival plus each margin.
func (t *chenTracker) Beat(at time.Duration) Deadlines {
	iv := t.p.interval
	if len(t.offsets) > 0 {
		t.seq += max(0, 1+roundDiv(at-t.expected, iv))
	}
	off := at - time.Duration(t.seq)*iv
	if len(t.offsets) < t.p.window {
		t.offsets = append(t.offsets, off)
	} else {
		t.sum -= t.offsets[t.next]
		t.offsets[t.next] = off
		if t.next++; t.next == len(t.offsets) {
			t.next = 0
		}
	}
	t.sum += off
	t.expected = t.sum/time.Duration(len(t.offsets)) + time.Duration(t.seq+1)*iv
	return bound(at, t.expected+t.p.suspect, t.expected+t.p.dead, t.p.limit)
}

// roundDiv is a/b rounded to the nearest whole number, halves away from
// zero; b > 0.
func roundDiv(a, b time.Duration) int64 {
	if a >= 0 {
		return int64((a + b/2) / b)
	}
	return -int64((-a + b/2) / b)
}
