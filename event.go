package pulse

import "time"

// EventKind says what happened to a session, or, for EventStall, to the
// server itself.
type EventKind uint8

// The kinds of events.
const (
	// EventJoined: a session registered (HELLO accepted).
	EventJoined EventKind = iota + 1
	// EventSuspect: a session missed its suspect deadline.
	EventSuspect
	// EventRecovered: a suspect session beat again and is alive.
	EventRecovered
	// EventLeft: a session ended by its own doing: BYE, or its connection
	// closed or failed. The reason says which.
	EventLeft
	// EventDead: a session missed its dead deadline and was removed.
	EventDead
	// EventReplaced: the same name registered again; the older session was removed.
	EventReplaced
	// EventKicked: an operator removed the session.
	EventKicked
	// EventStall: the server itself stopped running for a while (GC, CPU
	// starvation, a paused VM, SIGSTOP), so that every session looked
	// silent at once. It is about no session: Event.Session is zero and
	// Event.Stall says how long the stall was and how judgments are held.
	EventStall
)

var eventKindNames = enumNames{typ: "event kind", names: []string{
	EventJoined:    "joined",
	EventSuspect:   "suspect",
	EventRecovered: "recovered",
	EventLeft:      "left",
	EventDead:      "dead",
	EventReplaced:  "replaced",
	EventKicked:    "kicked",
	EventStall:     "stall",
}}

// String returns the lower-case name of the kind, such as "joined".
func (k EventKind) String() string { return eventKindNames.name(uint8(k)) }

// MarshalText encodes the kind as its name.
func (k EventKind) MarshalText() ([]byte, error) { return eventKindNames.marshal(uint8(k)) }

// UnmarshalText decodes a kind from its name.
func (k *EventKind) UnmarshalText(text []byte) error {
	v, err := ParseEventKind(string(text))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// ParseEventKind returns the event kind with the given name.
func ParseEventKind(name string) (EventKind, error) {
	v, err := eventKindNames.parse(name)
	return EventKind(v), err
}

// Ends reports whether an event of this kind removes the session from the table.
func (k EventKind) Ends() bool {
	switch k {
	case EventLeft, EventDead, EventReplaced, EventKicked:
		return true
	}
	return false
}

// Reasons are short, stable, lower-case codes: they are safe to use as metric
// labels and to match in code. Free text goes in Event.Detail.
const (
	ReasonHello    = "hello"     // joined: HELLO accepted
	ReasonSilent   = "silent"    // suspect: no beat by the suspect deadline
	ReasonBeat     = "beat"      // recovered: a beat arrived while suspect
	ReasonBye      = "bye"       // left: the client sent BYE
	ReasonClosed   = "closed"    // left: the peer closed the connection (EOF)
	ReasonError    = "error"     // left: reading or writing the connection failed (reset, slow consumer, …)
	ReasonProtocol = "protocol"  // left: the client broke the protocol and was sent ERR
	ReasonShutdown = "shutdown"  // left: the server shut down
	ReasonTimeout  = "timeout"   // dead: no beat by the dead deadline
	ReasonReplaced = "replaced"  // replaced: a newer session took the name
	ReasonKicked   = "kicked"    // kicked: an operator removed the session
	ReasonNodeLost = "node_lost" // dead: the cluster node that held the session lost its lease (docs/cluster.md)
	// stall: the server's own timer fired late by the stall threshold or more
	ReasonLateWakeup = "late_wakeup"
)

// Event tells of one change to one session, or of a stall of the server
// itself (Kind EventStall, with Session zero).
type Event struct {
	// Seq numbers the events of one server in the order they happened,
	// starting at 1 and without gaps.
	Seq uint64
	// Kind says what happened.
	Kind EventKind
	// Time is when the server declared it.
	Time time.Time
	// Session is the session as of the event; zero on a stall event. For
	// the events that end a session (left, dead, replaced, kicked) it is the
	// session as it was when it ended: its State is the one it had then,
	// except for dead.
	Session Session
	// Reason is a short stable code (see the Reason constants).
	Reason string
	// Detail is optional free text: the client's BYE reason, an error, who
	// replaced the session.
	Detail string
	// Deadline is, for suspect and dead events, the deadline the session
	// missed; Time minus Deadline is how late the server declared it. It is
	// zero for other events.
	Deadline time.Time
	// Stall describes the stall, on stall events only; nil otherwise.
	Stall *Stall
}

// Stall is what a server knows of a stall of its own when it notices it.
// Until it has read what arrived during the stall, and for Grace after
// that, it declares no session suspect or dead.
type Stall struct {
	// Length is how much later than planned the server's timer fired: the
	// server did not run for at least this long.
	Length time.Duration
	// Overdue is how many sessions were past a suspect or dead deadline
	// when the stall was noticed, by the beats read until then: the
	// judgments that would have been made at once without the guard.
	Overdue int
	// Grace is how long judgments stay held once the server has read what
	// arrived during the stall.
	Grace time.Duration
}
