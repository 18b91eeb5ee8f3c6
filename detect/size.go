package detect

import (
	"runtime"
	"time"
)

// StateBytes measures the heap that one session's tracker of p takes, for
// a session granted interval: it makes a thousand trackers, gives each a
// beat, and divides the bytes allocated. It counts what the allocator
// really hands out (size classes included) and nothing that trackers
// share. It runs the garbage collector; call it from tools and tests, not
// from a server.
func StateBytes(p Policy, interval time.Duration) int {
	const n = 1000
	keep := make([]Tracker, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range keep {
		keep[i] = p.Track(interval)
		keep[i].Beat(time.Duration(i))
	}
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	return int((after.TotalAlloc - before.TotalAlloc + n/2) / n)
}
