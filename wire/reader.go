package wire

import (
	"bytes"
	"io"
)

// initialReaderSize fits any HELLO a client is likely to send; the buffer
// grows up to the line limit only for longer lines.
const initialReaderSize = 256

// Reader reads protocol lines from a stream, enforcing MaxLineBytes. Its
// buffer starts small and grows only as long lines need.
type Reader struct {
	r     io.Reader
	buf   []byte
	start int // first unread byte
	scan  int // bytes before this index (from start) hold no '\n'
	end   int // end of the buffered data
	err   error
}

// NewReader returns a Reader of lines from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: r, buf: make([]byte, initialReaderSize)}
}

// ReadLine returns the next line without its "\n" or "\r\n". The line is
// valid until the next call. A line over MaxLineBytes gives ErrLineTooLong;
// the stream cannot be read further after that. At the end of the stream it
// returns io.EOF; an unfinished last line is dropped.
func (r *Reader) ReadLine() ([]byte, error) {
	for {
		if i := bytes.IndexByte(r.buf[r.scan:r.end], '\n'); i >= 0 {
			nl := r.scan + i
			line := r.buf[r.start:nl]
			r.start, r.scan = nl+1, nl+1
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			if len(line) > MaxLineBytes {
				return nil, ErrLineTooLong
			}
			return line, nil
		}
		r.scan = r.end
		// MaxLineBytes of content and a '\r' may still be waiting for '\n'.
		if r.end-r.start > MaxLineBytes+1 {
			return nil, ErrLineTooLong
		}
		if r.err != nil {
			return nil, r.err
		}
		r.fill()
	}
}

// Buffered returns how many bytes have been read from the stream but not
// yet returned as lines.
func (r *Reader) Buffered() int { return r.end - r.start }

// Ready reports whether the next ReadLine returns without reading from the
// stream: a whole line (or a line known to be too long) is buffered.
func (r *Reader) Ready() bool {
	return r.end-r.start > MaxLineBytes+1 || bytes.IndexByte(r.buf[r.scan:r.end], '\n') >= 0
}

// fill makes room and reads once more from the stream.
func (r *Reader) fill() {
	if r.start > 0 {
		n := copy(r.buf, r.buf[r.start:r.end])
		r.scan -= r.start
		r.start, r.end = 0, n
	}
	if r.end == len(r.buf) {
		size := min(2*len(r.buf), MaxLineBytes+2)
		grown := make([]byte, size)
		copy(grown, r.buf[:r.end])
		r.buf = grown
	}
	for range 100 {
		n, err := r.r.Read(r.buf[r.end:])
		r.end += n
		if err != nil {
			r.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	r.err = io.ErrNoProgress
}
