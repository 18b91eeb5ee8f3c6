// Package faultproxy is a TCP proxy for tests that injects network faults
// between a client and a server on 127.0.0.1: it passes bytes through, or
// blackholes them (accepts them and forwards nothing, keeping the sockets
// open, as a partition does), or delays them by a latency with jitter, each
// direction on its own; it cuts every connection at once, and refuses new
// ones.
//
//	p, err := faultproxy.New("127.0.0.1:7070")
//	defer p.Close()
//	client.Dial(ctx, p.Addr(), "web-1")
//	p.Blackhole(faultproxy.Both, true) // a partition
//	p.Heal()                           // back to passing everything
//
// Faults apply to bytes as the proxy reads them: a byte read while its
// direction is blackholed is dropped, one read with a latency set is
// delivered that much later (order is kept: a chunk never overtakes the one
// before it). An end of stream read while blackholed is dropped too, as a
// FIN is lost in a partition, so that the far end does not learn of a close
// that it could not see.
//
// Every goroutine belongs to the proxy, and Close stops them all.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Direction selects which way the bytes a fault applies to flow.
type Direction uint8

// The directions.
const (
	// Upstream is from the client (who connects to the proxy) to the
	// server (the proxy's target).
	Upstream Direction = 1 << iota
	// Downstream is from the server to the client.
	Downstream
	// Both is either direction.
	Both = Upstream | Downstream
)

// chunkSize is the most one read takes; queueLen bounds the chunks in
// flight per direction, so that a blocked writer holds back its reader.
const (
	chunkSize = 16 << 10
	queueLen  = 256
)

// faults are one direction's faults.
type faults struct {
	blackhole       bool
	latency, jitter time.Duration
}

// Proxy is a running fault-injecting proxy. Its methods are safe for
// concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	up, down faults
	refuse   bool
	links    map[*link]struct{}
	accepted int
	refused  int
	rng      *rand.Rand
}

// New starts a proxy to target (host:port) listening on a fresh port of
// 127.0.0.1, passing everything.
func New(target string) (*Proxy, error) {
	return Listen("127.0.0.1:0", target)
}

// Listen starts a proxy to target listening on addr.
func Listen(addr, target string) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("faultproxy: target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p := &Proxy{target: target, ln: ln, links: map[*link]struct{}{}, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Blackhole starts (on) or stops dropping the bytes of the directions d.
func (p *Proxy) Blackhole(d Direction, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d&Upstream != 0 {
		p.up.blackhole = on
	}
	if d&Downstream != 0 {
		p.down.blackhole = on
	}
}

// SetLatency delays every chunk read in the directions d from now on by
// latency plus a random extra from 0 to jitter. Zero for both removes the
// delay.
func (p *Proxy) SetLatency(d Direction, latency, jitter time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d&Upstream != 0 {
		p.up.latency, p.up.jitter = max(latency, 0), max(jitter, 0)
	}
	if d&Downstream != 0 {
		p.down.latency, p.down.jitter = max(latency, 0), max(jitter, 0)
	}
}

// Refuse makes the proxy reset every new connection at once (on), as a
// host with no one listening does, or accept them again.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = on
}

// Heal removes every fault: no blackhole, no latency, no refusal.
// Connections cut stay cut.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up, p.down, p.refuse = faults{}, faults{}, false
}

// Cut resets every open connection, both sides, and returns how many there
// were. New connections are accepted as before.
func (p *Proxy) Cut() int {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.reset()
	}
	return len(links)
}

// Stats are counts of the proxy's connections.
type Stats struct {
	// Open is how many proxied connections are open now.
	Open int
	// Accepted counts the connections proxied; Refused those reset at
	// once because of Refuse or because the target could not be reached.
	Accepted, Refused int
}

// Stats returns the counts of the proxy's connections.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Open: len(p.links), Accepted: p.accepted, Refused: p.refused}
}

