package registry

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/detect"
)

// link records how the registry ended a session.
type link struct {
	mu     sync.Mutex
	ended  []pulse.EventKind
	detail string
}

func (l *link) End(kind pulse.EventKind, detail string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ended = append(l.ended, kind)
	l.detail = detail
}

func (l *link) endedWith() []pulse.EventKind {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]pulse.EventKind(nil), l.ended...)
}

var quiet = slog.New(slog.DiscardHandler)

func newRegistry(t *testing.T, timing pulse.Timing) *Registry {
	t.Helper()
	r, err := New(Config{Policy: detect.NewFixed(timing), Interval: timing.Interval, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func join(t *testing.T, r *Registry, name string) (*Handle, *link) {
	t.Helper()
	l := &link{}
	h, err := r.Join(Join{Name: name, Peer: "127.0.0.1:1", Link: l})
	if err != nil {
		t.Fatal(err)
	}
	return h, l
}

// drain returns the events delivered so far, once the registry's goroutines
// have settled. Call it inside a synctest bubble.
func drain(t *testing.T, s *Subscription) []pulse.Event {
	t.Helper()
	synctest.Wait()
	var evs []pulse.Event
	for {
		select {
		case ev, ok := <-s.C():
			if !ok {
				return evs
			}
			evs = append(evs, ev)
		default:
			return evs
		}
	}
}

func kinds(evs []pulse.Event) string {
	s := ""
	for i, ev := range evs {
		if i > 0 {
			s += " "
		}
		s += ev.Kind.String() + ":" + ev.Session.Name
	}
	return s
}

// TestSeedScenario replays the seed's case exactly: beats every 3 s, then
// silence. The session is suspect 4.5 s after its last beat and dead 15 s
// after it, to the nanosecond on the fake clock, and its link is ended.
func TestSeedScenario(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, pulse.DefaultTiming())
		sub := r.Subscribe(0)
		start := time.Now()
		h, l := join(t, r, "alice")
		for range 4 {
			time.Sleep(3 * time.Second)
			h.Beat(2 * time.Millisecond)
		}
		last := time.Now() // 12 s
		if evs := drain(t, sub); kinds(evs) != "joined:alice" {
			t.Fatalf("events while beating: %s", kinds(evs))
		}

		time.Sleep(4500*time.Millisecond - time.Nanosecond)
		if evs := drain(t, sub); len(evs) != 0 {
			t.Fatalf("%s before the suspect deadline", kinds(evs))
		}
		time.Sleep(time.Nanosecond)
		evs := drain(t, sub)
		if kinds(evs) != "suspect:alice" {
			t.Fatalf("at last beat + 4.5 s: %s, want suspect", kinds(evs))
		}
		sus := evs[0]
		if sus.Time.Sub(start) != 16500*time.Millisecond || !sus.Deadline.Equal(sus.Time) ||
			sus.Session.State != pulse.StateSuspect || sus.Reason != pulse.ReasonSilent || sus.Detail != "no beat for 4.5s" {
			t.Fatalf("suspect event %+v", sus)
		}
		if s, _ := r.Lookup("alice"); s.State != pulse.StateSuspect || s.Beats != 4 || s.RTT != 2*time.Millisecond || !s.LastBeat.Equal(last.Round(0)) {
			t.Fatalf("session while suspect: %+v", s)
		}

		time.Sleep(time.Until(last.Add(15*time.Second)) - time.Nanosecond)
		if evs := drain(t, sub); len(evs) != 0 || len(l.endedWith()) != 0 {
			t.Fatalf("%s before the dead deadline", kinds(evs))
		}
		time.Sleep(time.Nanosecond)
		evs = drain(t, sub)
		if kinds(evs) != "dead:alice" {
			t.Fatalf("at last beat + 15 s: %s, want dead", kinds(evs))
		}
		dead := evs[0]
		if dead.Time.Sub(start) != 27*time.Second || !dead.Deadline.Equal(dead.Time) ||
			dead.Session.State != pulse.StateDead || dead.Reason != pulse.ReasonTimeout || dead.Detail != "no beat for 15s" {
			t.Fatalf("dead event %+v", dead)
		}
		if got := l.endedWith(); len(got) != 1 || got[0] != pulse.EventDead {
			t.Fatalf("link ended with %v, want [dead]", got)
		}
		if r.Len() != 0 || h.State() != pulse.StateDead {
			t.Fatalf("session not removed: len %d, state %v", r.Len(), h.State())
		}
		// A late beat or leave of a dead session changes nothing.
		h.Beat(0)
		h.Leave(pulse.ReasonClosed, "")
		if evs := drain(t, sub); len(evs) != 0 {
			t.Fatalf("events after death: %s", kinds(evs))
		}
	})
}

