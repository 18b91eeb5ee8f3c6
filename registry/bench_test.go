package registry

import (
	"fmt"
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
