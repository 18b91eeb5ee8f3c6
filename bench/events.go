package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/httpapi"
)

// watcher follows the server's event stream and tallies the events of the
// run's own clients: the deaths of the silenced ones and how late they
// came, how the disconnected ones left, and the suspects and deaths among
// the clients that were healthy when they were declared.
type watcher struct {
	cl    *httpapi.Client
	names names
	roles roles

	ready chan struct{} // closed once the stream has started, or failed to
	done  chan struct{} // closed when run returns

	mu       sync.Mutex
	err      error // why the stream could not start
	inWindow bool  // the ramp is over
	failed   bool  // the failing clients have been told to fail
	frozen   bool  // the run is over: later events are not counted
	suspects int   // suspect events of the run's clients, for progress
	deaths   int
	late     map[int]float64 // silenced client → how late its death came, ms
	noLate   int             // deaths of silenced clients without a lateness
	ends     map[int]string  // leaver → how its session ended
	falseSus int
	falseDie int
	rampSus  int // of falseSus, declared during the ramp
	rampDie  int
	other    map[string]int // replaced, kicked, healthy clients leaving
	resets   int            // times the stream could not resume: events lost
}

func newWatcher(cl *httpapi.Client, nm names, rl roles) *watcher {
	return &watcher{cl: cl, names: nm, roles: rl, ready: make(chan struct{}), done: make(chan struct{}),
		late: map[int]float64{}, ends: map[int]string{}, other: map[string]int{}}
}

// start follows the stream until streamCtx ends. It returns once the
// stream has started, so that no event of a client that connects
// afterwards is missed, or with an error if it could not start within
// wait, or when ctx ends first.
func (w *watcher) start(streamCtx, ctx context.Context, wait time.Duration) error {
	go w.run(streamCtx)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-w.ready:
	case <-t.C:
		return fmt.Errorf("%w: the event stream of %s did not start within %v", ErrUnreachable, w.cl.Base(), wait)
	case <-ctx.Done():
		return ctx.Err()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *watcher) run(ctx context.Context) {
	defer close(w.done)
	var (
		lastID    string
		readyOnce sync.Once
		started   bool
	)
	markReady := func(err error) {
		readyOnce.Do(func() {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			close(w.ready)
		})
	}
	for backoff := 250 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		err := w.cl.Events(ctx, lastID, func(m httpapi.Message) error {
			switch m.Type {
			case "ready":
				started = true
				markReady(nil)
			case "reset":
				if lastID != "" {
					w.mu.Lock()
					w.resets++
					w.mu.Unlock()
				}
			case "event":
				w.record(m.Event)
			}
			lastID = m.ID
			return nil
		})
		if ctx.Err() != nil {
			markReady(ctx.Err())
			return
		}
		var apiErr *httpapi.Error
		if !started || errors.As(err, &apiErr) {
			markReady(fmt.Errorf("%w: %w", ErrUnreachable, err))
			return
		}
		// The server dropped the stream (it fell behind) or went away:
		// resume where it stopped.
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
	}
}

// record tallies one event.
func (w *watcher) record(ev httpapi.Event) {
	i, ok := w.names.index(ev.Session.Name)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.frozen {
		return
	}
	switch ev.Kind {
	case pulse.EventSuspect:
		w.suspects++
	case pulse.EventDead:
		w.deaths++
	}
	failing := w.failed && w.roles.of(i) != healthy
	switch {
	case failing && w.roles.of(i) == silent && ev.Kind == pulse.EventDead:
		if _, seen := w.late[i]; seen {
			return
		}
		switch {
		case ev.LateMillis != nil:
			w.late[i] = *ev.LateMillis
		case ev.Deadline != nil:
			w.late[i] = millis(ev.Time.Sub(*ev.Deadline))
		default:
			w.noLate++
		}
	case failing && w.roles.of(i) == leaver && isEnd(ev.Kind):
		how := string(ev.Kind)
		if ev.Kind == pulse.EventLeft {
			how = ev.Reason
		}
		if _, seen := w.ends[i]; !seen {
			w.ends[i] = how
		}
	case failing: // a silenced client suspect: on the way to its death
	case ev.Kind == pulse.EventSuspect:
		w.falseSus++
		if !w.inWindow {
			w.rampSus++
		}
	case ev.Kind == pulse.EventDead:
		w.falseDie++
		if !w.inWindow {
			w.rampDie++
		}
	case ev.Kind == pulse.EventReplaced, ev.Kind == pulse.EventKicked:
		w.other[string(ev.Kind)]++
	case ev.Kind == pulse.EventLeft:
		w.other["left_"+ev.Reason]++
	}
}

func isEnd(k pulse.EventKind) bool {
	switch k {
	case pulse.EventLeft, pulse.EventDead, pulse.EventReplaced, pulse.EventKicked:
		return true
	}
	return false
}

// window marks the end of the ramp.
func (w *watcher) window() {
	w.mu.Lock()
	w.inWindow = true
	w.mu.Unlock()
}

// fail marks the moment the failing clients were told to fail: their
// events from then on are expected.
func (w *watcher) fail() {
	w.mu.Lock()
	w.failed = true
	w.mu.Unlock()
}

// freeze stops the tally, before the clients say BYE.
func (w *watcher) freeze() {
	w.mu.Lock()
	w.frozen = true
	w.mu.Unlock()
}

// tally is what the watcher has seen so far.
type tally struct {
	suspects, deaths int
	late             []float64
	deadSilenced     int
	ends             map[string]int // how the leavers' sessions ended
	leaversEnded     int
	falseSuspects    int
	falseDeaths      int
	rampSuspects     int
	rampDeaths       int
	other            map[string]int
	resets           int
}

func (w *watcher) tally() tally {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := tally{suspects: w.suspects, deaths: w.deaths, deadSilenced: len(w.late) + w.noLate,
		ends: map[string]int{}, leaversEnded: len(w.ends), falseSuspects: w.falseSus,
		falseDeaths: w.falseDie, rampSuspects: w.rampSus, rampDeaths: w.rampDie, other: maps.Clone(w.other),
		resets: w.resets}
	for _, l := range w.late {
		t.late = append(t.late, l)
	}
	for _, how := range w.ends {
		t.ends[how]++
	}
	return t
}
