package wire

import "bytes"

// Splitter cuts a stream that arrives in chunks into protocol lines, by the
// same rules as Reader, for a transport that does its own reads (an event
// loop). Its zero value is ready to use; between chunks it holds only the
// unfinished end of the last one.
type Splitter struct {
	partial []byte
}

// maxKeptPartial is the largest buffer a Splitter keeps for the next
// unfinished line; a longer one is let go once its line is done.
const maxKeptPartial = 512

// Split calls fn with each whole line of the stream that chunk continues,
// without its "\n" or "\r\n", and keeps what follows the last "\n" for the
// next call. The line is valid only during the call. If fn returns false,
// Split stops and drops the rest of chunk. A line over MaxLineBytes gives
// ErrLineTooLong, and the stream cannot be split further.
func (s *Splitter) Split(chunk []byte, fn func(line []byte) bool) error {
	for len(chunk) > 0 {
		i := bytes.IndexByte(chunk, '\n')
		if i < 0 {
			// MaxLineBytes of content and a '\r' may still be waiting for '\n'.
			if len(s.partial)+len(chunk) > MaxLineBytes+1 {
				return ErrLineTooLong
			}
			s.partial = append(s.partial, chunk...)
			return nil
		}
		line := chunk[:i]
		chunk = chunk[i+1:]
		if len(s.partial) > 0 {
			if len(s.partial)+len(line) > MaxLineBytes+1 {
				return ErrLineTooLong
			}
			s.partial = append(s.partial, line...)
			line = s.partial
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) > MaxLineBytes {
			return ErrLineTooLong
		}
		more := fn(line)
		if cap(s.partial) > maxKeptPartial {
			s.partial = nil
		} else {
			s.partial = s.partial[:0]
		}
		if !more {
			return nil
		}
	}
	return nil
}

// Buffered returns how many bytes of an unfinished line are held.
func (s *Splitter) Buffered() int { return len(s.partial) }
