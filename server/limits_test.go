package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/wire"
)

// rejections is an Observer that counts the ERR codes the server sends.
type rejections struct {
	mu sync.Mutex
	n  map[wire.Code]int
}

func (r *rejections) Beat(time.Duration) {}
func (r *rejections) Event(pulse.Event)  {}
func (r *rejections) Rejected(code wire.Code) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[wire.Code]int{}
	}
	r.n[code]++
}

func (r *rejections) count(code wire.Code) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[code]
}

// eventually polls cond until it holds, failing the test after patience.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLineBudget checks the token bucket on integer time: a burst of a
// minute of lines at once, then one line per 1/rate, and no more.
func TestLineBudget(t *testing.T) {
	b := newLineBudget(20) // 50 ms a line, bursts of 1,200
	for i := range 1200 {
		if !b.allow(0) {
			t.Fatalf("line %d of the first burst refused", i)
		}
	}
	if b.allow(0) {
		t.Fatal("line 1,201 at once allowed")
	}
	ms := int64(time.Millisecond)
	if b.allow(49*ms) || !b.allow(50*ms) || b.allow(50*ms) {
		t.Fatal("after the burst, not exactly one line per 50 ms")
	}
	// A client at the sustained rate is never refused, however long.
	b = newLineBudget(20)
	for i := range int64(100_000) {
		if !b.allow(i * 50 * ms) {
			t.Fatalf("line %d at the sustained rate refused", i)
		}
	}
	// Quiet time refills the bucket, up to the burst and no more.
	now := int64(100_000*50*ms) + int64(time.Hour)
	for i := range 1200 {
		if !b.allow(now) {
			t.Fatalf("line %d after an hour's quiet refused", i)
		}
	}
	if b.allow(now) {
		t.Fatal("an hour's quiet saved more than a burst")
	}
	// A faster rate has a bigger burst, a slow one at least 20; none
	// means no limit.
	for _, tt := range []struct {
		rate  float64
		burst int
	}{{100, 6000}, {0.1, 20}} {
		b = newLineBudget(tt.rate)
		for i := range tt.burst {
			if !b.allow(0) {
				t.Fatalf("line %d of a burst at %v a second refused", i, tt.rate)
			}
		}
		if b.allow(0) {
			t.Fatalf("line %d at once allowed at %v a second", tt.burst+1, tt.rate)
		}
	}
	none := newLineBudget(0)
	for range 1000 {
		if !none.allow(0) {
			t.Fatal("no limit refused a line")
		}
	}
}

func TestLineBudgetAllocatesNothing(t *testing.T) {
	b := newLineBudget(1e9)
	now := int64(0)
	if n := testing.AllocsPerRun(1000, func() { now++; b.allow(now) }); n != 0 {
		t.Fatalf("allow allocates %v times", n)
	}
}

func TestLineRate(t *testing.T) {
	c := DefaultConfig()
	for _, tt := range []struct {
		interval time.Duration
		want     float64
	}{
		{0, 20}, {3 * time.Second, 20}, {time.Second, 20}, {500 * time.Millisecond, 20}, {100 * time.Millisecond, 100}, {10 * time.Millisecond, 1000},
	} {
		if got := c.lineRate(tt.interval); got != tt.want {
			t.Errorf("lineRate(%v) = %v, want %v", tt.interval, got, tt.want)
		}
	}
	c.MaxBeatRate = -1
	if got := c.lineRate(time.Millisecond); got != 0 {
		t.Errorf("lineRate with the limit off = %v, want 0 (none)", got)
	}
}

