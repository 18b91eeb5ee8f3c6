package detect

import (
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/pulsehq/pulse"
)

// QuantileConfig configures the adaptive-quantile detector.
type QuantileConfig struct {
	// Q is the quantile of the session's recent silences that deadlines
	// are scaled from: 0.99 ignores the longest 1 %; 1 is the longest.
	Q float64
	// Suspect and Dead multiply that quantile: a session silent for
	// Suspect × quantile is suspect, for Dead × quantile dead.
	// 1 ≤ Suspect < Dead.
	Suspect, Dead float64
	// Window is roughly how many recent silences count: when the histogram
	// holds Window of them, every count is halved.
	Window int
	// Warmup is how many silences a session must have shown before its own
	// quantile is trusted; until then it is judged by the fixed delays of
	// the timing (suspect after SuspectAfter, dead after the timeout).
	Warmup int
}

// DefaultQuantileConfig returns the quantile settings that
// docs/detection.md measures: on its fleet mix, at the 3 s interval, they
// detect about as fast and err about as often as the fixed 4 s and 11 s
// delays.
func DefaultQuantileConfig() QuantileConfig {
	return QuantileConfig{Q: 0.99, Suspect: 1.18, Dead: 3.2, Window: 1000, Warmup: 20}
}

// Quantile is an adaptive detector that judges each session by its own
// recent silences (the intervals between its beats): it keeps them in a
// small histogram with logarithmic buckets, 8 to a doubling (each at most
// 12.5 % wide), from a sixteenth of the interval to 128 intervals, and puts
// the deadlines at multiples of a high quantile of them:
//
//	suspect = last beat + Suspect × quantile(Q)
//	dead    = last beat + Dead × quantile(Q)
//
// Silences are heavy-tailed (GC pauses, outages, retransmissions), which a
// normal model (phi) fits badly; a quantile with a multiplier makes no
// assumption about the shape. A session that pauses now and then gets
// longer deadlines than one that never does, and forgets its pauses as the
// histogram is halved. The dead deadline is never more than the timing's
// timeout after the last beat. State: 176 bytes a session.
type Quantile struct {
	timing pulse.Timing
	cfg    QuantileConfig
	own    *quantileParams
}

type quantileParams struct {
	unit                    float64 // ns in a histogram unit: interval / 16
	interval                time.Duration
	q                       float64
	suspect, dead           float64
	window, warmup          uint32
	fixedSuspect, fixedDead time.Duration // during the warm-up
	limit                   time.Duration
}

// quantileBuckets is the number of buckets: units (a sixteenth of the
// interval) 0 to 15 one each, then 8 a doubling up to 2048 units (128
// intervals), and the last bucket for anything longer.
const quantileBuckets = 72

// NewQuantile returns an adaptive-quantile policy for the timing, which
// must be valid.
func NewQuantile(t pulse.Timing, c QuantileConfig) (*Quantile, error) {
	switch {
	case !(c.Q >= 0.5 && c.Q <= 1):
		return nil, fmt.Errorf("%w: quantile q must be from 0.5 to 1, got %v", ErrBadSpec, c.Q)
	case !(c.Suspect >= 1) || math.IsInf(c.Suspect, 0):
		return nil, fmt.Errorf("%w: quantile suspect multiplier must be at least 1, got %v", ErrBadSpec, c.Suspect)
	case !(c.Dead > c.Suspect) || math.IsInf(c.Dead, 0):
		return nil, fmt.Errorf("%w: quantile dead multiplier must be above the suspect one (%v), got %v", ErrBadSpec, c.Suspect, c.Dead)
	case c.Window < 16 || c.Window > math.MaxUint16:
		return nil, fmt.Errorf("%w: quantile window must be from 16 to %d silences, got %d", ErrBadSpec, math.MaxUint16, c.Window)
	case c.Warmup < 1 || c.Warmup >= c.Window:
		return nil, fmt.Errorf("%w: quantile warmup must be from 1 to the window less one (%d), got %d", ErrBadSpec, c.Window-1, c.Warmup)
	}
	p := &Quantile{timing: t, cfg: c}
	p.own = p.params(t.Interval)
	return p, nil
}

