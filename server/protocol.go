package server

import (
	"crypto/x509"
	"errors"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/registry"
	"github.com/pulsehq/pulse/wire"
)

// protocol is the state of one connection as the protocol sees it: it
// turns client lines into registry calls and reply lines. It knows nothing
// of sockets, so that any transport (goroutine per connection, event loop,
// TLS, WebSocket) can drive it with the lines it reads.
type protocol struct {
	srv     *Server
	peer    string
	link    registry.Link
	session *registry.Handle // nil until HELLO is accepted
	ack     bool
	rec     uint64 // the session's number in the arrival recording, if any
	budget  lineBudget
	// peerCerts is the verified certificate chain of a TLS client, for
	// the Authenticator; nil otherwise.
	peerCerts []*x509.Certificate
}

// newProtocol returns the protocol state of a new connection from peer.
func newProtocol(srv *Server, peer string, link registry.Link) protocol {
	return protocol{srv: srv, peer: peer, link: link, budget: newLineBudget(srv.cfg.lineRate(0))}
}

// outcome says what the transport does after writing a line's reply.
type outcome uint8

const (
	keepOpen outcome = iota
	closeConn
)

// onLine processes one line, appends the reply (if any) to out and says
// whether to close the connection once out is written. A line that breaks
// the protocol gets ERR and a close; if the session was registered, it
// leaves with the reason "protocol".
func (p *protocol) onLine(line []byte, out []byte) ([]byte, outcome) {
	if !p.budget.allow(int64(time.Since(p.srv.epoch))) {
		return p.reject(out, errRateLimited(p.srv.cfg.lineRate(p.interval())))
	}
	m, err := wire.Parse(line)
	if err != nil {
		var we *wire.Error
		if !errors.As(err, &we) {
			we = &wire.Error{Code: wire.CodeBadCommand, Message: err.Error()}
		}
		return p.reject(out, we)
	}
	switch m.Verb {
	case wire.VerbBeat:
		if p.session == nil {
			return p.reject(out, &wire.Error{Code: wire.CodeNotRegistered, Message: "send HELLO <name> first"})
		}
		p.session.Beat(m.RTT)
		if r := p.srv.cfg.ArrivalRecorder; r != nil {
			r.Beat(p.rec, m.Seq, m.HasSeq)
		}
		p.srv.cfg.Observer.Beat(m.RTT)
		if p.ack {
			out = wire.AppendAck(out, m.Seq, m.HasSeq)
		}
		return out, keepOpen
	case wire.VerbHello:
		return p.hello(m, out)
	case wire.VerbBye:
		if p.session != nil {
			p.session.Leave(pulse.ReasonBye, m.Reason)
		}
		return out, closeConn
	}
	return out, keepOpen // an empty line
}

func (p *protocol) hello(m wire.Message, out []byte) ([]byte, outcome) {
	if p.session != nil {
		return p.reject(out, &wire.Error{Code: wire.CodeAlreadyRegistered,
			Message: "this connection is registered as " + p.session.Name() + "; open another to register another name"})
	}
	if p.srv.shuttingDown.Load() {
		return p.reject(out, errShutdown)
	}
	if e := p.authenticate(m.Name, m.Hello.Token); e != nil {
		return p.reject(out, e)
	}
	cfg := &p.srv.cfg
	asked := m.Hello.Interval()
	h, err := p.srv.reg.Join(registry.Join{Name: m.Name, Peer: p.peer, Meta: m.Hello.Meta, Interval: cfg.grant(asked), Link: p.link})
	if errors.Is(err, registry.ErrClosed) {
		return p.reject(out, errShutdown)
	}
	if err != nil { // the name was checked by wire.Parse; nothing else can fail
		return p.reject(out, &wire.Error{Code: wire.CodeInternal, Message: err.Error()})
	}
	p.session, p.ack = h, m.Hello.WantsAck()
	p.budget.resize(cfg.lineRate(h.Interval()))
	if r := p.srv.cfg.ArrivalRecorder; r != nil {
		p.rec = r.Joined(h.ID(), h.Name(), h.Interval())
	}
	t := cfg.Timing.ForInterval(h.Interval())
	w := wire.Welcome{
		IntervalMS: millis(t.Interval),
		TimeoutMS:  millis(t.Timeout()),
		SuspectMS:  millis(t.Suspect()),
		Ack:        p.ack,
		Server:     "pulse/" + pulse.Version,
	}
	if asked > 0 {
		w.MinIntervalMS, w.MaxIntervalMS = millis(cfg.MinInterval), millis(cfg.MaxInterval)
	}
	return wire.AppendWelcome(out, h.ID(), w), keepOpen
}

var errShutdown = &wire.Error{Code: wire.CodeShutdown, Message: "the server is shutting down; try another or retry later"}

// reject appends ERR for e and ends the session if there is one.
func (p *protocol) reject(out []byte, e *wire.Error) ([]byte, outcome) {
	p.srv.cfg.Observer.Rejected(e.Code)
	if p.session != nil {
		p.session.Leave(pulse.ReasonProtocol, e.Error())
	} else {
		p.srv.log.Info("connection rejected", "peer", p.peer, "code", string(e.Code), "error", e.Message)
	}
	return wire.AppendErr(out, e.Code, e.Message), closeConn
}

// interval is the session's granted interval, zero before HELLO.
func (p *protocol) interval() time.Duration {
	if p.session == nil {
		return 0
	}
	return p.session.Interval()
}

// registered reports whether HELLO was accepted.
func (p *protocol) registered() bool { return p.session != nil }

// leave ends the session, if any, by the client's doing.
func (p *protocol) leave(reason, detail string) {
	if p.session != nil {
		p.session.Leave(reason, detail)
	}
}

func millis(d time.Duration) int64 { return int64(d / time.Millisecond) }
