package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/registry"
)

// hubBuffer is how many events the hub's own subscription may hold: the
// hub only encodes and stores them (a few microseconds each), so it falls
// that far behind only if the process is starved. Each held event takes
// about 230 bytes, so that the buffer costs 3.7 MiB once it has been used;
// a larger one cost more than the sessions of a 19,000-session server. If
// the hub does fall behind, it starts again and every stream is reset (see
// resubscribe): a dashboard reloads; nothing blocks.
const hubBuffer = 1 << 14

// maxBatch is the most events a stream writes at once.
const maxBatch = 256

// hub follows the source's events, encodes each once as an SSE frame, and
// keeps the latest in a ring from which every stream reads at its own pace.
// A stream that falls out of the ring is dropped; no stream can hold up the
// hub or another stream.
type hub struct {
	src   Source
	log   *slog.Logger
	epoch string // tells this run's event IDs from another's

	mu      sync.Mutex
	ring    [][]byte // the frame of event seq is at ring[seq%len(ring)]
	first   uint64   // the oldest event held; events first..last are held
	last    uint64   // the newest; last = first-1 when none is held
	changed chan struct{}
	closed  bool
	sub     *registry.Subscription

	stop chan struct{}
	done chan struct{}
}

func newHub(src Source, history int, log *slog.Logger) *hub {
	var b [4]byte
	_, _ = rand.Read(b[:])
	h := &hub{
		src:     src,
		log:     log,
		epoch:   hex.EncodeToString(b[:]),
		ring:    make([][]byte, history),
		changed: make(chan struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	h.follow(src.Subscribe(hubBuffer))
	go h.run()
	return h
}

// follow starts reading from sub; what the ring held before is gone. h.mu
// is held, or h is not shared yet.
func (h *hub) follow(sub *registry.Subscription) {
	h.sub = sub
	h.first = sub.From()
	h.last = h.first - 1
	clear(h.ring)
}

func (h *hub) run() {
	defer close(h.done)
	for {
		select {
		case ev, ok := <-h.sub.C():
			if !ok {
				if !h.resubscribe() {
					return
				}
				continue
			}
			h.add(ev)
		case <-h.stop:
			h.sub.Close()
			h.shut()
			return
		}
	}
}

// resubscribe follows the source again after the hub's subscription was
// dropped for falling behind; streams older than the gap get a reset. It
// reports false when the source has closed.
func (h *hub) resubscribe() bool {
	if !errors.Is(h.sub.Err(), registry.ErrSlowSubscriber) {
		h.shut()
		return false
	}
	h.log.Warn("event history fell behind the server and restarts; event streams will be reset")
	h.mu.Lock()
	h.follow(h.src.Subscribe(hubBuffer))
	h.broadcast()
	h.mu.Unlock()
	return true
}

func (h *hub) add(ev pulse.Event) {
	id := h.eventID(ev.Seq)
	data, err := json.Marshal(newEvent(id, ev))
	if err != nil { // cannot happen: every field marshals
		h.log.Error("cannot encode event", "seq", ev.Seq, "error", err)
		return
	}
	frame := make([]byte, 0, len(id)+len(data)+12)
	frame = append(frame, "id: "...)
	frame = append(frame, id...)
	frame = append(frame, "\ndata: "...)
	frame = append(frame, data...)
	frame = append(frame, "\n\n"...)

	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = ev.Seq
	h.ring[ev.Seq%uint64(len(h.ring))] = frame
	if h.last-h.first >= uint64(len(h.ring)) {
		h.first = h.last - uint64(len(h.ring)) + 1
	}
	h.broadcast()
}

// broadcast wakes every waiting stream. h.mu is held.
func (h *hub) broadcast() {
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *hub) shut() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		h.broadcast()
	}
}

func (h *hub) close() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
}

func (h *hub) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// eventID is the SSE id of event seq of this run.
func (h *hub) eventID(seq uint64) string { return h.epoch + "-" + strconv.FormatUint(seq, 10) }

// parseEventID returns the seq of an ID, and whether it is of this run.
func (h *hub) parseEventID(id string) (seq uint64, thisRun bool, err error) {
	epoch, n, ok := strings.Cut(id, "-")
	if ok {
		seq, err = strconv.ParseUint(n, 10, 64)
	}
	if !ok || err != nil || len(epoch) != len(h.epoch) {
		return 0, false, fmt.Errorf("%q is not an event ID this API gave", id)
	}
	return seq, epoch == h.epoch, nil
}

