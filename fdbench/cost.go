package fdbench

import (
	"slices"
	"time"

	"github.com/pulsehq/pulse/detect"
)

// nsPerBeat measures the CPU time of one Tracker.Beat of p on the
// arrivals of s, replayed until at least 50 ms have passed: the median of
// five such runs.
func nsPerBeat(p detect.Policy, s *stream) float64 {
	if len(s.arrive) == 0 {
		return 0
	}
	iv := time.Duration(s.interval)
	var runs [5]float64
	for r := range runs {
		beats := 0
		start := time.Now()
		for time.Since(start) < 50*time.Millisecond {
			tr := p.Track(iv)
			for _, a := range s.arrive {
				tr.Beat(time.Duration(a))
			}
			beats += len(s.arrive)
		}
		runs[r] = float64(time.Since(start)) / float64(beats)
	}
	slices.Sort(runs[:])
	return runs[len(runs)/2]
}
