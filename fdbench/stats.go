package fdbench

import (
	"slices"
	"time"
)

// Percentiles summarise detection times, in milliseconds.
type Percentiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// percentiles sorts ds and summarises them, nearest rank.
func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		i := int(q*float64(len(ds))+0.999999999) - 1 // nearest rank: ceil(q·n)
		return ms(ds[min(max(i, 0), len(ds)-1)])
	}
	return Percentiles{Count: len(ds), P50: at(0.5), P99: at(0.99), P999: at(0.999), Max: ms(ds[len(ds)-1])}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// massSuspicions counts the episodes in which more than 1 % of the
// sessions became suspect within one second (an episode goes on while
// such seconds follow each other within a second), and the largest share
// of the sessions that became suspect within any one second. at is sorted
// in place.
func massSuspicions(at []int64, sessions int) (episodes int, peak float64) {
	slices.Sort(at)
	const second = int64(time.Second)
	lastOver := int64(-1 << 62)
	most, left := 0, 0
	for i, t := range at {
		for at[left] <= t-second {
			left++
		}
		n := i - left + 1
		most = max(most, n)
		if n*100 > sessions {
			if t-lastOver > second {
				episodes++
			}
			lastOver = t
		}
	}
	if sessions > 0 {
		peak = float64(most) / float64(sessions)
	}
	return episodes, peak
}
