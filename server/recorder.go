package server

import (
	"time"

	"github.com/pulsehq/pulse"
)

// ArrivalRecorder is told when sessions register, beat and end, so that
// their beats' arrival instants can be replayed later (pulse fdbench
// --replay). arrivals.Writer implements it. Beat is called on the path of
// every beat, from the goroutine that reads the connection: it must be
// quick and must not block.
type ArrivalRecorder interface {
	// Joined records a registration and returns the number (not 0) that
	// the session's beats are recorded under.
	Joined(id, name string, interval time.Duration) uint64
	// Beat records a beat of session n, with its sequence number if the
	// client gave one.
	Beat(n, seq uint64, hasSeq bool)
	// Ended records that the session with the given ID ended: kind is the
	// event (left, dead, replaced, kicked), reason its reason.
	Ended(id, kind, reason string)
}

// recordEnd tells the recorder, if any, of an event that ends a session.
func (s *Server) recordEnd(ev pulse.Event) {
	if s.cfg.ArrivalRecorder == nil {
		return
	}
	switch ev.Kind {
	case pulse.EventLeft, pulse.EventDead, pulse.EventReplaced, pulse.EventKicked:
		s.cfg.ArrivalRecorder.Ended(ev.Session.ID, ev.Kind.String(), ev.Reason)
	}
}
