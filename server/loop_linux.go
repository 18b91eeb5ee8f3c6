//go:build linux

package server

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/wire"
)

// The event loop is the transport for plain TCP at scale: one goroutine
// waits on epoll for every connection, reads what is ready, hands the lines
// to the protocol and writes the replies, with no goroutine, no read buffer
// and no write buffer per connection while it is idle.
//
// Two habits make it cheap. While there is traffic it sleeps
// loopBatchDelay between polls, so that each wake-up finds many
// connections ready and its fixed costs (waking a thread, the poll) are
// shared among them; a beat waits at most that long to be read and
// answered, which no judgment on a scale of seconds can notice. Once
// loopIdleSpins polls in a row have found nothing, it blocks in epoll_wait
// until a connection is ready, a deadline is due or it is woken, so an
// idle server costs nothing (see run for why not after the first empty
// poll).
const (
	loopBatchDelay = 2 * time.Millisecond
	loopIdleSpins  = 50          // empty polls before blocking: 100 ms of quiet
	loopReadSize   = 64 << 10    // one read buffer, for the loop
	loopMaxEvents  = 1024        // events per wait
	loopMaxPending = 64 << 10    // output a client may leave unread before it is cut
	loopMaxDrain   = 64 << 10    // input a closing client may still send before it is reset
	loopReplySize  = 4 << 10     // the loop's reply buffer, which replies are built in and written from
	loopMaxBlock   = time.Second // the longest epoll_wait, so that deadlines are looked at
	loopCheckEvery = 10 * time.Millisecond
)

// connEvents are the events the loop waits for on every connection. They
// are edge-triggered: epoll reports a connection when something new
// arrives, not again at every poll while it stays readable, which spares
// the kernel a second look at every socket that was ready. So a read that
// fills the loop's buffer is taken to leave more behind, and the
// connection is read again in the next round (eventLoop.again).
const connEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET

// eventLoopSupported reports whether this platform has the event loop.
const eventLoopSupported = true

// eventLoop runs the connections handed to it on one epoll instance.
type eventLoop struct {
	srv    *Server
	epfd   int
	wakefd int
	start  time.Time // instants are nanoseconds since start

	mu       sync.Mutex
	conns    connTable
	queue    []*loopConn // ended from outside; the loop finishes them
	catchUps []func()    // asked for since the last poll (see catchUp)
	closed   bool
	exited   bool // the loop goroutine has stopped

	done chan struct{} // closed when the loop has exited

	// owned by the loop goroutine
	events     []unix.EpollEvent
	ready      []*loopConn
	again      []*loopConn            // to read again next round: their last read filled the buffer
	retry      []*loopConn            // the round's own, while again fills for the next
	scratch    []byte                 // what was read
	reply      []byte                 // replies being built, before they are written
	watched    map[*loopConn]struct{} // connections with a deadline
	nextCheck  int64
	catchingUp []func() // catch-ups taken before the current poll began, waiting for one that is not full and leaves nothing to read again
}

// connTable holds the loop's connections by file descriptor. Descriptors
// are small numbers that the kernel reuses lowest first, so a slice indexed
// by them is dense, and a lookup for every ready connection costs no hash.
type connTable struct {
	byFD []*loopConn
	n    int // connections held
}

// get returns the connection on fd, nil if none (the wake-up descriptor).
func (t *connTable) get(fd int32) *loopConn {
	if int(fd) < len(t.byFD) {
		return t.byFD[fd]
	}
	return nil
}

// set puts c, or nil to remove what is there, on fd.
func (t *connTable) set(fd int, c *loopConn) {
	if fd >= len(t.byFD) {
		if c == nil {
			return
		}
		t.byFD = append(t.byFD, make([]*loopConn, fd+1-len(t.byFD))...)
	}
	switch old := t.byFD[fd]; {
	case old == nil && c != nil:
		t.n++
	case old != nil && c == nil:
		t.n--
	}
	t.byFD[fd] = c
}

