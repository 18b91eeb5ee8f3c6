package detect

import (
	"fmt"
	"math"
	"time"

	"github.com/pulsehq/pulse"
)

// PhiConfig configures the phi accrual detector.
type PhiConfig struct {
	// Suspect is the phi at which a silent session becomes suspect, and
	// Dead the phi at which it is dead: a phi of 8 means the model gives a
	// beat that is still to come a chance of 10⁻⁸. 0 < Suspect < Dead.
	Suspect, Dead float64
	// MinStd is the least standard deviation of the model, so that a
	// session whose beats are very regular is not judged on microseconds.
	MinStd time.Duration
	// Pause is a silence that is accepted on top of the mean interval
	// before phi starts to rise (Akka's acceptable-heartbeat-pause).
	Pause time.Duration
	// Window is the number of recent intervals the running mean and
	// variance weigh: each new interval counts 1/Window (and 1/n while
	// fewer than Window have been seen).
	Window int
}

// DefaultPhiConfig returns the phi settings that docs/detection.md
// measures: on its fleet mix, at the 3 s interval, they detect about as
// fast and err about as often as the fixed 4 s and 11 s delays.
func DefaultPhiConfig() PhiConfig {
	return PhiConfig{Suspect: 1, Dead: 16, MinStd: time.Second, Pause: 0, Window: 200}
}

// Phi is the phi accrual failure detector of Hayashibara et al., as Akka
// implements it: the intervals between a session's beats are modelled as a
// normal distribution of the running mean and variance, and
//
//	phi(t) = -log10(P(the next beat comes later than t))
//
// with t the silence since the last beat, less the acceptable pause. Phi
// rises with the silence; the session is suspect when it passes one
// threshold and dead when it passes a higher one. Since phi is monotonic
// in t, each threshold is a fixed number y of standard deviations, solved
// once, and each beat turns into deadlines with a multiply and an add:
//
//	deadline = last beat + mean + pause + y × max(std, min-std)
//
// The dead deadline is never more than the timing's timeout (interval ×
// misses) after the last beat, the timeout clients are told.
//
// Akka keeps up to 1000 intervals per monitored node; Phi keeps an
// exponentially weighted mean and variance instead (48 bytes a session).
type Phi struct {
	timing pulse.Timing
	cfg    PhiConfig
	own    *phiParams // for timing.Interval
}

// phiParams are a Phi's settings for one beat interval, shared by the
// trackers of that interval.
type phiParams struct {
	interval        float64 // ns
	ySuspect, yDead float64 // standard deviations past the mean + pause
	minStd, pause   float64 // ns
	window          uint32
	limit           time.Duration // most silence before dead
}

// NewPhi returns a phi accrual policy for the timing, which must be valid.
func NewPhi(t pulse.Timing, c PhiConfig) (*Phi, error) {
	switch {
	case !(c.Suspect > 0) || math.IsInf(c.Suspect, 0):
		return nil, fmt.Errorf("%w: phi suspect threshold must be positive, got %v", ErrBadSpec, c.Suspect)
	case !(c.Dead > c.Suspect) || c.Dead > maxPhi:
		return nil, fmt.Errorf("%w: phi dead threshold must be above the suspect one (%v) and at most %v, got %v", ErrBadSpec, c.Suspect, maxPhi, c.Dead)
	case c.MinStd <= 0:
		return nil, fmt.Errorf("%w: phi min-std must be positive, got %v", ErrBadSpec, c.MinStd)
	case c.Pause < 0:
		return nil, fmt.Errorf("%w: phi pause must not be negative, got %v", ErrBadSpec, c.Pause)
	case c.Window < 2 || c.Window > maxWindow:
		return nil, fmt.Errorf("%w: phi window must be from 2 to %d, got %d", ErrBadSpec, maxWindow, c.Window)
	}
	p := &Phi{timing: t, cfg: c}
	p.own = p.params(t.Interval)
	return p, nil
}

// maxPhi is the highest threshold Phi takes: 10⁻³⁰⁰ is near the smallest
// float64, and no one needs more.
const maxPhi = 300

// maxWindow bounds the window parameters of every policy.
const maxWindow = 1 << 20

// Name returns "phi".
func (p *Phi) Name() string { return "phi" }

