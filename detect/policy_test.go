package detect

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
)

// policies returns one policy of each kind, with its defaults.
func policies(t testing.TB, timing pulse.Timing) []Policy {
	var ps []Policy
	for _, name := range Names {
		p, err := New(name, timing)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

// arrivals returns n beat arrivals every interval with heavy-tailed
// lateness: mostly a few milliseconds, now and then seconds, and bursts
// where several arrive at once.
func arrivals(n int, interval time.Duration, seed uint64) []time.Duration {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]time.Duration, n)
	var last time.Duration
	for i := range out {
		late := time.Duration(rng.ExpFloat64() * float64(5*time.Millisecond))
		if rng.IntN(50) == 0 {
			late += time.Duration(rng.ExpFloat64() * float64(2*interval))
		}
		last = max(last, time.Duration(i)*interval+late)
		out[i] = last
	}
	return out
}

// Whatever the arrivals, every policy's deadlines come after the beat,
// suspect no later than dead, and dead no later than the timeout: a silent
// session always dies, and never later than clients were told. At every
// granted interval.
func TestPolicyDeadlinesBounded(t *testing.T) {
	timing := pulse.DefaultTiming()
	for _, p := range policies(t, timing) {
		for _, interval := range []time.Duration{timing.Interval, time.Second, 30 * time.Second} {
			tr := p.Track(interval)
			limit := scale(timing.Timeout(), interval, timing.Interval)
			for i, at := range arrivals(20_000, interval, uint64(interval)) {
				d := tr.Beat(at)
				if !(at < d.Suspect && d.Suspect <= d.Dead && d.Dead <= at+limit) {
					t.Fatalf("%s, interval %v: beat %d at %v: %+v; want beat < suspect <= dead <= beat + %v",
						p.Name(), interval, i, at, d, limit)
				}
			}
		}
	}
}

// A beat allocates nothing, so a session's state does not grow with its
// beats; and that state, measured as the heap a tracker takes, stays
// under 2 KiB (far under, for the defaults).
func TestPolicyStateBounded(t *testing.T) {
	timing := pulse.DefaultTiming()
	for _, p := range policies(t, timing) {
		tr := p.Track(timing.Interval)
		ats := arrivals(1000, timing.Interval, 7)
		i := 0
		if allocs := testing.AllocsPerRun(len(ats)-1, func() { tr.Beat(ats[i]); i++ }); allocs != 0 {
			t.Errorf("%s: %v allocations a beat, want none", p.Name(), allocs)
		}
		if b := StateBytes(p, timing.Interval); b > 2048 {
			t.Errorf("%s: %d bytes a session, want at most 2048", p.Name(), b)
		}
	}
	// The fixed policy keeps nothing per session; chen's window is the
	// largest state: 8 bytes an arrival.
	if b := StateBytes(NewFixed(timing), timing.Interval); b != 0 {
		t.Errorf("fixed: %d bytes a session, want 0", b)
	}
	big, err := NewChen(timing, ChenConfig{Suspect: time.Second, Dead: 5 * time.Second, Window: maxChenWindow})
	if err != nil {
		t.Fatal(err)
	}
	if b := StateBytes(big, timing.Interval); b > 2048 {
		t.Errorf("chen with the largest window: %d bytes a session, want at most 2048", b)
	}
}

// BenchmarkTrackerBeat measures one beat of each policy with its defaults,
// over a realistic arrival stream.
func BenchmarkTrackerBeat(b *testing.B) {
	timing := pulse.DefaultTiming()
	ats := arrivals(1<<16, timing.Interval, 3)
	for _, p := range policies(b, timing) {
		b.Run(p.Name(), func(b *testing.B) {
			tr := p.Track(timing.Interval)
			i := 0
			var sink Deadlines
			for b.Loop() {
				sink = tr.Beat(ats[i])
				if i++; i == len(ats) {
					i = 0
					tr = p.Track(timing.Interval) // arrivals start again from 0
				}
			}
			_ = sink
			runtime.KeepAlive(sink)
		})
	}
}