// loopConn is one connection of the event loop.
type loopConn struct {
	loop  *eventLoop
	fd    int
	proto protocol
	split wire.Splitter

	// owned by the loop goroutine
	out           []byte // replies the kernel has not taken yet
	state         loopState
	helloDeadline int64 // 0 once registered
	writeDeadline int64 // while replies wait for the client to read: when it is cut
	lingerUntil   int64 // while lingering: when the connection is closed anyway
	writing       bool  // EPOLLOUT is asked for
	midLine       bool  // the last write stopped inside a line
	drained       int   // while lingering: bytes read and dropped

	// set from outside: how the connection is to end
	ending atomic.Pointer[ending]
	killed atomic.Bool
}

type loopState uint8

const (
	loopOpen      loopState = iota
	loopLingering           // last words sent or being sent; reading only to drain
	loopClosed
)

// newEventLoop starts an event loop for srv.
func newEventLoop(srv *Server) (*eventLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	l := &eventLoop{
		srv:     srv,
		epfd:    epfd,
		wakefd:  wakefd,
		start:   time.Now(),
		done:    make(chan struct{}),
		events:  make([]unix.EpollEvent, loopMaxEvents),
		scratch: make([]byte, loopReadSize),
		reply:   make([]byte, 0, loopReplySize),
		watched: make(map[*loopConn]struct{}),
	}
	go l.run()
	return l, nil
}

func (l *eventLoop) now() int64 { return int64(time.Since(l.start)) }

// add takes over a TCP connection: its file descriptor is duplicated into
// the loop, the connection is tracked by the server, and nc is closed. On
// error nc is left as it was, and ErrServerClosed means the server is
// shutting down.
func (l *eventLoop) add(nc net.Conn, ip netip.Addr) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return errors.New("not a socket")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(orig uintptr) {
		fd, dupErr = unix.FcntlInt(orig, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return err
	}
	if dupErr != nil {
		return fmt.Errorf("dup: %w", dupErr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return fmt.Errorf("set non-blocking: %w", err)
	}
	c := &loopConn{loop: l, fd: fd}
	c.proto = newProtocol(l.srv, nc.RemoteAddr().String(), c)
	c.helloDeadline = l.now() + int64(l.srv.cfg.HelloTimeout)
	if !l.srv.trackConn(c, ip) {
		unix.Close(fd)
		return ErrServerClosed
	}
	l.mu.Lock()
	l.conns.set(fd, c)
	l.mu.Unlock()
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: connEvents, Fd: int32(fd)}); err != nil {
		l.mu.Lock()
		l.conns.set(fd, nil)
		l.mu.Unlock()
		unix.Close(fd)
		l.srv.untrackConn(c) // nc is still open, for a goroutine to take
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	nc.Close()   // the duplicate keeps the socket open
	l.enqueue(c) // for the loop to watch its hello deadline
	return nil
}

// wake interrupts a blocked epoll_wait.
func (l *eventLoop) wake() {
	var one = [8]byte{1}
	_, _ = unix.Write(l.wakefd, one[:]) // EAGAIN: a wake-up is pending already
}

// close stops the loop once its connections are gone, and waits for it.
func (l *eventLoop) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.wake()
	<-l.done
}

// End implements registry.Link: the registry removed the session.
func (c *loopConn) End(kind pulse.EventKind, detail string) {
	c.end(&ending{line: endLine(c.loop.srv, kind, detail)})
}

// end asks the loop to finish the connection as e says; only the first
// call counts. It does not block.
func (c *loopConn) end(e *ending) {
	if c.ending.CompareAndSwap(nil, e) {
		c.loop.enqueue(c)
	}
}

// kill asks the loop to close the connection at once, without a word.
func (c *loopConn) kill() {
	if c.killed.CompareAndSwap(false, true) {
		c.loop.enqueue(c)
	}
}

func (l *eventLoop) enqueue(c *loopConn) {
	l.mu.Lock()
	l.queue = append(l.queue, c)
	l.mu.Unlock()
	l.wake()
}

// catchUp asks the loop to read everything that has arrived by now, and
// calls done once it has: after a stall, every socket with a backlog is
// ready, and a poll that begins after the request and returns fewer events
// than it could hold has seen them all; once that poll's connections are
// read, and none is left to read again (a read that filled the buffer),
// done is called, from the loop goroutine. If the loop has stopped,
// done is called at once.
func (l *eventLoop) catchUp(done func()) {
	l.mu.Lock()
	if l.exited {
		l.mu.Unlock()
		done()
		return
	}
	l.catchUps = append(l.catchUps, done)
	l.wake() // under l.mu, so that the loop cannot close wakefd meanwhile
	l.mu.Unlock()
}