// readState says how a stream stands against the ring.
type readState uint8

const (
	readOK     readState = iota
	readBehind           // the stream's next event has left the ring
	readClosed           // the hub closed and the stream has everything
)

// read appends to frames the frames of the events after seq after, up to
// maxBatch, and returns them with the seq of the last one, and the channel
// closed at the next change.
func (h *hub) read(after uint64, frames [][]byte) ([][]byte, uint64, <-chan struct{}, readState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if after+1 < h.first {
		return frames, after, nil, readBehind
	}
	for after < h.last && len(frames) < maxBatch {
		after++
		frames = append(frames, h.ring[after%uint64(len(h.ring))])
	}
	if len(frames) == 0 && h.closed {
		return frames, after, nil, readClosed
	}
	return frames, after, h.changed, readOK
}

// start decides where a new stream starts: after the event it last saw
// (lastID, "" for none), if the ring still has what followed, or else
// now, with a reset telling it to reload the table.
func (h *hub) start(lastID string) (after uint64, reset string, err error) {
	var seq uint64
	thisRun := false
	if lastID != "" {
		if seq, thisRun, err = h.parseEventID(lastID); err != nil {
			return 0, "", err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case lastID == "":
		return h.last, "", nil
	case !thisRun:
		return h.last, "the server restarted since that event", nil
	case seq+1 < h.first:
		return h.last, fmt.Sprintf("that event is older than the %d kept to resume from", len(h.ring)), nil
	}
	return seq, "", nil
}

// events serves GET /v1/events as server-sent events.
func (a *API) events(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, "GET")
		return
	}
	for key := range r.URL.Query() {
		if key != "last_event_id" {
			writeError(w, errorf(http.StatusBadRequest, CodeBadRequest, "unknown parameter ?%s; the only one is last_event_id", key))
			return
		}
	}
	lastID := r.Header.Get("Last-Event-ID") // the browser's, on reconnecting: newer than the query's
	if lastID == "" {
		lastID = r.URL.Query().Get("last_event_id")
	}
	h := a.hub
	after, reset, err := h.start(lastID)
	if err != nil {
		writeError(w, errorf(http.StatusBadRequest, CodeBadEventID, "Last-Event-ID: %v", err))
		return
	}
	if h.isClosed() {
		writeError(w, errorf(http.StatusServiceUnavailable, CodeUnavailable, "the server is shutting down"))
		return
	}
	s := &stream{w: w, rc: http.NewResponseController(w), timeout: a.cfg.WriteTimeout}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	// The first frame says where the stream starts; its id lets a client
	// that saw no event yet resume from here.
	here := h.eventID(after)
	if reset != "" {
		s.frame("retry: 2000\nid: %s\nevent: reset\ndata: %s\n\n", here, mustJSON(map[string]string{"reason": reset, "last_event_id": here}))
	} else {
		s.frame("retry: 2000\nid: %s\nevent: ready\ndata: %s\n\n", here, mustJSON(map[string]string{"last_event_id": here}))
	}
	if !s.flush() {
		return
	}

	keepAlive := time.NewTicker(a.cfg.KeepAlive)
	defer keepAlive.Stop()
	var frames [][]byte
	for {
		var changed <-chan struct{}
		var state readState
		frames, after, changed, state = h.read(after, frames[:0])
		switch state {
		case readBehind:
			s.frame(": dropped: this stream fell more than %d events behind; reconnect to resume\n\n", len(h.ring))
			s.flush()
			a.cfg.Logger.Info("event stream dropped: its reader fell behind", "peer", r.RemoteAddr)
			return
		case readClosed:
			return
		}
		if len(frames) > 0 {
			for _, f := range frames {
				s.buf = append(s.buf, f...)
			}
			clear(frames)
			if !s.flush() {
				return
			}
			continue
		}
		select {
		case <-changed:
		case <-keepAlive.C:
			s.frame(": keepalive\n\n")
			if !s.flush() {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}

// stream writes the frames of one event stream.
type stream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	buf     []byte
}

func (s *stream) frame(format string, args ...any) { s.buf = fmt.Appendf(s.buf, format, args...) }

// flush writes what is buffered and reports whether it went before the
// write timeout.
func (s *stream) flush() bool {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout)) // unsupported by some writers: then no deadline
	_, err := s.w.Write(s.buf)
	s.buf = s.buf[:0]
	if err == nil {
		err = s.rc.Flush()
	}
	return err == nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings are passed
	}
	return b
}
