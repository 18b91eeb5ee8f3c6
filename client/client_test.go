package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pulsehq/pulse/wire"
)

// pipes is a dialer whose connections are net.Pipe pairs handed to a fake
// server in the test, so that client and server share a synctest bubble.
type pipes struct {
	accept chan net.Conn
	mu     sync.Mutex
	dials  []time.Time
	refuse int // refuse this many dials first
}

func newPipes() *pipes { return &pipes{accept: make(chan net.Conn)} }

func (p *pipes) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	p.mu.Lock()
	p.dials = append(p.dials, time.Now())
	refuse := p.refuse > 0
	if refuse {
		p.refuse--
	}
	p.mu.Unlock()
	if refuse {
		return nil, errors.New("connection refused")
	}
	client, server := net.Pipe()
	select {
	case p.accept <- server:
		return client, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *pipes) dialTimes() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.dials...)
}

// peer is the fake server's side of one connection.
type peer struct {
	t  *testing.T
	nc net.Conn
	rd *bufio.Reader
}

func (p *pipes) next(t *testing.T) *peer {
	t.Helper()
	nc := <-p.accept
	return &peer{t: t, nc: nc, rd: bufio.NewReader(nc)}
}

func (p *peer) hear() string {
	p.t.Helper()
	s, err := p.rd.ReadString('\n')
	if err != nil {
		p.t.Fatalf("fake server read: %v", err)
	}
	return strings.TrimSuffix(s, "\n")
}

func (p *peer) say(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.nc, line+"\n"); err != nil {
		p.t.Fatalf("fake server write %q: %v", line, err)
	}
}

const welcome = `WELCOME s1 {"interval_ms":3000,"timeout_ms":15000,"suspect_ms":4500,"ack":true}`

// welcomeClient answers a HELLO with WELCOME and returns the HELLO.
func (p *peer) welcomeClient() string {
	p.t.Helper()
	hello := p.hear()
	p.say(welcome)
	return hello
}

func TestBeatsAtTheGrantedInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := newPipes()
		var c *Client
		dialed := make(chan error)
		go func() {
			var err error
			c, err = Dial(context.Background(), "pulse", "web-1", WithDialer(ps.dial), WithMeta(map[string]string{"zone": "a"}))
			dialed <- err
		}()
		srv := ps.next(t)
		start := time.Now()
		if hello := srv.welcomeClient(); hello != `HELLO web-1 {"meta":{"zone":"a"}}` {
			t.Fatalf("HELLO = %q", hello)
		}
		if err := <-dialed; err != nil {
			t.Fatal(err)
		}
		if st := c.Status(); st.State != StateConnected || st.SessionID != "s1" || st.Interval != 3*time.Second || st.Timeout != 15*time.Second {
			t.Fatalf("status %+v", st)
		}
		for i := 1; i <= 5; i++ {
			beat := srv.hear()
			if time.Since(start) != time.Duration(i)*3*time.Second {
				t.Fatalf("beat %d at %v, want every 3s", i, time.Since(start))
			}
			if !strings.HasPrefix(beat, fmt.Sprintf("BEAT %d", i)) {
				t.Fatalf("got %q, want BEAT %d", beat, i)
			}
			time.Sleep(7 * time.Millisecond) // the round trip
			srv.say(fmt.Sprintf("ACK %d", i))
		}
		// Each beat carries the last round trip, in microseconds.
		if beat := srv.hear(); beat != "BEAT 6 7000" {
			t.Fatalf("got %q, want BEAT 6 7000", beat)
		}
		synctest.Wait()
		if st := c.Status(); st.RTT != 7*time.Millisecond || st.Beats != 6 {
			t.Fatalf("status %+v, want RTT 7ms after 6 beats", st)
		}
		go func() { srv.hear() }() // ignore the rest
		c.Close()
	})
}