// exit marks the loop stopped and answers the catch-ups still waiting:
// nothing more will be read.
func (l *eventLoop) exit() {
	l.mu.Lock()
	l.exited = true
	waiting := append(l.catchingUp, l.catchUps...)
	l.catchingUp, l.catchUps = nil, nil
	l.mu.Unlock()
	for _, done := range waiting {
		done()
	}
}

// run is the loop goroutine.
func (l *eventLoop) run() {
	defer close(l.done)
	defer unix.Close(l.wakefd)
	defer unix.Close(l.epfd)
	defer l.exit()
	block := true
	empty := 0 // polls in a row that found nothing
	for {
		if l.srv.cfg.beforePoll != nil {
			l.srv.cfg.beforePoll(l)
		}
		var n int
		var err error
		if block {
			n, err = unix.EpollWait(l.epfd, l.events, l.blockFor())
		} else {
			n, err = rawPoll(l.epfd, l.events)
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			l.srv.log.Error("event loop: epoll_wait failed; closing its connections", "error", err)
			l.abandon()
			return
		}
		n = max(n, 0)

		l.mu.Lock()
		l.ready = l.ready[:0]
		for _, ev := range l.events[:n] {
			l.ready = append(l.ready, l.conns.get(ev.Fd)) // nil for the wake-up
		}
		queue := l.queue
		l.queue = nil
		asked := l.catchUps // for the next poll, which begins after this
		l.catchUps = nil
		stop := l.closed && l.conns.n == 0
		l.mu.Unlock()

		for i, c := range l.ready {
			ev := l.events[i].Events
			if c == nil {
				var buf [8]byte
				_, _ = unix.Read(l.wakefd, buf[:])
				continue
			}
			if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				l.readable(c)
			}
			if ev&unix.EPOLLOUT != 0 && c.state != loopClosed {
				l.flush(c)
			}
		}
		l.retry, l.again = l.again, l.retry[:0]
		for _, c := range l.retry {
			l.readable(c)
		}
		for _, c := range queue {
			l.ended(c)
		}
		if now := l.now(); now >= l.nextCheck {
			l.checkDeadlines(now)
		}
		if len(l.catchingUp) > 0 && n < len(l.events) && len(l.again) == 0 {
			for _, done := range l.catchingUp {
				done()
			}
			l.catchingUp = l.catchingUp[:0]
		}
		l.catchingUp = append(l.catchingUp, asked...)
		if stop {
			return
		}
		// Block only after a run of empty polls: a blocking epoll_wait is
		// a system call the Go runtime sees, which makes it hand the
		// processor to another thread and keeps its monitor thread
		// waking every 20 µs; at a few thousand beats a second, polls a
		// millisecond or two apart found nothing often enough for that
		// to cost more than the beats. A catch-up waits for no one.
		if n == 0 && len(l.again) == 0 {
			empty++
		} else {
			empty = 0
		}
		block = empty >= loopIdleSpins && len(l.catchingUp) == 0
		if !block {
			time.Sleep(loopBatchDelay)
		}
	}
}

// blockFor returns how long epoll_wait may block, in milliseconds: until
// the next deadline, and no longer than loopMaxBlock.
func (l *eventLoop) blockFor() int {
	wait := int64(loopMaxBlock)
	if len(l.watched) > 0 {
		wait = min(wait, max(l.nextCheck-l.now(), 0))
	}
	return int((wait + int64(time.Millisecond) - 1) / int64(time.Millisecond))
}

