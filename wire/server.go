package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Welcome is the JSON object of a WELCOME line: the timing the server
// grants the session. The client beats every Interval; the server declares
// it suspect after Suspect and dead after Timeout without a beat.
type Welcome struct {
	IntervalMS int64  `json:"interval_ms"`
	TimeoutMS  int64  `json:"timeout_ms"`
	SuspectMS  int64  `json:"suspect_ms"`
	Ack        bool   `json:"ack"`
	Server     string `json:"server,omitempty"`
	// MinIntervalMS and MaxIntervalMS are the bounds within which the
	// server grants a client its own interval. They are sent when the
	// client asked for one (HELLO option interval_ms), so that it sees why
	// it got another; zero otherwise.
	MinIntervalMS int64 `json:"min_interval_ms,omitempty"`
	MaxIntervalMS int64 `json:"max_interval_ms,omitempty"`
}

// Interval is the beat interval the server granted.
func (w Welcome) Interval() time.Duration { return time.Duration(w.IntervalMS) * time.Millisecond }

// Timeout is how long after the last beat the server declares the session dead.
func (w Welcome) Timeout() time.Duration { return time.Duration(w.TimeoutMS) * time.Millisecond }

// Suspect is how long after the last beat the server declares the session suspect.
func (w Welcome) Suspect() time.Duration { return time.Duration(w.SuspectMS) * time.Millisecond }

// ReplyKind is the command of a server line.
type ReplyKind uint8

// The server commands.
const (
	ReplyWelcome ReplyKind = iota + 1
	ReplyAck
	ReplyErr
	ReplyBye
)

// Reply is one parsed server line.
type Reply struct {
	Kind ReplyKind

	// WELCOME
	SessionID string
	Welcome   Welcome

	// ACK
	Seq    uint64
	HasSeq bool

	// ERR
	Err *Error

	// BYE
	Reason string
}

var (
	verbWelcome = []byte("WELCOME")
	verbAck     = []byte("ACK")
	verbErr     = []byte("ERR")
)

// ErrBadReply is wrapped by the errors ParseReply returns for a line that is
// not a valid server message.
var ErrBadReply = errors.New("wire: bad reply")

// ParseReply parses one server line, without its line end. Parsing an ACK
// does not allocate.
func ParseReply(line []byte) (Reply, error) {
	line = trimSpace(line)
	verb, rest := cut(line)
	switch {
	case bytes.Equal(verb, verbAck):
		if len(rest) == 0 {
			return Reply{Kind: ReplyAck}, nil
		}
		seq, ok := parseUint(rest)
		if !ok {
			return Reply{}, fmt.Errorf("%w: ACK with bad sequence number %s", ErrBadReply, quote(rest, 32))
		}
		return Reply{Kind: ReplyAck, Seq: seq, HasSeq: true}, nil
	case bytes.Equal(verb, verbWelcome):
		id, js := cut(rest)
		if len(id) == 0 || len(js) == 0 {
			return Reply{}, fmt.Errorf("%w: WELCOME needs a session id and a JSON object", ErrBadReply)
		}
		var w Welcome
		if err := json.Unmarshal(js, &w); err != nil {
			return Reply{}, fmt.Errorf("%w: WELCOME JSON: %w", ErrBadReply, err)
		}
		if w.IntervalMS <= 0 || w.TimeoutMS <= 0 {
			return Reply{}, fmt.Errorf("%w: WELCOME needs positive interval_ms and timeout_ms", ErrBadReply)
		}
		return Reply{Kind: ReplyWelcome, SessionID: string(id), Welcome: w}, nil
	case bytes.Equal(verb, verbErr):
		code, msg := cut(rest)
		if len(code) == 0 {
			return Reply{}, fmt.Errorf("%w: ERR without a code", ErrBadReply)
		}
		return Reply{Kind: ReplyErr, Err: newError(Code(code), string(msg))}, nil
	case bytes.Equal(verb, verbBye):
		return Reply{Kind: ReplyBye, Reason: reason(rest)}, nil
	}
	return Reply{}, fmt.Errorf("%w: unknown command %s", ErrBadReply, quote(verb, 32))
}

// AppendHello appends a HELLO line, options included when not empty.
func AppendHello(dst []byte, name string, o HelloOptions) ([]byte, error) {
	dst = append(dst, "HELLO "...)
	dst = append(dst, name...)
	if o.Token != "" || len(o.Meta) > 0 || o.Ack != nil || o.IntervalMS != nil {
		js, err := json.Marshal(o)
		if err != nil {
			return dst, fmt.Errorf("wire: encode HELLO options: %w", err)
		}
		dst = append(dst, ' ')
		dst = append(dst, js...)
	}
	return append(dst, '\n'), nil
}

// AppendBeat appends "BEAT <seq>", followed by the round-trip time in
// microseconds when rtt is positive.
func AppendBeat(dst []byte, seq uint64, rtt time.Duration) []byte {
	dst = append(dst, "BEAT "...)
	dst = strconv.AppendUint(dst, seq, 10)
	if rtt > 0 {
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(rtt/time.Microsecond), 10)
	}
	return append(dst, '\n')
}

// AppendBye appends a BYE line; either side may send one.
func AppendBye(dst []byte, reason string) []byte {
	dst = append(dst, "BYE"...)
	if reason = oneLine(reason); reason != "" {
		dst = append(dst, ' ')
		dst = append(dst, reason...)
	}
	return append(dst, '\n')
}

// AppendWelcome appends a WELCOME line.
func AppendWelcome(dst []byte, sessionID string, w Welcome) []byte {
	js, _ := json.Marshal(w) // a struct of numbers, a bool and a string cannot fail
	dst = append(dst, "WELCOME "...)
	dst = append(dst, sessionID...)
	dst = append(dst, ' ')
	dst = append(dst, js...)
	return append(dst, '\n')
}

// AppendAck appends an ACK line, echoing seq if hasSeq.
func AppendAck(dst []byte, seq uint64, hasSeq bool) []byte {
	if !hasSeq {
		return append(dst, "ACK\n"...)
	}
	dst = append(dst, "ACK "...)
	dst = strconv.AppendUint(dst, seq, 10)
	return append(dst, '\n')
}

// AppendErr appends an ERR line. Line breaks in msg become spaces.
func AppendErr(dst []byte, code Code, msg string) []byte {
	dst = append(dst, "ERR "...)
	dst = append(dst, code...)
	if msg = oneLine(msg); msg != "" {
		dst = append(dst, ' ')
		dst = append(dst, msg...)
	}
	return append(dst, '\n')
}
