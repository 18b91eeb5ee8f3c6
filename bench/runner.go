package bench

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"net"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pulsehq/pulse/wire"
)

// A connection's state. Only the transitions written below happen, each
// by a compare-and-swap or a swap, so that the scheduler, the reader, the
// failure and the stop agree on who does what.
const (
	stateOpen     = iota // beating
	stateSilenced        // failed: no more beats          (open → silenced)
	stateLeaving         // failed: to close in its slot   (open → leaving)
	stateClosing         // closed by us: disconnect, stop (open|silenced|leaving → closing)
	stateEnded           // its reader is done             (any → ended)
)

// conn is one client's connection.
type conn struct {
	nc    *net.TCPConn
	role  role
	state atomic.Uint32

	// Owned by the scheduler.
	beats    uint64 // beats sent
	deferred uint8  // slots a leaver has waited for its last ACK

	// The beat in flight: the scheduler writes sentSeq = 0, sentAt, then
	// sentSeq, so that a reader that sees the same sentSeq before and after
	// reading sentAt has the time that beat was sent (a seqlock).
	sentSeq  atomic.Uint64
	sentAt   atomic.Int64 // since runner.start
	ackedSeq atomic.Uint64
	rtt      atomic.Int64 // the last round trip measured, sent with the next beat
}

// Runner limits.
const (
	dialers      = 256 // connections being set up at once, per process
	readBuffer   = 128 // bytes: an ACK, or the start of any other line
	maxDeferrals = 4   // slots a leaver waits for its last ACK before it closes anyway
)

// runner runs one process's share of the clients.
type runner struct {
	sh     share
	start  time.Time
	ctx    context.Context
	cancel context.CancelFunc

	work    sync.WaitGroup // the ramp and the schedulers
	readers sync.WaitGroup // one per connection
	scheds  []*scheduler
	slotOf  []int32 // local client j → its slot in scheds[j%len(scheds)]
	started sync.Once
	beating sync.Once

	tag      atomic.Uint32
	interval atomic.Int64
	timeout  atomic.Int64
	acks     atomic.Bool
	ramped   atomic.Bool
	stopping atomic.Bool

	connected, open                                 atomic.Int64
	silenced, leaving, disconnected, silencedClosed atomic.Int64
	leaversCut                                      atomic.Int64
	acked                                           [tags]atomic.Uint64
	replies                                         atomic.Uint64
	rtt, windowRTT                                  histogram
	helloOpts                                       wire.HelloOptions

	mu              sync.Mutex
	failed, dropped map[string]int // by cause
	firstErr, fatal string
}

func newRunner(sh share) *runner {
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{sh: sh, start: time.Now(), ctx: ctx, cancel: cancel,
		failed: map[string]int{}, dropped: map[string]int{}}
	r.tag.Store(tagRamp)
	if sh.NoAck {
		no := false
		r.helloOpts.Ack = &no
	}

	// Share the clients among a few schedulers, each sweeping its own in
	// the order of their phases.
	n := min(max(runtime.GOMAXPROCS(0), 1), 4)
	if sh.Count < 1000 {
		n = 1
	}
	r.scheds = make([]*scheduler, n)
	members := make([][]int, n)
	for j := range sh.Count {
		members[j%n] = append(members[j%n], j)
	}
	r.slotOf = make([]int32, sh.Count)
	for s := range n {
		m := members[s]
		slices.SortFunc(m, func(a, b int) int {
			return cmp.Or(cmp.Compare(phase(sh.First+a), phase(sh.First+b)), a-b)
		})
		sc := &scheduler{r: r, phases: make([]float64, len(m)), slots: make([]atomic.Pointer[conn], len(m))}
		for k, j := range m {
			sc.phases[k] = phase(sh.First + j)
			r.slotOf[j] = int32(k)
		}
		r.scheds[s] = sc
	}
	return r
}

