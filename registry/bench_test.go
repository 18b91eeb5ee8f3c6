package registry

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/detect"
)

type nopLink struct{}

func (nopLink) End(pulse.EventKind, string) {}

// BenchmarkBeat measures one beat on a table of n sessions, round-robin, so
// that each beat touches a different session as a server's would.
func BenchmarkBeat(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			timing := pulse.DefaultTiming()
			r, err := New(Config{Policy: detect.NewFixed(timing), Interval: timing.Interval, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			hs := make([]*Handle, n)
			for i := range hs {
				if hs[i], err = r.Join(Join{Name: fmt.Sprintf("s%07d", i), Peer: "127.0.0.1:40000", Link: nopLink{}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			i := 0
			for b.Loop() {
				hs[i].Beat(0)
				if i++; i == n {
					i = 0
				}
			}
		})
	}
}

// BenchmarkPage measures one page of 100 sessions from the middle of a
// table of n, whole and filtered: its cost must not grow with n.
func BenchmarkPage(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		timing := pulse.Timing{Interval: time.Hour, Misses: 5} // nobody turns suspect while it runs
		r, err := New(Config{Policy: detect.NewFixed(timing), Interval: timing.Interval, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		for i := range n {
			if _, err := r.Join(Join{Name: fmt.Sprintf("s%07d", i), Peer: "127.0.0.1:40000", Link: nopLink{}}); err != nil {
				b.Fatal(err)
			}
		}
		middle := fmt.Sprintf("s%07d", n/2)
		for _, q := range []struct {
			name  string
			query Query
		}{
			{"all", Query{After: middle, Limit: 100}},
			{"prefix", Query{Prefix: middle[:len(middle)-2], Limit: 100}},
			{"suspect", Query{State: pulse.StateSuspect, Limit: 100}}, // none are
			{"alive", Query{State: pulse.StateAlive, After: middle, Limit: 100}},
		} {
			b.Run(fmt.Sprintf("sessions=%d/%s", n, q.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if p := r.Page(q.query); len(p.Sessions) == 0 && q.name != "suspect" {
						b.Fatal("empty page")
					}
				}
			})
		}
		r.Close()
	}
}

// BenchmarkSessionMemory reports the heap bytes one session takes in the
// table (entry, name, indexes, deadline tracker), at n sessions.
func BenchmarkSessionMemory(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			names := make([]string, n)
			for i := range names {
				names[i] = fmt.Sprintf("s%07d", i) // the client's name: part of a session
			}
			var perSession float64
			for b.Loop() {
				timing := pulse.Timing{Interval: time.Hour, Misses: 5}
				r, err := New(Config{Policy: detect.NewFixed(timing), Interval: timing.Interval, Logger: quiet})
				if err != nil {
					b.Fatal(err)
				}
				before := heapInUse()
				for _, name := range names {
					if _, err := r.Join(Join{Name: name, Peer: "127.0.0.1:40000", Link: nopLink{}}); err != nil {
						b.Fatal(err)
					}
				}
				r.Close() // the join events delivered: what is left is the table
				perSession = float64(heapInUse()-before) / float64(n)
				runtime.KeepAlive(r)
			}
			b.ReportMetric(perSession, "B/session")
		})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkExpire measures declaring k sessions dead at once in a table of
// n: the cost must grow with k, not with n. Each round makes k sessions
// due now and advances the wheel, which judges them (wheel, check, removal
// from the table and indexes, the dead event).
func BenchmarkExpire(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		timing := pulse.Timing{Interval: time.Hour, Misses: 5} // nobody is due on their own
		r, err := New(Config{Policy: detect.NewFixed(timing), Interval: timing.Interval, Logger: quiet, StallThreshold: -1})
		if err != nil {
			b.Fatal(err)
		}
		hs := make([]*Handle, n)
		for i := range hs {
			if hs[i], err = r.Join(Join{Name: fmt.Sprintf("s%07d", i), Peer: "127.0.0.1:40000", Link: nopLink{}}); err != nil {
				b.Fatal(err)
			}
		}
		for _, k := range []int{10, 100, 1000} {
			b.Run(fmt.Sprintf("sessions=%d/k=%d", n, k), func(b *testing.B) {
				next := 0
				for b.Loop() {
					b.StopTimer()
					doomed := make([]*entry, k)
					for j := range doomed {
						i := (next + j*(n/k)) % n
						if hs[i].e.loadState() == pulse.StateDead { // expired in an earlier round: back it comes
							if hs[i], err = r.Join(Join{Name: hs[i].e.name, Peer: "127.0.0.1:40000", Link: nopLink{}}); err != nil {
								b.Fatal(err)
							}
						}
						doomed[j] = &hs[i].e
					}
					next++
					b.StartTimer()

					r.mu.Lock()
					now := r.now()
					for _, e := range doomed {
						e.suspectAt.Store(now - 2)
						e.deadAt.Store(now - 1)
						r.wheel.remove(e)
						r.wheel.add(e, now)
					}
					r.wheel.advance(now, func(e *entry) { r.check(e, now) })
					r.mu.Unlock()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*k), "ns/session")
			})
		}
		r.Close()
	}
}
