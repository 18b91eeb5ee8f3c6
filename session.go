package pulse

import "time"

// Session is a snapshot of one registered connection.
type Session struct {
	// ID is assigned by the server and unique among the sessions it has held.
	ID string
	// Name is chosen by the client and unique among live sessions.
	Name string
	// Peer is the remote address of the connection, as host:port.
	Peer string
	// Meta holds the small string labels given at registration. It must not
	// be modified: snapshots share it.
	Meta map[string]string
	// ConnectedAt is when the session registered.
	ConnectedAt time.Time
	// LastBeat is when the last beat arrived (the registration counts as one).
	LastBeat time.Time
	// Beats counts the BEAT lines received.
	Beats uint64
	// RTT is the round-trip time the client last reported, or 0 if unknown.
	RTT time.Duration
	// Interval is the beat interval granted to the session.
	Interval time.Duration
	// State is the session's liveness.
	State State
	// Node is the cluster node that holds the session's connection; empty
	// on a single server (see docs/cluster.md).
	Node string
}