// readable reads what c has sent and answers it.
func (l *eventLoop) readable(c *loopConn) {
	if c.state == loopClosed {
		return
	}
	n, err := rawRead(c.fd, l.scratch)
	if n == len(l.scratch) {
		l.again = append(l.again, c) // there may be more: events are edge-triggered
	}
	switch {
	case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
		return
	case err != nil || n == 0:
		if c.state == loopOpen {
			if n == 0 {
				c.proto.leave(pulse.ReasonClosed, "")
			} else {
				c.proto.leave(pulse.ReasonError, "read: "+err.Error())
			}
		}
		l.closeNow(c)
		return
	case c.state == loopLingering:
		// Draining: what a closing client sends is not read. A client
		// that keeps sending past loopMaxDrain is flooding, and gets the
		// reset it asks for rather than more of the loop's time.
		c.drained += n
		if c.drained > loopMaxDrain {
			l.closeNow(c)
		}
		return
	}
	wasRegistered := c.proto.registered()
	if len(c.out) == 0 {
		// Replies are built in the loop's buffer and most are written at
		// once: an idle connection holds no buffer of its own. flush
		// moves what the kernel does not take into one.
		c.out = l.reply[:0]
	}
	next := keepOpen
	err = c.split.Split(l.scratch[:n], func(line []byte) bool {
		c.out, next = c.proto.onLine(line, c.out)
		return next == keepOpen
	})
	if err != nil { // the only error: a line too long
		c.out, next = c.proto.reject(c.out, wire.ErrLineTooLong)
	}
	if !wasRegistered && c.proto.registered() {
		c.helloDeadline = 0
	}
	if next == closeConn {
		l.linger(c)
		return
	}
	l.flush(c)
}

// flush writes what c has pending. A client that leaves too much unread,
// or leaves it unread too long, is cut.
func (l *eventLoop) flush(c *loopConn) {
	if len(c.out) > 0 {
		n, err := rawWrite(c.fd, c.out)
		if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			if c.state == loopOpen {
				c.proto.leave(pulse.ReasonError, "write: "+err.Error())
			}
			l.closeNow(c)
			return
		}
		if n > 0 {
			c.midLine = c.out[n-1] != '\n'
		}
		c.out = c.out[max(n, 0):]
	}
	if len(c.out) == 0 {
		c.out = nil // the reply buffer's, or c's own, which is let go
		c.writeDeadline = 0
		l.wantWrite(c, false)
		if c.state == loopLingering {
			_ = unix.Shutdown(c.fd, unix.SHUT_WR)
		}
		l.watch(c)
		return
	}
	if l.isReplyBuffer(c.out) {
		c.out = slices.Clone(c.out) // the rest waits in a buffer of c's own
	}
	if c.state == loopOpen && len(c.out) > loopMaxPending {
		l.slowConsumer(c)
		return
	}
	if c.writeDeadline == 0 {
		c.writeDeadline = l.now() + int64(l.srv.cfg.WriteTimeout)
	}
	l.wantWrite(c, true)
	l.watch(c)
}

// isReplyBuffer reports whether b is a part of the loop's reply buffer,
// which ends where b ends.
func (l *eventLoop) isReplyBuffer(b []byte) bool {
	return cap(b) > 0 && &b[:cap(b)][cap(b)-1] == &l.reply[:cap(l.reply)][cap(l.reply)-1]
}

// wantWrite asks epoll to tell when c can be written to, or stops asking.
func (l *eventLoop) wantWrite(c *loopConn, on bool) {
	if c.writing == on {
		return
	}
	events := uint32(connEvents)
	if on {
		events |= unix.EPOLLOUT
	}
	if unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: events, Fd: int32(c.fd)}) == nil {
		c.writing = on
	}
}

// slowConsumer cuts a client that left more than loopMaxPending unread, or
// left replies unread for the write timeout. The replies it has not read
// are dropped, but for the rest of a line the kernel took a part of; then
// "ERR slow_consumer" follows, and reaches the client if it reads within
// the linger timeout.
func (l *eventLoop) slowConsumer(c *loopConn) {
	l.srv.cfg.Observer.Rejected(wire.CodeSlowConsumer)
	c.proto.leave(pulse.ReasonError, errSlowConsumer.Error())
	keep := 0
	if c.midLine {
		keep = bytes.IndexByte(c.out, '\n') + 1
	}
	c.out = wire.AppendErr(slices.Clone(c.out[:keep]), errSlowConsumer.Code, errSlowConsumer.Message)
	c.writeDeadline = 0
	l.linger(c)
}

