package httpapi

import (
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/registry"
)

// Session is a session as the API shows it.
type Session struct {
	Name        string            `json:"name"`
	ID          string            `json:"id"`
	Peer        string            `json:"peer"`
	State       pulse.State       `json:"state"`
	Meta        map[string]string `json:"meta,omitempty"`
	ConnectedAt time.Time         `json:"connected_at"`
	LastBeat    time.Time         `json:"last_beat"`
	Beats       uint64            `json:"beats"`
	// RTTMillis is the last round-trip time the client reported, in
	// milliseconds; zero (and absent from the JSON) when it reported none.
	RTTMillis float64 `json:"rtt_ms,omitempty"`
	// IntervalMillis is the beat interval granted to the session.
	IntervalMillis int64 `json:"interval_ms"`
	// Node is the cluster node that holds the session; absent on a single
	// server.
	Node string `json:"node,omitempty"`
}

// NewSession converts a session to its API form.
func NewSession(s pulse.Session) Session {
	return Session{
		Name:           s.Name,
		ID:             s.ID,
		Peer:           s.Peer,
		State:          s.State,
		Meta:           s.Meta,
		ConnectedAt:    s.ConnectedAt.UTC(),
		LastBeat:       s.LastBeat.UTC(),
		Beats:          s.Beats,
		RTTMillis:      millis(s.RTT),
		IntervalMillis: s.Interval.Milliseconds(),
		Node:           s.Node,
	}
}

// RTT returns the last reported round-trip time, zero if unknown.
func (s Session) RTT() time.Duration { return time.Duration(s.RTTMillis * float64(time.Millisecond)) }

// SessionList is the answer to GET /v1/sessions: one page.
type SessionList struct {
	Sessions []Session `json:"sessions"`
	// NextCursor, given as ?cursor= to the same query, returns the next
	// page; empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
	// LastEventID is the ID of the last event declared when the page was
	// taken: GET /v1/events?last_event_id= it streams what changed since.
	LastEventID string `json:"last_event_id"`
	// Counts are the live sessions by state over the whole table.
	Counts Counts `json:"counts"`
	// ServerTime is when the page was taken, by the server's clock, to
	// work out ages without trusting the reader's clock.
	ServerTime time.Time `json:"server_time"`
}

// Counts are the numbers of live sessions by state.
type Counts struct {
	Alive   int `json:"alive"`
	Suspect int `json:"suspect"`
	Total   int `json:"total"`
}

func newCounts(c registry.Counts) Counts {
	return Counts{Alive: c.Alive, Suspect: c.Suspect, Total: c.Total()}
}

// Event is an event as the API shows it, in the data of a server-sent
// event: a session's, or a stall of the server itself.
type Event struct {
	// ID is the event's opaque, resumable ID (the SSE id).
	ID string `json:"id"`
	// Seq numbers the events of one server run without gaps.
	Seq    uint64          `json:"seq"`
	Kind   pulse.EventKind `json:"kind"`
	Time   time.Time       `json:"time"`
	Reason string          `json:"reason"`
	Detail string          `json:"detail,omitempty"`
	// Session is the session as of the event; absent from the JSON (and
	// zero) on a stall event, which is about no session.
	Session Session `json:"session,omitzero"`
	// Deadline, on suspect and dead events, is the instant the judgment
	// was due, and LateMillis how long after it the judgment came.
	Deadline   *time.Time `json:"deadline,omitempty"`
	LateMillis *float64   `json:"late_ms,omitempty"`
	// Stall, on stall events only, says how long the server did not run
	// and how it holds judgments.
	Stall *Stall `json:"stall,omitempty"`
}

// Stall is a stall of the server itself, as the API shows it.
type Stall struct {
	// LengthMillis is how late the server's timer fired: the server did
	// not run for at least this many milliseconds.
	LengthMillis float64 `json:"length_ms"`
	// Overdue is how many sessions were past a suspect or dead deadline
	// when the stall was noticed: the judgments held.
	Overdue int `json:"overdue"`
	// GraceMillis is how long judgments stay held once the server has read
	// what arrived during the stall.
	GraceMillis float64 `json:"grace_ms"`
}

func newEvent(id string, ev pulse.Event) Event {
	out := Event{
		ID:     id,
		Seq:    ev.Seq,
		Kind:   ev.Kind,
		Time:   ev.Time.UTC(),
		Reason: ev.Reason,
		Detail: ev.Detail,
	}
	if ev.Session.ID != "" {
		out.Session = NewSession(ev.Session)
	}
	if st := ev.Stall; st != nil {
		out.Stall = &Stall{LengthMillis: millis(st.Length), Overdue: st.Overdue, GraceMillis: millis(st.Grace)}
	}
	if !ev.Deadline.IsZero() {
		d := ev.Deadline.UTC()
		late := millis(ev.Time.Sub(d))
		out.Deadline, out.LateMillis = &d, &late
	}
	return out
}

// Health is the answer to GET /healthz.
type Health struct {
	Status   string `json:"status"` // "ok"
	Version  string `json:"version"`
	Sessions int    `json:"sessions"`
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
