package fdbench

import "errors"

// Errors of this package, for callers to test with errors.Is.
var (
	ErrUnknownScenario = errors.New("unknown scenario")
	ErrInvalidScenario = errors.New("invalid scenario")
	ErrNoSessions      = errors.New("no sessions to replay")
)
