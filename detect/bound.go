package detect

import (
	"math/bits"
	"time"
)

// bound keeps the deadlines that follow a beat at the instant at within
// what the registry and the clients were promised: suspect strictly after
// the beat, dead no later than limit after it (the timeout that WELCOME
// tells clients), and suspect never after dead. Every adaptive policy
// passes its deadlines through it, so that a silent session always dies.
func bound(at, suspect, dead, limit time.Duration) Deadlines {
	dead = min(dead, at+limit)
	suspect = min(max(suspect, at+1), dead)
	dead = max(dead, suspect)
	return Deadlines{Suspect: suspect, Dead: dead}
}

// scale returns d × num / den, exactly and without overflow for positive
// durations (the result saturates at the largest duration). It carries a
// policy's durations, given for the server's interval, to a session that
// was granted another interval.
func scale(d, num, den time.Duration) time.Duration {
	if num == den || d <= 0 || num <= 0 || den <= 0 {
		return d
	}
	hi, lo := bits.Mul64(uint64(d), uint64(num))
	if hi >= uint64(den) {
		return 1<<63 - 1
	}
	q, _ := bits.Div64(hi, lo, uint64(den))
	if q > 1<<63-1 {
		return 1<<63 - 1
	}
	return time.Duration(q)
}

// durationOf converts nanoseconds held in a float64 to a duration,
// rounding to the nearest and saturating instead of overflowing.
func durationOf(ns float64) time.Duration {
	switch {
	case ns != ns: // NaN: never from finite inputs, but never a panic either
		return 1<<63 - 1
	case ns >= 1<<63-1:
		return 1<<63 - 1
	case ns <= 0:
		return 0
	}
	return time.Duration(ns + 0.5)
}
