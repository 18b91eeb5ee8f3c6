package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
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
	src Source
	log *slog.Logger

	mu    sync.Mutex
	epoch string // tells this run's event IDs from another's; the source's own if it numbers events itself
	// ring holds the latest events in order, their seqs increasing but not
	// necessarily consecutive (a cluster's are not): n of them from head.
	ring    []held
	head, n int
	// floor is the newest seq a stream may have seen and still resume
	// from: every event after it that the hub followed is in the ring.
	floor   uint64
	last    uint64 // the newest seq followed; floor when the ring is empty
	changed chan struct{}
	closed  bool
	sub     Subscription
	gen     uint64 // counts follows: a stream of an earlier one must reset

	stop chan struct{}
	done chan struct{}
}

// held is one event of the ring, encoded.
type held struct {
	seq   uint64
	frame []byte
}

// Subscription is a stream of events that the hub follows; a
// *registry.Subscription is one.
type Subscription interface {
	// C returns the channel of events, closed when the subscription ends.
	C() <-chan pulse.Event
	// From returns the number of the first event it may deliver: the
	// events numbered before it were declared before it began. Numbers
	// increase but need not be consecutive.
	From() uint64
	// Err says why C was closed: nil after Close, an error wrapping
	// registry.ErrSlowSubscriber or ErrReset to be followed again, anything
	// else when the source has closed.
	Err() error
	// Close ends the subscription.
	Close()
}

// EventSource is a Source that numbers its events itself, such as a
// cluster whose event IDs must mean the same on every node: the hub
// follows SubscribeEvents instead of Subscribe, and the epoch it returns
// starts every event ID.
type EventSource interface {
	SubscribeEvents(buffer int) (sub Subscription, epoch string)
}

// ErrReset ends a Subscription whose source started numbering its events
// afresh (a cluster that resynced with its store): the hub follows it
// again and every event stream gets a reset, so that its client reloads
// the table rather than miss what changed.
var ErrReset = errors.New("httpapi: the event source started afresh")

