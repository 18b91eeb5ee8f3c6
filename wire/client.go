package wire

import (
	"bytes"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pulsehq/pulse"
)

// Verb is the command of a client line.
type Verb uint8

// The client commands. VerbNone is an empty line, which servers ignore.
const (
	VerbNone Verb = iota
	VerbHello
	VerbBeat
	VerbBye
)

// String returns the command as it is spelled on the wire.
func (v Verb) String() string {
	switch v {
	case VerbHello:
		return "HELLO"
	case VerbBeat:
		return "BEAT"
	case VerbBye:
		return "BYE"
	}
	return "(empty)"
}

// Message is one parsed client line.
type Message struct {
	Verb Verb

	// HELLO
	Name  string
	Hello HelloOptions

	// BEAT
	Seq    uint64        // the sequence number, if HasSeq
	HasSeq bool          // whether the BEAT carried a sequence number
	RTT    time.Duration // the round-trip time the client reports, 0 if none

	// BYE
	Reason string // the client's reason, possibly empty
}

// MaxReasonBytes is the longest BYE reason kept; longer ones are cut.
const MaxReasonBytes = 256

// maxRTTMicros keeps a reported RTT within time.Duration.
const maxRTTMicros = uint64(1<<63-1) / 1000

var (
	verbHello = []byte("HELLO")
	verbBeat  = []byte("BEAT")
	verbBye   = []byte("BYE")
)

// Parse parses one client line, without its line end. It returns an *Error
// whose code says what is wrong with a bad line. Parsing a BEAT does not
// allocate.
func Parse(line []byte) (Message, error) {
	line = trimSpace(line)
	if len(line) == 0 {
		return Message{}, nil
	}
	verb, rest := cut(line)
	switch {
	case bytes.Equal(verb, verbBeat):
		return parseBeat(rest)
	case bytes.Equal(verb, verbHello):
		return parseHello(rest)
	case bytes.Equal(verb, verbBye):
		return Message{Verb: VerbBye, Reason: reason(rest)}, nil
	}
	return Message{}, newError(CodeBadCommand, "unknown command "+quote(verb, 32)+" (want HELLO, BEAT or BYE)")
}

func parseBeat(rest []byte) (Message, error) {
	m := Message{Verb: VerbBeat}
	if len(rest) == 0 {
		return m, nil
	}
	tok, rest := cut(rest)
	seq, ok := parseUint(tok)
	if !ok {
		return Message{}, newError(CodeBadCommand, "BEAT sequence number must be an unsigned integer, got "+quote(tok, 32))
	}
	m.Seq, m.HasSeq = seq, true
	if len(rest) == 0 {
		return m, nil
	}
	tok, rest = cut(rest)
	rtt, ok := parseUint(tok)
	if !ok || rtt > maxRTTMicros {
		return Message{}, newError(CodeBadCommand, "BEAT round-trip time must be an unsigned integer of microseconds, got "+quote(tok, 32))
	}
	m.RTT = time.Duration(rtt) * time.Microsecond
	if len(rest) != 0 {
		return Message{}, newError(CodeBadCommand, "BEAT takes at most two arguments: BEAT [<seq> [<rtt_us>]]")
	}
	return m, nil
}

func parseHello(rest []byte) (Message, error) {
	name, opts := cut(rest)
	if len(name) == 0 {
		return Message{}, newError(CodeBadName, "HELLO needs a name: HELLO <name> [<json options>]")
	}
	if !pulse.ValidName(string(name)) {
		return Message{}, newError(CodeBadName, "name "+quote(name, 80)+" is not 1-64 of A-Z a-z 0-9 . _ - :")
	}
	m := Message{Verb: VerbHello, Name: string(name)}
	if len(opts) > 0 {
		o, err := ParseHelloOptions(opts)
		if err != nil {
			return Message{}, err
		}
		m.Hello = o
	}
	return m, nil
}

// reason turns the tail of a BYE into short printable text: valid UTF-8,
// control characters (C0, DEL, C1) as spaces, no blanks at the ends, at
// most MaxReasonBytes bytes of whole runes.
func reason(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	s := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, string(bytes.ToValidUTF8(b, []byte("\uFFFD"))))
	s = strings.TrimSpace(s)
	if len(s) > MaxReasonBytes {
		// cut before the rune that straddles the limit
		i := MaxReasonBytes
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = strings.TrimSpace(s[:i])
	}
	return s
}

// cut splits b at its first run of spaces and tabs into the token before
// it and the rest after it.
func cut(b []byte) (tok, rest []byte) {
	for i, c := range b {
		if c == ' ' || c == '\t' {
			return b[:i], trimSpace(b[i+1:])
		}
	}
	return b, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// parseUint parses a decimal uint64 without allocating.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// quote returns b as a Go-quoted string, cut to at most max bytes, for
// error messages.
func quote(b []byte, max int) string {
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "…"
	}
	return strconv.Quote(string(b))
}
