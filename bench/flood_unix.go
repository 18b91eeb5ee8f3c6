//go:build unix

package bench

import "syscall"

// readNow reads what is there without waiting: syscall.EAGAIN if nothing
// is; n == 0 and a nil error at the end of the stream.
func readNow(rc syscall.RawConn, buf []byte) (n int, err error) {
	cerr := rc.Read(func(fd uintptr) bool {
		n, err = syscall.Read(int(fd), buf)
		return true // never wait for more
	})
	if n < 0 {
		n = 0
	}
	if cerr != nil {
		return 0, cerr
	}
	return n, err
}

// writeNow writes what fits without waiting: syscall.EAGAIN if nothing
// does.
func writeNow(rc syscall.RawConn, b []byte) (n int, err error) {
	cerr := rc.Write(func(fd uintptr) bool {
		n, err = syscall.Write(int(fd), b)
		return true
	})
	if n < 0 {
		n = 0
	}
	if cerr != nil {
		return 0, cerr
	}
	return n, err
}

// setRecvBuffer sets a socket's receive buffer before it connects.
func setRecvBuffer(rc syscall.RawConn, size int) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
	}); err != nil {
		return err
	}
	return serr
}
