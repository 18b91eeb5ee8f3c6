package redis

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/pulsehq/pulse"
)

// record is a session as pulse:sessions and the event stream hold it:
// times as integers, so that the scripts can compare them.
type record struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Node        string            `json:"node"`
	Peer        string            `json:"peer"`
	State       pulse.State       `json:"state"`
	Meta        map[string]string `json:"meta,omitempty"`
	ConnectedUS int64             `json:"connected_us"`
	LastBeatUS  int64             `json:"last_beat_us"`
	Beats       uint64            `json:"beats"`
	RTTUS       int64             `json:"rtt_us,omitempty"`
	IntervalMS  int64             `json:"interval_ms"`
}

func newRecord(s pulse.Session, node string) record {
	return record{
		ID: s.ID, Name: s.Name, Node: node, Peer: s.Peer, State: s.State, Meta: s.Meta,
		ConnectedUS: s.ConnectedAt.UnixMicro(), LastBeatUS: s.LastBeat.UnixMicro(),
		Beats: s.Beats, RTTUS: s.RTT.Microseconds(), IntervalMS: s.Interval.Milliseconds(),
	}
}

func (r record) session() pulse.Session {
	return pulse.Session{
		ID: r.ID, Name: r.Name, Node: r.Node, Peer: r.Peer, State: r.State, Meta: r.Meta,
		ConnectedAt: time.UnixMicro(r.ConnectedUS), LastBeat: time.UnixMicro(r.LastBeatUS),
		Beats: r.Beats, RTT: time.Duration(r.RTTUS) * time.Microsecond,
		Interval: time.Duration(r.IntervalMS) * time.Millisecond,
	}
}

func (r record) encode() string {
	b, _ := json.Marshal(r) // every field marshals
	return string(b)
}

func decodeRecord(s string) (record, error) {
	var r record
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return r, fmt.Errorf("a session record: %w", err)
	}
	return r, nil
}

// eventFields are the fields of the stream entry of an event of node's:
// k kind, r reason, d detail, n the node that declared it, t its time in
// µs, dl the deadline (suspect, dead), s the session record, st the stall.
func eventFields(ev pulse.Event, node string) []any {
	f := []any{"k", ev.Kind.String(), "r", ev.Reason, "d", ev.Detail, "n", node,
		"t", strconv.FormatInt(ev.Time.UnixMicro(), 10)}
	if !ev.Deadline.IsZero() {
		f = append(f, "dl", strconv.FormatInt(ev.Deadline.UnixMicro(), 10))
	}
	if ev.Session.ID != "" {
		f = append(f, "s", newRecord(ev.Session, node).encode())
	}
	if st := ev.Stall; st != nil {
		b, _ := json.Marshal(st)
		f = append(f, "st", string(b))
	}
	return f
}

// decodeEvent turns a stream entry back into an event, numbered by its
// stream ID.
func decodeEvent(m goredis.XMessage) (pulse.Event, error) {
	seq, err := streamSeq(m.ID)
	if err != nil {
		return pulse.Event{}, err
	}
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	ev := pulse.Event{Seq: seq, Reason: str("r"), Detail: str("d")}
	if ev.Kind, err = pulse.ParseEventKind(str("k")); err != nil {
		return ev, fmt.Errorf("event %s: %w", m.ID, err)
	}
	us := func(k string) time.Time {
		n, err := strconv.ParseInt(str(k), 10, 64)
		if err != nil || n == 0 {
			return time.Time{}
		}
		return time.UnixMicro(n)
	}
	ev.Time, ev.Deadline = us("t"), us("dl")
	if s := str("s"); s != "" {
		r, err := decodeRecord(s)
		if err != nil {
			return ev, fmt.Errorf("event %s: %w", m.ID, err)
		}
		ev.Session = r.session()
		if ev.Kind == pulse.EventDead {
			ev.Session.State = pulse.StateDead
		}
	}
	if s := str("st"); s != "" {
		ev.Stall = new(pulse.Stall)
		if err := json.Unmarshal([]byte(s), ev.Stall); err != nil {
			return ev, fmt.Errorf("event %s: %w", m.ID, err)
		}
		// A stall is about a node, not a session: say which.
		ev.Detail = "node " + str("n") + ": " + ev.Detail
	}
	return ev, nil
}

// streamSeq packs a stream ID ms-n into one number that orders as the IDs
// do: ms<<22 | n. The SSE IDs of a cluster are made of it, so that every
// node gives an event the same ID.
func streamSeq(id string) (uint64, error) {
	ms, n, ok := strings.Cut(id, "-")
	a, err1 := strconv.ParseUint(ms, 10, 64)
	b, err2 := strconv.ParseUint(n, 10, 64)
	if !ok || err1 != nil || err2 != nil || a >= 1<<42 || b >= 1<<22 {
		return 0, fmt.Errorf("stream ID %q out of range", id)
	}
	return a<<22 | b, nil
}

// beatInfo is a session's beats as pulse:beats holds them: "id beats
// last_beat_us rtt_us".
func beatInfo(s pulse.Session) string {
	return s.ID + " " + strconv.FormatUint(s.Beats, 10) + " " + strconv.FormatInt(s.LastBeat.UnixMicro(), 10) +
		" " + strconv.FormatInt(s.RTT.Microseconds(), 10)
}

// applyBeatInfo updates s from what pulse:beats holds for it, if that is
// of the same session and newer.
func applyBeatInfo(s *pulse.Session, v string) {
	f := strings.Fields(v)
	if len(f) != 4 || f[0] != s.ID {
		return
	}
	beats, err1 := strconv.ParseUint(f[1], 10, 64)
	last, err2 := strconv.ParseInt(f[2], 10, 64)
	rtt, err3 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || beats < s.Beats {
		return
	}
	s.Beats, s.LastBeat, s.RTT = beats, time.UnixMicro(last), time.Duration(rtt)*time.Microsecond
}
