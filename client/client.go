// Package client keeps a pulse session alive: it registers a name with a
// pulse server, beats at the interval the server grants, measures round
// trips, notices a server that stops answering, and reconnects with
// exponential backoff and jitter until it is closed.
//
//	c, err := client.Dial(ctx, "127.0.0.1:7070", "web-1")
//	if err != nil { … }
//	defer c.Close() // sends BYE
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/wire"
)

// Errors a client reports.
var (
	// ErrServerLost: nothing came from the server within the timeout it
	// granted.
	ErrServerLost = errors.New("pulse client: server stopped answering")
	// ErrServerBye: the server said BYE (it is shutting down).
	ErrServerBye = errors.New("pulse client: server said BYE")

	// ErrReplaced matches (with errors.Is) the server's rejection of a
	// session that a newer one with the same name replaced.
	ErrReplaced error = &wire.Error{Code: wire.CodeReplaced}
	// ErrKicked matches the server's rejection of a session that an
	// operator removed.
	ErrKicked error = &wire.Error{Code: wire.CodeKicked}
)

// Client is a session kept alive in the background. Create it with Dial.
type Client struct {
	addr, name string
	cfg        config

	ctx    context.Context // the client's life; Close cancels it
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	status     Status
	err        error         // why the client stopped, nil after Close
	registered chan struct{} // closed at the first WELCOME
	regOnce    sync.Once
}

// Dial connects to the pulse server at addr, registers name and returns
// once registered. Until then it retries with backoff; ctx bounds that
// wait. A rejection that retrying cannot fix (a bad name, unauthorized) is
// returned at once as a *wire.Error. After Dial returns, the client stays
// connected, reconnecting as needed, until Close, or until the server
// rejects it for good (replaced by a newer session of the same name,
// kicked): see Done and Err.
func Dial(ctx context.Context, addr, name string, opts ...Option) (*Client, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if !pulse.ValidName(name) {
		return nil, &wire.Error{Code: wire.CodeBadName, Message: fmt.Sprintf("name %q is not 1-64 of A-Z a-z 0-9 . _ - :", name)}
	}
	if err := wire.ValidateMeta(cfg.meta); err != nil {
		return nil, err
	}
	if cfg.interval != 0 && (cfg.interval < time.Millisecond || cfg.interval > pulse.MaxInterval) {
		return nil, fmt.Errorf("pulse client: interval %v: want 1ms to %v, or 0 for the server's", cfg.interval, pulse.MaxInterval)
	}
	if cfg.minBackoff <= 0 || cfg.maxBackoff < cfg.minBackoff {
		return nil, fmt.Errorf("pulse client: backoff bounds %v..%v: want 0 < min <= max", cfg.minBackoff, cfg.maxBackoff)
	}
	if _, err := wire.AppendHello(nil, name, helloOptions(cfg)); err != nil {
		return nil, err
	}
	c := &Client{addr: addr, name: name, cfg: cfg, done: make(chan struct{}), registered: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.run()
	select {
	case <-c.registered:
		return c, nil
	case <-c.done:
		select {
		case <-c.registered:
			// Registered, then ended at once (replaced, kicked): the
			// client did connect, and says how it ended with Err.
			return c, nil
		default:
		}
		return nil, c.err
	case <-ctx.Done():
		last := c.Status().Err
		c.Close()
		if last != nil {
			return nil, fmt.Errorf("pulse client: dial %s: %w (last attempt: %w)", addr, ctx.Err(), last)
		}
		return nil, fmt.Errorf("pulse client: dial %s: %w", addr, ctx.Err())
	}
}

// Status returns a snapshot of the client.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Done returns a channel closed when the client has stopped.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns, once Done is closed, why the client stopped: nil after
// Close, or the server's rejection (a *wire.Error, such as code "replaced"
// or "kicked").
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close says BYE to the server if connected, closes the connection and
// stops the client. It returns once the client's goroutines have exited.
func (c *Client) Close() error {
	c.cancel()
	<-c.done
	return nil
}

// set changes the client's state and tells OnStatus.
func (c *Client) set(update func(*Status)) {
	c.mu.Lock()
	prev := c.status.State
	update(&c.status)
	if c.status.State != prev {
		c.status.Since = time.Now()
	}
	st := c.status
	c.mu.Unlock()
	if st.State != prev && c.cfg.onStatus != nil {
		c.cfg.onStatus(st)
	}
}

// run is the client's goroutine: connect, beat until the session ends,
// back off, and again.
func (c *Client) run() {
	defer close(c.done)
	failures := 0
	for {
		c.set(func(s *Status) { s.State, s.Attempt, s.Retry = StateConnecting, failures, 0 })
		err := c.session()
		if c.ctx.Err() != nil {
			c.stop(nil)
			return
		}
		if permanent(err) {
			c.stop(err)
			return
		}
		if c.Status().State == StateConnected {
			failures = 0 // the session was up; start the backoff afresh
		}
		failures++
		wait := backoff(failures, c.cfg.minBackoff, c.cfg.maxBackoff)
		c.set(func(s *Status) {
			s.State, s.Attempt, s.Retry, s.Err = StateBackoff, failures, wait, err
			s.SessionID = ""
		})
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			c.stop(nil)
			return
		}
	}
}

