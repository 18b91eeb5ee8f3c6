package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pulsehq/pulse/wire"
)

// FloodKind is a kind of hostile load that Flood sends beside the healthy
// clients of a Run.
type FloodKind string

// The kinds of flood.
const (
	// FloodIdle opens connections that never say anything: the server
	// should cut each with ERR hello_timeout after its hello timeout.
	FloodIdle FloodKind = "idle"
	// FloodGarbage opens connections that send garbage: random bytes, NUL
	// bytes, invalid UTF-8, commands in lower case, a line that never
	// ends. The server should answer each with ERR and close it.
	FloodGarbage FloodKind = "garbage"
	// FloodHelloStorm opens connections that each send one HELLO with a
	// bad token ({"token":"flood-bad-…"}), read the answer, and leave (BYE)
	// if welcomed. A server that checks tokens answers ERR unauthorized; one
	// that does not registers them all: the result says which.
	FloodHelloStorm FloodKind = "hello-storm"
	// FloodNonReader opens connections that register with ACKs on (with
	// FloodConfig.Token's token, if set), then send beats in batches and
	// never read a reply. The server should cut each, without blocking
	// anyone else: past its beat-rate limit (ERR rate_limited), or as a
	// slow consumer once its unread replies fill the buffers.
	FloodNonReader FloodKind = "nonreader"
)

// FloodKinds lists every kind of flood.
var FloodKinds = []FloodKind{FloodIdle, FloodGarbage, FloodHelloStorm, FloodNonReader}

// ParseFloodKind returns the flood kind named s.
func ParseFloodKind(s string) (FloodKind, error) {
	for _, k := range FloodKinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("%w: flood %q: want one of %s", ErrInvalidConfig, s, floodKindList())
}

