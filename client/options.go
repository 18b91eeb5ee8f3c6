package client

import (
	"context"
	"crypto/tls"
	"net"
	"time"
)

// Defaults for the options.
const (
	DefaultMinBackoff       = 250 * time.Millisecond
	DefaultMaxBackoff       = 15 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
)

// DialFunc opens a connection; net.Dialer.DialContext is one.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

type config struct {
	meta             map[string]string
	token            string
	tokenFunc        func() (string, error)
	tls              *tls.Config
	noAck            bool
	interval         time.Duration
	minBackoff       time.Duration
	maxBackoff       time.Duration
	handshakeTimeout time.Duration
	dial             DialFunc
	onStatus         func(Status)
}

func defaultConfig() config {
	return config{
		minBackoff:       DefaultMinBackoff,
		maxBackoff:       DefaultMaxBackoff,
		handshakeTimeout: DefaultHandshakeTimeout,
		dial:             (&net.Dialer{KeepAlive: -1}).DialContext,
	}
}

// Option configures a Client.
type Option func(*config)

// WithMeta sets the labels sent in HELLO (at most 32; keys like session
// names, values of at most 256 bytes).
func WithMeta(meta map[string]string) Option {
	return func(c *config) { c.meta = meta }
}

// WithToken sets the credential sent in HELLO, for servers that demand one.
func WithToken(token string) Option {
	return func(c *config) { c.token = token }
}

// WithTokenFunc sets a function that gives the credential sent in HELLO,
// called before every connection attempt, for tokens that expire and are
// renewed (such as a JWT read from a file that another process rewrites).
// An error from it fails the attempt, which is retried with backoff. It
// overrides WithToken.
func WithTokenFunc(fn func() (string, error)) Option {
	return func(c *config) { c.tokenFunc = fn }
}

// WithTLS makes the client speak TLS with cfg over the connections it
// dials. If cfg.ServerName is empty, the host of the server's address is
// verified. The TLS handshake is bounded by the handshake timeout, as the
// registration is. Set cfg.Certificates for servers that demand a client
// certificate (mTLS).
func WithTLS(cfg *tls.Config) Option {
	return func(c *config) { c.tls = cfg }
}

// WithoutAck asks the server not to answer beats. The client then cannot
// measure round trips or notice a silent server; only a broken connection
// tells it the server is gone.
func WithoutAck() Option {
	return func(c *config) { c.noAck = true }
}

// WithInterval asks the server for a beat interval of d instead of its own
// (the HELLO option interval_ms, in whole milliseconds), as a phone on a
// battery may want 30 s where servers beat every second. The server grants
// it within bounds of its own, or the nearer bound, and the client beats
// at the interval granted (Status.Interval); a server older than the
// option grants its own. Zero means the server's interval; otherwise d
// must be from 1 ms to pulse.MaxInterval.
func WithInterval(d time.Duration) Option {
	return func(c *config) { c.interval = d }
}

// WithBackoff sets the bounds of the wait between reconnection attempts:
// the first wait is about min, each failure doubles it, up to max. Each
// wait is drawn at random from its upper half (jitter), so that clients
// cut off together do not come back together.
func WithBackoff(min, max time.Duration) Option {
	return func(c *config) { c.minBackoff, c.maxBackoff = min, max }
}

// WithHandshakeTimeout bounds each attempt to connect and register.
func WithHandshakeTimeout(d time.Duration) Option {
	return func(c *config) { c.handshakeTimeout = d }
}

// WithDialer sets how connections are opened, for a proxy, TLS, or tests.
func WithDialer(dial DialFunc) Option {
	return func(c *config) { c.dial = dial }
}

// OnStatus sets a function called with the client's status at every change
// of state (connecting, connected, backoff, closed), in order, from the
// client's goroutine. It must not block: the client does not beat while it
// runs.
func OnStatus(fn func(Status)) Option {
	return func(c *config) { c.onStatus = fn }
}
