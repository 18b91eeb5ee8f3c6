package pulse

import "time"

// EventKind says what happened to a session.
type EventKind uint8

// The kinds of session events.
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
)

var eventKindNames = enumNames{typ: "event kind", names: []string{
	EventJoined:    "joined",
	EventSuspect:   "suspect",
	EventRecovered: "recovered",
	EventLeft:      "left",
	EventDead:      "dead",
	EventReplaced:  "replaced",
	EventKicked:    "kicked",
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
	ReasonHello    = "hello"    // joined: HELLO accepted
	ReasonSilent   = "silent"   // suspect: no beat by the suspect deadline
	ReasonBeat     = "beat"     // recovered: a beat arrived while suspect
	ReasonBye      = "bye"      // left: the client sent BYE
	ReasonClosed   = "closed"   // left: the peer closed the connection (EOF)
	ReasonError    = "error"    // left: reading or writing the connection failed (reset, slow consumer, …)
	ReasonProtocol = "protocol" // left: the client broke the protocol and was sent ERR
	ReasonShutdown = "shutdown" // left: the server shut down
	ReasonTimeout  = "timeout"  // dead: no beat by the dead deadline
	ReasonReplaced = "replaced" // replaced: a newer session took the name
	ReasonKicked   = "kicked"   // kicked: an operator removed the session
)

// Event tells of one change to one session.
type Event struct {
	// Seq numbers the events of one server in the order they happened,
	// starting at 1 and without gaps.
	Seq uint64
	// Kind says what happened.
	Kind EventKind
	// Time is when the server declared it.
	Time time.Time
	// Session is the session as of the event. For the events that end a
	// session (left, dead, replaced, kicked) it is the session as it was when
	// it ended: its State is the one it had then, except for dead.
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
}
