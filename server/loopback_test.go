package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/detect"
	"github.com/pulsehq/pulse/registry"
	"github.com/pulsehq/pulse/wire"
)

// patience bounds every wait in these tests: not a timing assertion, only
// a way to fail instead of hanging if something that must happen does not.
const patience = 10 * time.Second

// fast is a timing for tests on real time: suspect after 75 ms, dead after 150 ms.
var fast = pulse.Timing{Interval: 50 * time.Millisecond, Misses: 3}

type testServer struct {
	*Server
	addr string
	sub  *registry.Subscription
}

func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	return startServerWith(t, cfg, nil)
}

// startServerWith starts a server on a listener that wrap, if not nil,
// wraps around the test's own.
func startServerWith(t *testing.T, cfg Config, wrap func(net.Listener) net.Listener) *testServer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	if cfg.Transport == TransportAuto {
		cfg.Transport = testTransport
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	ts := &testServer{Server: srv, addr: ln.Addr().String(), sub: srv.Subscribe(1 << 16)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ts
}

// next returns the next event, failing the test if none comes.
func (ts *testServer) next(t *testing.T) pulse.Event {
	t.Helper()
	select {
	case ev, ok := <-ts.sub.C():
		if !ok {
			t.Fatalf("subscription closed: %v", ts.sub.Err())
		}
		return ev
	case <-time.After(patience):
		t.Fatal("no event")
	}
	panic("unreachable")
}

// expect returns the next event and checks its kind, name and reason.
func (ts *testServer) expect(t *testing.T, kind pulse.EventKind, name, reason string) pulse.Event {
	t.Helper()
	ev := ts.next(t)
	if ev.Kind != kind || ev.Session.Name != name || ev.Reason != reason {
		t.Fatalf("event %s %s (%s: %s), want %s %s (%s)", ev.Kind, ev.Session.Name, ev.Reason, ev.Detail, kind, name, reason)
	}
	return ev
}

// noEvents checks that nothing happened: it closes a probe session and
// expects its own events to be the next ones.
func (ts *testServer) noEvents(t *testing.T) {
	t.Helper()
	probe := ts.dial(t)
	probe.say(t, "HELLO zz-probe")
	probe.hear(t, "WELCOME ")
	ts.expect(t, pulse.EventJoined, "zz-probe", pulse.ReasonHello)
	probe.say(t, "BYE")
	ts.expect(t, pulse.EventLeft, "zz-probe", pulse.ReasonBye)
}

type client struct {
	net.Conn
	rd *bufio.Reader
}

func (ts *testServer) dial(t *testing.T) *client {
	t.Helper()
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(patience))
	return &client{Conn: nc, rd: bufio.NewReader(nc)}
}

func (c *client) say(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatalf("write %q: %v", line, err)
	}
}

// hear reads one line and checks that it starts with prefix.
func (c *client) hear(t *testing.T, prefix string) string {
	t.Helper()
	line, err := c.rd.ReadString('\n')
	if err != nil {
		t.Fatalf("reading for %q: %v", prefix, err)
	}
	line = strings.TrimSuffix(line, "\n")
	if !strings.HasPrefix(line, prefix) {
		t.Fatalf("got %q, want %q…", line, prefix)
	}
	return line
}

// closed checks that the server closed the connection.
func (c *client) closed(t *testing.T) {
	t.Helper()
	line, err := c.rd.ReadString('\n')
	if err == nil {
		t.Fatalf("got %q, want the connection closed", line)
	}
	if !errors.Is(err, io.EOF) {
		t.Fatalf("got %v, want EOF", err)
	}
}

func (c *client) register(t *testing.T, ts *testServer, name string) wire.Reply {
	t.Helper()
	c.say(t, "HELLO "+name)
	r, err := wire.ParseReply([]byte(c.hear(t, "WELCOME ")))
	if err != nil {
		t.Fatal(err)
	}
	ts.expect(t, pulse.EventJoined, name, pulse.ReasonHello)
	return r
}

