package client

import (
	"fmt"
	"time"
)

// State is where a client is in its life.
type State uint8

// The states of a client.
const (
	// StateConnecting: dialing the server and registering.
	StateConnecting State = iota + 1
	// StateConnected: registered and beating.
	StateConnected
	// StateBackoff: waiting before the next attempt to connect.
	StateBackoff
	// StateClosed: stopped for good, by Close or by a rejection that
	// retrying cannot fix (see Client.Err).
	StateClosed
)

// String returns the state's lower-case name.
func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateBackoff:
		return "backoff"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Status is a snapshot of a client.
type Status struct {
	State State
	// Since is when the client entered State.
	Since time.Time
	// SessionID is the ID the server gave the current session (connected).
	SessionID string
	// Interval and Timeout are the timing the server granted (connected).
	Interval, Timeout time.Duration
	// RTT is the last measured round trip: HELLO to WELCOME at first, then
	// each BEAT to its ACK.
	RTT time.Duration
	// Beats counts the beats sent in the current session.
	Beats uint64
	// Attempt counts the attempts that failed since the last success.
	Attempt int
	// Retry is, in backoff, how long the client waits before trying again.
	Retry time.Duration
	// Err is why the last session or attempt ended, if it did; once
	// closed, why the client stopped (nil after Close).
	Err error
}
