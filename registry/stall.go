package registry

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/pulsehq/pulse"
)

// The stall guard. When the whole process stops running for a while (a
// long GC, CPU starvation, a paused VM, SIGSTOP), the beats that clients
// sent meanwhile wait unread in socket buffers, and on resume every session
// looks silent at once. The scheduler notices such a stall by its own
// timer firing late: it never sleeps longer than a quarter of the stall
// threshold, so a stall of more than 1.25 thresholds always shows as a
// wake-up at least one threshold late, wherever it falls. It then:
//
//  1. stops judging: the wheel is not advanced, so no session is declared
//     suspect or dead, and emits a stall event;
//  2. asks the transports to catch up (Config.CatchUp): to read everything
//     that arrived during the stall, which moves the deadlines of every
//     session that beat meanwhile;
//  3. once they have, holds for Config.StallGrace more, for beats that the
//     stall delayed on their way or that a transport without a catch-up
//     has yet to read;
//  4. judges again: the wheel catches up at once, and the sessions still
//     past a deadline are declared then.
//
// A second stall during the hold starts the hold afresh.

// stallTicksPerThreshold is how many times per stall threshold the
// scheduler wakes at least.
const stallTicksPerThreshold = 4

// StallCatchUpLimit is the longest the registry waits for the transports
// to catch up after a stall before it judges again anyway: a transport
// that has not read its backlog by then is not going to soon, and
// judgments cannot wait for ever.
const StallCatchUpLimit = 10 * time.Second

// hold is the state of the stall guard. r.mu guards it.
type hold struct {
	active     bool   // no judgments
	gen        uint64 // numbers the stalls noticed; only the latest one's catch-up counts
	catchingUp bool   // waiting for the transports; until is then the limit of the wait
	until      int64  // instant the hold ends, or the catch-up wait does
	since      int64  // when the stall was noticed
	caughtUp   int64  // when the transports caught up; 0 if they did not
	overdue    int    // sessions past a deadline when the stall was noticed
}

// guardStall notices that the scheduler woke much later than it was set
// for, holds judgments, emits the stall event, and returns the call that
// asks the transports to catch up, to be made without r.mu; nil if there
// was no stall or nobody to ask. r.mu is held.
func (r *Registry) guardStall(now int64) (catchUp func()) {
	if r.cfg.StallThreshold < 0 || r.armed == noCheck {
		return nil
	}
	late := time.Duration(now - r.armed)
	if late < r.cfg.StallThreshold {
		return nil
	}
	gen := r.hold.gen + 1
	r.hold = hold{active: true, gen: gen, since: now, until: now, overdue: r.countOverdue(now)}
	if r.cfg.CatchUp != nil {
		r.hold.catchingUp = true
		r.hold.until = now + int64(StallCatchUpLimit)
	} else {
		r.hold.caughtUp = now
		r.hold.until = now + int64(r.cfg.StallGrace)
	}
	stall := &pulse.Stall{Length: late, Overdue: r.hold.overdue, Grace: r.cfg.StallGrace}
	r.push(pulse.Event{Kind: pulse.EventStall, Time: r.wall(now), Reason: pulse.ReasonLateWakeup,
		Detail: stallDetail(stall, r.cfg.CatchUp != nil), Stall: stall})
	if r.cfg.CatchUp == nil {
		return nil
	}
	return func() { r.cfg.CatchUp(func() { r.caughtUp(gen) }) }
}

// stallDetail says in words what a stall event means.
func stallDetail(s *pulse.Stall, catchUp bool) string {
	what := "the server did not run for at least " + s.Length.Round(time.Millisecond).String()
	held := fmt.Sprintf("; %d sessions past a deadline; suspect and dead judgments held", s.Overdue)
	if catchUp {
		held += " until what arrived meanwhile is read"
		if s.Grace > 0 {
			held += ", then " + s.Grace.String() + " more"
		}
	} else {
		held += " for " + s.Grace.String()
	}
	return what + held
}

// caughtUp is called by the transports once they have read what arrived
// during stall number gen: the hold now lasts the grace.
func (r *Registry) caughtUp(gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.hold.active || !r.hold.catchingUp || r.hold.gen != gen {
		return // a later stall is being held, or the wait timed out
	}
	now := r.now()
	r.hold.catchingUp = false
	r.hold.caughtUp = now
	r.hold.until = now + int64(r.cfg.StallGrace)
	select {
	case r.wake <- struct{}{}: // to set its timer for the end of the hold
	default:
	}
}

// releaseHold ends the hold if its time has come, and returns what to log
// about it. r.mu is held.
func (r *Registry) releaseHold(now int64) *holdReport {
	if !r.hold.active || now < r.hold.until {
		return nil
	}
	rep := &holdReport{held: time.Duration(now - r.hold.since), overdue: r.hold.overdue}
	if r.hold.catchingUp {
		rep.noCatchUp = true
	} else if r.cfg.CatchUp != nil {
		rep.catchUp = time.Duration(r.hold.caughtUp - r.hold.since)
	}
	r.hold.active, r.hold.catchingUp = false, false
	return rep
}

// holdReport is what the log says when judgments resume after a stall.
type holdReport struct {
	held      time.Duration // from the stall's notice to the end of the hold
	catchUp   time.Duration // how long the transports took to catch up, if asked
	noCatchUp bool          // they did not within StallCatchUpLimit
	overdue   int           // sessions past a deadline when the stall was noticed
	judged    uint64        // suspect and dead events declared as judgments resumed
}

func (h *holdReport) log(l *slog.Logger) {
	if h.noCatchUp {
		l.Warn("stall: the transports did not read their backlog in time; judging again anyway",
			"held", h.held.Round(time.Millisecond), "overdue", h.overdue, "judged", h.judged)
		return
	}
	attrs := []any{"held", h.held.Round(time.Millisecond), "overdue", h.overdue, "judged", h.judged}
	if h.catchUp > 0 {
		attrs = append(attrs, "caught_up_in", h.catchUp.Round(time.Microsecond))
	}
	l.Info("stall: judging again", attrs...)
}

// countOverdue returns how many sessions are past the deadline they wait
// on, by the beats read so far. Such a session is on the wheel at or
// before its deadline, so only the slots up to now need looking at. r.mu
// is held.
func (r *Registry) countOverdue(now int64) int {
	n := 0
	r.wheel.walk(now+r.wheel.res, func(e *entry) {
		if nextDeadline(e.loadState(), e.suspectAt.Load(), e.deadAt.Load()) <= now {
			n++
		}
	})
	return n
}
