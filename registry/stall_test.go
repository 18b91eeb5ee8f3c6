package registry

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/detect"
)

// staller stops the registry's scheduler, as a stalled process would be
// stopped, while the rest of the test goes on.
type staller struct {
	next chan time.Duration // the length of a stall from the next wake-up
	at   chan time.Time     // when it began

	mu       sync.Mutex
	from, to time.Time // the scheduler does not run in [from, to)
}

func newStaller(cfg *Config) *staller {
	s := &staller{next: make(chan time.Duration, 1), at: make(chan time.Time, 1)}
	cfg.beforeAdvance = func() {
		s.mu.Lock()
		from, to := s.from, s.to
		s.mu.Unlock()
		if now := time.Now(); !now.Before(from) && now.Before(to) {
			time.Sleep(to.Sub(now)) // woke in the window: runs at its end
		}
		select {
		case d := <-s.next:
			s.at <- time.Now()
			time.Sleep(d) // the scheduler does not run: a stall
		default:
		}
	}
	return s
}

// stall stops the scheduler for d from its next wake-up and returns when
// the stall began.
func (s *staller) stall(d time.Duration) time.Time {
	s.next <- d
	return <-s.at
}

// window stops the scheduler from now for d: if it is due to wake in that
// time, it runs at the end.
func (s *staller) window(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.from = time.Now()
	s.to = s.from.Add(d)
}

func stallConfig() Config {
	return Config{Policy: detect.NewFixed(pulse.DefaultTiming()), Interval: 3 * time.Second, Logger: quiet}
}

// TestStallReadsBeforeJudging is the case on fake time: 100
// sessions beat every 3 s and one ("ghost") stops at 9 s; the server
// stalls for 20 s, longer than the 15 s timeout. The beats sent meanwhile
// wait in socket buffers and are read by the transports' catch-up a
// moment after the server resumes. With the guard, no healthy session is
// judged; the ghost, whose deadlines passed during the stall, is declared
// dead when the hold ends (catch-up + grace), and a stall event says what
// happened. Without it (the control), every session dies on resume.
func TestStallReadsBeforeJudging(t *testing.T) {
	for _, guard := range []bool{true, false} {
		t.Run(fmt.Sprintf("guard=%v", guard), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := stallConfig()
				if !guard {
					cfg.StallThreshold = -1
				}
				asked := make(chan func(), 1)
				cfg.CatchUp = func(done func()) { asked <- done }
				st := newStaller(&cfg)
				r, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				sub := r.Subscribe(0)
				start := time.Now()
				var healthy []*Handle
				for i := range 100 {
					h, _ := join(t, r, fmt.Sprintf("s%02d", i))
					healthy = append(healthy, h)
				}
				ghost, _ := join(t, r, "ghost")
				for range 3 {
					time.Sleep(3 * time.Second)
					for _, h := range healthy {
						h.Beat(0)
					}
					ghost.Beat(0)
				} // 9 s: the ghost's last beat; it is dead at 24 s

				began := st.stall(20 * time.Second)
				resumed := began.Add(20 * time.Second)
				// The transport reads the beats of the stall 30 ms after
				// the server resumes, and says it has caught up.
				time.Sleep(time.Until(resumed) + 30*time.Millisecond)
				for _, h := range healthy {
					h.Beat(0)
				}
				caughtUp := time.Now()
				if guard {
					select {
					case done := <-asked:
						done()
					default:
						t.Fatal("the transports were not asked to catch up")
					}
				}
				// The healthy sessions beat on.
				for range 3 {
					time.Sleep(3 * time.Second)
					for _, h := range healthy {
						h.Beat(0)
					}
				}
				evs := drain(t, sub)
				counts := map[pulse.EventKind]int{}
				for _, ev := range evs {
					counts[ev.Kind]++
				}
				if !guard {
					if counts[pulse.EventDead] != 101 || counts[pulse.EventStall] != 0 {
						t.Fatalf("without the guard every session should die on resume: %v", counts)
					}
					return
				}
				if counts[pulse.EventJoined] != 101 || counts[pulse.EventStall] != 1 || counts[pulse.EventDead] != 1 || len(evs) != 103 {
					t.Fatalf("events with the guard: %v", counts)
				}
				stall, dead := evs[101], evs[102]
				want := pulse.Stall{Length: 20 * time.Second, Overdue: 101, Grace: DefaultStallGrace}
				if stall.Kind != pulse.EventStall || stall.Stall == nil || *stall.Stall != want ||
					!stall.Time.Equal(resumed) || stall.Reason != pulse.ReasonLateWakeup || stall.Session.Name != "" ||
					stall.Detail != "the server did not run for at least 20s; 101 sessions past a deadline; suspect and dead judgments held until what arrived meanwhile is read, then 2s more" {
					t.Fatalf("stall event %+v, stall %+v", stall, stall.Stall)
				}
				if dead.Kind != pulse.EventDead || dead.Session.Name != "ghost" ||
					!dead.Time.Equal(caughtUp.Add(DefaultStallGrace)) || dead.Deadline.Sub(start) != 24*time.Second {
					t.Fatalf("the ghost: %s at %v (deadline %v), want dead at the end of the hold, %v",
						kinds(evs[102:]), dead.Time.Sub(start), dead.Deadline.Sub(start), caughtUp.Add(DefaultStallGrace).Sub(start))
				}
			})
		})
	}
}