// TestBeatsAtTheIntervalItIsGranted: a client that asks for its own
// interval beats at the one the server grants, not the one it asked for,
// and judges the server by the granted timeout.
func TestBeatsAtTheIntervalItIsGranted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := newPipes()
		var c *Client
		dialed := make(chan error)
		lost := make(chan Status, 1)
		go func() {
			var err error
			c, err = Dial(context.Background(), "pulse", "phone-1", WithDialer(ps.dial), WithInterval(45*time.Second),
				OnStatus(func(s Status) {
					if s.State == StateBackoff {
						lost <- s
					}
				}))
			dialed <- err
		}()
		srv := ps.next(t)
		if hello := srv.hear(); hello != `HELLO phone-1 {"interval_ms":45000}` {
			t.Fatalf("HELLO = %q", hello)
		}
		// The server's bounds are 1 s to 30 s: it grants 30 s.
		srv.say(`WELCOME s1 {"interval_ms":30000,"timeout_ms":150000,"suspect_ms":45000,"ack":true,"min_interval_ms":1000,"max_interval_ms":30000}`)
		start := time.Now()
		if err := <-dialed; err != nil {
			t.Fatal(err)
		}
		if st := c.Status(); st.Interval != 30*time.Second || st.Timeout != 150*time.Second {
			t.Fatalf("status %+v, want the granted 30s and 150s", st)
		}
		for i := 1; i <= 4; i++ {
			srv.hear()
			if at := time.Since(start); at != time.Duration(i)*30*time.Second {
				t.Fatalf("beat %d at %v, want every 30s", i, at)
			}
			srv.say(fmt.Sprintf("ACK %d", i))
		}
		// ACKs stop: the server is lost 150 s after the last line, not 15 s.
		lastLine := time.Now()
		go func() {
			for {
				if _, err := srv.rd.ReadString('\n'); err != nil {
					return
				}
			}
		}()
		st := <-lost
		c.Close()
		if !errors.Is(st.Err, ErrServerLost) || st.Since.Sub(lastLine) != 150*time.Second {
			t.Fatalf("lost the server %v after its last line: %+v", st.Since.Sub(lastLine), st)
		}
	})
}

func TestCloseSaysBye(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := newPipes()
		go func() {
			srv := ps.next(t)
			srv.welcomeClient()
			if bye := srv.hear(); bye != "BYE client closed" {
				t.Errorf("got %q, want BYE", bye)
			}
		}()
		var states []State
		c, err := Dial(context.Background(), "pulse", "leaver", WithDialer(ps.dial),
			OnStatus(func(s Status) { states = append(states, s.State) }))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		synctest.Wait()
		if c.Err() != nil || c.Status().State != StateClosed {
			t.Fatalf("after Close: err %v, status %+v", c.Err(), c.Status())
		}
		if got := fmt.Sprint(states); got != "[connecting connected closed]" {
			t.Fatalf("states %s", got)
		}
	})
}

// TestServerLostThenBackOff: a server that keeps the socket open but stops
// answering is declared lost exactly one timeout after its last line; the
// client backs off and connects again.
func TestServerLostThenBackOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := newPipes()
		go func() {
			srv := ps.next(t)
			srv.welcomeClient()
			io.Copy(io.Discard, srv.rd) // read the beats, never answer
		}()
		var mu sync.Mutex
		var seen []Status
		c, err := Dial(context.Background(), "pulse", "w", WithDialer(ps.dial), WithBackoff(time.Second, 8*time.Second),
			OnStatus(func(s Status) { mu.Lock(); seen = append(seen, s); mu.Unlock() }))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		welcomed := time.Now()
		srv2 := ps.next(t) // the reconnection
		go srv2.welcomeClient()
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		var got []string
		for _, s := range seen {
			got = append(got, s.State.String())
		}
		if strings.Join(got, " ") != "connecting connected backoff connecting connected" {
			t.Fatalf("states %v", got)
		}
		lost, redial := seen[2], seen[3]
		if !errors.Is(lost.Err, ErrServerLost) || lost.Since.Sub(welcomed) != 15*time.Second {
			t.Fatalf("lost with %v after %v; want ErrServerLost after exactly 15s", lost.Err, lost.Since.Sub(welcomed))
		}
		if wait := redial.Since.Sub(lost.Since); wait != lost.Retry || wait < 500*time.Millisecond || wait > time.Second {
			t.Fatalf("redialed %v after the loss (retry %v), want 0.5-1s", wait, lost.Retry)
		}
		if st := c.Status(); st.State != StateConnected || st.Attempt != 0 {
			t.Fatalf("after reconnecting: %+v", st)
		}
		go io.Copy(io.Discard, srv2.rd)
	})
}

