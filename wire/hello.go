package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pulsehq/pulse"
)

// Limits on HELLO meta labels.
const (
	MaxMetaKeys     = 32
	MaxMetaValueLen = 256
)

// HelloOptions are the options a client may give in HELLO, as one JSON
// object. Unknown keys are ignored, so that clients can send options newer
// than the server.
type HelloOptions struct {
	// Token is a credential for servers that demand one.
	Token string `json:"token,omitempty"`
	// Meta holds small string labels: at most 32, keys like session names,
	// values of at most 256 bytes.
	Meta map[string]string `json:"meta,omitempty"`
	// Ack asks for an ACK per BEAT. Absent means true.
	Ack *bool `json:"ack,omitempty"`
	// IntervalMS asks for a beat interval of this many milliseconds
	// instead of the server's. The server grants it within bounds of its
	// own, clamping a request outside them, and says in WELCOME what it
	// granted. Absent means the server's interval; it must be positive.
	IntervalMS *int64 `json:"interval_ms,omitempty"`
}

// WantsAck reports whether the client wants an ACK for every BEAT.
func (o HelloOptions) WantsAck() bool { return o.Ack == nil || *o.Ack }

// Interval returns the beat interval the client asked for, zero if it
// asked for none. A request over pulse.MaxInterval counts as
// pulse.MaxInterval, which no server grants anyway.
func (o HelloOptions) Interval() time.Duration {
	if o.IntervalMS == nil || *o.IntervalMS <= 0 {
		return 0
	}
	return time.Duration(min(*o.IntervalMS, int64(pulse.MaxInterval/time.Millisecond))) * time.Millisecond
}

// ParseHelloOptions parses the JSON options of a HELLO line.
func ParseHelloOptions(b []byte) (HelloOptions, error) {
	var o HelloOptions
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return o, newError(CodeBadOptions, "options must be a JSON object, such as {\"meta\":{\"region\":\"eu\"}}")
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return HelloOptions{}, newError(CodeBadOptions, "options are not valid: "+oneLine(jsonError(err)))
	}
	if err := ValidateMeta(o.Meta); err != nil {
		return HelloOptions{}, err
	}
	if o.IntervalMS != nil && *o.IntervalMS <= 0 {
		return HelloOptions{}, newError(CodeBadOptions, fmt.Sprintf(
			"interval_ms must be a positive number of milliseconds, got %d; leave it out for the server's interval", *o.IntervalMS))
	}
	return o, nil
}

// ValidateMeta checks labels against the limits of HELLO: at most 32, keys
// like session names, values of at most 256 bytes. It returns an *Error
// with code bad_options.
func ValidateMeta(meta map[string]string) error {
	if len(meta) > MaxMetaKeys {
		return newError(CodeBadOptions, fmt.Sprintf("meta has %d labels, at most %d allowed", len(meta), MaxMetaKeys))
	}
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report the same key first every time
	for _, k := range keys {
		if !pulse.ValidName(k) {
			return newError(CodeBadOptions, "meta key "+quote([]byte(k), 80)+" is not 1-64 of A-Z a-z 0-9 . _ - :")
		}
		if len(meta[k]) > MaxMetaValueLen {
			return newError(CodeBadOptions, fmt.Sprintf("meta value of %q is over %d bytes", k, MaxMetaValueLen))
		}
	}
	return nil
}

// jsonError describes a JSON decoding error without Go type names.
func jsonError(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if te.Field == "meta" || strings.HasPrefix(te.Field, "meta.") {
			return "meta must be an object of strings, such as {\"region\":\"eu\"}"
		}
		if te.Field == "interval_ms" {
			return "interval_ms must be a whole number of milliseconds, such as 30000, got " + te.Value
		}
		if te.Field != "" {
			return fmt.Sprintf("%q has the wrong type (%s)", te.Field, te.Value)
		}
		return "wrong type: " + te.Value
	case errors.As(err, &se):
		return fmt.Sprintf("bad JSON at byte %d: %s", se.Offset, se.Error())
	}
	return err.Error()
}
