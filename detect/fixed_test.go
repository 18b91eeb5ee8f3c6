package detect

import (
	"testing"
	"time"

	"github.com/pulsehq/pulse"
)

func TestFixedSeedDeadlines(t *testing.T) {
	p := NewFixed(pulse.DefaultTiming())
	tr := p.Track(3 * time.Second)
	// The seed: beats every 3 s; suspect 4.5 s and dead 15 s after the last.
	for _, at := range []time.Duration{0, 3 * time.Second, 6 * time.Second, 9*time.Second + 7*time.Millisecond} {
		got := tr.Beat(at)
		want := Deadlines{Suspect: at + 4500*time.Millisecond, Dead: at + 15*time.Second}
		if got != want {
			t.Errorf("Beat(%v) = %+v, want %+v", at, got, want)
		}
	}
}

func TestFixedExplicitSuspect(t *testing.T) {
	p := NewFixed(pulse.Timing{Interval: time.Second, Misses: 3, SuspectAfter: 1200 * time.Millisecond})
	got := p.Track(time.Second).Beat(10 * time.Second)
	want := Deadlines{Suspect: 11200 * time.Millisecond, Dead: 13 * time.Second}
	if got != want {
		t.Fatalf("Beat = %+v, want %+v", got, want)
	}
}

func TestFixedOtherIntervalKeepsMisses(t *testing.T) {
	p := NewFixed(pulse.DefaultTiming())
	got := p.Track(30 * time.Second).Beat(0)
	want := Deadlines{Suspect: 45 * time.Second, Dead: 150 * time.Second}
	if got != want {
		t.Fatalf("30s interval: Beat = %+v, want %+v", got, want)
	}
	if p.Track(3*time.Second) != Tracker(p) {
		t.Fatal("the policy's own interval should share the policy as tracker")
	}
}
