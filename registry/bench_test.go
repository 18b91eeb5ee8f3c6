package registry

import (
	"fmt"
	"testing"

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
