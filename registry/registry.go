// Package registry keeps the table of live sessions in memory: it applies
// their beats, declares them suspect and dead on time, and fans their
// events out to subscribers.
//
// Each session has its own deadlines, computed by a detect.Policy from its
// beats. A beat is a few atomic stores on the session and costs the same
// however many sessions there are; deadlines are kept on a timing wheel
// that one goroutine advances, so a death is declared within the wheel's
// resolution (1 ms by default) of its deadline rather than at the next tick
// of a scan. Events are numbered and delivered in order by a second
// goroutine, so neither a slow subscriber nor a slow event hook ever holds
// up a beat or a judgment. When the process itself stalls, the scheduler
// notices by waking late, and judges no one until the transports have read
// what arrived meanwhile (Config.CatchUp) and a grace has passed.
package registry

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/detect"
)

// Link is the registry's handle on the transport of one session.
type Link interface {
	// End tells the transport that the registry removed the session: kind
	// is EventDead, EventReplaced or EventKicked, detail says why in words.
	// The transport tells the client and closes the connection. End is
	// called with the registry's lock held: it must not block and must not
	// call back into the registry.
	End(kind pulse.EventKind, detail string)
}

// Errors the registry returns.
var (
	ErrClosed         = errors.New("registry: closed")
	ErrNotFound       = errors.New("no such session")
	ErrInvalidName    = errors.New("registry: invalid session name")
	ErrSlowSubscriber = errors.New("registry: subscriber fell behind and was dropped")
)

// Defaults for Config fields left zero.
const (
	DefaultResolution     = time.Millisecond
	DefaultStallThreshold = 500 * time.Millisecond
	DefaultStallGrace     = 2 * time.Second
	DefaultSubscriberBuf  = 1024
	wheelSlots            = 1 << 14 // 16.4 s at 1 ms: the default timeout fits in one turn
)

// Config configures a Registry.
type Config struct {
	// Policy computes each session's deadlines from its beats. Required.
	Policy detect.Policy
	// Interval is the beat interval of sessions that join without one. Required.
	Interval time.Duration
	// OnEvent, if set, is called with every event, in order, from the
	// registry's event goroutine (never with its lock held). A slow OnEvent
	// delays delivery to subscribers, not beats or judgments.
	OnEvent func(pulse.Event)
	// Logger receives the registry's own messages, such as a detected
	// stall. Nil means slog.Default().
	Logger *slog.Logger
	// Resolution is the granularity of deadlines: a death is declared at
	// most this long after its deadline. Zero means 1 ms.
	Resolution time.Duration
	// StallThreshold: when the registry's timer fires this much later than
	// it was set for, the process was stalled (GC, CPU starvation, a VM
	// pause, SIGSTOP) and every session may look silent only because its
	// beats have not been read yet. The registry then holds every suspect
	// and dead judgment (see stall.go) and emits a stall event. So that a
	// stall is noticed whenever it happens, the timer never sleeps longer
	// than a quarter of the threshold. Zero means 500 ms; negative
	// disables the guard.
	StallThreshold time.Duration
	// StallGrace is how long judgments stay held after a stall once the
	// transports have read what arrived during it (see CatchUp): time for
	// beats that the stall delayed on their way, or that a transport
	// without CatchUp has yet to read. Zero means 2 s; negative means no
	// grace beyond the catch-up.
	StallGrace time.Duration
	// CatchUp, if set, is called when a stall is noticed, from the
	// registry's scheduler and without its lock: it asks the transports to
	// read what arrived during the stall, and calls done (once, from any
	// goroutine, possibly before it returns) when they have. Judgments
	// are held until then, and StallGrace after; if done does not come
	// within StallCatchUpLimit, judgments resume anyway. Nil means there
	// is nothing to wait for but the grace.
	CatchUp func(done func())

	// beforeAdvance, in tests, runs in the scheduler before each advance.
	beforeAdvance func()
}

