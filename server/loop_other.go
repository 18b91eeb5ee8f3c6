//go:build !linux

package server

import (
	"errors"
	"net"
	"net/netip"
)

// eventLoopSupported reports whether this platform has the event loop.
const eventLoopSupported = false

// eventLoop is Linux-only; elsewhere every connection has its goroutine.
type eventLoop struct{}

func newEventLoop(*Server) (*eventLoop, error) {
	return nil, errors.New("the event loop needs Linux")
}

func (*eventLoop) add(net.Conn, netip.Addr) error { return errors.New("no event loop") }
func (*eventLoop) close()                         {}

// catchUp has nothing to wait for.
func (*eventLoop) catchUp(done func()) { done() }
