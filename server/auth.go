package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"time"

	"github.com/pulsehq/pulse/wire"
)

// Authenticator decides whether a HELLO may register its name. The server
// calls it, when Config.Authenticator is set, for every HELLO before the
// session is registered, with the name, the HELLO option token ("" when
// absent) and the verified certificate chain of a TLS client (its leaf
// first; nil on plain TCP or without a verified client certificate). A
// non-nil error refuses: the client gets "ERR unauthorized <message>" and
// the connection is closed, and no session event is emitted. Package auth
// has implementations.
//
// It runs on the transport's goroutine, the event loop's for plain TCP:
// it must be quick (a JWT verification, tens of microseconds, is) and must
// never block on I/O.
type Authenticator interface {
	Authenticate(name, token string, peerCerts []*x509.Certificate) error
}

// AuthObserver is an Observer that also counts refused authentications.
// An Observer that implements it is told of each, with a short fixed
// reason: the AuthReason of the Authenticator's error (see package auth),
// "other" if it has none, or ReasonTLSHandshake for a failed TLS
// handshake.
type AuthObserver interface {
	AuthFailed(reason string)
}

// ReasonTLSHandshake is the reason told to AuthObserver when a TLS
// handshake fails or does not finish within the hello timeout, as when a
// client presents no certificate or one that does not verify.
const ReasonTLSHandshake = "tls_handshake"

// authFailed tells the observer, if it counts them, of a refusal.
func (s *Server) authFailed(reason string) {
	if o, ok := s.cfg.Observer.(AuthObserver); ok {
		o.AuthFailed(reason)
	}
}

// authenticate asks the configured Authenticator about a HELLO, and
// returns the ERR to send if it refuses.
func (p *protocol) authenticate(name, token string) *wire.Error {
	a := p.srv.cfg.Authenticator
	if a == nil {
		return nil
	}
	err := a.Authenticate(name, token, p.peerCerts)
	if err == nil {
		return nil
	}
	reason := "other"
	var r interface{ AuthReason() string }
	if errors.As(err, &r) {
		reason = r.AuthReason()
	}
	p.srv.authFailed(reason)
	// reject logs the refusal, with this message, which says why.
	return &wire.Error{Code: wire.CodeUnauthorized, Message: err.Error()}
}

// handshake runs the TLS handshake of a connection on a goroutine, bounded
// by the hello timeout (which also bounds the HELLO that follows: the
// read deadline set at accept stays), and keeps the client's verified
// certificates for the Authenticator. It reports whether the connection
// may go on; if not, it has closed it.
func (c *conn) handshake(tc *tls.Conn) bool {
	_ = tc.SetWriteDeadline(time.Now().Add(c.srv.cfg.HelloTimeout))
	err := tc.Handshake()
	_ = tc.SetWriteDeadline(time.Time{})
	if err != nil {
		if c.ending.Load() == nil { // not interrupted by a shutdown
			c.srv.authFailed(ReasonTLSHandshake)
			c.srv.log.Info("TLS handshake failed", "peer", c.proto.peer, "error", errorText(err))
			tellNotTLS(err)
		}
		c.nc.Close()
		return false
	}
	if st := tc.ConnectionState(); len(st.VerifiedChains) > 0 {
		c.proto.peerCerts = st.PeerCertificates
	}
	return true
}

// notTLS is the answer, in the clear, to a client that speaks plain text
// to the TLS port: without it, a pulse client or nc that forgot TLS would
// see the connection closed and nothing else. unauthorized, because it
// cannot be helped by retrying the same way (the client package stops).
var notTLS = wire.AppendErr(nil, wire.CodeUnauthorized,
	"this port speaks TLS: connect with TLS (pulse agent --tls, openssl s_client -connect HOST:PORT)")

// tellNotTLS answers a handshake that failed because the first record was
// not TLS (as net/http answers plain HTTP on its TLS port); anything else
// that fails a handshake gets no word. As conn.close does, it then sends
// FIN and drains the rest of the client's line for a moment, so that a
// reset does not destroy the answer before the client reads it.
func tellNotTLS(err error) {
	var rhe tls.RecordHeaderError
	if !errors.As(err, &rhe) || rhe.Conn == nil {
		return
	}
	nc := rhe.Conn
	_ = nc.SetWriteDeadline(time.Now().Add(lingerTimeout))
	if _, err := nc.Write(notTLS); err != nil {
		return
	}
	if tcp, ok := nc.(interface{ CloseWrite() error }); !ok || tcp.CloseWrite() != nil {
		return
	}
	_ = nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.Copy(io.Discard, nc)
}
