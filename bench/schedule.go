package bench

import (
	"sort"
	"sync/atomic"
	"time"

	"github.com/pulsehq/pulse/wire"
)

// scheduler beats on its share of the connections. Each client beats at
// its own phase of the interval; the scheduler wakes every few
// milliseconds and beats on every client whose phase has come since it
// last woke. No client has a timer of its own.
type scheduler struct {
	r      *runner
	phases []float64              // sorted, each a share of the interval in [0, 1)
	slots  []atomic.Pointer[conn] // slots[k] beats at phases[k]; nil until connected
	sent   [tags]atomic.Uint64
	at     []time.Duration // phases[k] × the interval
	buf    []byte
}

// tickFor is how often a scheduler wakes for an interval: often enough
// that the beats of a wake-up are a small burst, rarely enough to cost
// nothing.
func tickFor(iv time.Duration) time.Duration {
	return min(max(iv/200, time.Millisecond), 10*time.Millisecond)
}

func (s *scheduler) run(iv time.Duration) {
	defer s.r.work.Done()
	s.at = make([]time.Duration, len(s.phases))
	for k, p := range s.phases {
		s.at[k] = min(time.Duration(p*float64(iv)), iv-1)
	}
	tick := time.NewTicker(tickFor(iv))
	defer tick.Stop()
	last := time.Since(s.r.start)
	for {
		select {
		case <-s.r.ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Since(s.r.start)
		s.sweep(last, now, iv)
		last = now
	}
}

// sweep beats on the clients whose phase falls in (from, to]. Behind by
// more than an interval (the process was stalled), each beats once.
func (s *scheduler) sweep(from, to, iv time.Duration) {
	if to-from > iv {
		from = to - iv
	}
	a, b := from%iv, to%iv
	if from/iv == to/iv {
		s.beatRange(a, b)
		return
	}
	s.beatRange(a, iv)
	s.beatRange(-1, b)
}

// beatRange beats on the clients whose phase p has a < p <= b.
func (s *scheduler) beatRange(a, b time.Duration) {
	k := sort.Search(len(s.at), func(k int) bool { return s.at[k] > a })
	for ; k < len(s.at) && s.at[k] <= b; k++ {
		if c := s.slots[k].Load(); c != nil {
			s.slot(c)
		}
	}
}

// slot is client c's turn: it beats, or if it is leaving, closes.
func (s *scheduler) slot(c *conn) {
	r := s.r
	switch c.state.Load() {
	case stateOpen:
		s.beat(c)
	case stateLeaving:
		// Close once the last beat is answered, so that no ACK arrives
		// after the close (which would turn the clean close into a reset).
		if r.acks.Load() && c.ackedSeq.Load() < c.sentSeq.Load() && c.deferred < maxDeferrals {
			c.deferred++
			return
		}
		if c.state.CompareAndSwap(stateLeaving, stateClosing) {
			c.nc.CloseWrite() // the server sees the end and closes; the reader then sees it
			r.disconnected.Add(1)
		}
	}
}

func (s *scheduler) beat(c *conn) {
	r := s.r
	tag := uint64(r.tag.Load())
	c.beats++
	seq := c.beats<<2 | tag
	c.sentSeq.Store(0)
	c.sentAt.Store(int64(time.Since(r.start)))
	c.sentSeq.Store(seq)
	var rtt time.Duration // none in raw mode, or before the first ACK
	if m := time.Duration(c.rtt.Load()); m > 0 && !r.sh.Raw {
		rtt = max(m, time.Microsecond) // under 1 µs would be sent as none
	}
	s.buf = wire.AppendBeat(s.buf[:0], seq, rtt)
	if _, err := c.nc.Write(s.buf); err != nil {
		return // the reader sees the connection end
	}
	s.sent[tag].Add(1)
}
