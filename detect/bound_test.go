package detect

import (
	"testing"
	"time"
)

func TestScale(t *testing.T) {
	for _, c := range []struct{ d, num, den, want time.Duration }{
		{15 * time.Second, 30 * time.Second, 3 * time.Second, 150 * time.Second},
		{4500 * time.Millisecond, time.Second, 3 * time.Second, 1500 * time.Millisecond},
		{1000 * time.Hour, 24 * time.Hour, time.Millisecond, 1<<63 - 1}, // saturates rather than wraps
		{0, time.Second, 3 * time.Second, 0},
	} {
		if got := scale(c.d, c.num, c.den); got != c.want {
			t.Errorf("scale(%v, %v, %v) = %v, want %v", c.d, c.num, c.den, got, c.want)
		}
	}
}

func TestBound(t *testing.T) {
	for _, c := range []struct {
		at, suspect, dead, limit time.Duration
		want                     Deadlines
	}{
		{10, 12, 20, 100, Deadlines{12, 20}},
		{10, 5, 20, 100, Deadlines{11, 20}},  // suspect before the beat
		{10, 50, 500, 15, Deadlines{25, 25}}, // both past the limit
		{10, 30, 20, 100, Deadlines{20, 20}}, // suspect after dead
	} {
		if got := bound(c.at, c.suspect, c.dead, c.limit); got != c.want {
			t.Errorf("bound(%v, %v, %v, %v) = %+v, want %+v", c.at, c.suspect, c.dead, c.limit, got, c.want)
		}
	}
}
