package registry

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/detect"
)

// TestConcurrentLifecycles races beats, judgments, replacements, kicks and
// leaves on real time with millisecond timing, then checks that the event
// stream tells a consistent story: numbered without gaps, and for every
// session joined, then alternating suspect and recovered, then exactly one
// end, then nothing.
func TestConcurrentLifecycles(t *testing.T) {
	timing := pulse.Timing{Interval: time.Millisecond, Misses: 3}
	r, err := New(Config{Policy: detect.NewFixed(timing), Interval: timing.Interval, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	sub := r.Subscribe(1 << 20)
	var wg sync.WaitGroup
	const workers, perWorker = 16, 20
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range perWorker {
				name := fmt.Sprintf("n%d", rng.IntN(24)) // shared names: replacements
				h, err := r.Join(Join{Name: name, Link: &link{}})
				if err != nil {
					t.Error(err)
					return
				}
				for range rng.IntN(50) {
					time.Sleep(time.Duration(rng.IntN(4000)) * time.Microsecond)
					h.Beat(time.Duration(rng.IntN(100)) * time.Microsecond)
					if rng.IntN(40) == 0 {
						_, _ = r.Kick(fmt.Sprintf("n%d", rng.IntN(24)), "")
					}
				}
				h.Leave(pulse.ReasonBye, "")
			}
		})
	}
	wg.Wait()
	r.Close()

	type life struct {
		state pulse.State
		ended bool
	}
	lives := map[string]*life{}
	var seq uint64
	n := 0
	for ev := range sub.C() {
		n++
		seq++
		if ev.Seq != seq {
			t.Fatalf("event %d has seq %d", seq, ev.Seq)
		}
		l := lives[ev.Session.ID]
		if ev.Kind == pulse.EventJoined {
			if l != nil {
				t.Fatalf("session %s joined twice", ev.Session.ID)
			}
			lives[ev.Session.ID] = &life{state: pulse.StateAlive}
			continue
		}
		if l == nil || l.ended {
			t.Fatalf("%s of session %s that is not live", ev.Kind, ev.Session.ID)
		}
		switch ev.Kind {
		case pulse.EventSuspect:
			if l.state != pulse.StateAlive {
				t.Fatalf("suspect while %v", l.state)
			}
			l.state = pulse.StateSuspect
		case pulse.EventRecovered:
			if l.state != pulse.StateSuspect {
				t.Fatalf("recovered while %v", l.state)
			}
			l.state = pulse.StateAlive
		default:
			if !ev.Kind.Ends() {
				t.Fatalf("unexpected kind %v", ev.Kind)
			}
			l.ended = true
		}
	}
	if sub.Err() != ErrClosed {
		t.Fatalf("subscription ended with %v", sub.Err())
	}
	for id, l := range lives {
		if !l.ended {
			t.Fatalf("session %s never ended", id)
		}
	}
	if len(lives) != workers*perWorker {
		t.Fatalf("%d sessions joined, want %d", len(lives), workers*perWorker)
	}
}
