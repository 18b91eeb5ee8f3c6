package arrivals

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Writer sizes.
const (
	bufferSize = 64 << 10 // a buffer is handed to the disk when it holds this much
	buffers    = 8        // buffers in use at most: beyond, records are dropped
	flushEvery = time.Second
)

// Writer records arrivals to a file. A record is appended to an in-memory
// buffer under a mutex, which a goroutine of the Writer's own writes out
// when it is full and once a second: a beat never waits for the disk.
// When the disk falls so far behind that every buffer is waiting, records
// are dropped and counted (Dropped) rather than held. Its methods are safe
// for concurrent use. Close writes what remains and stops the goroutine.
type Writer struct {
	out   io.Writer
	close func() error // of the file, if the Writer opened it

	mu      sync.Mutex
	start   time.Time // monotonic
	lastUS  int64     // instant of the last record, µs since start
	buf     []byte    // records not yet handed to the goroutine; nil while none is free
	ids     map[string]uint64
	next    uint64
	closed  bool
	dropped atomic.Uint64

	full chan []byte // buffers to write, in order
	free chan []byte // written buffers, to reuse
	done chan struct{}
	wErr error // the first write error; set by the goroutine before done closes
}

// Create creates (or truncates) the file at path and records to it.
func Create(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("arrivals: %w", err)
	}
	w, err := NewWriter(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	w.close = f.Close
	return w, nil
}

// NewWriter writes the header to out and returns a Writer that records to
// it. out is written by the Writer's goroutine only.
func NewWriter(out io.Writer) (*Writer, error) {
	start := time.Now()
	var h [headerLen]byte
	copy(h[:], magic)
	h[len(magic)] = version
	binary.LittleEndian.PutUint64(h[len(magic)+1:], uint64(start.UnixNano()))
	if _, err := out.Write(h[:]); err != nil {
		return nil, fmt.Errorf("arrivals: writing the header: %w", err)
	}
	w := &Writer{
		out: out, start: start, ids: map[string]uint64{},
		buf:  make([]byte, 0, bufferSize),
		full: make(chan []byte, buffers), free: make(chan []byte, buffers),
		done: make(chan struct{}),
	}
	for range buffers - 1 {
		w.free <- make([]byte, 0, bufferSize)
	}
	go w.flusher()
	return w, nil
}

// Joined records that a session registered, with its server-assigned ID,
// its name and the interval it was granted, and returns the number its
// beats are recorded under.
func (w *Writer) Joined(id, name string, interval time.Duration) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0
	}
	w.next++
	n := w.next
	w.ids[id] = n
	if b := w.record(kindJoin, n); b != nil {
		b = binary.AppendUvarint(b, uint64(interval/time.Microsecond))
		b = appendString(b, id)
		w.buf = appendString(b, name)
	}
	return n
}

// Beat records a beat of the session numbered n (as Joined returned it),
// with its sequence number if it had one.
func (w *Writer) Beat(n, seq uint64, hasSeq bool) {
	if n == 0 {
		return
	}
	var s uint64
	if hasSeq {
		s = seq + 1
	}
	w.mu.Lock()
	if b := w.record(kindBeat, n); b != nil {
		w.buf = binary.AppendUvarint(b, s)
	}
	w.mu.Unlock()
}

// Ended records that the session with the server-assigned ID ended: kind
// is the event (left, dead, replaced, kicked) and reason its reason.
func (w *Writer) Ended(id, kind, reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, ok := w.ids[id]
	if !ok || w.closed {
		return
	}
	delete(w.ids, id)
	if b := w.record(kindEnd, n); b != nil {
		b = appendString(b, kind)
		w.buf = appendString(b, reason)
	}
}

// record starts a record of the given kind for session n, now, and returns
// the buffer to append the rest to; nil if the record is dropped. w.mu is
// held.
func (w *Writer) record(kind byte, n uint64) []byte {
	if w.closed {
		return nil
	}
	if len(w.buf) >= bufferSize-64 || w.buf == nil {
		w.handOff()
		if w.buf == nil {
			w.dropped.Add(1)
			return nil
		}
	}
	now := int64(time.Since(w.start) / time.Microsecond)
	dt := max(now-w.lastUS, 0)
	w.lastUS += dt
	b := append(w.buf, kind)
	b = binary.AppendUvarint(b, n)
	return binary.AppendUvarint(b, uint64(dt))
}

// handOff gives the current buffer, if it holds anything, to the goroutine
// and takes a free one, without waiting: w.buf is nil when none is free.
// w.mu is held.
func (w *Writer) handOff() {
	if len(w.buf) > 0 {
		w.full <- w.buf // never blocks: at most buffers exist, and this one is not queued
		w.buf = nil
	}
	if w.buf == nil {
		select {
		case w.buf = <-w.free:
		default:
		}
	}
}

// flusher writes full buffers out, and the current one once a second.
func (w *Writer) flusher() {
	defer close(w.done)
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	for {
		select {
		case b, ok := <-w.full:
			if !ok {
				return
			}
			w.write(b)
		case <-tick.C:
			w.mu.Lock()
			if !w.closed {
				w.handOff()
			}
			w.mu.Unlock()
		}
	}
}

// write writes b out and returns it to the free list. After a failed
// write, later buffers are discarded: the file is broken.
func (w *Writer) write(b []byte) {
	if w.wErr == nil {
		if _, err := w.out.Write(b); err != nil {
			w.wErr = fmt.Errorf("arrivals: %w", err)
		}
	}
	w.free <- b[:0]
}

// Dropped returns the number of records dropped because the disk fell
// behind.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// ErrClosed is returned by a second Close.
var ErrClosed = errors.New("arrivals: writer closed")

// Close writes what is buffered, stops the Writer's goroutine, closes the
// file if the Writer opened it, and returns the first write error. Records
// after Close are ignored.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	if len(w.buf) > 0 {
		w.full <- w.buf
		w.buf = nil
	}
	w.closed = true
	close(w.full)
	w.mu.Unlock()
	<-w.done
	err := w.wErr
	if w.close != nil {
		if cerr := w.close(); err == nil && cerr != nil {
			err = fmt.Errorf("arrivals: %w", cerr)
		}
	}
	return err
}

func appendString(b []byte, s string) []byte {
	if len(s) > maxString {
		s = s[:maxString]
	}
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