// TestRateLimitOnFakeTime: over nine minutes of fake time, a client that
// beats every interval, another that beats 20 times a second (the most it
// may), and a third that sends a minute of beats at once (a backlog after
// a stall) are never limited; a fourth that beats 40 times a second is told
// "ERR rate_limited" once it has used up its burst of a minute of lines,
// and its session leaves with the reason "protocol".
func TestRateLimitOnFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		obs := &rejections{}
		srv, err := New(Config{Logger: quiet, Observer: obs, Timing: pulse.Timing{Interval: time.Second, Misses: 5}})
		if err != nil {
			t.Fatal(err)
		}
		ln := newPipeListener()
		go srv.Serve(ln)
		defer srv.Close()
		sub := srv.Subscribe(0)

		beater := func(name string, every time.Duration, beats int) (*bufio.Reader, net.Conn) {
			nc, err := ln.Dial()
			if err != nil {
				t.Fatal(err)
			}
			rd := bufio.NewReader(nc)
			fmt.Fprintf(nc, "HELLO %s {\"ack\":false}\n", name)
			if w, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(w, "WELCOME ") {
				t.Fatalf("%s: %q, %v", name, w, err)
			}
			go func() {
				for range beats {
					if _, err := io.WriteString(nc, "BEAT\n"); err != nil {
						return
					}
					time.Sleep(every)
				}
			}()
			return rd, nc
		}
		start := time.Now()
		_, steady := beater("steady", time.Second, 600)
		_, eager := beater("eager", 50*time.Millisecond, 12_000) // 20 a second, for longer than the test
		flood, _ := beater("flood", 25*time.Millisecond, 10_000) // 40 a second
		backlog, err := ln.Dial()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(backlog, "HELLO backlog {\"ack\":false}\n")
		go func() {
			_, _ = bufio.NewReader(backlog).ReadString('\n') // WELCOME
			for i := range 9 * 60 {
				beats := "BEAT\n"
				if i == 60 {
					beats = strings.Repeat(beats, 60) // a minute of beats that a stall held up
				}
				if _, err := io.WriteString(backlog, beats); err != nil {
					return
				}
				time.Sleep(time.Second)
			}
		}()
		line, err := flood.ReadString('\n')
		if !strings.HasPrefix(line, "ERR rate_limited ") {
			t.Fatalf("the flood got %q, %v; want ERR rate_limited", line, err)
		}
		// The burst of 1,200 lasts while 40 lines a second outrun the
		// 20 allowed: tat − now = 50 ms × n − 25 ms × (n − 1) passes the
		// slack of 1,199 × 50 ms at line n = 2,398 (HELLO and 2,397
		// beats), 2,397 × 25 ms after the first.
		if d := time.Since(start); d != 2397*25*time.Millisecond {
			t.Fatalf("the flood was limited after %v, want after its burst", d)
		}
		if _, err := flood.ReadString('\n'); !errors.Is(err, io.EOF) {
			t.Fatalf("after ERR rate_limited: %v, want EOF", err)
		}
		time.Sleep(start.Add(9*time.Minute - time.Millisecond).Sub(time.Now()))
		for _, nc := range []net.Conn{steady, eager, backlog} {
			io.WriteString(nc, "BYE\n")
		}
		synctest.Wait()
		srv.Close()
		time.Sleep(2 * time.Second) // for the beaters to find their connections closed
		left := map[string]string{}
		for ev := range sub.C() {
			if ev.Kind.Ends() {
				left[ev.Session.Name] = ev.Reason
			}
		}
		if want := map[string]string{"flood": pulse.ReasonProtocol, "steady": pulse.ReasonBye, "eager": pulse.ReasonBye, "backlog": pulse.ReasonBye}; fmt.Sprint(left) != fmt.Sprint(want) {
			t.Fatalf("sessions ended %v, want %v", left, want)
		}
		if n := obs.count(wire.CodeRateLimited); n != 1 {
			t.Fatalf("rate_limited counted %d times, want 1", n)
		}
	})
}

// TestRateLimitOnRealSockets: a session that floods beats is cut, and so
// is a connection that floods empty lines before HELLO, while a healthy
// session beats on.
func TestRateLimitOnRealSockets(t *testing.T) {
	ts := startServer(t, Config{})
	healthy := ts.dial(t)
	healthy.register(t, ts, "healthy")
	for _, hello := range []string{"", "HELLO flooder\n"} {
		c := ts.dial(t)
		go func() {
			_, _ = io.WriteString(c, hello)
			batch := strings.Repeat("BEAT\n", 100)
			if hello == "" {
				batch = strings.Repeat("\n", 100)
			}
			for {
				if _, err := io.WriteString(c, batch); err != nil {
					return
				}
			}
		}()
		if hello != "" {
			c.hear(t, "WELCOME ")
			for {
				if line := c.hear(t, ""); strings.HasPrefix(line, "ERR ") {
					if !strings.HasPrefix(line, "ERR rate_limited ") {
						t.Fatalf("got %q, want ERR rate_limited", line)
					}
					break
				}
			}
			ts.expect(t, pulse.EventJoined, "flooder", pulse.ReasonHello)
			if ev := ts.expect(t, pulse.EventLeft, "flooder", pulse.ReasonProtocol); !strings.HasPrefix(ev.Detail, "rate_limited") {
				t.Fatalf("left with detail %q", ev.Detail)
			}
		} else {
			c.hear(t, "ERR rate_limited ")
		}
		healthy.say(t, "BEAT 1")
		healthy.hear(t, "ACK 1")
	}
}