func floodKindList() string {
	names := make([]string, len(FloodKinds))
	for i, k := range FloodKinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// Defaults of the zero fields of a FloodConfig.
const (
	DefaultFloodRate   = 2000 // connections a second
	DefaultFloodSweep  = 100 * time.Millisecond
	nonReaderBatch     = 2048 // BEAT lines a non-reader writes at a time, up to 4 times a sweep
	endlessChunk       = 1024
	floodFirstLineMax  = 256 // bytes of the server's first line kept
	floodDialers       = 32
	floodSweepersLimit = 8
)

// FloodConfig describes a flood.
type FloodConfig struct {
	// Server is the heartbeat address, host:port.
	Server string
	// Kind is the kind of flood.
	Kind FloodKind
	// Conns is how many connections the flood opens in all.
	Conns int
	// Rate is how many connections are opened a second. Zero means
	// DefaultFloodRate.
	Rate float64
	// SourceIPs are the local addresses the sockets are bound to, in
	// turn, as in Config. Empty means the kernel chooses.
	SourceIPs []netip.Addr
	// NamePrefix starts the names of the hello-storm and non-reader
	// sessions. Empty means "flood-" and the kind.
	NamePrefix string
	// Token, if set, gives the token a non-reader sends in its HELLO, for
	// a server that authenticates sessions: the non-readers then register
	// as clients with valid credentials that misbehave. It is called with
	// each non-reader's name as it connects. The hello-storm's tokens are
	// bad whatever Token is.
	Token func(name string) (string, error)
	// Sweep is how often each connection is looked at: written to (a
	// non-reader's beats, an endless line) and checked for what the server
	// said or whether it closed. Zero means DefaultFloodSweep.
	Sweep time.Duration
}

// Validate reports a FloodConfig that cannot run.
func (c FloodConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if _, _, err := net.SplitHostPort(c.Server); err != nil {
		return bad("server %q: want host:port", c.Server)
	}
	if _, err := ParseFloodKind(string(c.Kind)); err != nil {
		return err
	}
	switch {
	case c.Conns < 1:
		return bad("flood connections must be at least 1, got %d", c.Conns)
	case c.Rate < 0:
		return bad("flood rate must be positive or 0 for %d/s, got %v", DefaultFloodRate, c.Rate)
	case c.Sweep < 0:
		return bad("flood sweep must be positive, got %v", c.Sweep)
	}
	return nil
}

// FloodResult is what a flood saw: how many connections it attempted, what
// the server answered them, and how it ended them.
type FloodResult struct {
	Kind string `json:"kind"`
	// Attempted counts the connections dialed; Connected those that the
	// server accepted; DialFailed those that it did not, by cause.
	Attempted  int            `json:"attempted"`
	Connected  int            `json:"connected"`
	DialFailed map[string]int `json:"dial_failed,omitempty"`
	// Answers counts the first line the server sent on each connection:
	// "WELCOME", "ERR <code>", or "none" when it closed it without a word
	// (or, for a non-reader, whose replies are never read: "unread").
	Answers map[string]int `json:"answers"`
	// Cut counts the connections the server closed (an end of stream or a
	// reset), by how: "closed", "reset", "broken_pipe"…; CutAfter is how
	// long after its connection each was cut.
	Cut      map[string]int `json:"cut"`
	CutAfter *Percentiles   `json:"cut_after,omitempty"`
	// Left counts the hello-storm connections that were welcomed and left
	// with BYE; StillOpen those neither cut nor left when the flood ended.
	Left      int `json:"left"`
	StillOpen int `json:"still_open"`
	// BytesSent is what the flood wrote; BeatsSent the BEAT lines of the
	// non-readers, and Blocked how many of those found their socket full.
	BytesSent int64 `json:"bytes_sent"`
	BeatsSent int64 `json:"beats_sent,omitempty"`
	Blocked   int   `json:"blocked,omitempty"`
	// DurationMS is how long the flood ran.
	DurationMS float64 `json:"duration_ms"`
}

// floodConn is one connection of a flood, owned by one sweeper.
type floodConn struct {
	nc      *net.TCPConn
	rc      syscall.RawConn
	opened  time.Time // when its dial began: the server accepted it no earlier
	variant int       // which garbage
	first   []byte    // the server's first line, as far as it came
	answer  string    // "" until the first line is whole
	blocked bool
	off     int // a non-reader's offset into its beat line
}

// flood runs one FloodConfig.
type flood struct {
	cfg    FloodConfig
	start  time.Time
	prefix string

	attempted, connected atomic.Int64
	bytes, beats         atomic.Int64

	mu         sync.Mutex
	dialFailed map[string]int
	answers    map[string]int
	cut        map[string]int
	cutAfter   []float64
	left       int
	stillOpen  int
	blocked    int
}

// Flood runs a flood until every connection it opened has been cut or has
// left, or until ctx ends, and returns what it saw. It holds its
// connections with no goroutine each: a few sweepers look at all of them
// in turn with non-blocking reads and writes, so that thousands of idle
// connections cost a file each and nothing more.
func Flood(ctx context.Context, cfg FloodConfig) (*FloodResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultFloodRate
	}
	if cfg.Sweep == 0 {
		cfg.Sweep = DefaultFloodSweep
	}
	f := &flood{cfg: cfg, start: time.Now(), prefix: cfg.NamePrefix,
		dialFailed: map[string]int{}, answers: map[string]int{}, cut: map[string]int{}}
	if f.prefix == "" {
		f.prefix = "flood-" + string(cfg.Kind) + "-"
	}
	sweepers := min(floodSweepersLimit, max(1, cfg.Conns/500))
	inboxes := make([]chan *floodConn, sweepers)
	var sweeping sync.WaitGroup
	for i := range inboxes {
		inboxes[i] = make(chan *floodConn, 1024)
		sweeping.Add(1)
		go func() {
			defer sweeping.Done()
			f.sweep(ctx, inboxes[i])
		}()
	}
	f.open(ctx, inboxes)
	for _, in := range inboxes {
		close(in)
	}
	sweeping.Wait()
	res := &FloodResult{
		Kind: string(cfg.Kind), Attempted: int(f.attempted.Load()), Connected: int(f.connected.Load()),
		DialFailed: f.dialFailed, Answers: f.answers, Cut: f.cut, CutAfter: exactPercentiles(f.cutAfter),
		Left: f.left, StillOpen: f.stillOpen, BytesSent: f.bytes.Load(), BeatsSent: f.beats.Load(),
		Blocked: f.blocked, DurationMS: millis(time.Since(f.start)),
	}
	if len(res.DialFailed) == 0 {
		res.DialFailed = nil
	}
	if res.Connected == 0 && res.Attempted > 0 {
		return res, fmt.Errorf("%w: not one of %d flood connections to %s opened", ErrUnreachable, res.Attempted, cfg.Server)
	}
	return res, nil
}

