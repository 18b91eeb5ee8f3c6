// Package faulttest holds pulse's fault tests: a server and its clients on
// real sockets of 127.0.0.1, with a fault-injecting proxy
// (internal/faultproxy) between them, or a pulse server process killed with
// SIGKILL and started again. It has no code of its own outside its tests.
package faulttest