func (c *Client) stop(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	c.set(func(s *Status) { s.State, s.SessionID, s.Retry, s.Err = StateClosed, "", 0, err })
}

// permanent reports whether err is a rejection that retrying cannot fix.
func permanent(err error) bool {
	switch wire.CodeOf(err) {
	case wire.CodeBadName, wire.CodeBadOptions, wire.CodeUnauthorized, wire.CodeReplaced, wire.CodeKicked,
		wire.CodeAlreadyRegistered, wire.CodeBadCommand, wire.CodeNotRegistered, wire.CodeLineTooLong:
		return true
	}
	return false
}

// backoff returns the wait after the n-th consecutive failure: about min
// after the first, doubling up to max, drawn from the upper half.
func backoff(n int, min, max time.Duration) time.Duration {
	d := max
	if n < 32 {
		d = min << (n - 1)
		if d <= 0 || d > max {
			d = max
		}
	}
	return d/2 + rand.N(d/2+1)
}

func helloOptions(cfg config) wire.HelloOptions {
	o := wire.HelloOptions{Token: cfg.token, Meta: cfg.meta}
	if cfg.noAck {
		no := false
		o.Ack = &no
	}
	if cfg.interval > 0 {
		ms := cfg.interval.Milliseconds()
		o.IntervalMS = &ms
	}
	return o
}

// tlsConfig returns cfg with the host of addr as the server name to
// verify, if it names none.
func tlsConfig(cfg *tls.Config, addr string) *tls.Config {
	if cfg.ServerName != "" {
		return cfg
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	c := cfg.Clone()
	c.ServerName = host
	return c
}

// line is what the reader goroutine hands over: a reply, or why it stopped.
type line struct {
	reply wire.Reply
	at    time.Time
	err   error
}

// session runs one connection: dial, register, beat until it ends. It
// returns why it ended.
func (c *Client) session() error {
	hsCtx, cancel := context.WithTimeout(c.ctx, c.cfg.handshakeTimeout)
	defer cancel()
	nc, err := c.cfg.dial(hsCtx, "tcp", c.addr)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if c.cfg.tls != nil {
		tc := tls.Client(nc, tlsConfig(c.cfg.tls, c.addr))
		if err := tc.HandshakeContext(hsCtx); err != nil {
			nc.Close()
			if rhe := (tls.RecordHeaderError{}); errors.As(err, &rhe) {
				// A plain pulse server answers the ClientHello with ERR.
				return fmt.Errorf("TLS handshake: the server at %s does not speak TLS (drop the TLS option, or run the server with --tls-cert): %w", c.addr, err)
			}
			return fmt.Errorf("TLS handshake: %w", err)
		}
		nc = tc
	}
	defer nc.Close()
	stopOnCancel := context.AfterFunc(hsCtx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })

	opts := helloOptions(c.cfg)
	if c.cfg.tokenFunc != nil {
		if opts.Token, err = c.cfg.tokenFunc(); err != nil {
			return fmt.Errorf("token: %w", err)
		}
	}
	hello, err := wire.AppendHello(nil, c.name, opts) // checked by Dial, but for the token
	if err != nil {
		return fmt.Errorf("HELLO: %w", err)
	}
	sent := time.Now()
	if _, err := nc.Write(hello); err != nil {
		return fmt.Errorf("send HELLO: %w", err)
	}
	lines := wire.NewReader(nc)
	raw, err := lines.ReadLine()
	if err != nil {
		return fmt.Errorf("await WELCOME: %w", err)
	}
	rtt := time.Since(sent)
	r, err := wire.ParseReply(raw)
	switch {
	case err != nil:
		return err
	case r.Kind == wire.ReplyErr:
		return r.Err
	case r.Kind == wire.ReplyBye:
		return fmt.Errorf("%w: %s", ErrServerBye, r.Reason)
	case r.Kind != wire.ReplyWelcome:
		return fmt.Errorf("%w: want WELCOME, got %q", wire.ErrBadReply, raw)
	}
	if !stopOnCancel() { // the handshake timed out just as it finished
		return fmt.Errorf("await WELCOME: %w", hsCtx.Err())
	}
	_ = nc.SetDeadline(time.Time{})
	w := r.Welcome
	c.set(func(s *Status) {
		s.State, s.SessionID, s.Interval, s.Timeout = StateConnected, r.SessionID, w.Interval(), w.Timeout()
		s.RTT, s.Beats, s.Attempt, s.Err = rtt, 0, 0, nil
	})
	c.regOnce.Do(func() { close(c.registered) })
	return c.beat(nc, lines, w, rtt)
}