// TestStallNoticedWhereverItFalls: the scheduler wakes every quarter
// threshold even with nothing to judge (here the next deadline is minutes
// away), so a stall of 1.25 thresholds is noticed at whatever phase it
// begins, and a pause shorter than the threshold is not a stall.
func TestStallNoticedWhereverItFalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := stallConfig()
		st := newStaller(&cfg)
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		sub := r.Subscribe(0)
		r.Join(Join{Name: "phone", Interval: 5 * time.Minute, Link: &link{}}) // suspect in 7.5 min
		time.Sleep(time.Second)
		st.stall(DefaultStallThreshold - time.Millisecond)
		time.Sleep(time.Second)
		if evs := drain(t, sub); kinds(evs) != "joined:phone" {
			t.Fatalf("after a pause under the threshold: %s", kinds(evs))
		}
		longest := DefaultStallThreshold + DefaultStallThreshold/stallTicksPerThreshold
		for phase := time.Duration(0); phase < DefaultStallThreshold/stallTicksPerThreshold; phase += 17 * time.Millisecond {
			time.Sleep(10*time.Second + phase)
			st.window(longest)
			time.Sleep(longest + time.Second)
			evs := drain(t, sub)
			if kinds(evs) != "stall:" || evs[0].Stall.Length < DefaultStallThreshold || evs[0].Stall.Overdue != 0 {
				t.Fatalf("a stall of %v at phase %v: %s", longest, phase, kinds(evs))
			}
		}
	})
}

// TestStallCatchUpLimit: transports that never say they caught up hold
// judgments for StallCatchUpLimit at most.
func TestStallCatchUpLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := stallConfig()
		cfg.CatchUp = func(func()) {} // never done
		st := newStaller(&cfg)
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		sub := r.Subscribe(0)
		join(t, r, "mute") // dead at 15 s
		began := st.stall(20 * time.Second)
		time.Sleep(time.Until(began.Add(20*time.Second)) + StallCatchUpLimit + time.Second)
		evs := drain(t, sub)
		if kinds(evs) != "joined:mute stall: dead:mute" || evs[2].Time.Sub(evs[1].Time) != StallCatchUpLimit {
			t.Fatalf("events %s; dead %v after the stall's notice, want %v", kinds(evs), evs[len(evs)-1].Time.Sub(evs[1].Time), StallCatchUpLimit)
		}
	})
}

// TestStallAgainDuringHold: a second stall during the hold holds afresh;
// the first stall's late catch-up does not end the second's hold, and a
// negative grace means judging right after the catch-up.
func TestStallAgainDuringHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := stallConfig()
		cfg.StallGrace = -1
		asked := make(chan func(), 2)
		cfg.CatchUp = func(done func()) { asked <- done }
		st := newStaller(&cfg)
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		sub := r.Subscribe(0)
		join(t, r, "mute") // dead at 15 s
		st.stall(20 * time.Second)
		first := <-asked
		st.stall(time.Second) // the next wake-up, during the hold
		second := <-asked
		first()
		time.Sleep(time.Second)
		if evs := drain(t, sub); kinds(evs) != "joined:mute stall: stall:" {
			t.Fatalf("after the first stall's catch-up: %s", kinds(evs))
		}
		second()
		caughtUp := time.Now()
		evs := drain(t, sub)
		if kinds(evs) != "dead:mute" || !evs[0].Time.Equal(caughtUp) {
			t.Fatalf("after the second catch-up: %s", kinds(evs))
		}
	})
}

func TestStallThresholdTooShort(t *testing.T) {
	cfg := stallConfig()
	cfg.StallThreshold = time.Millisecond // the scheduler would wake every 250 µs, under the 1 ms resolution
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "StallThreshold must be at least 4ms") {
		t.Fatalf("New with a 1 ms stall threshold: %v", err)
	}
}
