package registry

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/detect"
)

// TestLongIntervalsOnTheWheel: sessions granted intervals far longer than
// one turn of the wheel (16.4 s at 1 ms) come back to it once a turn and
// are judged exactly on time: each beats 20 times (a day, 4 times), up to
// a third of an interval late, without a suspect, then falls silent and is
// suspect 1.5 intervals and dead 5 intervals after its last beat, to the
// nanosecond. A day, pulse's longest interval, runs with the stall guard
// off, whose wake-ups every 125 ms would make fake days slow to simulate.
func TestLongIntervalsOnTheWheel(t *testing.T) {
	for _, interval := range []time.Duration{30 * time.Second, 5 * time.Minute, 24 * time.Hour} {
		t.Run(interval.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := Config{Policy: detect.NewFixed(pulse.DefaultTiming()), Interval: 3 * time.Second, Logger: quiet}
				beats := 20
				if interval == 24*time.Hour {
					cfg.StallThreshold, beats = -1, 4
				}
				r, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				sub := r.Subscribe(0)
				h, err := r.Join(Join{Name: "slow", Interval: interval, Link: &link{}})
				if err != nil {
					t.Fatal(err)
				}
				if s, _ := r.Lookup("slow"); s.Interval != interval {
					t.Fatalf("session interval %v, want %v", s.Interval, interval)
				}
				for i := range beats {
					time.Sleep(interval + time.Duration(i%3)*interval/6)
					h.Beat(0)
				}
				last := time.Now()
				time.Sleep(5*interval + time.Second)
				evs := drain(t, sub)
				if kinds(evs) != "joined:slow suspect:slow dead:slow" {
					t.Fatalf("events: %s", kinds(evs))
				}
				if sus, dead := evs[1].Time.Sub(last), evs[2].Time.Sub(last); sus != interval*3/2 || dead != 5*interval {
					t.Fatalf("suspect %v and dead %v after the last beat, want %v and %v", sus, dead, interval*3/2, 5*interval)
				}
			})
		})
	}
}