// do performs one request of the coordinator and returns the counters
// after it.
func (r *runner) do(op string) (stats, error) {
	switch op {
	case opStart:
		r.started.Do(func() {
			r.work.Add(1)
			go r.ramp()
			if r.sh.Raw {
				r.startBeating(orDefault(r.sh.Interval, DefaultInterval))
			}
		})
	case opStats:
	case opWindow:
		r.tag.Store(tagWindow)
	case opFail:
		r.fail()
	case opEnd:
		r.tag.Store(tagSettle)
	case opStop:
		r.stop()
	default:
		return stats{}, fmt.Errorf("unknown request %q", op)
	}
	return r.snapshot(), nil
}

// orDefault returns d if it is positive, otherwise the default.
func orDefault(d, otherwise time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return otherwise
}

// ramp opens the connections at the share's rate, a few at a time.
func (r *runner) ramp() {
	defer r.work.Done()
	defer r.ramped.Store(true)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(dialers, r.sh.Count) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				r.connect(j)
			}
		}()
	}
	defer wg.Wait()
	defer close(jobs)
	t0 := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for j := 0; j < r.sh.Count; j++ {
		if r.sh.RampRate > 0 {
			due := t0.Add(time.Duration(float64(j) / r.sh.RampRate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				timer.Reset(max(wait, time.Millisecond)) // a few at a time rather than one per wake-up
				select {
				case <-timer.C:
				case <-r.ctx.Done():
					return
				}
			}
		}
		select {
		case jobs <- j:
		case <-r.ctx.Done():
			return
		}
	}
}

// connect opens the connection of local client j and registers it.
func (r *runner) connect(j int) {
	i := r.sh.First + j
	name := r.sh.Prefix + strconv.Itoa(i)
	d := net.Dialer{Timeout: orDefault(r.sh.ConnectTimeout, DefaultConnectTimeout), KeepAlive: -1}
	if ips := r.sh.SourceIPs; len(ips) > 0 {
		d.LocalAddr = &net.TCPAddr{IP: ips[i%len(ips)].AsSlice()}
	}
	c, err := d.DialContext(r.ctx, "tcp", r.sh.Server)
	if err != nil {
		if r.ctx.Err() == nil {
			r.connectFailed(causeOf(err), err)
		}
		return
	}
	nc := c.(*net.TCPConn)
	// A stop must not wait for a handshake the server is slow to answer.
	interrupt := context.AfterFunc(r.ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	pending, err := r.handshake(nc, name, j)
	interrupt()
	if err != nil || r.ctx.Err() != nil {
		nc.Close()
		return
	}
	cn := &conn{nc: nc, role: r.sh.Roles.of(i)}
	r.connected.Add(1)
	r.open.Add(1)
	r.readers.Add(1)
	go r.read(cn, pending)
	r.scheds[j%len(r.scheds)].slots[r.slotOf[j]].Store(cn)
}

// handshake sends HELLO and, unless raw, reads WELCOME. It returns what
// was read after the WELCOME line. j is the client's local index.
func (r *runner) handshake(nc *net.TCPConn, name string, j int) ([]byte, error) {
	opts := r.helloOpts
	if j < len(r.sh.Tokens) {
		opts.Token = r.sh.Tokens[j]
	}
	hello, err := wire.AppendHello(nil, name, opts)
	if err != nil {
		r.connectFailed("bad_hello", err)
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(orDefault(r.sh.ConnectTimeout, DefaultConnectTimeout)))
	defer nc.SetDeadline(time.Time{})
	if _, err := nc.Write(hello); err != nil {
		r.connectFailed(causeOf(err), err)
		return nil, err
	}
	if r.sh.Raw {
		return nil, nil
	}
	buf := make([]byte, 512)
	n := 0
	for {
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			rep, err := wire.ParseReply(trimCR(buf[:i]))
			switch {
			case err != nil:
				err = fmt.Errorf("%q is not a WELCOME: %w", buf[:i], err)
				r.connectFailed("bad_reply", err)
				return nil, err
			case rep.Kind == wire.ReplyErr:
				err = fmt.Errorf("the server refused %s: %w", name, rep.Err)
				r.connectFailed(string(rep.Err.Code), err)
				return nil, err
			case rep.Kind != wire.ReplyWelcome:
				err = fmt.Errorf("%q is not a WELCOME", buf[:i])
				r.connectFailed("bad_reply", err)
				return nil, err
			}
			if err := r.welcomed(rep.Welcome); err != nil {
				return nil, err
			}
			return append([]byte(nil), buf[i+1:n]...), nil
		}
		if n == len(buf) {
			err := fmt.Errorf("a line from the server longer than %d bytes instead of WELCOME", len(buf))
			r.connectFailed("bad_reply", err)
			return nil, err
		}
		m, err := nc.Read(buf[n:])
		n += m
		if err != nil && bytes.IndexByte(buf[:n], '\n') < 0 {
			r.connectFailed(causeOf(err), fmt.Errorf("waiting for WELCOME: %w", err))
			return nil, err
		}
	}
}

