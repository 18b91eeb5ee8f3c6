//go:build linux

package server

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The event loop's reads, writes and polls never block: its sockets are
// non-blocking and it polls with a zero timeout. It makes them as raw
// system calls, which do not tell the Go scheduler that the goroutine is
// in a system call: told, the runtime hands the loop's processor to
// another thread whenever a call takes more than a few microseconds (a
// socket write often does), and those hand-offs cost more than the calls.
// A blocking epoll_wait goes through unix.EpollWait as usual.

func rawRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

func rawWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

// rawPoll is epoll_wait with a zero timeout.
func rawPoll(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
