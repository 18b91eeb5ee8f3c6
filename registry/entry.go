package registry

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/detect"
)

// noCheck is the checkAt of an entry that is not on the wheel.
const noCheck = 1<<63 - 1

// entry is one live session. Its beat fields are atomics, so that a beat
// takes no lock; everything else is fixed at join or guarded by the
// registry's lock.
type entry struct {
	r *Registry

	// fixed at join
	id          uint64
	name        string
	peer        string
	meta        map[string]string
	interval    time.Duration
	connectedAt int64 // instant, on the registry's clock
	link        Link
	tracker     detect.Tracker // used only by the goroutine that beats

	// written by the beating goroutine, read by anyone
	lastBeat  atomic.Int64 // instant
	suspectAt atomic.Int64 // instant
	deadAt    atomic.Int64 // instant
	beats     atomic.Uint64
	rtt       atomic.Uint32 // microseconds, as clients report it: 32 bits beside state keep the entry in a smaller size class
	// state is a pulse.State; only the registry writes it, under its lock.
	// StateDead also marks an entry that was removed for any reason.
	state atomic.Uint32

	// guarded by r.mu: the wheel's list
	next, prev *entry
	// checkAt is when the wheel will look at the entry again (its slot
	// times the resolution), noCheck when it is not on the wheel; written
	// under r.mu, read by the beating goroutine to see whether a beat moved
	// a deadline earlier than that.
	checkAt atomic.Int64
}

func (e *entry) loadState() pulse.State { return pulse.State(e.state.Load()) }

// snapshot returns the session as it is now. The caller holds r.mu or
// otherwise knows the entry's fixed fields are set.
func (e *entry) snapshot() pulse.Session {
	return pulse.Session{
		ID:          formatID(e.id),
		Name:        e.name,
		Peer:        e.peer,
		Meta:        e.meta,
		ConnectedAt: e.r.wall(e.connectedAt),
		LastBeat:    e.r.wall(e.lastBeat.Load()),
		Beats:       e.beats.Load(),
		RTT:         time.Duration(e.rtt.Load()) * time.Microsecond,
		Interval:    e.interval,
		State:       e.loadState(),
	}
}

func formatID(id uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = digits[id&15]
		id >>= 4
	}
	return string(b[:])
}

// Handle is what the transport holds for its registered session: it
// reports the session's beats and its end.
type Handle struct{ e entry }

// ID returns the session's server-assigned ID.
func (h *Handle) ID() string { return formatID(h.e.id) }

// Name returns the session's name.
func (h *Handle) Name() string { return h.e.name }

// Interval returns the beat interval granted to the session.
func (h *Handle) Interval() time.Duration { return h.e.interval }

// Beat records a beat that arrived now, with the round-trip time the client
// reported (0 if none). It takes no lock unless the beat changes the
// session's state or brings a deadline forward, and costs the same whatever
// the number of sessions. Beat must not be called by two goroutines at once
// for the same session. A beat after the session ended is ignored.
func (h *Handle) Beat(rtt time.Duration) {
	e := &h.e
	now := e.r.now()
	d := e.tracker.Beat(time.Duration(now))
	e.lastBeat.Store(now)
	if rtt > 0 {
		e.rtt.Store(uint32(min(rtt/time.Microsecond, math.MaxUint32)))
	}
	// Deadlines before the beat count, so that the registry, reading the
	// count first, never pairs an old count with new deadlines unnoticed.
	e.deadAt.Store(int64(d.Dead))
	e.suspectAt.Store(int64(d.Suspect))
	e.beats.Add(1)
	if e.loadState() != pulse.StateAlive || int64(d.Suspect) < e.checkAt.Load() {
		e.r.afterBeat(e)
	}
}

// Leave ends the session by the client's doing: a BYE, or its connection
// closing or failing. reason is one of the pulse.Reason codes for the left
// event, detail optional free text. Leaving a session that has already
// ended does nothing.
func (h *Handle) Leave(reason, detail string) {
	h.e.r.leave(&h.e, reason, detail)
}

// State returns the session's current state; StateDead once it has ended.
func (h *Handle) State() pulse.State { return h.e.loadState() }
