package fdbench

import (
	"math"
	"math/rand/v2"
	"sort"
	"time"
)

// TCP's retransmission timeout: Linux's least, 200 ms, doubled after each
// loss of the same segment up to 120 s.
const (
	rtoMin = int64(200 * time.Millisecond)
	rtoMax = int64(120 * time.Second)
)

// window is a span of time [from, to).
type window struct{ from, to int64 }

// windows are sorted, disjoint spans.
type windows []window

// find returns the window that holds t, if any.
func (ws windows) find(t int64) (window, bool) {
	i := sort.Search(len(ws), func(i int) bool { return ws[i].to > t })
	if i < len(ws) && ws[i].from <= t {
		return ws[i], true
	}
	return window{}, false
}

// conn is one session's TCP connection as the model sees it: segments are
// delivered in order, a lost one is sent again after a timeout that
// doubles, and what the client sends while a segment waits for its
// retransmission goes out with it.
type conn struct {
	sc      *Scenario
	net     Network
	outages windows
	// backoffUntil is the instant of the retransmission that ends the
	// current backoff: a segment sent before it goes out with it.
	backoffUntil int64
	// lastArrival is the arrival of the last segment: no segment arrives
	// before it (in-order delivery).
	lastArrival int64
}

// network returns the network at instant t.
func (c *conn) network(t int64) *Network {
	if s := c.sc; s.NoisyFor > 0 && t >= int64(s.NoisyFrom) && t < int64(s.NoisyFrom+s.NoisyFor) {
		return &s.Noisy
	}
	return &c.net
}

// send carries a segment the client sends at t, and returns when it
// arrives and when the transmission that got through left.
func (c *conn) send(t int64, rng *rand.Rand) (arrive, tx int64) {
	arrive, tx, backoff := c.deliver(t, rng)
	c.backoffUntil = max(c.backoffUntil, backoff)
	c.lastArrival = arrive
	return arrive, tx
}

// deliver works out a segment sent at t without changing the connection:
// its arrival, the instant of its last transmission, and the end of the
// backoff it caused (or t).
func (c *conn) deliver(t int64, rng *rand.Rand) (arrive, tx, backoff int64) {
	tx = t
	if t < c.backoffUntil {
		tx = c.backoffUntil // queued behind a segment being retransmitted
	} else {
		for rto := rtoMin; c.lost(tx, rng); rto = min(2*rto, rtoMax) {
			tx += rto
		}
	}
	return max(tx+c.delay(tx, rng), c.lastArrival), tx, tx
}

// lost reports whether a transmission at t is lost: in an outage, or by
// chance.
func (c *conn) lost(t int64, rng *rand.Rand) bool {
	if _, out := c.outages.find(t); out {
		return true
	}
	loss := c.network(t).Loss
	return loss > 0 && rng.Float64() < loss
}

// delay draws the one-way delay of a transmission at t.
func (c *conn) delay(t int64, rng *rand.Rand) int64 {
	n := c.network(t)
	d := float64(n.Delay)
	if n.Jitter > 0 {
		d += float64(n.Jitter) * rng.ExpFloat64()
	}
	if n.SpikeProb > 0 && rng.Float64() < n.SpikeProb {
		d += float64(n.SpikeMean) * rng.ExpFloat64()
	}
	return int64(d)
}

// events draws the windows of a heavy-tailed kind of event over [0, end).
func events(h *HeavyTail, end int64, rng *rand.Rand) windows {
	if h == nil {
		return nil
	}
	var ws windows
	t := int64(0)
	for {
		t += int64(float64(h.Every) * rng.ExpFloat64())
		if t >= end {
			return ws
		}
		// Pareto by inversion: Min / U^(1/α), U uniform in (0, 1].
		u := 1 - rng.Float64()
		d := min(float64(h.Min)/math.Pow(u, 1/h.Alpha), float64(h.Max))
		w := window{t, t + int64(d)}
		if n := len(ws); n > 0 && w.from <= ws[n-1].to { // overlapping: one longer event
			ws[n-1].to = max(ws[n-1].to, w.to)
		} else {
			ws = append(ws, w)
		}
		t = w.to
	}
}