// TestMaxConns: past the limit a connection is told "ERR
// too_many_connections" and closed, without a byte read; once one closes,
// there is room again. Counted in the metrics.
func TestMaxConns(t *testing.T) {
	obs := &rejections{}
	ts := startServer(t, Config{MaxConns: 3, Observer: obs})
	var held []*client
	for i := range 3 {
		c := ts.dial(t)
		c.register(t, ts, fmt.Sprintf("c%d", i))
		held = append(held, c)
	}
	over := ts.dial(t)
	over.hear(t, "ERR too_many_connections the server holds its limit of 3 connections")
	over.closed(t)
	if n := obs.count(wire.CodeTooManyConnections); n != 1 {
		t.Fatalf("too_many_connections counted %d times, want 1", n)
	}
	held[0].say(t, "BYE")
	ts.expect(t, pulse.EventLeft, "c0", pulse.ReasonBye)
	eventually(t, "the connection limit counts the closed one no more", func() bool { return ts.Connections() == 2 })
	again := ts.dial(t)
	again.register(t, ts, "again")
}

// TestMaxConnsPerIP: one address may hold so many connections; the next
// one is refused while other addresses are still let in.
func TestMaxConnsPerIP(t *testing.T) {
	ts := startServer(t, Config{MaxConnsPerIP: 2})
	for i := range 2 {
		ts.dial(t).register(t, ts, fmt.Sprintf("c%d", i))
	}
	over := ts.dial(t)
	over.hear(t, "ERR too_many_connections this address holds its limit of 2 connections")
	over.closed(t)
	// Another loopback address is another client.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	nc, err := d.Dial("tcp", ts.addr)
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2: %v", err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(patience))
	other := &client{Conn: nc, rd: bufio.NewReader(nc)}
	other.register(t, ts, "other")
}

// TestConnectionCountOnEveryClose: every way a connection ends, on either
// transport, gives its place back.
func TestConnectionCountOnEveryClose(t *testing.T) {
	ts := startServer(t, Config{HelloTimeout: 100 * time.Millisecond, Timing: pulse.Timing{Interval: 200 * time.Millisecond, Misses: 3}})
	hello := func(c *client, name string) {
		t.Helper()
		c.say(t, "HELLO "+name)
		c.hear(t, "WELCOME ")
	}
	bye := ts.dial(t)
	hello(bye, "bye")
	bye.say(t, "BYE")
	bye.closed(t)

	gone := ts.dial(t)
	hello(gone, "gone")
	gone.Close()

	garbage := ts.dial(t)
	garbage.say(t, "NONSENSE")
	garbage.hear(t, "ERR bad_command")

	silent := ts.dial(t)
	silent.hear(t, "ERR hello_timeout")

	kicked := ts.dial(t)
	hello(kicked, "kicked")
	if _, err := ts.Kick("kicked", "test"); err != nil {
		t.Fatal(err)
	}
	kicked.hear(t, "ERR kicked")

	dead := ts.dial(t)
	hello(dead, "dead") // and never beats
	dead.hear(t, "ERR timeout")

	replaced := ts.dial(t)
	hello(replaced, "twin")
	twin := ts.dial(t)
	twin.say(t, "HELLO twin")
	twin.hear(t, "WELCOME ")
	replaced.hear(t, "ERR replaced")
	twin.Close()

	eventually(t, "every connection uncounted", func() bool { return ts.Connections() == 0 })
	ts.mu.Lock()
	perIP := len(ts.perIP)
	ts.mu.Unlock()
	if perIP != 0 {
		t.Fatalf("%d addresses still counted", perIP)
	}
}