// linger sends c's last words, then half-closes it and drains what the
// client still sends for a moment, so that the kernel does not answer
// unread input with a reset that destroys the last line before the client
// reads it (the same as conn.close).
func (l *eventLoop) linger(c *loopConn) {
	if c.state != loopOpen {
		return
	}
	c.state = loopLingering
	c.helloDeadline = 0
	c.lingerUntil = l.now() + int64(lingerTimeout)
	l.flush(c)
}

// ended finishes a connection ended from outside, or watches a new one.
func (l *eventLoop) ended(c *loopConn) {
	if c.state == loopClosed {
		return
	}
	if c.killed.Load() {
		if c.state == loopOpen {
			c.proto.leave(pulse.ReasonShutdown, "")
		}
		l.closeNow(c)
		return
	}
	e := c.ending.Load()
	if e == nil { // just added: watch its hello deadline
		l.watch(c)
		return
	}
	if c.state != loopOpen {
		return // closing already
	}
	c.out = c.out[:0]
	switch {
	case e.shutdown && c.proto.registered():
		c.proto.leave(pulse.ReasonShutdown, "")
		c.out = wire.AppendBye(c.out, pulse.ReasonShutdown)
	case e.shutdown:
		l.srv.cfg.Observer.Rejected(errShutdown.Code)
		c.out = wire.AppendErr(c.out, errShutdown.Code, errShutdown.Message)
	default:
		c.out = append(c.out, e.line...)
	}
	if e.abrupt {
		l.closeNow(c)
		return
	}
	l.linger(c)
}

// watch keeps c among the connections whose deadlines the loop checks, or
// lets it go when it has none.
func (l *eventLoop) watch(c *loopConn) {
	d := c.deadline()
	if d == 0 {
		delete(l.watched, c)
		return
	}
	l.watched[c] = struct{}{}
	if d < l.nextCheck || len(l.watched) == 1 {
		l.nextCheck = d
	}
}

// deadline is c's earliest deadline, 0 if none.
func (c *loopConn) deadline() int64 {
	d := int64(0)
	for _, t := range []int64{c.helloDeadline, c.writeDeadline, c.lingerUntil} {
		if t != 0 && (d == 0 || t < d) {
			d = t
		}
	}
	return d
}

// checkDeadlines acts on the deadlines that are due.
func (l *eventLoop) checkDeadlines(now int64) {
	next := now + int64(loopMaxBlock)
	for c := range l.watched {
		switch {
		case c.state == loopClosed:
			delete(l.watched, c)
			continue
		case c.state == loopLingering && c.lingerUntil != 0 && now >= c.lingerUntil:
			l.closeNow(c)
			continue
		case c.state == loopOpen && c.writeDeadline != 0 && now >= c.writeDeadline:
			l.slowConsumer(c)
			continue
		case c.state == loopOpen && c.helloDeadline != 0 && now >= c.helloDeadline:
			c.out, _ = c.proto.reject(c.out, &wire.Error{Code: wire.CodeHelloTimeout,
				Message: "no HELLO within " + l.srv.cfg.HelloTimeout.String()})
			l.linger(c)
		}
		if d := c.deadline(); d == 0 {
			delete(l.watched, c)
		} else {
			next = min(next, d)
		}
	}
	l.nextCheck = max(next, now+int64(loopCheckEvery))
}

// closeNow closes c without another word.
func (l *eventLoop) closeNow(c *loopConn) {
	if c.state == loopClosed {
		return
	}
	c.state = loopClosed
	delete(l.watched, c)
	l.mu.Lock()
	l.conns.set(c.fd, nil) // before the close: the number may be reused at once
	l.mu.Unlock()
	unix.Close(c.fd) // also takes it out of the epoll set
	c.out = nil
	l.srv.log.Debug("connection closed", "peer", c.proto.peer, "registered", c.proto.registered())
	l.srv.forget(c)
}

// abandon closes every connection after the loop itself failed.
func (l *eventLoop) abandon() {
	l.mu.Lock()
	conns := make([]*loopConn, 0, l.conns.n)
	for _, c := range l.conns.byFD {
		if c != nil {
			conns = append(conns, c)
		}
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.proto.leave(pulse.ReasonError, "the server's event loop failed")
		l.closeNow(c)
	}
}
