package server

import (
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/wire"
)

// Observer is told what the server does as it happens, for metrics (package
// metrics implements it with Prometheus). Its methods are called from many
// goroutines, Beat on the path of every heartbeat: they must be quick and
// must never block.
type Observer interface {
	// Beat is called for each beat of a registered session, with the
	// round-trip time the client reported (zero if it reported none).
	Beat(rtt time.Duration)
	// Rejected is called when the server ends a connection with
	// "ERR <code>": refused at HELLO, cut for breaking the protocol, or
	// ended by the server (timeout, replaced, kicked, shutdown).
	Rejected(code wire.Code)
	// Event is called with every session event, in order, from one
	// goroutine.
	Event(ev pulse.Event)
}

// nopObserver is the Observer of a server configured without one.
type nopObserver struct{}

func (nopObserver) Beat(time.Duration) {}
func (nopObserver) Rejected(wire.Code) {}
func (nopObserver) Event(pulse.Event)  {}