// TestSteadyBeatsNeverSuspect: the seed called a healthy client abnormal
// half of the time, from the phase between its beat and the checker's tick.
// With per-session deadlines a client that beats on time is never suspect,
// whatever its phase, even with jitter up to the suspect margin.
func TestSteadyBeatsNeverSuspect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, pulse.DefaultTiming())
		sub := r.Subscribe(0)
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				time.Sleep(time.Duration(i) * 61 * time.Millisecond) // spread phases
				h, _ := join(t, r, fmt.Sprintf("c%d", i))
				for j := range 200 { // 10 minutes
					jitter := time.Duration((i*7+j*13)%1400) * time.Millisecond
					time.Sleep(3*time.Second - 700*time.Millisecond + jitter)
					h.Beat(0)
				}
				h.Leave(pulse.ReasonBye, "")
			})
		}
		wg.Wait()
		joined, left := 0, 0
		for _, ev := range drain(t, sub) {
			switch ev.Kind {
			case pulse.EventJoined:
				joined++
			case pulse.EventLeft:
				left++
			default:
				t.Fatalf("healthy client got %s at %v", ev.Kind, ev.Time)
			}
		}
		if joined != 50 || left != 50 {
			t.Fatalf("joined %d, left %d; want 50 each", joined, left)
		}
	})
}

func TestRecovered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, pulse.DefaultTiming())
		sub := r.Subscribe(0)
		h, l := join(t, r, "bob")
		time.Sleep(10 * time.Second) // suspect at 4.5 s
		h.Beat(0)
		evs := drain(t, sub)
		if kinds(evs) != "joined:bob suspect:bob recovered:bob" {
			t.Fatalf("events: %s", kinds(evs))
		}
		if rec := evs[2]; rec.Session.State != pulse.StateAlive || rec.Reason != pulse.ReasonBeat || rec.Time.Sub(evs[0].Time) != 10*time.Second {
			t.Fatalf("recovered event %+v", rec)
		}
		// Recovery counts from the new beat: dead only 15 s after it.
		time.Sleep(15*time.Second - time.Nanosecond)
		if evs := drain(t, sub); kinds(evs) != "suspect:bob" {
			t.Fatalf("after the recovering beat: %s, want only suspect", kinds(evs))
		}
		time.Sleep(time.Nanosecond)
		if evs := drain(t, sub); kinds(evs) != "dead:bob" || len(l.endedWith()) != 1 {
			t.Fatalf("at beat + 15 s: %s", kinds(evs))
		}
	})
}

func TestReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, pulse.DefaultTiming())
		sub := r.Subscribe(0)
		old, oldLink := join(t, r, "carol")
		newer, newLink := join(t, r, "carol")
		evs := drain(t, sub)
		if kinds(evs) != "joined:carol replaced:carol joined:carol" {
			t.Fatalf("events: %s", kinds(evs))
		}
		if evs[1].Session.ID != old.ID() || evs[2].Session.ID != newer.ID() || old.ID() == newer.ID() {
			t.Fatalf("replaced %s, joined %s; old %s new %s", evs[1].Session.ID, evs[2].Session.ID, old.ID(), newer.ID())
		}
		if got := oldLink.endedWith(); len(got) != 1 || got[0] != pulse.EventReplaced || len(newLink.endedWith()) != 0 {
			t.Fatalf("old link ended %v, new link ended %v", got, newLink.endedWith())
		}
		// The old handle no longer speaks for the name.
		old.Leave(pulse.ReasonClosed, "")
		old.Beat(0)
		if s, ok := r.Lookup("carol"); !ok || s.ID != newer.ID() {
			t.Fatalf("carol is %+v, %v; want the new session", s, ok)
		}
		if evs := drain(t, sub); len(evs) != 0 {
			t.Fatalf("the old session's end made events: %s", kinds(evs))
		}
		// And it is not judged either.
		time.Sleep(14 * time.Second)
		newer.Beat(0)
		time.Sleep(14 * time.Second)
		newer.Beat(0)
		if evs := drain(t, sub); kinds(evs) != "suspect:carol recovered:carol suspect:carol recovered:carol" {
			t.Fatalf("events: %s", kinds(evs))
		}
	})
}

func TestKickAndLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, pulse.DefaultTiming())
		sub := r.Subscribe(0)
		_, dl := join(t, r, "dave")
		eve, el := join(t, r, "eve")
		if _, err := r.Kick("dave", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Kick("dave", ""); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second kick: %v, want ErrNotFound", err)
		}
		eve.Leave(pulse.ReasonBye, "see you")
		eve.Leave(pulse.ReasonClosed, "")
		evs := drain(t, sub)
		if kinds(evs) != "joined:dave joined:eve kicked:dave left:eve" {
			t.Fatalf("events: %s", kinds(evs))
		}
		if k := evs[2]; k.Reason != pulse.ReasonKicked || k.Detail != "removed by an operator" || k.Session.State != pulse.StateAlive {
			t.Fatalf("kicked event %+v", k)
		}
		if l := evs[3]; l.Reason != pulse.ReasonBye || l.Detail != "see you" {
			t.Fatalf("left event %+v", l)
		}
		if got := dl.endedWith(); len(got) != 1 || got[0] != pulse.EventKicked {
			t.Fatalf("kicked link ended with %v", got)
		}
		if len(el.endedWith()) != 0 {
			t.Fatal("a session that left had its link ended by the registry")
		}
		for i, ev := range evs {
			if ev.Seq != uint64(i+1) {
				t.Fatalf("event %d has seq %d", i, ev.Seq)
			}
		}
	})
}

func TestJoinRejects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, pulse.DefaultTiming())
		if _, err := r.Join(Join{Name: "bad name", Link: &link{}}); !errors.Is(err, ErrInvalidName) {
			t.Fatalf("bad name: %v", err)
		}
		r.Close()
		if _, err := r.Join(Join{Name: "late", Link: &link{}}); !errors.Is(err, ErrClosed) {
			t.Fatalf("after Close: %v", err)
		}
		if s := r.Subscribe(0); func() bool { _, ok := <-s.C(); return ok }() || !errors.Is(s.Err(), ErrClosed) {
			t.Fatal("a subscription after Close is not closed with ErrClosed")
		}
	})
}

// TestSlowSubscriberIsDropped: a subscriber that does not read is cut off;
// the other subscribers, beats and judgments go on.
func TestSlowSubscriberIsDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, pulse.DefaultTiming())
		slow := r.Subscribe(2)
		fast := r.Subscribe(100)
		for i := range 10 {
			join(t, r, fmt.Sprintf("n%d", i))
		}
		synctest.Wait()
		got := 0
		for range slow.C() {
			got++
		}
		if got != 2 || !errors.Is(slow.Err(), ErrSlowSubscriber) {
			t.Fatalf("slow subscriber got %d events then %v; want 2 then ErrSlowSubscriber", got, slow.Err())
		}
		if evs := drain(t, fast); len(evs) != 10 {
			t.Fatalf("fast subscriber got %d events, want 10", len(evs))
		}
		time.Sleep(15 * time.Second)
		if evs := drain(t, fast); len(evs) != 20 {
			t.Fatalf("after the timeout the fast subscriber got %d more events, want 20 (suspect and dead)", len(evs))
		}
		fast.Close()
		if _, ok := <-fast.C(); ok || fast.Err() != nil {
			t.Fatal("Close did not close the channel cleanly")
		}
	})
}

// TestSnapshotThenEvents: a snapshot with a subscription tells the whole
// story, with no event both in the snapshot and in the stream.
func TestSnapshotThenEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, pulse.DefaultTiming())
		join(t, r, "b")
		join(t, r, "a")
		sub, snap := r.SubscribeWithSnapshot(0)
		join(t, r, "c")
		if len(snap) != 2 || snap[0].Name != "a" || snap[1].Name != "b" {
			t.Fatalf("snapshot %+v", snap)
		}
		if evs := drain(t, sub); kinds(evs) != "joined:c" || evs[0].Seq != 3 {
			t.Fatalf("events after the snapshot: %s", kinds(evs))
		}
		if names := r.Sessions(); len(names) != 3 || names[2].Name != "c" {
			t.Fatalf("Sessions() = %+v", names)
		}
	})
}

// earlier is a policy whose deadlines shrink with every beat, to exercise a
// beat that brings a deadline forward.
type earlier struct{ n time.Duration }

func (p *earlier) Name() string                       { return "earlier" }
func (p *earlier) Track(time.Duration) detect.Tracker { return &earlier{n: 10} }
func (p *earlier) Beat(at time.Duration) detect.Deadlines {
	d := p.n * time.Second
	p.n = max(p.n-4, 1)
	return detect.Deadlines{Suspect: at + d, Dead: at + 2*d}
}

func TestBeatBringsDeadlineForward(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, err := New(Config{Policy: &earlier{}, Interval: time.Second, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		sub := r.Subscribe(0)
		start := time.Now()
		h, _ := join(t, r, "f") // suspect at 10 s
		time.Sleep(time.Second)
		h.Beat(0) // suspect at 1 s + 6 s = 7 s, earlier than planned
		time.Sleep(10 * time.Second)
		evs := drain(t, sub)
		if kinds(evs) != "joined:f suspect:f" || evs[1].Time.Sub(start) != 7*time.Second {
			t.Fatalf("events: %s at %v", kinds(evs), evs[len(evs)-1].Time.Sub(start))
		}
	})
}
