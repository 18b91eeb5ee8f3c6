//go:build !unix

package bench

import (
	"errors"
	"syscall"
)

// readNow is not implemented here: floods need Unix.
func readNow(syscall.RawConn, []byte) (int, error) { return 0, errors.ErrUnsupported }

// writeNow is not implemented here: floods need Unix.
func writeNow(syscall.RawConn, []byte) (int, error) { return 0, errors.ErrUnsupported }

// setRecvBuffer does nothing here.
func setRecvBuffer(syscall.RawConn, int) error { return nil }
