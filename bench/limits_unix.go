//go:build unix

package bench

import "syscall"

// openFileLimit returns this process's limit of open files, 0 if unknown.
// (Go raises the soft limit to the hard one as it starts.)
func openFileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return int(min(rl.Cur, 1<<30))
}