// welcomed takes the timing from the first WELCOME and starts beating.
func (r *runner) welcomed(w wire.Welcome) error {
	var err error
	r.beating.Do(func() {
		granted := w.Interval()
		iv := orDefault(r.sh.Interval, granted)
		if granted <= 0 || iv > granted {
			err = fmt.Errorf("the interval %v is longer than the %v the server grants: every client would be declared dead", iv, granted)
			r.mu.Lock()
			r.fatal = err.Error()
			r.mu.Unlock()
			return
		}
		r.timeout.Store(int64(w.Timeout()))
		r.acks.Store(w.Ack && !r.sh.NoAck)
		r.startBeating(iv)
	})
	if err == nil && r.interval.Load() == 0 {
		err = fmt.Errorf("no interval to beat at")
	}
	return err
}

func (r *runner) startBeating(iv time.Duration) {
	r.interval.Store(int64(iv))
	for _, s := range r.scheds {
		r.work.Add(1)
		go s.run(iv)
	}
}

func (r *runner) connectFailed(cause string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed[cause]++
	if r.firstErr == "" {
		r.firstErr = err.Error()
	}
}

// fail makes the failing clients fail: the silenced stop beating now, the
// leavers close in their next slot.
func (r *runner) fail() {
	for _, s := range r.scheds {
		for k := range s.slots {
			c := s.slots[k].Load()
			if c == nil {
				continue
			}
			switch c.role {
			case silent:
				if c.state.CompareAndSwap(stateOpen, stateSilenced) {
					r.silenced.Add(1)
				}
			case leaver:
				if c.state.CompareAndSwap(stateOpen, stateLeaving) {
					r.leaving.Add(1)
				}
			}
		}
	}
}

// read reads what the server sends on c until the connection ends.
func (r *runner) read(c *conn, pending []byte) {
	defer r.readers.Done()
	buf := make([]byte, readBuffer)
	n := copy(buf, pending)
	var (
		cause string // what the server said last: an ERR code, or bye
		skip  bool   // in the rest of a line too long for buf
		err   error
	)
	for {
		if r.sh.Raw {
			r.replies.Add(uint64(bytes.Count(buf[:n], nl)))
			n = 0
		}
		start := 0
		for {
			i := bytes.IndexByte(buf[start:n], '\n')
			if i < 0 {
				break
			}
			if !skip {
				r.line(c, trimCR(buf[start:start+i]), &cause)
			}
			skip = false
			start += i + 1
		}
		n = copy(buf, buf[start:n])
		if n == len(buf) {
			if !skip {
				r.line(c, buf[:n], &cause) // its start says what it is
			}
			skip, n = true, 0
		}
		if err != nil {
			break
		}
		var m int
		m, err = c.nc.Read(buf[n:])
		n += m
	}
	prev := c.state.Swap(stateEnded)
	if prev == stateLeaving {
		r.leaversCut.Add(1)
	}
	switch prev {
	case stateOpen, stateLeaving:
		if !r.stopping.Load() {
			if cause == "" {
				cause = causeOf(err)
			}
			r.mu.Lock()
			r.dropped[cause]++
			r.mu.Unlock()
		}
	case stateSilenced:
		r.silencedClosed.Add(1)
	}
	c.nc.Close()
	r.open.Add(-1)
}