func TestJoinBeatAck(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial(t)
	c.say(t, `HELLO web-1 {"meta":{"region":"eu"}}`)
	w, err := wire.ParseReply([]byte(c.hear(t, "WELCOME ")))
	if err != nil {
		t.Fatal(err)
	}
	if w.Welcome.Interval() != 3*time.Second || w.Welcome.Timeout() != 15*time.Second ||
		w.Welcome.Suspect() != 4500*time.Millisecond || !w.Welcome.Ack || w.Welcome.Server != "pulse/"+pulse.Version {
		t.Fatalf("WELCOME %+v", w.Welcome)
	}
	joined := ts.expect(t, pulse.EventJoined, "web-1", pulse.ReasonHello)
	if joined.Session.ID != w.SessionID || joined.Session.Meta["region"] != "eu" || joined.Session.Peer != c.LocalAddr().String() {
		t.Fatalf("joined %+v", joined.Session)
	}

	c.say(t, "BEAT 1")
	c.hear(t, "ACK 1")
	c.say(t, "BEAT")
	if got := c.hear(t, "ACK"); got != "ACK" {
		t.Fatalf("got %q, want a bare ACK", got)
	}
	// Several beats in one packet get their ACKs in order.
	c.say(t, "BEAT 2 1500\r\nBEAT 3 1700\n\nBEAT 4 900")
	c.hear(t, "ACK 2")
	c.hear(t, "ACK 3")
	c.hear(t, "ACK 4")
	s, ok := ts.Session("web-1")
	if !ok || s.Beats != 5 || s.RTT != 900*time.Microsecond || s.State != pulse.StateAlive || s.Meta["region"] != "eu" {
		t.Fatalf("session %+v", s)
	}
	if all := ts.Sessions(); len(all) != 1 || all[0].Name != "web-1" {
		t.Fatalf("Sessions() = %+v", all)
	}
}

func TestAckOff(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial(t)
	c.say(t, `HELLO quiet {"ack":false}`)
	if w := c.hear(t, "WELCOME "); !strings.Contains(w, `"ack":false`) {
		t.Fatalf("WELCOME %q does not say ack is off", w)
	}
	c.say(t, "BEAT 1")
	c.say(t, "BEAT 2")
	c.say(t, "BYE")
	c.closed(t) // no ACK came before the close
	ts.expect(t, pulse.EventJoined, "quiet", pulse.ReasonHello)
	if left := ts.expect(t, pulse.EventLeft, "quiet", pulse.ReasonBye); left.Session.Beats != 2 {
		t.Fatalf("left after %d beats, want 2", left.Session.Beats)
	}
}

func TestBye(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial(t)
	c.register(t, ts, "leaver")
	c.say(t, "BYE maintenance window")
	c.closed(t)
	if ev := ts.expect(t, pulse.EventLeft, "leaver", pulse.ReasonBye); ev.Detail != "maintenance window" {
		t.Fatalf("left detail %q", ev.Detail)
	}
	if _, ok := ts.Session("leaver"); ok {
		t.Fatal("session still listed after BYE")
	}
}

func TestAbruptClose(t *testing.T) {
	ts := startServer(t, Config{Timing: pulse.Timing{Interval: time.Hour, Misses: 2}})
	c := ts.dial(t)
	c.register(t, ts, "closer")
	c.Close()
	// Known at once, long before any timeout.
	ts.expect(t, pulse.EventLeft, "closer", pulse.ReasonClosed)

	r := ts.dial(t)
	r.register(t, ts, "resetter")
	r.Conn.(*net.TCPConn).SetLinger(0) // close with RST
	r.Close()
	if ev := ts.expect(t, pulse.EventLeft, "resetter", pulse.ReasonError); !strings.Contains(ev.Detail, "reset") {
		t.Fatalf("left detail %q, want a reset", ev.Detail)
	}
}