// Config returns the policy's settings.
func (p *Phi) Config() PhiConfig { return p.cfg }

func (p *Phi) params(interval time.Duration) *phiParams {
	base := p.timing.Interval
	return &phiParams{
		interval: float64(interval),
		ySuspect: phiDeviations(p.cfg.Suspect),
		yDead:    phiDeviations(p.cfg.Dead),
		minStd:   float64(scale(p.cfg.MinStd, interval, base)),
		pause:    float64(scale(p.cfg.Pause, interval, base)),
		window:   uint32(p.cfg.Window),
		limit:    scale(p.timing.Timeout(), interval, base),
	}
}

// Track returns the tracker of a session beating every interval. Its model
// starts, as Akka's does, from two intervals a quarter of the interval
// either side of it: mean the interval, standard deviation a quarter of it.
// The pause and min-std scale with the interval.
func (p *Phi) Track(interval time.Duration) Tracker {
	params := p.own
	if interval > 0 && interval != p.timing.Interval {
		params = p.params(interval)
	}
	std := params.interval / 4
	return &phiTracker{p: params, mean: params.interval, variance: std * std, n: 2, last: -1}
}

// phiTracker is the model of one session: 48 bytes.
type phiTracker struct {
	p              *phiParams
	last, deadAt   time.Duration // the last beat (-1 before the first) and its dead deadline
	mean, variance float64       // of the intervals, ns and ns²
	n              uint32        // intervals weighed so far, the starting two included
}

// Beat adds the interval since the last beat to the model, unless the beat
// came after the session's dead deadline (which only a held judgment after
// a server stall allows): as Akka does, the first beat after a failure is
// kept out of the statistics it would skew.
func (t *phiTracker) Beat(at time.Duration) Deadlines {
	if t.last >= 0 && at <= t.deadAt {
		x := float64(at - t.last)
		if t.n < t.p.window {
			t.n++
		}
		alpha := 1 / float64(t.n)
		diff := x - t.mean
		incr := alpha * diff
		t.mean += incr
		t.variance = (1 - alpha) * (t.variance + diff*incr)
	}
	t.last = at
	std := max(math.Sqrt(t.variance), t.p.minStd)
	base := t.mean + t.p.pause
	d := bound(at, at+durationOf(base+t.p.ySuspect*std), at+durationOf(base+t.p.yDead*std), t.p.limit)
	t.deadAt = d.Dead
	return d
}

// phiOf is phi for a silence t (less the pause) under a normal model of
// mean and standard deviation std, with the logistic approximation of the
// normal distribution that Akka uses:
//
//	y = (t - mean) / std
//	P(later) = 1 / (1 + exp(y × (1.5976 + 0.070566 y²)))
//	phi = -log10(P(later))
func phiOf(t, mean, std float64) float64 {
	y := (t - mean) / std
	e := math.Exp(-y * (phiA + phiB*y*y))
	return -math.Log10(e / (1 + e))
}

// The coefficients of the logistic approximation (Bowling et al. 2009).
const (
	phiA = 1.5976
	phiB = 0.070566
)

// phiDeviations solves phiOf(mean + y·std, mean, std) = phi for y: the
// silence past the mean, in standard deviations, at which phi reaches the
// threshold. With P = 10^-phi the equation is the cubic
//
//	phiB y³ + phiA y = ln((1-P)/P) = ln(10^phi - 1)
//
// which has one real root (its slope is positive everywhere); Cardano's
// formula gives it.
func phiDeviations(phi float64) float64 {
	c := math.Log(math.Pow(10, phi) - 1)
	if math.IsInf(c, 1) { // 10^phi overflows: ln(10^phi - 1) = phi ln 10
		c = phi * math.Ln10
	}
	p := phiA / phiB
	q := -c / phiB
	r := math.Sqrt(q*q/4 + p*p*p/27)
	y := math.Cbrt(-q/2+r) + math.Cbrt(-q/2-r)
	// The second cube root cancels badly for high thresholds; Newton's
	// method on the cubic restores the last digits.
	for range 2 {
		y -= (phiB*y*y*y + phiA*y - c) / (3*phiB*y*y + phiA)
	}
	return y
}