// TestBackoffGrowsWithJitterUpToTheCap follows the waits between failed
// attempts on fake time: each is in the upper half of a bound that doubles
// up to the cap.
func TestBackoffGrowsWithJitterUpToTheCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := newPipes()
		ps.refuse = 9
		go func() {
			srv := ps.next(t)
			srv.welcomeClient()
			srv.hear()
		}()
		c, err := Dial(context.Background(), "pulse", "w", WithDialer(ps.dial), WithBackoff(100*time.Millisecond, 2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		dials := ps.dialTimes()
		if len(dials) != 10 {
			t.Fatalf("%d dials, want 10", len(dials))
		}
		bound := 100 * time.Millisecond
		for i := 1; i < len(dials); i++ {
			wait := dials[i].Sub(dials[i-1])
			if wait < bound/2 || wait > bound {
				t.Errorf("wait %d = %v, want within [%v, %v]", i, wait, bound/2, bound)
			}
			bound = min(2*bound, 2*time.Second)
		}
	})
}

func TestPermanentRejections(t *testing.T) {
	for _, code := range []wire.Code{wire.CodeBadName, wire.CodeUnauthorized, wire.CodeBadOptions} {
		t.Run("at hello/"+string(code), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ps := newPipes()
				go func() {
					srv := ps.next(t)
					srv.hear()
					srv.say("ERR " + string(code) + " no")
				}()
				_, err := Dial(context.Background(), "pulse", "x", WithDialer(ps.dial))
				if wire.CodeOf(err) != code {
					t.Fatalf("Dial: %v, want ERR %s", err, code)
				}
				if len(ps.dialTimes()) != 1 {
					t.Fatal("retried a permanent rejection")
				}
			})
		})
	}
	for _, code := range []wire.Code{wire.CodeReplaced, wire.CodeKicked} {
		t.Run("while connected/"+string(code), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ps := newPipes()
				go func() {
					srv := ps.next(t)
					srv.welcomeClient()
					srv.say("ERR " + string(code) + " bye now")
				}()
				c, err := Dial(context.Background(), "pulse", "x", WithDialer(ps.dial))
				if err != nil {
					t.Fatal(err)
				}
				<-c.Done()
				if wire.CodeOf(c.Err()) != code || c.Status().State != StateClosed {
					t.Fatalf("stopped with %v in %v", c.Err(), c.Status().State)
				}
				if len(ps.dialTimes()) != 1 {
					t.Fatal("reconnected after a permanent rejection")
				}
			})
		})
	}
}

func TestTransientRejectionsRetry(t *testing.T) {
	for _, line := range []string{"BYE shutdown", "ERR timeout no beat for 15s", "ERR too_many_connections full", "ERR some_future_code ?"} {
		t.Run(line, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ps := newPipes()
				go func() {
					srv := ps.next(t)
					srv.welcomeClient()
					srv.say(line)
					srv = ps.next(t)
					srv.welcomeClient()
					srv.hear()
				}()
				c, err := Dial(context.Background(), "pulse", "x", WithDialer(ps.dial))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				time.Sleep(DefaultMinBackoff) // the first backoff is at most this
				synctest.Wait()
				if st := c.Status(); st.State != StateConnected || len(ps.dialTimes()) != 2 {
					t.Fatalf("after %q: %v with %d dials", line, st.State, len(ps.dialTimes()))
				}
			})
		})
	}
}

func TestDialGivesUpWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := newPipes()
		ps.refuse = 1 << 30
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := Dial(ctx, "pulse", "x", WithDialer(ps.dial))
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("Dial: %v, want the deadline and the last attempt's error", err)
		}
	})
}

func TestDialChecksArguments(t *testing.T) {
	if _, err := Dial(context.Background(), "x", "bad name"); wire.CodeOf(err) != wire.CodeBadName {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := Dial(context.Background(), "x", "ok", WithMeta(map[string]string{"bad key": "v"})); wire.CodeOf(err) != wire.CodeBadOptions {
		t.Fatalf("bad meta: %v", err)
	}
	if _, err := Dial(context.Background(), "x", "ok", WithBackoff(time.Second, time.Millisecond)); err == nil {
		t.Fatal("backoff with max < min accepted")
	}
	for _, d := range []time.Duration{-time.Second, time.Microsecond, 25 * time.Hour} {
		if _, err := Dial(context.Background(), "x", "ok", WithInterval(d)); err == nil || !strings.Contains(err.Error(), "want 1ms to 24h0m0s") {
			t.Fatalf("interval %v: %v", d, err)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	for n := 1; n < 100; n++ {
		d := backoff(n, 250*time.Millisecond, 15*time.Second)
		bound := min(250*time.Millisecond<<min(n-1, 20), 15*time.Second)
		if d < bound/2 || d > bound {
			t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, bound/2, bound)
		}
	}
}