func TestSilentButOpenClientDies(t *testing.T) {
	ts := startServer(t, Config{Timing: fast})
	c := ts.dial(t)
	c.register(t, ts, "mute")
	c.say(t, "BEAT 1")
	c.hear(t, "ACK 1")
	sus := ts.expect(t, pulse.EventSuspect, "mute", pulse.ReasonSilent)
	dead := ts.expect(t, pulse.EventDead, "mute", pulse.ReasonTimeout)
	c.hear(t, "ERR timeout no beat for ")
	c.closed(t)
	// The deadlines are exact; only the lateness depends on this machine.
	if got := sus.Deadline.Sub(sus.Session.LastBeat); got != fast.Suspect() {
		t.Fatalf("suspect deadline %v after the last beat, want %v", got, fast.Suspect())
	}
	if got := dead.Deadline.Sub(dead.Session.LastBeat); got != fast.Timeout() {
		t.Fatalf("dead deadline %v after the last beat, want %v", got, fast.Timeout())
	}
	if dead.Time.Before(dead.Deadline) || sus.Time.Before(sus.Deadline) {
		t.Fatal("declared before the deadline")
	}
}

func TestSuspectRecovers(t *testing.T) {
	ts := startServer(t, Config{Timing: fast})
	c := ts.dial(t)
	c.register(t, ts, "slowpoke")
	ts.expect(t, pulse.EventSuspect, "slowpoke", pulse.ReasonSilent)
	c.say(t, "BEAT 9")
	c.hear(t, "ACK 9")
	ts.expect(t, pulse.EventRecovered, "slowpoke", pulse.ReasonBeat)
	c.say(t, "BYE")
	ts.expect(t, pulse.EventLeft, "slowpoke", pulse.ReasonBye)
}

func TestDuplicateNameNewestWins(t *testing.T) {
	ts := startServer(t, Config{})
	first := ts.dial(t)
	first.register(t, ts, "dup")
	second := ts.dial(t)
	second.say(t, "HELLO dup")
	second.hear(t, "WELCOME ")
	first.hear(t, "ERR replaced a new session from "+second.LocalAddr().String()+" took the name")
	first.closed(t)
	if ev := ts.expect(t, pulse.EventReplaced, "dup", pulse.ReasonReplaced); ev.Session.Peer != first.LocalAddr().String() {
		t.Fatalf("replaced event for %s, want the first connection", ev.Session.Peer)
	}
	ts.expect(t, pulse.EventJoined, "dup", pulse.ReasonHello)
	second.say(t, "BEAT 1")
	second.hear(t, "ACK 1")
	if s, _ := ts.Session("dup"); s.Peer != second.LocalAddr().String() {
		t.Fatalf("dup belongs to %s", s.Peer)
	}
	ts.noEvents(t) // the old connection's close made no left event
}

func TestKick(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial(t)
	c.register(t, ts, "target")
	if _, err := ts.Kick("target", "moving you"); err != nil {
		t.Fatal(err)
	}
	c.hear(t, "ERR kicked moving you")
	c.closed(t)
	ts.expect(t, pulse.EventKicked, "target", pulse.ReasonKicked)
	if _, err := ts.Kick("target", ""); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("kicking a gone session: %v", err)
	}
}

