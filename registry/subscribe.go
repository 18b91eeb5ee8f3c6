package registry

import (
	"github.com/pulsehq/pulse"
)

// Subscription is a stream of session events, and of the stalls the
// registry notices (pulse.EventStall, with no session). Events arrive on C
// in order, without gaps. A subscriber that lets its buffer fill up is dropped rather
// than allowed to hold up the server: C is closed and Err returns
// ErrSlowSubscriber.
type Subscription struct {
	r      *Registry
	ch     chan pulse.Event
	from   uint64 // first event number to deliver
	err    error  // why ch was closed; guarded by r.subMu
	closed bool   // guarded by r.subMu
}

// From returns the number (Event.Seq) of the first event the subscription
// delivers: the events before it were declared before it began.
func (s *Subscription) From() uint64 { return s.from }

// C returns the channel of events. It is closed when the subscription ends.
func (s *Subscription) C() <-chan pulse.Event { return s.ch }

// Err returns why the subscription ended once C is closed: nil after
// Close, ErrSlowSubscriber if it fell behind, ErrClosed if the registry
// closed.
func (s *Subscription) Err() error {
	s.r.subMu.Lock()
	defer s.r.subMu.Unlock()
	return s.err
}

// Close ends the subscription and closes C.
func (s *Subscription) Close() { s.r.unsubscribe(s, nil) }

// Subscribe returns a subscription to the events declared from now on,
// buffering up to buffer events (zero means 1024).
func (r *Registry) Subscribe(buffer int) *Subscription {
	s, _ := r.subscribe(buffer, false)
	return s
}

// SubscribeWithSnapshot returns a subscription and the live sessions, sorted
// by name, as they were just before the subscription's first event: the
// snapshot and the events together tell the whole story, with no gap and no
// overlap.
func (r *Registry) SubscribeWithSnapshot(buffer int) (*Subscription, []pulse.Session) {
	return r.subscribe(buffer, true)
}

func (r *Registry) subscribe(buffer int, withSnapshot bool) (*Subscription, []pulse.Session) {
	if buffer <= 0 {
		buffer = DefaultSubscriberBuf
	}
	s := &Subscription{r: r, ch: make(chan pulse.Event, buffer)}
	var snap []pulse.Session
	r.mu.Lock()
	s.from = r.seq + 1
	if withSnapshot {
		snap = r.snapshotLocked()
	}
	closed := r.closed
	r.subMu.Lock() // under r.mu, so that no event slips between snapshot and registration
	r.mu.Unlock()
	if closed {
		s.closed, s.err = true, ErrClosed
		close(s.ch)
	} else {
		r.subs[s] = struct{}{}
	}
	r.subMu.Unlock()
	return s, snap
}

func (r *Registry) unsubscribe(s *Subscription, err error) {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	r.unsubscribeLocked(s, err)
}

func (r *Registry) unsubscribeLocked(s *Subscription, err error) {
	if s.closed {
		return
	}
	s.closed, s.err = true, err
	delete(r.subs, s)
	close(s.ch)
}

// dispatch is the goroutine that delivers events: to Config.OnEvent, then
// to every subscriber, never blocking on one.
func (r *Registry) dispatch() {
	defer r.wg.Done()
	for {
		select {
		case <-r.notify:
			r.deliverPending()
		case <-r.stop:
			r.deliverPending()
			r.subMu.Lock()
			for s := range r.subs {
				r.unsubscribeLocked(s, ErrClosed)
			}
			r.subMu.Unlock()
			return
		}
	}
}

func (r *Registry) deliverPending() {
	r.mu.Lock()
	batch := r.pending
	r.pending = r.spare
	r.mu.Unlock()
	for i := range batch {
		ev := &batch[i]
		if r.cfg.OnEvent != nil {
			r.cfg.OnEvent(*ev)
		}
		r.subMu.Lock()
		for s := range r.subs {
			if ev.Seq < s.from {
				continue
			}
			select {
			case s.ch <- *ev:
			default:
				r.unsubscribeLocked(s, ErrSlowSubscriber)
			}
		}
		r.subMu.Unlock()
		*ev = pulse.Event{}
	}
	if cap(batch) <= maxSpareEvents {
		r.spare = batch[:0]
	} else {
		r.spare = nil // a burst's array is let go rather than kept for ever
	}
}

// maxSpareEvents is the largest batch array the event goroutine keeps for
// the next batch.
const maxSpareEvents = 1024