// TestSlowConsumerCounted: a client that sends beats without reading is
// cut when its unread replies pass the bound or stay unread for the write
// timeout, while another beats normally; the cut is counted as
// slow_consumer, and once the hog reads, it finds whole lines only: ACKs,
// then "ERR slow_consumer" if that could reach it.
func TestSlowConsumerCounted(t *testing.T) {
	obs := &rejections{}
	ts := startServerWith(t, Config{Observer: obs, WriteTimeout: 300 * time.Millisecond, MaxBeatRate: -1},
		func(ln net.Listener) net.Listener { return smallSendBuffers{ln} })
	healthy := ts.dial(t)
	healthy.register(t, ts, "healthy")
	hog := ts.dial(t)
	_ = hog.Conn.(*net.TCPConn).SetReadBuffer(4096)
	hog.register(t, ts, "hog")
	stop := make(chan struct{})
	go func() {
		batch := []byte(strings.Repeat("BEAT 1\n", 1000))
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := hog.Write(batch); err != nil {
				return
			}
		}
	}()
	seq := 0
	for obs.count(wire.CodeSlowConsumer) == 0 {
		seq++
		healthy.say(t, fmt.Sprintf("BEAT %d", seq))
		healthy.hear(t, fmt.Sprintf("ACK %d", seq))
		if seq > 100_000 {
			t.Fatal("the hog was never cut")
		}
	}
	ev := ts.expect(t, pulse.EventLeft, "hog", pulse.ReasonError)
	if !strings.HasPrefix(ev.Detail, "slow_consumer: ") {
		t.Fatalf("left detail %q", ev.Detail)
	}
	if n := obs.count(wire.CodeSlowConsumer); n != 1 {
		t.Fatalf("slow_consumer counted %d times, want 1", n)
	}
	// The hog stops writing and reads at last: whole ACKs, then ERR
	// slow_consumer if it reached it, then the end.
	close(stop)
	_ = hog.SetWriteDeadline(aLongTimeAgo)
	var last string
	for {
		line, err := hog.rd.ReadString('\n')
		if err != nil {
			t.Logf("hog read ends: %v", err)
			break
		}
		if last != "" && strings.HasPrefix(last, "ERR ") {
			t.Fatalf("%q after %q", line, last)
		}
		if line != "ACK 1\n" && !strings.HasPrefix(line, "ERR slow_consumer ") {
			t.Fatalf("the hog read %q", line)
		}
		last = line
	}
	// Whether the ERR reaches it depends on TCP: with buffers this small,
	// the kernel may hold back the window update that would let the
	// server's last write through within the linger timeout. What it
	// reads is whole lines either way.
	t.Logf("the hog's last line: %q", last)
	healthy.say(t, "BEAT 0")
	healthy.hear(t, "ACK 0")
}

// flakyListener fails its first accepts as a process out of file
// descriptors does, and records when each accept was tried.
type flakyListener struct {
	*pipeListener
	mu       sync.Mutex
	failures int
	tries    []time.Time
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.tries = append(l.tries, time.Now())
	fail := l.failures > 0
	if fail {
		l.failures--
	}
	l.mu.Unlock()
	if fail {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.pipeListener.Accept()
}

// TestAcceptBacksOff: while accept fails (EMFILE), Serve retries after a
// pause that doubles from 5 ms to a second, not in a spin, and logs one
// line per pause; once accept works again, it serves.
func TestAcceptBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, err := New(Config{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		ln := &flakyListener{pipeListener: newPipeListener(), failures: 12}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		start := time.Now()
		nc, err := ln.Dial() // waits until accept works again
		if err != nil {
			t.Fatal(err)
		}
		rd := bufio.NewReader(nc)
		io.WriteString(nc, "HELLO back\n")
		if w, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(w, "WELCOME ") {
			t.Fatalf("after the failures: %q, %v", w, err)
		}
		ln.mu.Lock()
		var gaps []time.Duration
		for i := 1; i < min(len(ln.tries), 13); i++ {
			gaps = append(gaps, ln.tries[i].Sub(ln.tries[i-1]))
		}
		ln.mu.Unlock()
		want := "[5ms 10ms 20ms 40ms 80ms 160ms 320ms 640ms 1s 1s 1s 1s]"
		if fmt.Sprint(gaps) != want {
			t.Fatalf("pauses between accepts %v, want %s", gaps, want)
		}
		if d := time.Since(start); d != 5275*time.Millisecond {
			t.Fatalf("served again after %v, want 5.275s", d)
		}
		srv.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}
	})
}

// countingHandler counts log records by message.
type countingHandler struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n[r.Message]++
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// TestRefusalsLoggedOncePerSecond: a flood of refused connections makes
// one log line at once, then one summary a second, not a line each.
func TestRefusalsLoggedOncePerSecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &countingHandler{n: map[string]int{}}
		l := &refusalLog{log: slog.New(h)}
		e := &wire.Error{Code: wire.CodeTooManyConnections, Message: "full"}
		for range 3000 { // 1,000 a second for 3 s
			l.note("peer", e)
			time.Sleep(time.Millisecond)
		}
		time.Sleep(5 * time.Second) // quiet: the next refusal is logged at once
		l.note("peer", e)
		l.stop()
		l.note("peer", e) // after the server stopped: nothing
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.n["connection refused"] != 2 || h.n["connections refused"] != 3 {
			t.Fatalf("log lines %v, want 2 refusals and 3 summaries", h.n)
		}
	})
}

// BenchmarkLineBudget is what the rate limit adds to every line: a read of
// the clock and the bucket's integer arithmetic.
func BenchmarkLineBudget(b *testing.B) {
	epoch := time.Now()
	budget := newLineBudget(1e12)
	for b.Loop() {
		budget.allow(int64(time.Since(epoch)))
	}
}
