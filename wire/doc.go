// Package wire parses and formats the pulse line protocol (v1).
//
// The protocol is line-based text over TCP: one message per line, ended by
// "\n" or "\r\n", UTF-8, at most MaxLineBytes bytes a line (not counting the
// line end). Tokens are separated by spaces. docs/protocol.md is the full
// specification; this package is its implementation.
//
// Client to server:
//
//	HELLO <name> [<json options>]
//	BEAT [<seq> [<rtt_us>]]
//	BYE [<reason>]
//
// Server to client:
//
//	WELCOME <session-id> <json>
//	ACK [<seq>]
//	ERR <code> <message>
//	BYE <reason>
//
// Parsing a BEAT line does not allocate, so that a beat stays cheap.
package wire

// MaxLineBytes is the longest line, in bytes, not counting "\n" or "\r\n".
const MaxLineBytes = 4096