func (c *Config) setDefaults() error {
	if c.Policy == nil {
		return errors.New("registry: Config.Policy is required")
	}
	if c.Interval <= 0 {
		return errors.New("registry: Config.Interval must be positive")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Resolution <= 0 {
		c.Resolution = DefaultResolution
	}
	if c.StallThreshold == 0 {
		c.StallThreshold = DefaultStallThreshold
	}
	if c.StallThreshold > 0 && c.StallThreshold < stallTicksPerThreshold*c.Resolution {
		return fmt.Errorf("registry: Config.StallThreshold must be at least %v (4 × the resolution), or negative for no stall guard; got %v",
			stallTicksPerThreshold*c.Resolution, c.StallThreshold)
	}
	switch {
	case c.StallGrace == 0:
		c.StallGrace = DefaultStallGrace
	case c.StallGrace < 0:
		c.StallGrace = 0
	}
	return nil
}

// Registry is the table of live sessions. Its methods are safe for
// concurrent use.
type Registry struct {
	cfg       Config
	epoch     time.Time // instants are nanoseconds since epoch, on the monotonic clock
	epochWall time.Time // epoch without its monotonic reading, for wall times
	idBase    uint64

	mu       sync.Mutex
	byName   map[string]*entry
	index    *index // every live entry, by name: for pages
	suspects *index // the suspect entries, by name
	wheel    *wheel
	nextID   uint64
	seq      uint64 // the last event's number
	pending  []pulse.Event
	closed   bool
	armed    int64 // instant the scheduler's timer is set for; noCheck if none
	hold     hold  // the stall guard's judgment hold

	wake   chan struct{} // a deadline earlier than armed was queued
	notify chan struct{} // events are pending
	stop   chan struct{}
	wg     sync.WaitGroup
	spare  []pulse.Event // owned by the event goroutine

	subMu sync.Mutex
	subs  map[*Subscription]struct{}
}

// New returns a running registry. Close stops it.
func New(cfg Config) (*Registry, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	epoch := time.Now()
	r := &Registry{
		cfg:       cfg,
		epoch:     epoch,
		epochWall: epoch.Round(0),
		idBase:    uint64(rand.Uint32()) << 32,
		byName:    make(map[string]*entry),
		index:     newIndex(),
		suspects:  newIndex(),
		armed:     noCheck,
		wake:      make(chan struct{}, 1),
		notify:    make(chan struct{}, 1),
		stop:      make(chan struct{}),
		subs:      make(map[*Subscription]struct{}),
	}
	r.wheel = newWheel(int64(cfg.Resolution), wheelSlots, 0)
	r.wg.Add(2)
	go r.schedule()
	go r.dispatch()
	return r, nil
}

// now returns the current instant.
func (r *Registry) now() int64 { return int64(time.Since(r.epoch)) }

// wall returns the wall-clock time of an instant.
func (r *Registry) wall(t int64) time.Time { return r.epochWall.Add(time.Duration(t)) }

// Join is a session that asks to register.
type Join struct {
	Name     string            // must be a valid name (pulse.ValidName)
	Peer     string            // remote address, for display
	Meta     map[string]string // labels; kept, not copied
	Interval time.Duration     // granted beat interval; zero means Config.Interval
	Link     Link              // how the registry ends the session; required
}

// Join registers a session; registration counts as its first beat. If a
// live session already has the name, the newest wins: the old one is
// removed with a replaced event and its link ended, then the new one joins.
func (r *Registry) Join(j Join) (*Handle, error) {
	if !pulse.ValidName(j.Name) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidName, j.Name)
	}
	if j.Link == nil {
		return nil, errors.New("registry: Join.Link is required")
	}
	interval := j.Interval
	if interval <= 0 {
		interval = r.cfg.Interval
	}
	h := &Handle{}
	e := &h.e
	e.r, e.name, e.peer, e.meta, e.interval, e.link = r, j.Name, j.Peer, j.Meta, interval, j.Link
	e.tracker = r.cfg.Policy.Track(interval)
	e.checkAt.Store(noCheck)

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	now := r.now()
	if old := r.byName[j.Name]; old != nil {
		detail := "a new session from " + j.Peer + " took the name"
		r.end(old, now, pulse.EventReplaced, pulse.ReasonReplaced, detail, -1)
		old.link.End(pulse.EventReplaced, detail)
	}
	r.nextID++
	e.id = r.idBase | r.nextID&(1<<32-1)
	e.connectedAt = now
	d := e.tracker.Beat(time.Duration(now))
	e.lastBeat.Store(now)
	e.deadAt.Store(int64(d.Dead))
	e.suspectAt.Store(int64(d.Suspect))
	e.state.Store(uint32(pulse.StateAlive))
	r.byName[j.Name] = e
	r.index.ReplaceOrInsert(e)
	r.queue(e, int64(d.Suspect))
	r.emit(pulse.EventJoined, e.snapshot(), now, pulse.ReasonHello, "", -1)
	return h, nil
}

