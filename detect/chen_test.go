package detect

import (
	"testing"
	"time"

	"github.com/pulsehq/pulse"
)

// Chen's estimate, worked by hand: Δ = 1 s, n = 3, margins 0.5 s and 2 s.
// Each arrival's offset from the schedule is A(i) - Δ·s(i); the next beat
// is expected at the mean offset plus Δ·(s(l) + 1).
func TestChenExpectedArrival(t *testing.T) {
	p, err := NewChen(pulse.Timing{Interval: time.Second, Misses: 10},
		ChenConfig{Suspect: 500 * time.Millisecond, Dead: 2 * time.Second, Window: 3})
	if err != nil {
		t.Fatal(err)
	}
	tr := p.Track(time.Second)
	ms := time.Millisecond
	for _, c := range []struct {
		at, expected time.Duration
		why          string
	}{
		{0, 1000 * ms, "s=0, offsets {0}: 0 + 1 s"},
		{1100 * ms, 2050 * ms, "100 ms late: s=1, offsets {0, 100ms}: 50ms + 2 s"},
		{2000 * ms, 3000*ms + 33_333_333, "50 ms early: s=2, offsets {0, 100ms, 0}: 33.3ms + 3 s"},
		// 1.567 s after the expected 3.033 s, nearer two intervals than
		// one: s=5, offset -400ms replaces the oldest.
		{4600 * ms, 5900 * ms, "s=5, offsets {-400ms, 100ms, 0}: -100ms + 6 s"},
		// A second beat in the same burst, 1.3 s early: the same number.
		{4600 * ms, 6000*ms - 266_666_666, "s=5, offsets {-400ms, -400ms, 0}: -266.7ms + 6 s"},
	} {
		got := tr.Beat(c.at)
		want := Deadlines{Suspect: c.expected + 500*ms, Dead: c.expected + 2*time.Second}
		if got != want {
			t.Errorf("Beat(%v) = %+v, want %+v (%s)", c.at, got, want, c.why)
		}
	}
}

// The deadlines are bounded by the beat and by the timeout: a beat long
// overdue (the expected arrival far behind it) is still given until its
// margin, never less than a nanosecond; and dead never comes later than the
// timeout.
func TestChenBounds(t *testing.T) {
	p, err := NewChen(pulse.Timing{Interval: time.Second, Misses: 2},
		ChenConfig{Suspect: 500 * time.Millisecond, Dead: 5 * time.Second, Window: 4})
	if err != nil {
		t.Fatal(err)
	}
	tr := p.Track(time.Second)
	got := tr.Beat(10 * time.Second)
	want := Deadlines{Suspect: 11500 * time.Millisecond, Dead: 12 * time.Second} // dead capped at the 2 s timeout
	if got != want {
		t.Fatalf("Beat(10s) = %+v, want %+v", got, want)
	}
	// A session granted 2 s has its margins and timeout doubled.
	got = p.Track(2 * time.Second).Beat(0)
	if want := (Deadlines{Suspect: 3 * time.Second, Dead: 4 * time.Second}); got != want {
		t.Fatalf("2s interval: Beat(0) = %+v, want %+v", got, want)
	}
}

func TestRoundDiv(t *testing.T) {
	for _, c := range []struct {
		a, b time.Duration
		want int64
	}{
		{0, 10, 0}, {4, 10, 0}, {5, 10, 1}, {14, 10, 1}, {15, 10, 2},
		{-4, 10, 0}, {-5, 10, -1}, {-15, 10, -2}, {-16, 10, -2},
	} {
		if got := roundDiv(c.a, c.b); got != c.want {
			t.Errorf("roundDiv(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