// Close stops accepting, closes every connection and waits for every
// goroutine of the proxy to exit.
func (p *Proxy) Close() error {
	p.cancel()
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			// A transient failure (out of files): wait a moment rather
			// than spin.
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		p.mu.Lock()
		refuse := p.refuse
		if refuse {
			p.refused++
		}
		p.mu.Unlock()
		if refuse {
			resetConn(nc)
			continue
		}
		p.wg.Add(1)
		go p.open(nc)
	}
}

// open dials the target for a client connection and starts its link.
func (p *Proxy) open(client net.Conn) {
	defer p.wg.Done()
	d := net.Dialer{Timeout: 5 * time.Second}
	server, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		p.mu.Lock()
		p.refused++
		p.mu.Unlock()
		resetConn(client)
		return
	}
	l := &link{p: p, client: client, server: server}
	p.mu.Lock()
	if p.ctx.Err() != nil {
		p.mu.Unlock()
		resetConn(client)
		resetConn(server)
		return
	}
	p.links[l] = struct{}{}
	p.accepted++
	p.mu.Unlock()
	l.run()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// faultsFor returns the faults of a direction now, and the delay for a
// chunk read now.
func (p *Proxy) faultsFor(d Direction) (blackhole bool, delay time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.up
	if d == Downstream {
		f = p.down
	}
	delay = f.latency
	if f.jitter > 0 {
		delay += time.Duration(p.rng.Int64N(int64(f.jitter) + 1))
	}
	return f.blackhole, delay
}

// link is one proxied connection: a client socket and a server socket.
type link struct {
	p              *Proxy
	client, server net.Conn
	once           sync.Once
}

// chunk is bytes read, due for delivery at a time.
type chunk struct {
	data []byte
	due  time.Time
	eof  bool // the reader saw the end of the stream: half-close the far side
}

// run copies both ways until both directions are done, or the link is
// reset or the proxy closed.
func (l *link) run() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.pipe(Upstream, l.client, l.server) }()
	go func() { defer wg.Done(); l.pipe(Downstream, l.server, l.client) }()
	stop := context.AfterFunc(l.p.ctx, l.reset)
	wg.Wait()
	stop()
	l.close()
}

// pipe moves one direction: a reader (this goroutine) and a writer.
func (l *link) pipe(d Direction, src, dst net.Conn) {
	q := make(chan chunk, queueLen)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		l.write(q, dst)
	}()
	defer func() {
		close(q)
		<-writerDone
	}()
	var last time.Time
	for {
		buf := make([]byte, chunkSize)
		n, err := src.Read(buf)
		blackhole, delay := l.p.faultsFor(d)
		due := time.Now().Add(delay)
		if due.Before(last) {
			due = last // never overtake the chunk before
		}
		last = due
		if n > 0 && !blackhole {
			select {
			case q <- chunk{data: buf[:n], due: due}:
			case <-l.p.ctx.Done():
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !blackhole {
				l.reset() // a reset (or a cut) ends both ways
				return
			}
			if blackhole {
				// A FIN or reset lost in the partition: the far side
				// learns nothing; the link lasts until it is cut or the
				// other direction ends.
				return
			}
			select {
			case q <- chunk{eof: true, due: due}:
			case <-l.p.ctx.Done():
			}
			return
		}
	}
}

// write delivers one direction's chunks at their due times.
func (l *link) write(q <-chan chunk, dst net.Conn) {
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for c := range q {
		if wait := time.Until(c.due); wait > 0 {
			t.Reset(wait)
			select {
			case <-t.C:
			case <-l.p.ctx.Done():
				return
			}
		}
		if c.eof {
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			continue
		}
		if _, err := dst.Write(c.data); err != nil {
			l.reset()
			// Drain so that the reader never blocks on a full queue.
			for range q {
			}
			return
		}
	}
}

// reset closes both sockets with a reset.
func (l *link) reset() {
	l.once.Do(func() {
		resetConn(l.client)
		resetConn(l.server)
	})
}

// close closes both sockets normally, once both directions are done.
func (l *link) close() {
	l.once.Do(func() {
		l.client.Close()
		l.server.Close()
	})
}

// resetConn closes nc so that the peer gets a reset, not an orderly end.
func resetConn(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	nc.Close()
}
