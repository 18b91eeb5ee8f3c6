package registry

import (
	"fmt"
	"time"

	"github.com/pulsehq/pulse"
)

// schedule is the goroutine that advances the wheel: it sleeps until the
// next deadline, then judges the sessions whose deadlines have passed. With
// the stall guard on it also wakes every quarter of the stall threshold,
// so that however a stall falls, it finds its timer late by most of it.
func (r *Registry) schedule() {
	defer r.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		if r.cfg.beforeAdvance != nil {
			r.cfg.beforeAdvance()
		}
		r.mu.Lock()
		now := r.now()
		catchUp := r.guardStall(now)
		released := r.releaseHold(now)
		if !r.hold.active {
			before := r.seq
			r.wheel.advance(now, func(e *entry) { r.check(e, now) })
			if released != nil {
				released.judged = r.seq - before
			}
		}
		next := r.nextWake(now)
		r.armed = next
		r.mu.Unlock()
		if catchUp != nil {
			catchUp()
		}
		if released != nil {
			released.log(r.cfg.Logger)
		}
		if next != noCheck {
			timer.Reset(time.Duration(next - now))
		}
		select {
		case <-timer.C:
		case <-r.wake:
			timer.Stop()
		case <-r.stop:
			timer.Stop()
			return
		}
	}
}

// nextWake returns the instant the scheduler is to wake next, noCheck for
// never. r.mu is held.
func (r *Registry) nextWake(now int64) int64 {
	next := int64(noCheck)
	if r.hold.active {
		next = r.hold.until
	} else if at, ok := r.wheel.next(); ok {
		next = at
	}
	if r.cfg.StallThreshold > 0 {
		next = min(next, now+int64(r.cfg.StallThreshold/stallTicksPerThreshold))
	}
	return next
}

// check judges e, whose wheel slot has come, at instant now. r.mu is held.
//
// A beat does not take the lock, so it may race with a judgment. Both sides
// follow the same order to settle it: a beat stores its deadlines, then
// bumps the beat count, then reads the state; check reads the count, then
// the deadlines, stores the new state, then reads the count again and
// undoes its judgment if a beat came in between. Either check sees the beat
// or the beat sees the new state and recovers the session under the lock.
func (r *Registry) check(e *entry, now int64) {
	from := e.loadState()
	if from != pulse.StateAlive && from != pulse.StateSuspect {
		return
	}
	count := e.beats.Load()
	suspectAt, deadAt := e.suspectAt.Load(), e.deadAt.Load()
	to, deadline := pulse.StateDead, deadAt
	switch {
	case now < deadAt && (from == pulse.StateSuspect || now < suspectAt):
		// Not due: a beat moved the deadline since e was queued.
		r.queue(e, nextDeadline(from, suspectAt, deadAt))
		return
	case now < deadAt:
		to, deadline = pulse.StateSuspect, suspectAt
	}
	e.state.Store(uint32(to))
	if e.beats.Load() != count {
		e.state.Store(uint32(from))
		r.queue(e, max(nextDeadline(from, e.suspectAt.Load(), e.deadAt.Load()), now+1))
		return
	}
	silence := time.Duration(now - e.lastBeat.Load()).Round(time.Millisecond)
	if to == pulse.StateSuspect {
		r.suspects.ReplaceOrInsert(e)
		r.queue(e, deadAt)
		r.emit(pulse.EventSuspect, e.snapshot(), now, pulse.ReasonSilent, fmt.Sprintf("no beat for %v", silence), deadline)
		return
	}
	detail := fmt.Sprintf("no beat for %v", silence)
	r.end(e, now, pulse.EventDead, pulse.ReasonTimeout, detail, deadline)
	e.link.End(pulse.EventDead, detail)
}

// nextDeadline is the deadline a session in state s waits on.
func nextDeadline(s pulse.State, suspectAt, deadAt int64) int64 {
	if s == pulse.StateAlive {
		return suspectAt
	}
	return deadAt
}