// Kick removes the named session with a kicked event and ends its link,
// and returns the session as it was. It returns an error wrapping
// ErrNotFound if no live session has the name.
func (r *Registry) Kick(name, detail string) (pulse.Session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.byName[name]
	if e == nil {
		return pulse.Session{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if detail == "" {
		detail = "removed by an operator"
	}
	s := e.snapshot()
	r.end(e, r.now(), pulse.EventKicked, pulse.ReasonKicked, detail, -1)
	e.link.End(pulse.EventKicked, detail)
	return s, nil
}

// Replace removes the named session, if it is still the one with the given
// ID, with a replaced event and ends its link (its client gets "ERR
// replaced <detail>"): a newer session of the name took it elsewhere, such
// as on another node of a cluster. It returns the session as it was, or an
// error wrapping ErrNotFound if no live session has that name and ID.
func (r *Registry) Replace(name, id, detail string) (pulse.Session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.byName[name]
	if e == nil || formatID(e.id) != id {
		return pulse.Session{}, fmt.Errorf("%w: %q with ID %s", ErrNotFound, name, id)
	}
	if detail == "" {
		detail = "a new session took the name"
	}
	s := e.snapshot()
	r.end(e, r.now(), pulse.EventReplaced, pulse.ReasonReplaced, detail, -1)
	e.link.End(pulse.EventReplaced, detail)
	return s, nil
}

func (r *Registry) leave(e *entry, reason, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.loadState() == pulse.StateDead {
		return
	}
	r.end(e, r.now(), pulse.EventLeft, reason, detail, -1)
}

// end removes e from the table and emits the event that says why. The
// event's session keeps the state e had, except for dead. r.mu is held.
func (r *Registry) end(e *entry, now int64, kind pulse.EventKind, reason, detail string, deadline int64) {
	snap := e.snapshot()
	if kind == pulse.EventDead {
		snap.State = pulse.StateDead
	}
	r.suspects.Delete(e) // check stores dead before it calls end
	e.state.Store(uint32(pulse.StateDead))
	r.wheel.remove(e)
	if r.byName[e.name] == e {
		delete(r.byName, e.name)
		r.index.Delete(e)
	}
	r.emit(kind, snap, now, reason, detail, deadline)
}

// queue puts e on the wheel to be looked at at instant at, and wakes the
// scheduler if that is earlier than it planned. r.mu is held.
func (r *Registry) queue(e *entry, at int64) {
	r.wheel.add(e, at)
	if e.checkAt.Load() < r.armed {
		r.armed = e.checkAt.Load()
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// afterBeat handles the rare beats that need the lock: one from a suspect
// session, or one that brought a deadline forward.
func (r *Registry) afterBeat(e *entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch e.loadState() {
	case pulse.StateSuspect:
		e.state.Store(uint32(pulse.StateAlive))
		r.suspects.Delete(e)
		r.wheel.remove(e)
		r.queue(e, e.suspectAt.Load())
		r.emit(pulse.EventRecovered, e.snapshot(), r.now(), pulse.ReasonBeat, "", -1)
	case pulse.StateAlive:
		if at := e.suspectAt.Load(); at < e.checkAt.Load() {
			r.wheel.remove(e)
			r.queue(e, at)
		}
	}
}

// emit numbers a session event and hands it to the event goroutine. r.mu
// is held.
func (r *Registry) emit(kind pulse.EventKind, s pulse.Session, now int64, reason, detail string, deadline int64) {
	ev := pulse.Event{Kind: kind, Time: r.wall(now), Session: s, Reason: reason, Detail: detail}
	if deadline >= 0 {
		ev.Deadline = r.wall(deadline)
	}
	r.push(ev)
}

// push numbers an event and hands it to the event goroutine. r.mu is held.
func (r *Registry) push(ev pulse.Event) {
	r.seq++
	ev.Seq = r.seq
	r.pending = append(r.pending, ev)
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// Lookup returns the named live session.
func (r *Registry) Lookup(name string) (pulse.Session, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.byName[name]
	if e == nil {
		return pulse.Session{}, false
	}
	return e.snapshot(), true
}

// Sessions returns a snapshot of the live sessions, sorted by name.
func (r *Registry) Sessions() []pulse.Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshotLocked()
}

// snapshotLocked returns the live sessions sorted by name. r.mu is held.
func (r *Registry) snapshotLocked() []pulse.Session {
	out := make([]pulse.Session, 0, len(r.byName))
	r.index.Ascend(func(e *entry) bool {
		out = append(out, e.snapshot())
		return true
	})
	return out
}

// Len returns the number of live sessions.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byName)
}

// Close stops the registry: no more joins or judgments. Events already
// declared are delivered, then every subscription is closed. Sessions still
// in the table stay as they are; end them first for left events. Close is
// idempotent.
func (r *Registry) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.mu.Unlock()
	close(r.stop)
	r.wg.Wait()
}
