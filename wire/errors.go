package wire

import (
	"errors"
	"strings"
)

// Code is the lower-case word that names an error on the wire, as in
// "ERR bad_name …". docs/protocol.md describes each.
type Code string

// The error codes a server sends. Every ERR is followed by the server
// closing the connection.
const (
	CodeBadCommand         Code = "bad_command"          // unknown command or malformed arguments
	CodeLineTooLong        Code = "line_too_long"        // a line over MaxLineBytes
	CodeNotRegistered      Code = "not_registered"       // BEAT before HELLO
	CodeAlreadyRegistered  Code = "already_registered"   // a second HELLO on one connection
	CodeBadName            Code = "bad_name"             // name missing, too long or with other characters
	CodeBadOptions         Code = "bad_options"          // HELLO options that are not a valid JSON object
	CodeHelloTimeout       Code = "hello_timeout"        // no HELLO within the registration timeout
	CodeUnauthorized       Code = "unauthorized"         // missing or invalid credentials
	CodeReplaced           Code = "replaced"             // a newer session registered the same name
	CodeTimeout            Code = "timeout"              // no beat within the timeout: declared dead
	CodeKicked             Code = "kicked"               // an operator removed the session
	CodeShutdown           Code = "shutdown"             // the server is shutting down and takes no new sessions
	CodeTooManyConnections Code = "too_many_connections" // a connection limit was reached
	CodeRateLimited        Code = "rate_limited"         // the client sent lines faster than allowed
	CodeSlowConsumer       Code = "slow_consumer"        // the client did not read what the server sent
	CodeInternal           Code = "internal"             // the server failed; not the client's fault
)

// Error is a protocol error: the code and message of an ERR line.
type Error struct {
	Code    Code
	Message string
}

// Error returns "code: message".
func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Message
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, &wire.Error{Code: wire.CodeReplaced}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// newError returns an *Error with the given code and message.
func newError(code Code, msg string) *Error { return &Error{Code: code, Message: msg} }

// ErrLineTooLong is returned by Reader.ReadLine for a line over the limit.
var ErrLineTooLong = newError(CodeLineTooLong, "line longer than 4096 bytes")

// CodeOf returns the wire code of err if it is or wraps an *Error, and ""
// otherwise.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// oneLine makes s safe to send as the tail of a line: no line breaks.
func oneLine(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		s = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(s)
	}
	return s
}
