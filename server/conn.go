package server

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/wire"
)

// conn is the goroutine-per-connection transport: one goroutine reads the
// lines of one net.Conn, hands them to the protocol and writes the replies.
// It works with any net.Conn, TLS included.
type conn struct {
	srv   *Server
	nc    net.Conn
	lines *wire.Reader
	proto protocol
	out   []byte

	// ending is set once, by whoever ends the connection from outside the
	// goroutine (the registry, Shutdown, Close), and the read is
	// interrupted so that the goroutine sees it.
	ending atomic.Pointer[ending]
}

// ending says how a connection ends when it is ended from outside.
type ending struct {
	// line is the ERR line to send when the registry ended the session.
	line []byte
	// shutdown: the server is shutting down. A registered client gets
	// "BYE shutdown" and its session leaves; any other gets ERR shutdown.
	shutdown bool
	// abrupt: the server is closing now; nothing more is sent.
	abrupt bool
}

var (
	endShutdown = &ending{shutdown: true}
	endAbrupt   = &ending{shutdown: true, abrupt: true}
)

var aLongTimeAgo = time.Unix(1, 0)

func newConn(srv *Server, nc net.Conn) *conn {
	c := &conn{srv: srv, nc: nc, lines: wire.NewReader(nc)}
	c.proto = newProtocol(srv, nc.RemoteAddr().String(), c)
	return c
}

// End implements registry.Link: the registry removed the session (dead,
// replaced or kicked); tell the client and close.
func (c *conn) End(kind pulse.EventKind, detail string) {
	c.end(&ending{line: endLine(c.srv, kind, detail)})
}

// endLine is the ERR line that tells a client how the registry ended its
// session.
func endLine(s *Server, kind pulse.EventKind, detail string) []byte {
	code := wire.CodeInternal
	switch kind {
	case pulse.EventDead:
		code = wire.CodeTimeout
	case pulse.EventReplaced:
		code = wire.CodeReplaced
	case pulse.EventKicked:
		code = wire.CodeKicked
	}
	s.cfg.Observer.Rejected(code)
	return wire.AppendErr(nil, code, detail)
}

// kill closes the connection at once, which also interrupts a blocked
// write; the goroutine then finishes as it was ended.
func (c *conn) kill() { c.nc.Close() }

// end asks the goroutine to finish as e says. Only the first call counts.
// It does not block.
func (c *conn) end(e *ending) {
	if c.ending.CompareAndSwap(nil, e) {
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
	}
}

// serve runs the connection until it ends.
func (c *conn) serve() {
	c.srv.log.Debug("connection accepted", "peer", c.proto.peer)
	defer func() {
		c.srv.log.Debug("connection closed", "peer", c.proto.peer, "registered", c.proto.registered())
		c.srv.forget(c)
	}()
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.HelloTimeout))
	if tc, ok := c.nc.(*tls.Conn); ok && !c.handshake(tc) {
		return
	}
	for {
		if e := c.ending.Load(); e != nil {
			c.finish(e)
			return
		}
		line, err := c.lines.ReadLine()
		if err != nil {
			c.readFailed(err)
			return
		}
		wasRegistered := c.proto.registered()
		var next outcome
		c.out, next = c.proto.onLine(line, c.out)
		if !wasRegistered && c.proto.registered() {
			_ = c.nc.SetReadDeadline(time.Time{}) // the hello timeout no longer applies
		}
		if next == closeConn {
			c.close()
			return
		}
		// Answer a burst of lines with one write.
		if c.lines.Ready() {
			continue
		}
		if err := c.write(); err != nil {
			c.writeFailed(err)
			return
		}
	}
}

// write sends what is pending. A write that stays blocked for the write
// timeout, the client not reading, fails with a timeout; then what is
// left pending is the rest of the line it stopped in, if any, so that a
// line after it arrives whole.
func (c *conn) write() error {
	if len(c.out) == 0 {
		return nil
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	n, err := c.nc.Write(c.out)
	if err != nil && n > 0 && c.out[n-1] != '\n' {
		rest := c.out[n:]
		c.out = append(c.out[:0], rest[:bytes.IndexByte(rest, '\n')+1]...)
		return err
	}
	c.out = c.out[:0]
	return err
}

// writeFailed ends the connection after a failed write. A client that did
// not read for the write timeout is a slow consumer: it is told so if the
// line can still reach it whole (after the lines it has not read, within
// a moment), and closed.
func (c *conn) writeFailed(err error) {
	if e := c.ending.Load(); e != nil {
		c.finish(e) // the server closed the connection under us
		return
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.proto.leave(pulse.ReasonError, "write: "+errorText(err))
		c.nc.Close()
		return
	}
	c.srv.cfg.Observer.Rejected(wire.CodeSlowConsumer)
	c.proto.leave(pulse.ReasonError, errSlowConsumer.Error())
	c.out = wire.AppendErr(c.out, errSlowConsumer.Code, errSlowConsumer.Message)
	c.close()
}

// readFailed ends the connection after a failed read.
func (c *conn) readFailed(err error) {
	if e := c.ending.Load(); e != nil {
		c.finish(e) // the read was interrupted on purpose
		return
	}
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF):
		c.proto.leave(pulse.ReasonClosed, "")
		c.nc.Close()
	case errors.Is(err, wire.ErrLineTooLong):
		c.out, _ = c.proto.reject(c.out, wire.ErrLineTooLong)
		c.close()
	case !c.proto.registered() && errors.As(err, &ne) && ne.Timeout():
		c.out, _ = c.proto.reject(c.out, &wire.Error{Code: wire.CodeHelloTimeout,
			Message: "no HELLO within " + c.srv.cfg.HelloTimeout.String()})
		c.close()
	default:
		c.proto.leave(pulse.ReasonError, "read: "+errorText(err))
		c.nc.Close()
	}
}

// finish ends the connection as it was asked from outside.
func (c *conn) finish(e *ending) {
	c.out = c.out[:0]
	switch {
	case e.shutdown && c.proto.registered():
		c.proto.leave(pulse.ReasonShutdown, "")
		c.out = wire.AppendBye(c.out, pulse.ReasonShutdown)
	case e.shutdown:
		c.srv.cfg.Observer.Rejected(errShutdown.Code)
		c.out = wire.AppendErr(c.out, errShutdown.Code, errShutdown.Message)
	default:
		c.out = append(c.out, e.line...)
	}
	if e.abrupt {
		c.nc.Close()
		return
	}
	c.close()
}

// close sends what is pending as the connection's last words and closes
// it. The last write gets only a moment: a client that does not read is
// not waited for. Then it sends FIN and drains what the client still sends
// for a moment, so that the kernel does not answer unread input with a
// reset that could destroy the last line before the client reads it.
func (c *conn) close() {
	if len(c.out) > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(lingerTimeout))
		_, _ = c.nc.Write(c.out)
		c.out = c.out[:0]
	}
	tcp, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || tcp.CloseWrite() != nil {
		c.nc.Close()
		return
	}
	// Until the deadline, as the event loop drains: a client that sent
	// more than a buffer's worth (a slow consumer's backlog of beats)
	// would otherwise get a reset that destroys the line.
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.Copy(io.Discard, c.nc)
	c.nc.Close()
}

// errorText describes a network error without the addresses that every
// log line already carries.
func errorText(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		var se *os.SyscallError
		if errors.As(oe.Err, &se) {
			return se.Err.Error()
		}
		return oe.Err.Error()
	}
	return err.Error()
}
