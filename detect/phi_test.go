package detect

import (
	"math"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
)

// The threshold solved for y gives back the threshold through Akka's
// formula for phi, from the mean (phi = log10 2) to 10⁻³⁰⁰.
func TestPhiDeviationsInvertPhi(t *testing.T) {
	if y := phiDeviations(math.Log10(2)); math.Abs(y) > 1e-12 {
		t.Errorf("phi log10(2) is reached at the mean: y = %v, want 0", y)
	}
	for _, phi := range []float64{0.1, 0.5, 1, 3, 5, 8, 12, 16, 50, 100, 300} {
		y := phiDeviations(phi)
		if got := phiOf(y, 0, 1); math.Abs(got-phi) > 1e-9*phi {
			t.Errorf("phi %v: y = %v gives phi %v", phi, y, got)
		}
	}
	// Phi 1 is a silence the model gives a 10 % chance: y solves
	// 0.070566 y³ + 1.5976 y = ln 9, which is 1.28222 to five places.
	if y := phiDeviations(1); math.Abs(y-1.28222) > 5e-6 {
		t.Errorf("phi 1: y = %v, want 1.28222", y)
	}
}

// phiAtDeviation is the threshold that phi reaches at y standard
// deviations past the mean plus pause: a test sets it to get deadlines
// that are exact.
func phiAtDeviation(y float64) float64 { return phiOf(y, 0, 1) }

// The first beat: the model starts at mean = the interval and standard
// deviation a quarter of it (Akka's first-heartbeat estimate).
func TestPhiFirstBeat(t *testing.T) {
	p, err := NewPhi(pulse.Timing{Interval: time.Second, Misses: 10},
		PhiConfig{Suspect: math.Log10(2), Dead: phiAtDeviation(2), MinStd: 100 * time.Millisecond, Pause: 500 * time.Millisecond, Window: 100})
	if err != nil {
		t.Fatal(err)
	}
	got := p.Track(time.Second).Beat(7 * time.Second)
	// suspect at mean + pause (phi log10 2 is the mean itself); dead 2 std later.
	want := Deadlines{Suspect: 8500 * time.Millisecond, Dead: 9 * time.Second}
	if got != want {
		t.Fatalf("Beat(7s) = %+v, want %+v", got, want)
	}
}

// The running mean weighs interval n by 1/n until the window, then by
// 1/window. A large min-std keeps the deviation fixed at 1 s, so that the
// deadlines follow the mean alone, to the nanosecond.
func TestPhiRunningMean(t *testing.T) {
	p, err := NewPhi(pulse.Timing{Interval: time.Second, Misses: 10},
		PhiConfig{Suspect: math.Log10(2), Dead: phiAtDeviation(1), MinStd: time.Second, Pause: 500 * time.Millisecond, Window: 4})
	if err != nil {
		t.Fatal(err)
	}
	tr := p.Track(time.Second)
	ms := time.Millisecond
	for _, c := range []struct {
		at, mean time.Duration
	}{
		{0, 1000 * ms},                          // the starting estimate, weight 2
		{1600 * ms, 1200 * ms},                  // 1.0 + (1.6 - 1.0)/3
		{3200 * ms, 1300 * ms},                  // 1.2 + (1.6 - 1.2)/4: the window is reached
		{4200 * ms, 1225 * ms},                  // 1.3 + (1.0 - 1.3)/4
		{5200 * ms, 1168750 * time.Microsecond}, // 1.225 + (1.0 - 1.225)/4
	} {
		got := tr.Beat(c.at)
		want := Deadlines{Suspect: c.at + c.mean + 500*ms, Dead: c.at + c.mean + 1500*ms}
		if got != want {
			t.Errorf("Beat(%v) = %+v, want %+v (mean %v)", c.at, got, want, c.mean)
		}
	}
	// A beat after the dead deadline (7.86875 s here; only a judgment held
	// through a server stall lets one in) is kept out of the model.
	got := tr.Beat(time.Minute)
	want := Deadlines{Suspect: time.Minute + 1168750*time.Microsecond + 500*ms, Dead: time.Minute + 1168750*time.Microsecond + 1500*ms}
	if got != want {
		t.Errorf("Beat(1m) after the dead deadline = %+v, want %+v", got, want)
	}
}

// The variance: intervals of 1 s and 3 s alternating, window 2, weigh
// each new interval by one half. From mean 1 s and variance 0 (set by two
// intervals of 1 s), an interval of 3 s gives mean 2 s and variance
// ½(0 + 2 × 1) = 1 s², std 1 s, above the min-std of 500 ms. (The pause of
// 1 s keeps the 3 s interval within the first dead deadline, 1 + 1 + 3 ×
// 0.5 = 3.5 s, or it would not count.)
func TestPhiVariance(t *testing.T) {
	p, err := NewPhi(pulse.Timing{Interval: time.Second, Misses: 30},
		PhiConfig{Suspect: math.Log10(2), Dead: phiAtDeviation(3), MinStd: 500 * time.Millisecond, Pause: time.Second, Window: 2})
	if err != nil {
		t.Fatal(err)
	}
	tr := p.Track(time.Second).(*phiTracker)
	tr.variance = 0 // as if the starting intervals had been exactly 1 s
	tr.Beat(0)
	got := tr.Beat(3 * time.Second)
	want := Deadlines{Suspect: 6 * time.Second, Dead: 9 * time.Second} // 3 + 2 + 1, and 3 std of 1 s later
	if got != want {
		t.Fatalf("Beat(3s) = %+v, want %+v (mean %v, variance %v)", got, want, tr.mean, tr.variance)
	}
}

// Deadlines never pass the timeout of the timing, however unsure the
// model: a silent session always dies.
func TestPhiDeadCappedAtTimeout(t *testing.T) {
	p, err := NewPhi(pulse.Timing{Interval: time.Second, Misses: 5},
		PhiConfig{Suspect: 100, Dead: 300, MinStd: time.Second, Pause: time.Minute, Window: 10})
	if err != nil {
		t.Fatal(err)
	}
	got := p.Track(time.Second).Beat(time.Hour)
	want := Deadlines{Suspect: time.Hour + 5*time.Second, Dead: time.Hour + 5*time.Second}
	if got != want {
		t.Fatalf("Beat = %+v, want both at the 5 s timeout: %+v", got, want)
	}
	// A session granted 10 s gets ten times the timeout, pause and min-std.
	got = p.Track(10 * time.Second).Beat(time.Hour)
	if want := time.Hour + 50*time.Second; got.Dead != want {
		t.Fatalf("10s interval: dead %v, want %v", got.Dead, want)
	}
}