// TestBadInput sends each kind of bad input on its own connection while a
// healthy session beats on another: each gets its ERR and a close, and the
// healthy session never notices.
func TestBadInput(t *testing.T) {
	ts := startServer(t, Config{HelloTimeout: 200 * time.Millisecond})
	healthy := ts.dial(t)
	healthy.register(t, ts, "healthy")
	seq := 0
	beat := func() {
		seq++
		healthy.say(t, fmt.Sprintf("BEAT %d", seq))
		healthy.hear(t, fmt.Sprintf("ACK %d", seq))
	}

	tests := []struct {
		name  string
		lines []string
		err   string
		left  bool // a registered session leaves with reason "protocol"
	}{
		{"unknown command", []string{"PING"}, "ERR bad_command unknown command \"PING\"", false},
		{"lower case", []string{"hello x"}, "ERR bad_command", false},
		{"garbage", []string{"\x00\xff\xfe garbage"}, "ERR bad_command", false},
		{"beat before hello", []string{"BEAT 1"}, "ERR not_registered send HELLO <name> first", false},
		{"bad name", []string{"HELLO no/slashes"}, "ERR bad_name", false},
		{"name too long", []string{"HELLO " + strings.Repeat("n", 65)}, "ERR bad_name", false},
		{"bad options", []string{"HELLO x {not json"}, "ERR bad_options", false},
		{"options not an object", []string{`HELLO x "str"`}, "ERR bad_options", false},
		{"bad seq", []string{"BEAT -4"}, "ERR bad_command", false},
		{"line too long", []string{strings.Repeat("A", wire.MaxLineBytes+1)}, "ERR line_too_long", false},
		{"second hello", []string{"HELLO twice", "HELLO twice"}, "ERR already_registered", true},
		{"bad beat after hello", []string{"HELLO bb", "BEAT x"}, "ERR bad_command", true},
		{"no hello", nil, "ERR hello_timeout no HELLO within 200ms", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.dial(t)
			for _, line := range tt.lines {
				c.say(t, line)
			}
			if tt.left {
				c.hear(t, "WELCOME ")
			}
			c.hear(t, tt.err)
			c.closed(t)
			if tt.left {
				name := strings.Fields(tt.lines[0])[1]
				ts.expect(t, pulse.EventJoined, name, pulse.ReasonHello)
				if ev := ts.expect(t, pulse.EventLeft, name, pulse.ReasonProtocol); !strings.HasPrefix(tt.err, "ERR "+strings.SplitN(ev.Detail, ":", 2)[0]) {
					t.Fatalf("left detail %q does not name the error", ev.Detail)
				}
			}
			beat()
			ts.noEvents(t)
		})
	}
	if s, _ := ts.Session("healthy"); s.State != pulse.StateAlive || s.Beats != uint64(seq) {
		t.Fatalf("healthy session %+v after the bad input", s)
	}
}

// TestEndlessLine: a client that streams bytes with no line end is cut at
// the limit, without the server buffering more than a line.
func TestEndlessLine(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial(t)
	go func() {
		chunk := strings.Repeat("z", 1024)
		for range 1024 { // up to 1 MiB; the server stops reading long before
			if _, err := io.WriteString(c, chunk); err != nil {
				return
			}
		}
	}()
	c.hear(t, "ERR line_too_long")
	c.closed(t)
}