// open dials the flood's connections at its rate, with a few dialers, and
// hands each to a sweeper.
func (f *flood) open(ctx context.Context, inboxes []chan *floodConn) {
	next := make(chan int)
	var dialing sync.WaitGroup
	for range floodDialers {
		dialing.Add(1)
		go func() {
			defer dialing.Done()
			for i := range next {
				if c := f.dial(ctx, i); c != nil {
					select {
					case inboxes[i%len(inboxes)] <- c:
					case <-ctx.Done():
						c.nc.Close()
						f.mu.Lock()
						f.stillOpen++
						f.mu.Unlock()
					}
				}
			}
		}()
	}
	every := time.Duration(float64(time.Second) / f.cfg.Rate)
	tick := time.NewTicker(max(every, time.Millisecond))
	defer tick.Stop()
	perTick := max(1, int(float64(time.Millisecond)/float64(every)))
	for i := 0; i < f.cfg.Conns && ctx.Err() == nil; {
		for k := 0; k < perTick && i < f.cfg.Conns; k++ {
			select {
			case next <- i:
			case <-ctx.Done():
			}
			i++
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	close(next)
	dialing.Wait()
}

// nonReaderHello is the HELLO of non-reader i: ACKs on, and its token if
// the flood has them.
func (f *flood) nonReaderHello(i int) ([]byte, error) {
	name := f.prefix + strconv.Itoa(i)
	ack := true
	opts := wire.HelloOptions{Ack: &ack}
	if f.cfg.Token != nil {
		var err error
		if opts.Token, err = f.cfg.Token(name); err != nil {
			return nil, err
		}
	}
	return wire.AppendHello(nil, name, opts)
}

// dial opens connection i and sends what the kind sends at once.
func (f *flood) dial(ctx context.Context, i int) *floodConn {
	f.attempted.Add(1)
	var hello []byte
	if f.cfg.Kind == FloodNonReader {
		var err error
		if hello, err = f.nonReaderHello(i); err != nil {
			f.mu.Lock()
			f.dialFailed["bad_hello"]++
			f.mu.Unlock()
			return nil
		}
	}
	d := net.Dialer{Timeout: DefaultConnectTimeout, KeepAlive: -1}
	if ips := f.cfg.SourceIPs; len(ips) > 0 {
		d.LocalAddr = &net.TCPAddr{IP: ips[i%len(ips)].AsSlice()}
	}
	if f.cfg.Kind == FloodNonReader {
		// A small receive buffer fills with a few thousand ACKs.
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			return setRecvBuffer(rc, 4096)
		}
	}
	// The server may accept the connection before DialContext returns
	// here (on a busy machine, well before): time it from the dial, so
	// that "cut after" never undercounts the server's own timeouts.
	dialed := time.Now()
	c, err := d.DialContext(ctx, "tcp", f.cfg.Server)
	if err != nil {
		if ctx.Err() == nil {
			f.mu.Lock()
			f.dialFailed[causeOf(err)]++
			f.mu.Unlock()
		}
		return nil
	}
	nc := c.(*net.TCPConn)
	rc, err := nc.SyscallConn()
	if err != nil {
		nc.Close()
		return nil
	}
	f.connected.Add(1)
	fc := &floodConn{nc: nc, rc: rc, opened: dialed, variant: i}
	var first []byte
	switch f.cfg.Kind {
	case FloodGarbage:
		first = garbage(i)
	case FloodHelloStorm:
		first = fmt.Appendf(nil, "HELLO %s%d {\"token\":\"flood-bad-%d\"}\n", f.prefix, i, rand.Uint32())
	case FloodNonReader:
		first = hello
	}
	if len(first) > 0 {
		// A fresh socket's buffer takes a short line whole.
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		n, err := nc.Write(first)
		f.bytes.Add(int64(n))
		_ = nc.SetWriteDeadline(time.Time{})
		if err != nil {
			f.ended(fc, err)
			return nil
		}
	}
	return fc
}

// longBeat is a non-reader's beat: the longest sequence number, so that
// its ACK is as long as an ACK can be, and the unread ACKs fill the server's
// socket buffer soonest. A beat cut in two by a short write is completed by
// the next write, which starts where it stopped.
const longBeat = "BEAT 18446744073709551615\n"

// garbageKinds is how many kinds of garbage there are; connection i sends
// kind i mod garbageKinds.
const garbageKinds = 7

// garbage returns what the i-th garbage connection sends first. The
// endless line (kind 0) is fed more on every sweep.
func garbage(i int) []byte {
	switch i % garbageKinds {
	case 0: // a line that never ends
		return []byte(strings.Repeat("x", endlessChunk))
	case 1: // random bytes, newlines included by chance
		b := make([]byte, 512)
		for j := range b {
			b[j] = byte(rand.Uint32())
		}
		return append(b, '\n')
	case 2: // NUL bytes
		return []byte("\x00\x00\x00\x00 \x00\n")
	case 3: // a name that is not UTF-8
		return []byte("HELLO \xff\xfe\xfd\n")
	case 4: // options that are not JSON
		return []byte("HELLO flood-garbage-" + strconv.Itoa(i) + " {\"meta\":\n")
	case 5: // a command in lower case
		return []byte("hello flood\n")
	default: // a beat before HELLO
		return []byte("BEAT 1\n")
	}
}

// sweep owns the connections sent to inbox, and looks at each every Sweep
// until the server ends it or ctx ends.
func (f *flood) sweep(ctx context.Context, inbox <-chan *floodConn) {
	var conns []*floodConn
	tick := time.NewTicker(f.cfg.Sweep)
	defer tick.Stop()
	buf := make([]byte, 4096)
	out := make([]byte, 0, nonReaderBatch*len(longBeat))
	for range nonReaderBatch {
		out = append(out, longBeat...)
	}
	filler := []byte(strings.Repeat("x", endlessChunk))
	open := true
	for open || len(conns) > 0 {
		select {
		case c, ok := <-inbox:
			if !ok {
				open, inbox = false, nil
				continue
			}
			conns = append(conns, c)
			continue
		case <-ctx.Done():
			f.mu.Lock()
			f.stillOpen += len(conns)
			f.mu.Unlock()
			for _, c := range conns {
				c.nc.Close()
			}
			if open {
				for c := range inbox { // the opener closes it once ctx is done
					c.nc.Close()
					f.mu.Lock()
					f.stillOpen++
					f.mu.Unlock()
				}
			}
			return
		case <-tick.C:
		}
		conns = slices.DeleteFunc(conns, func(c *floodConn) bool { return f.look(c, buf, out, filler) })
	}
}

// look does what the flood does with c on a sweep, and reports whether c
// has ended.
func (f *flood) look(c *floodConn, buf, beats, filler []byte) bool {
	switch {
	case f.cfg.Kind == FloodNonReader:
		var err error
		for range 4 {
			var n int
			n, err = writeNow(c.rc, beats[c.off:])
			n = max(n, 0)
			f.bytes.Add(int64(n))
			f.beats.Add(int64((c.off + n) / len(longBeat)))
			short := n < len(beats)-c.off
			c.off = (c.off + n) % len(longBeat)
			if err != nil || short {
				break
			}
		}
		if errors.Is(err, syscall.EAGAIN) {
			if !c.blocked {
				c.blocked = true
				f.mu.Lock()
				f.blocked++
				f.mu.Unlock()
			}
			return false
		}
		if err != nil {
			c.answer = "unread"
			return f.ended(c, err)
		}
		return false
	case f.cfg.Kind == FloodGarbage && c.variant%garbageKinds == 0 && c.answer == "":
		n, err := writeNow(c.rc, filler)
		f.bytes.Add(int64(n))
		if err != nil && !errors.Is(err, syscall.EAGAIN) {
			return f.ended(c, err)
		}
	}
	for {
		n, err := readNow(c.rc, buf)
		if n > 0 {
			f.heard(c, buf[:n])
			if c.answer == "WELCOME" && f.cfg.Kind == FloodHelloStorm {
				_, _ = c.nc.Write([]byte("BYE flood\n"))
				c.nc.Close()
				f.mu.Lock()
				f.answers["WELCOME"]++
				f.left++
				f.mu.Unlock()
				return true
			}
			continue
		}
		switch {
		case errors.Is(err, syscall.EAGAIN):
			return false
		case err == nil: // n == 0: the end of the stream
			return f.ended(c, nil)
		default:
			return f.ended(c, err)
		}
	}
}

// heard takes bytes from the server, keeping its first line.
func (f *flood) heard(c *floodConn, b []byte) {
	if c.answer != "" {
		return
	}
	line, _, whole := strings.Cut(string(b), "\n")
	room := floodFirstLineMax - len(c.first)
	c.first = append(c.first, line[:min(len(line), room)]...)
	if !whole {
		return
	}
	fields := strings.Fields(string(c.first))
	switch {
	case len(fields) >= 2 && fields[0] == "ERR":
		c.answer = "ERR " + fields[1]
	case len(fields) >= 1:
		c.answer = fields[0]
	default:
		c.answer = "empty"
	}
}

// ended records that the server ended c (err nil: an orderly close) and
// closes it; it reports true, for look.
func (f *flood) ended(c *floodConn, err error) bool {
	c.nc.Close()
	answer := c.answer
	if answer == "" {
		answer = "none"
	}
	f.mu.Lock()
	f.answers[answer]++
	f.cut[causeOf(err)]++
	f.cutAfter = append(f.cutAfter, millis(time.Since(c.opened)))
	f.mu.Unlock()
	return true
}