// line handles one line from the server.
func (r *runner) line(c *conn, l []byte, cause *string) {
	rep, err := wire.ParseReply(l)
	if err != nil {
		return
	}
	switch rep.Kind {
	case wire.ReplyAck:
		if rep.HasSeq {
			r.ack(c, rep.Seq)
		}
	case wire.ReplyErr:
		*cause = string(rep.Err.Code)
	case wire.ReplyBye:
		*cause = "bye"
	}
}

// ack counts the answer to the beat seq and measures its round trip.
func (r *runner) ack(c *conn, seq uint64) {
	tag := seq % tags
	r.acked[tag].Add(1)
	if s1 := c.sentSeq.Load(); s1 == seq {
		at := c.sentAt.Load()
		if c.sentSeq.Load() == s1 {
			rtt := time.Since(r.start) - time.Duration(at)
			r.rtt.record(rtt)
			if tag == tagWindow {
				r.windowRTT.record(rtt)
			}
			c.rtt.Store(int64(rtt))
		}
	}
	if seq > c.ackedSeq.Load() { // only this goroutine writes it
		c.ackedSeq.Store(seq)
	}
}

// stop ends every client: the ramp and the beats stop, every connection
// says BYE and closes. It returns once every goroutine of the runner has.
func (r *runner) stop() {
	r.stopping.Store(true)
	r.cancel()
	if !waitFor(&r.work, 2*time.Second) {
		// A scheduler is stuck writing to a server that does not read:
		// closing the connections unblocks it.
		r.closeAll()
		r.work.Wait()
	}
	bye := wire.AppendBye(nil, "bench done")
	var wg sync.WaitGroup
	for _, s := range r.scheds {
		wg.Add(1)
		go func() { // each scheduler's connections, side by side
			defer wg.Done()
			for k := range s.slots {
				c := s.slots[k].Load()
				if c == nil {
					continue
				}
				for {
					st := c.state.Load()
					if st == stateClosing || st == stateEnded {
						break
					}
					if c.state.CompareAndSwap(st, stateClosing) {
						// BYE, then half-close, so that the server reads
						// the BYE before it sees the end.
						c.nc.SetWriteDeadline(time.Now().Add(time.Second))
						c.nc.Write(bye)
						c.nc.CloseWrite()
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	// The server closes its end after BYE; whoever has not in a moment
	// is closed from here.
	if !waitFor(&r.readers, 2*time.Second) {
		r.closeAll()
		r.readers.Wait()
	}
}

// closeAll closes every connection, which ends its reader and any write
// blocked on it.
func (r *runner) closeAll() {
	for _, s := range r.scheds {
		for k := range s.slots {
			if c := s.slots[k].Load(); c != nil {
				c.nc.Close()
			}
		}
	}
}

// waitFor waits for wg, at most d, and says whether it is done.
func waitFor(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// snapshot returns the counters now.
func (r *runner) snapshot() stats {
	s := stats{
		Clients:        r.sh.Count,
		Connected:      int(r.connected.Load()),
		Ramped:         r.ramped.Load(),
		Acks:           r.acks.Load(),
		Interval:       time.Duration(r.interval.Load()),
		Timeout:        time.Duration(r.timeout.Load()),
		Replies:        r.replies.Load(),
		Open:           int(r.open.Load()),
		Silenced:       int(r.silenced.Load()),
		Leaving:        int(r.leaving.Load()),
		Disconnected:   int(r.disconnected.Load()),
		SilencedClosed: int(r.silencedClosed.Load()),
		LeaversCut:     int(r.leaversCut.Load()),
		RTT:            r.rtt.snapshot(),
		WindowRTT:      r.windowRTT.snapshot(),
	}
	for t := range tags {
		s.Acked[t] = r.acked[t].Load()
		for _, sc := range r.scheds {
			s.Sent[t] += sc.sent[t].Load()
		}
	}
	r.mu.Lock()
	s.Failed = maps.Clone(r.failed)
	s.Dropped = maps.Clone(r.dropped)
	s.FirstError, s.Fatal = r.firstErr, r.fatal
	r.mu.Unlock()
	if u, err := ReadProcess(0); err == nil {
		s.CPU = u.CPU
	}
	return s
}

var nl = []byte{'\n'}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}