// Name returns "quantile".
func (p *Quantile) Name() string { return "quantile" }

// Config returns the policy's settings.
func (p *Quantile) Config() QuantileConfig { return p.cfg }

func (p *Quantile) params(interval time.Duration) *quantileParams {
	base := p.timing.Interval
	return &quantileParams{
		unit:         float64(interval) / 16,
		interval:     interval,
		q:            p.cfg.Q,
		suspect:      p.cfg.Suspect,
		dead:         p.cfg.Dead,
		window:       uint32(p.cfg.Window),
		warmup:       uint32(p.cfg.Warmup),
		fixedSuspect: scale(p.timing.Suspect(), interval, base),
		fixedDead:    scale(p.timing.Timeout(), interval, base),
		limit:        scale(p.timing.Timeout(), interval, base),
	}
}

// Track returns the tracker of a session beating every interval.
func (p *Quantile) Track(interval time.Duration) Tracker {
	params := p.own
	if interval > 0 && interval != p.timing.Interval {
		params = p.params(interval)
	}
	return &quantileTracker{p: params, last: -1}
}

// quantileTracker is the histogram of one session's silences.
type quantileTracker struct {
	p            *quantileParams
	last, deadAt time.Duration // the last beat (-1 before the first) and its dead deadline
	total        uint32
	top          uint8 // no bucket above holds a silence
	counts       [quantileBuckets]uint16
}

// Beat adds the silence since the last beat to the histogram (unless the
// beat came after the dead deadline, which only a judgment held after a
// server stall allows: that silence is the server's, not the client's) and
// returns the deadlines.
func (t *quantileTracker) Beat(at time.Duration) Deadlines {
	p := t.p
	if t.last >= 0 && at <= t.deadAt {
		b := quantileBucket(uint64(float64(at-t.last) / p.unit))
		t.counts[b]++
		t.top = max(t.top, uint8(b))
		if t.total++; t.total >= p.window {
			t.total, t.top = 0, 0
			for i, c := range t.counts {
				t.counts[i] = c >> 1
				t.total += uint32(c >> 1)
				if c > 1 {
					t.top = uint8(i)
				}
			}
		}
	}
	t.last = at
	var d Deadlines
	if t.total < p.warmup {
		d = bound(at, at+p.fixedSuspect, at+p.fixedDead, p.limit)
	} else {
		q := t.quantile() * p.unit
		d = bound(at, at+durationOf(q*p.suspect), at+durationOf(q*p.dead), p.limit)
	}
	t.deadAt = d.Dead
	return d
}

// quantile returns the upper edge, in units, of the bucket that holds the
// q-quantile of the silences: the longest silences, up to (1-q) of them,
// lie above it.
func (t *quantileTracker) quantile() float64 {
	allowed := uint32((1 - t.p.q) * float64(t.total))
	var above uint32
	for b := int(t.top); b > 0; b-- {
		if above += uint32(t.counts[b]); above > allowed {
			return quantileUpper(b)
		}
	}
	return quantileUpper(0)
}

// quantileBucket is the bucket of a silence of u units: u itself below 16,
// then 8 buckets a doubling.
func quantileBucket(u uint64) int {
	if u < 16 {
		return int(u)
	}
	e := bits.Len64(u) - 4 // u>>e is from 8 to 15
	return min(8*e+int(u>>e), quantileBuckets-1)
}

// quantileUpper is the upper edge of bucket b, in units: the least silence
// that falls above it.
func quantileUpper(b int) float64 {
	if b < 16 {
		return float64(b + 1)
	}
	e := b/8 - 1
	return float64((b%8 + 9) << e)
}