// beat sends a beat every interval and reads the server's lines until the
// session ends.
func (c *Client) beat(nc net.Conn, lines *wire.Reader, w wire.Welcome, rtt time.Duration) error {
	acks := w.Ack && !c.cfg.noAck
	incoming := make(chan line, 16)
	quit := make(chan struct{})
	readerDone := make(chan struct{})
	go c.read(nc, lines, acks, w.Timeout(), incoming, quit, readerDone)
	defer func() {
		close(quit)
		nc.Close()
		<-readerDone
	}()

	ticker := time.NewTicker(w.Interval())
	defer ticker.Stop()
	var (
		seq    uint64
		sentAt time.Time
		out    []byte
	)
	for {
		select {
		case <-c.ctx.Done():
			_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = nc.Write(wire.AppendBye(out[:0], "client closed"))
			return c.ctx.Err()
		case <-ticker.C:
			// The time now, not the tick's: a tick the client's own stall
			// (a GC, a suspended laptop) delayed carries the time it was
			// due, and a deadline from it could be past already.
			now := time.Now()
			seq++
			out = wire.AppendBeat(out[:0], seq, rtt)
			_ = nc.SetWriteDeadline(now.Add(w.Timeout()))
			if _, err := nc.Write(out); err != nil {
				return fmt.Errorf("send BEAT: %w", err)
			}
			sentAt = now
			c.mu.Lock()
			c.status.Beats++
			c.mu.Unlock()
		case l := <-incoming:
			if l.err != nil {
				return l.err
			}
			switch l.reply.Kind {
			case wire.ReplyAck:
				if l.reply.HasSeq && l.reply.Seq == seq && !sentAt.IsZero() {
					rtt = l.at.Sub(sentAt)
					c.mu.Lock()
					c.status.RTT = rtt
					c.mu.Unlock()
				}
			case wire.ReplyErr:
				return l.reply.Err
			case wire.ReplyBye:
				return fmt.Errorf("%w: %s", ErrServerBye, l.reply.Reason)
			default:
				return fmt.Errorf("%w: unexpected %v after WELCOME", wire.ErrBadReply, l.reply.Kind)
			}
		}
	}
}

// read is the goroutine that reads the server's lines. With ACKs on, the
// server speaks at least once per interval, so a silence as long as the
// timeout means the server is lost. It exits when the connection closes or
// quit is closed.
func (c *Client) read(nc net.Conn, lines *wire.Reader, acks bool, timeout time.Duration, out chan<- line, quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	send := func(l line) bool {
		select {
		case out <- l:
			return true
		case <-quit:
			return false
		}
	}
	for {
		if acks {
			_ = nc.SetReadDeadline(time.Now().Add(timeout))
		}
		raw, err := lines.ReadLine()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				err = fmt.Errorf("%w: nothing for %v", ErrServerLost, timeout)
			} else {
				err = fmt.Errorf("read: %w", err)
			}
			send(line{err: err})
			return
		}
		r, err := wire.ParseReply(raw)
		if !send(line{reply: r, at: time.Now(), err: err}) || err != nil {
			return
		}
	}
}
