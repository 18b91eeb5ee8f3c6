package arrivals

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Kind is the kind of a Record.
type Kind byte

// The kinds of record.
const (
	Join Kind = kindJoin
	Beat Kind = kindBeat
	End  Kind = kindEnd
)

// String returns "join", "beat" or "end".
func (k Kind) String() string {
	switch k {
	case Join:
		return "join"
	case Beat:
		return "beat"
	case End:
		return "end"
	}
	return fmt.Sprintf("Kind(%d)", byte(k))
}

// Record is one record of an arrivals file.
type Record struct {
	Kind Kind
	// Session is the recording's number of the session, from 1.
	Session uint64
	// At is when the record was made, since the recording started.
	At time.Duration
	// Seq is the beat's sequence number, if HasSeq (Beat).
	Seq    uint64
	HasSeq bool
	// ID, Name and Interval are the session's (Join).
	ID, Name string
	Interval time.Duration
	// EndKind and Reason say how the session ended (End): the event kind
	// (left, dead, replaced, kicked) and its reason.
	EndKind, Reason string
}

// Reader reads an arrivals file.
type Reader struct {
	r     *bufio.Reader
	start time.Time
	atUS  int64
}

// NewReader reads the header from r and returns a Reader of its records.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var h [headerLen]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return nil, fmt.Errorf("%w: reading the header: %w", ErrFormat, err)
	}
	if string(h[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: it does not start with %q", ErrFormat, magic)
	}
	if v := h[len(magic)]; v != version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrFormat, v, version)
	}
	start := time.Unix(0, int64(binary.LittleEndian.Uint64(h[len(magic)+1:])))
	return &Reader{r: br, start: start}, nil
}

// Start returns the wall-clock time the recording started.
func (r *Reader) Start() time.Time { return r.start }

// Next returns the next record. At the end of the file it returns io.EOF;
// a file cut short in a record (the server was killed while writing) gives
// an error wrapping io.ErrUnexpectedEOF, and damaged bytes one wrapping
// ErrFormat.
func (r *Reader) Next() (Record, error) {
	k, err := r.r.ReadByte()
	if err != nil {
		return Record{}, err // io.EOF: a clean end
	}
	rec := Record{Kind: Kind(k)}
	switch rec.Kind {
	case Join, Beat, End:
	default:
		return Record{}, fmt.Errorf("%w: unknown record kind %#x", ErrFormat, k)
	}
	rec.Session = r.uvarint(&err)
	dt := r.uvarint(&err)
	if err == nil && (rec.Session == 0 || dt > 1<<50) {
		err = fmt.Errorf("%w: session %d, time step %d µs", ErrFormat, rec.Session, dt)
	}
	if err != nil {
		return Record{}, err
	}
	r.atUS += int64(dt)
	rec.At = time.Duration(r.atUS) * time.Microsecond
	switch rec.Kind {
	case Join:
		iv := r.uvarint(&err)
		if err == nil && iv > maxInterval {
			err = fmt.Errorf("%w: interval of %d µs", ErrFormat, iv)
		}
		rec.Interval = time.Duration(iv) * time.Microsecond
		rec.ID = r.string(&err)
		rec.Name = r.string(&err)
	case Beat:
		if s := r.uvarint(&err); s > 0 {
			rec.Seq, rec.HasSeq = s-1, true
		}
	case End:
		rec.EndKind = r.string(&err)
		rec.Reason = r.string(&err)
	}
	if err != nil {
		return Record{}, err
	}
	return rec, nil
}

// uvarint reads an unsigned varint, unless *err is already set.
func (r *Reader) uvarint(err *error) uint64 {
	if *err != nil {
		return 0
	}
	var x uint64
	for i, shift := 0, uint(0); i < binary.MaxVarintLen64; i, shift = i+1, shift+7 {
		b, e := r.r.ReadByte()
		if e != nil {
			*err = truncated(e)
			return 0
		}
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				break
			}
			return x | uint64(b)<<shift
		}
		x |= uint64(b&0x7f) << shift
	}
	*err = fmt.Errorf("%w: a varint overflows 64 bits", ErrFormat)
	return 0
}

// string reads a length and that many bytes, unless *err is already set.
func (r *Reader) string(err *error) string {
	n := r.uvarint(err)
	if *err != nil {
		return ""
	}
	if n > maxString {
		*err = fmt.Errorf("%w: a string of %d bytes", ErrFormat, n)
		return ""
	}
	b := make([]byte, n)
	_, e := io.ReadFull(r.r, b)
	*err = truncated(e)
	return string(b)
}

// truncated turns the end of the file inside a record into
// io.ErrUnexpectedEOF.
func truncated(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("arrivals: the file ends inside a record: %w", io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("arrivals: %w", err)
}
