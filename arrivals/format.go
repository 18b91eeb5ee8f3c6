// Package arrivals records when heartbeats arrive at a pulse server, in a
// compact binary file, and reads such files back: `pulse serve
// --record-arrivals FILE` writes one, and `pulse fdbench --replay FILE`
// measures detectors on it, so that operators can tune detection on their
// own fleet's traffic.
//
// # Format
//
// A file is a header and a sequence of records. The header is the 8 bytes
// "PULSEARR", a version byte (1), and the wall-clock time the recording
// started, as nanoseconds since the Unix epoch in 8 little-endian bytes.
// Each record is a kind byte, then unsigned varints (encoding/binary):
//
//	'J' join:  session, Δt, interval µs, len(id), id, len(name), name
//	'B' beat:  session, Δt, seq+1 (0 when the beat had no sequence number)
//	'E' end:   session, Δt, len(kind), kind, len(reason), reason
//
// session is a number the recording gives each session from 1, in the
// order they join; Δt is the microseconds since the previous record (the
// first counts from the start), on the monotonic clock, so that instants
// never go backwards. A beat costs 4 to 8 bytes.
package arrivals

import "errors"

// magic opens every arrivals file.
const magic = "PULSEARR"

// version is the format version written and read.
const version = 1

// headerLen is the length of the header: magic, version, start time.
const headerLen = len(magic) + 1 + 8

// Kinds of record.
const (
	kindJoin = 'J'
	kindBeat = 'B'
	kindEnd  = 'E'
)

// Limits on what a record may hold, so that a damaged file cannot make a
// reader allocate without bound.
const (
	maxString   = 4096
	maxInterval = 24 * 3600 * 1_000_000 // µs
)

// ErrFormat is wrapped by the errors of a Reader that meets bytes that are
// not an arrivals file, or a version it does not know.
var ErrFormat = errors.New("arrivals: not a valid arrivals file")