func TestShutdownSaysBye(t *testing.T) {
	srv, err := New(Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	ts := &testServer{Server: srv, addr: ln.Addr().String(), sub: srv.Subscribe(0)}

	var cs []*client
	for i := range 3 {
		c := ts.dial(t)
		c.register(t, ts, fmt.Sprintf("s%d", i))
		cs = append(cs, c)
	}
	idle := ts.dial(t) // connected, not registered

	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, c := range cs {
		c.hear(t, "BYE shutdown")
		c.closed(t)
	}
	idle.hear(t, "ERR shutdown")
	idle.closed(t)
	left := map[string]bool{}
	for range 3 {
		ev := ts.next(t)
		if ev.Kind != pulse.EventLeft || ev.Reason != pulse.ReasonShutdown {
			t.Fatalf("event %s (%s) during shutdown", ev.Kind, ev.Reason)
		}
		left[ev.Session.Name] = true
	}
	if len(left) != 3 {
		t.Fatalf("left: %v", left)
	}
	if _, ok := <-ts.sub.C(); ok || !errors.Is(ts.sub.Err(), registry.ErrClosed) {
		t.Fatal("subscription not closed after Shutdown")
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	if _, err := net.Dial("tcp", ts.addr); err == nil {
		t.Fatal("the listener still accepts after Shutdown")
	}
	if err := srv.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{Timing: pulse.Timing{Interval: -time.Second, Misses: 5}},
		{Timing: pulse.Timing{Interval: time.Second, Misses: -1}},
		{Timing: pulse.Timing{Interval: time.Second, Misses: 1}}, // suspect at 1.5 s is after death at 1 s
		{Timing: pulse.Timing{Interval: time.Second, Misses: 2, SuspectAfter: 3 * time.Second}},
		{HelloTimeout: -1},
		{WriteTimeout: -1},
		{StallThreshold: time.Millisecond},
		{MinInterval: -1},
		{MinInterval: 5 * time.Second},                      // longer than the 3 s interval
		{MaxInterval: 2 * time.Second},                      // shorter than the 3 s interval
		{MinInterval: time.Microsecond},                     // under pulse's 1 ms floor
		{MaxInterval: pulse.MaxInterval + time.Millisecond}, // over its ceiling
	} {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
	d := DefaultConfig()
	if d.Timing != pulse.DefaultTiming() || d.HelloTimeout != 10*time.Second || d.Policy == nil || d.Policy.Name() != "fixed" {
		t.Fatalf("DefaultConfig() = %+v", d)
	}
	// Zero fields take their defaults one by one.
	srv, err := New(Config{Timing: pulse.Timing{Interval: time.Second}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if got := srv.Config().Timing; got.Interval != time.Second || got.Misses != 5 || got.Timeout() != 5*time.Second || got.Suspect() != 1500*time.Millisecond {
		t.Fatalf("timing with only the interval set: %+v", got)
	}
	// The interval bounds default to 1 s .. 5 min, widened to take in
	// the server's own interval.
	for _, tt := range []struct{ interval, min, max time.Duration }{
		{3 * time.Second, time.Second, 5 * time.Minute},
		{100 * time.Millisecond, 100 * time.Millisecond, 5 * time.Minute},
		{10 * time.Minute, time.Second, 10 * time.Minute},
	} {
		c := Config{Timing: pulse.Timing{Interval: tt.interval}}
		c.fillDefaults()
		if c.MinInterval != tt.min || c.MaxInterval != tt.max || c.Validate() != nil {
			t.Errorf("interval %v: bounds %v..%v, want %v..%v; %v", tt.interval, c.MinInterval, c.MaxInterval, tt.min, tt.max, c.Validate())
		}
	}
}

// TestClientChoosesItsInterval: a client asks for its own interval with
// the HELLO option interval_ms and is granted it within the server's
// bounds, or the nearer bound; WELCOME gives the granted interval, the
// deadlines it is judged by (those of the server's policy) and the
// bounds. A client that does not ask gets the server's interval, and no
// bounds.
func TestClientChoosesItsInterval(t *testing.T) {
	ts := startServer(t, Config{MinInterval: 2 * time.Second, MaxInterval: time.Minute})
	policy := detect.NewFixed(pulse.DefaultTiming())
	for _, tt := range []struct {
		hello   string
		granted time.Duration
		bounds  bool
	}{
		{`HELLO default`, 3 * time.Second, false},
		{`HELLO phone {"interval_ms":30000}`, 30 * time.Second, true},
		{`HELLO eager {"interval_ms":500}`, 2 * time.Second, true},
		{`HELLO sleepy {"interval_ms":600000,"ack":false}`, time.Minute, true},
		{`HELLO huge {"interval_ms":9223372036854775807}`, time.Minute, true},
		{`HELLO exact {"interval_ms":2000}`, 2 * time.Second, true},
	} {
		c := ts.dial(t)
		c.say(t, tt.hello)
		r, err := wire.ParseReply([]byte(c.hear(t, "WELCOME ")))
		if err != nil {
			t.Fatal(err)
		}
		w := r.Welcome
		want := policy.Track(tt.granted).Beat(0)
		if w.Interval() != tt.granted || w.Suspect() != want.Suspect || w.Timeout() != want.Dead {
			t.Errorf("%s: WELCOME %+v, want interval %v, suspect %v, timeout %v", tt.hello, w, tt.granted, want.Suspect, want.Dead)
		}
		if tt.bounds != (w.MinIntervalMS == 2000 && w.MaxIntervalMS == 60000) || (!tt.bounds && (w.MinIntervalMS != 0 || w.MaxIntervalMS != 0)) {
			t.Errorf("%s: bounds %d..%d in WELCOME", tt.hello, w.MinIntervalMS, w.MaxIntervalMS)
		}
		name := strings.Fields(tt.hello)[1]
		if ev := ts.expect(t, pulse.EventJoined, name, pulse.ReasonHello); ev.Session.Interval != tt.granted {
			t.Errorf("%s: the session's interval is %v", tt.hello, ev.Session.Interval)
		}
	}
	bad := ts.dial(t)
	bad.say(t, `HELLO zero {"interval_ms":0}`)
	bad.hear(t, "ERR bad_options interval_ms must be a positive number of milliseconds")
	bad.closed(t)
}

// TestSlowConsumerIsCut: a client that sends beats but never reads its
// ACKs fills its socket buffers; the server cuts it after the write
// timeout, and a healthy session beside it is not held up.
func TestSlowConsumerIsCut(t *testing.T) {
	// A minute's interval: the healthy session says nothing while the hog
	// is cut, which on a loaded machine may take seconds, and must not
	// turn suspect for its own silence. A hog beats as fast as it can.
	ts := startServer(t, Config{Timing: pulse.Timing{Interval: time.Minute, Misses: 5},
		WriteTimeout: 200 * time.Millisecond, MaxBeatRate: -1})
	healthy := ts.dial(t)
	healthy.register(t, ts, "healthy")

	hog := ts.dial(t)
	_ = hog.Conn.(*net.TCPConn).SetReadBuffer(4096)
	hog.register(t, ts, "hog")
	go func() {
		batch := []byte(strings.Repeat("BEAT 123456789\n", 1000))
		for {
			if _, err := hog.Write(batch); err != nil {
				return // cut
			}
		}
	}()
	ev := ts.expect(t, pulse.EventLeft, "hog", pulse.ReasonError)
	if !strings.HasPrefix(ev.Detail, "slow_consumer: ") {
		t.Fatalf("left detail %q, want slow consumer", ev.Detail)
	}
	healthy.say(t, "BEAT 1")
	healthy.hear(t, "ACK 1")
	if s, _ := ts.Session("healthy"); s.State != pulse.StateAlive {
		t.Fatalf("healthy session %v", s.State)
	}
}

// smallSendBuffers is a listener whose connections have a small socket
// send buffer, so that a client that does not read soon backs up the
// server's replies.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if tcp, ok := nc.(*net.TCPConn); ok {
		_ = tcp.SetWriteBuffer(4096)
	}
	return nc, err
}

// TestBackedUpRepliesArriveWhole: a client pipelines thousands of beats
// and reads its ACKs only once it has sent them all, through small socket
// buffers both ways, so that the server's replies back up. Every ACK
// arrives, whole and in order, and the session stays: replies the kernel
// could not take wait for the client, and are neither lost nor mixed with
// other connections' replies.
func TestBackedUpRepliesArriveWhole(t *testing.T) {
	ts := startServerWith(t, Config{WriteTimeout: patience, MaxBeatRate: -1}, func(ln net.Listener) net.Listener { return smallSendBuffers{ln} })
	other := ts.dial(t)
	other.register(t, ts, "other")
	c := ts.dial(t)
	_ = c.Conn.(*net.TCPConn).SetReadBuffer(4096)
	c.register(t, ts, "burst")

	const beats = 3000 // about 27 KB of ACKs: more than the buffers hold, less than a slow consumer may leave unread
	var burst strings.Builder
	for i := range beats {
		fmt.Fprintf(&burst, "BEAT %d\n", i)
	}
	if _, err := io.WriteString(c, burst.String()); err != nil {
		t.Fatalf("writing the burst: %v", err)
	}
	other.say(t, "BEAT 7") // the other connection is answered meanwhile
	other.hear(t, "ACK 7")
	for i := range beats {
		if got, want := c.hear(t, "ACK "), fmt.Sprintf("ACK %d", i); got != want {
			t.Fatalf("reply %d is %q, want %q", i, got, want)
		}
	}
	if s, ok := ts.Session("burst"); !ok || s.Beats != beats {
		t.Fatalf("session after the burst: %+v, %v; want %d beats", s, ok, beats)
	}
}
