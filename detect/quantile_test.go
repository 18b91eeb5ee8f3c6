package detect

import (
	"testing"
	"time"

	"github.com/pulsehq/pulse"
)

// The histogram's buckets: one a unit below 16 units, then 8 a doubling,
// and the upper edge of each is the lower edge of the next.
func TestQuantileBuckets(t *testing.T) {
	for _, c := range []struct {
		u     uint64
		b     int
		upper float64
	}{
		{0, 0, 1}, {15, 15, 16}, {16, 16, 18}, {17, 16, 18}, {18, 17, 20}, {31, 23, 32},
		{32, 24, 36}, {1023, 63, 1024}, {1024, 64, 1152}, {2047, 71, 2048}, {1 << 40, 71, 2048},
	} {
		if b := quantileBucket(c.u); b != c.b || quantileUpper(b) != c.upper {
			t.Errorf("%d units: bucket %d (upper %v), want %d (upper %v)", c.u, b, quantileUpper(b), c.b, c.upper)
		}
	}
	for b := range quantileBuckets - 1 {
		if edge := quantileUpper(b); quantileBucket(uint64(edge)) != b+1 || quantileBucket(uint64(edge)-1) != b {
			t.Errorf("bucket %d: upper edge %v is not where bucket %d starts", b, edge, b+1)
		}
	}
}

// Worked by hand: interval 1.6 s, so a unit is 100 ms; warm-up 3 silences.
// Until three are seen the fixed delays of the timing apply; then the
// deadlines are multiples of the quantile's bucket edge.
func TestQuantileDeadlines(t *testing.T) {
	timing := pulse.Timing{Interval: 1600 * time.Millisecond, Misses: 10} // suspect 2.4 s, timeout 16 s
	ms := time.Millisecond
	for _, c := range []struct {
		q    float64
		want Deadlines // after the fourth beat, at 5 s
		why  string
	}{
		// Silences of 16, 16 and 18 units fill buckets 16 (up to 18) and
		// 17 (up to 20 units, 2 s).
		{1, Deadlines{Suspect: 5000*ms + 3000*ms, Dead: 5000*ms + 8000*ms}, "the longest: 2 s × 1.5 and × 4"},
		// q=0.5 lets floor(0.5 × 3) = 1 silence lie above: bucket 16, 1.8 s.
		{0.5, Deadlines{Suspect: 5000*ms + 2700*ms, Dead: 5000*ms + 7200*ms}, "the median: 1.8 s × 1.5 and × 4"},
	} {
		p, err := NewQuantile(timing, QuantileConfig{Q: c.q, Suspect: 1.5, Dead: 4, Window: 16, Warmup: 3})
		if err != nil {
			t.Fatal(err)
		}
		tr := p.Track(timing.Interval)
		for _, at := range []time.Duration{0, 1600 * ms, 3200 * ms} {
			if got, want := tr.Beat(at), (Deadlines{Suspect: at + 2400*ms, Dead: at + 16*time.Second}); got != want {
				t.Errorf("q=%v: warming up, Beat(%v) = %+v, want the fixed %+v", c.q, at, got, want)
			}
		}
		if got := tr.Beat(5000 * ms); got != c.want {
			t.Errorf("q=%v: Beat(5s) = %+v, want %+v (%s)", c.q, got, c.want, c.why)
		}
	}
}

// When the histogram holds a window of silences every count is halved, so
// that a lone long silence is forgotten.
func TestQuantileForgets(t *testing.T) {
	timing := pulse.Timing{Interval: 1600 * time.Millisecond, Misses: 10}
	p, err := NewQuantile(timing, QuantileConfig{Q: 1, Suspect: 1.5, Dead: 4, Window: 16, Warmup: 3})
	if err != nil {
		t.Fatal(err)
	}
	tr := p.Track(timing.Interval)
	at := time.Duration(0)
	tr.Beat(at)
	at += 1800 * time.Millisecond // one silence of 18 units: bucket 17, up to 2 s
	tr.Beat(at)
	for i := 2; i <= 15; i++ { // silences 2 to 15, of 16 units
		at += 1600 * time.Millisecond
		if got := tr.Beat(at); i >= 3 && got.Dead != at+8*time.Second {
			t.Fatalf("silence %d: dead %v after the beat, want 8s (the 2 s silence × 4)", i, got.Dead-at)
		}
	}
	at += 1600 * time.Millisecond // the 16th: counts halve, 15 → 7 and 1 → 0
	if got := tr.Beat(at); got.Dead != at+7200*time.Millisecond {
		t.Fatalf("after halving: dead %v after the beat, want 7.2s (1.8 s × 4)", got.Dead-at)
	}
	if tr := tr.(*quantileTracker); tr.total != 7 || tr.counts[16] != 7 || tr.counts[17] != 0 {
		t.Fatalf("after halving: total %d, buckets 16 and 17 hold %d and %d; want 7, 7, 0", tr.total, tr.counts[16], tr.counts[17])
	}
}
