// Package detect holds the failure-detection policies of pulse: pure
// functions from a session's beat arrival times to the instants at which it
// becomes suspect and dead. Policies run no goroutines and read no clock;
// the registry feeds them arrival times and acts on the deadlines they return.
//
// Instants are time.Duration offsets from an epoch the caller chooses (the
// registry uses its own start, on the monotonic clock), so that per-session
// state stays small and the arithmetic is integer.
package detect

import "time"

// Deadlines are the instants at which a session that stays silent becomes
// suspect and then dead. Suspect is never after Dead.
type Deadlines struct {
	Suspect time.Duration
	Dead    time.Duration
}

// Policy decides when a silent session is suspect and when it is dead.
type Policy interface {
	// Name is a short lower-case name of the policy, such as "fixed".
	Name() string
	// Track returns the tracker of one session that was granted the given
	// beat interval. Trackers may share state that does not depend on the
	// session; a tracker is used by one goroutine at a time.
	Track(interval time.Duration) Tracker
}

// Tracker follows the beats of one session.
type Tracker interface {
	// Beat records a beat that arrived at the instant at (registration
	// counts as the first beat) and returns the deadlines that follow it.
	// Arrivals are given in order.
	Beat(at time.Duration) Deadlines
}
