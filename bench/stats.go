package bench

import (
	"errors"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// Beats carry their phase in the two low bits of their sequence number, so
// that an ACK says which phase the beat it answers was sent in, and a beat
// sent in the window is counted as answered even if its ACK comes after.
const (
	tagRamp   = 1 // sent while clients were still connecting
	tagWindow = 2 // sent in the measurement window
	tagSettle = 3 // sent after the window
	tags      = 4
)

// share is the part of a run that one process plays: clients First to
// First+Count-1 of the run's Roles.N. It is what a worker is told.
type share struct {
	Server         string        `json:"server"`
	Prefix         string        `json:"prefix"`
	First          int           `json:"first"`
	Count          int           `json:"count"`
	Roles          roles         `json:"roles"`
	Interval       time.Duration `json:"interval"` // 0: as granted
	RampRate       float64       `json:"ramp_rate"`
	NoAck          bool          `json:"no_ack"`
	Raw            bool          `json:"raw"`
	SourceIPs      []netip.Addr  `json:"source_ips,omitempty"`
	ConnectTimeout time.Duration `json:"connect_timeout"`
	// Tokens, if any, are the HELLO tokens of the share's clients, by
	// their index from First.
	Tokens []string `json:"tokens,omitempty"`
}

// stats are the counters of one process's clients since they started, at
// one instant. Those of several processes add up (merge).
type stats struct {
	Clients    int            `json:"clients"`
	Connected  int            `json:"connected"`
	Failed     map[string]int `json:"failed,omitempty"` // connections that failed, by cause
	FirstError string         `json:"first_error,omitempty"`
	Ramped     bool           `json:"ramped"` // every client has connected or failed to
	// Acks: the server answers beats (as WELCOME said).
	Acks     bool          `json:"acks"`
	Interval time.Duration `json:"interval"` // 0 until known
	Timeout  time.Duration `json:"timeout"`  // 0 unless WELCOME told it

	Sent    [tags]uint64 `json:"sent"`    // beats, by tag
	Acked   [tags]uint64 `json:"acked"`   // ACKs, by the tag of their beat
	Replies uint64       `json:"replies"` // raw mode: lines received

	Open           int            `json:"open"`            // connections open
	Silenced       int            `json:"silenced"`        // clients silenced at the failure time
	Leaving        int            `json:"leaving"`         // clients told to disconnect then
	Disconnected   int            `json:"disconnected"`    // ... that have done so
	SilencedClosed int            `json:"silenced_closed"` // silenced clients the server cut off
	LeaversCut     int            `json:"leavers_cut"`     // leavers whose connection ended before they closed it
	Dropped        map[string]int `json:"dropped,omitempty"`

	RTT       hist          `json:"rtt"`
	WindowRTT hist          `json:"window_rtt"`
	CPU       time.Duration `json:"cpu"` // the process's CPU time, 0 if unknown
	Fatal     string        `json:"fatal,omitempty"`
}

// merge returns s and o added together.
func (s stats) merge(o stats) stats {
	m := s
	m.Clients += o.Clients
	m.Connected += o.Connected
	m.Failed = addCounts(s.Failed, o.Failed)
	if m.FirstError == "" {
		m.FirstError = o.FirstError
	}
	m.Ramped = s.Ramped && o.Ramped
	m.Acks = s.Acks || o.Acks
	m.Interval = max(s.Interval, o.Interval)
	m.Timeout = max(s.Timeout, o.Timeout)
	for t := range tags {
		m.Sent[t] += o.Sent[t]
		m.Acked[t] += o.Acked[t]
	}
	m.Replies += o.Replies
	m.Open += o.Open
	m.Silenced += o.Silenced
	m.Leaving += o.Leaving
	m.Disconnected += o.Disconnected
	m.SilencedClosed += o.SilencedClosed
	m.LeaversCut += o.LeaversCut
	m.Dropped = addCounts(s.Dropped, o.Dropped)
	m.RTT = s.RTT.add(o.RTT)
	m.WindowRTT = s.WindowRTT.add(o.WindowRTT)
	m.CPU += o.CPU
	if m.Fatal == "" {
		m.Fatal = o.Fatal
	}
	return m
}

func addCounts(a, b map[string]int) map[string]int {
	if len(b) == 0 {
		return a
	}
	sum := maps.Clone(a)
	if sum == nil {
		sum = map[string]int{}
	}
	for k, v := range b {
		sum[k] += v
	}
	return sum
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sumTags(a [tags]uint64) uint64 {
	var n uint64
	for _, v := range a {
		n += v
	}
	return n
}

// causeOf names why a connection failed or ended, as a short word.
func causeOf(err error) string {
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return "closed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken_pipe"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "address_not_available"
	case errors.Is(err, syscall.EADDRINUSE):
		return "address_in_use"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too_many_open_files"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "error"
}