func newHub(src Source, history int, log *slog.Logger) *hub {
	h := &hub{
		src:     src,
		log:     log,
		ring:    make([]held, history),
		changed: make(chan struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	h.follow(h.subscribe())
	go h.run()
	return h
}

// subscription is a subscription to follow and the epoch of its IDs.
type subscription struct {
	Subscription
	epoch string
}

// subscribe subscribes to the source's events.
func (h *hub) subscribe() subscription {
	if es, ok := h.src.(EventSource); ok {
		sub, epoch := es.SubscribeEvents(hubBuffer)
		return subscription{sub, epoch}
	}
	sub := subscription{Subscription: h.src.Subscribe(hubBuffer)}
	h.mu.Lock()
	sub.epoch = h.epoch // the registry's numbers go on across follows
	h.mu.Unlock()
	if sub.epoch == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		sub.epoch = hex.EncodeToString(b[:])
	}
	return sub
}

// follow starts reading from sub; what the ring held before is gone. h.mu
// is held, or h is not shared yet.
func (h *hub) follow(sub subscription) {
	h.sub = sub.Subscription
	h.epoch = sub.epoch
	h.gen++
	h.floor = sub.From() - 1
	h.last = h.floor
	h.head, h.n = 0, 0
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
// dropped for falling behind, or reset by the source; streams older than
// the gap get a reset. It reports false when the source has closed.
func (h *hub) resubscribe() bool {
	switch err := h.sub.Err(); {
	case errors.Is(err, registry.ErrSlowSubscriber):
		h.log.Warn("event history fell behind the server and restarts; event streams will be reset")
	case errors.Is(err, ErrReset):
		h.log.Info("the event source started afresh; event streams will be reset", "why", err)
	default:
		h.shut()
		return false
	}
	sub := h.subscribe()
	h.mu.Lock()
	h.follow(sub)
	h.broadcast()
	h.mu.Unlock()
	return true
}

func (h *hub) add(ev pulse.Event) {
	h.mu.Lock()
	epoch, last := h.epoch, h.last
	h.mu.Unlock()
	if ev.Seq <= last {
		return // numbers only increase; the source repeated itself
	}
	id := formatEventID(epoch, ev.Seq)
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
	if h.n == len(h.ring) {
		h.floor = h.ring[h.head].seq
		h.ring[h.head] = held{}
		h.head = (h.head + 1) % len(h.ring)
		h.n--
	}
	h.ring[(h.head+h.n)%len(h.ring)] = held{seq: ev.Seq, frame: frame}
	h.n++
	h.last = ev.Seq
	h.broadcast()
}

// at returns the i-th oldest event held. h.mu is held.
func (h *hub) at(i int) *held { return &h.ring[(h.head+i)%len(h.ring)] }

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
func (h *hub) eventID(seq uint64) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return formatEventID(h.epoch, seq)
}

func formatEventID(epoch string, seq uint64) string {
	return epoch + "-" + strconv.FormatUint(seq, 10)
}

// parseEventID returns the epoch and seq of an ID.
func parseEventID(id string) (epoch string, seq uint64, err error) {
	epoch, n, ok := strings.Cut(id, "-")
	if ok {
		seq, err = strconv.ParseUint(n, 10, 64)
	}
	if !ok || err != nil || epoch == "" {
		return "", 0, fmt.Errorf("%q is not an event ID this API gave", id)
	}
	return epoch, seq, nil
}

// readState says how a stream stands against the ring.
type readState uint8

const (
	readOK      readState = iota
	readBehind            // the stream's next event has left the ring
	readRestart           // the hub follows its source afresh: the stream's place is gone
	readClosed            // the hub closed and the stream has everything
)

// read appends to frames the frames of the events after seq after, up to
// maxBatch, and returns them with the seq of the last one, and the channel
// closed at the next change.
func (h *hub) read(gen, after uint64, frames [][]byte) ([][]byte, uint64, <-chan struct{}, readState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if gen != h.gen {
		return frames, after, nil, readRestart
	}
	if after < h.floor {
		return frames, after, nil, readBehind
	}
	// the first event held after it
	i := sort.Search(h.n, func(i int) bool { return h.at(i).seq > after })
	for ; i < h.n && len(frames) < maxBatch; i++ {
		e := h.at(i)
		frames = append(frames, e.frame)
		after = e.seq
	}
	if len(frames) == 0 && h.closed {
		return frames, after, nil, readClosed
	}
	return frames, after, h.changed, readOK
}

// start decides where a new stream starts: after the event it last saw
// (lastID, "" for none), if the ring still has what followed, or else
// now, with a reset telling it to reload the table. here is the ID of
// where it starts.
func (h *hub) start(lastID string) (gen, after uint64, here, reset string, err error) {
	var seq uint64
	var epoch string
	if lastID != "" {
		if epoch, seq, err = parseEventID(lastID); err != nil {
			return 0, 0, "", "", err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	gen, after = h.gen, h.last
	switch {
	case lastID == "":
	case epoch != h.epoch:
		reset = "the server (or its cluster's store) restarted since that event"
	case seq < h.floor:
		reset = fmt.Sprintf("that event is older than the %d kept to resume from", len(h.ring))
	default:
		after = seq
	}
	return gen, after, formatEventID(h.epoch, after), reset, nil
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
	gen, after, here, reset, err := h.start(lastID)
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
		frames, after, changed, state = h.read(gen, after, frames[:0])
		switch state {
		case readBehind:
			s.frame(": dropped: this stream fell more than %d events behind; reconnect to resume\n\n", len(h.ring))
			s.flush()
			a.cfg.Logger.Info("event stream dropped: its reader fell behind", "peer", r.RemoteAddr)
			return
		case readRestart:
			// The source reset (a cluster node resynced with its store) or
			// the hub itself fell behind: not the reader's doing. It
			// reconnects with its last ID and gets a reset.
			s.frame(": restarted: the event history started afresh; reconnect to resume\n\n")
			s.flush()
			a.cfg.Logger.Debug("event stream ended: the event history started afresh", "peer", r.RemoteAddr)
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
