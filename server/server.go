// Package server is the pulse heartbeat server: it accepts TCP connections,
// speaks the line protocol (package wire) with each, and keeps their
// sessions in a registry that declares the silent ones suspect and dead.
//
// Its lifecycle is the one net/http taught every Go programmer:
//
//	srv, err := server.New(server.Config{})
//	go srv.Serve(ln)          // returns ErrServerClosed after Shutdown
//	...
//	srv.Shutdown(ctx)         // BYE to every client, then drain
//
// The server logs every session event with log/slog; Subscribe gives the
// same events to a program.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/registry"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("pulse: server closed")

// Server is a pulse heartbeat server. Create it with New.
type Server struct {
	cfg Config
	log *slog.Logger
	reg *registry.Registry

	epoch    time.Time // lines are timed in nanoseconds since, for the rate limit
	refusals refusalLog

	shuttingDown atomic.Bool
	done         chan struct{} // closed when shutting down

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[tracked]netip.Addr // and the address its limit counts
	open      int                    // connections admitted and not yet closed
	perIP     map[netip.Addr]int     // of them, by client address
	connsWG   sync.WaitGroup
	loop      *eventLoop // started by the first Serve that uses it
	loopErr   error      // why it could not start
}

// tracked is a connection the server can end from outside, whatever its
// transport.
type tracked interface {
	// end asks the connection to finish as e says; it does not block, and
	// only the first call counts.
	end(e *ending)
	// kill closes the connection at once, interrupting a blocked write.
	kill()
}

// New returns a server with the given configuration; the zero Config means
// the defaults. It checks the configuration first.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		done:      make(chan struct{}),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[tracked]netip.Addr),
		perIP:     make(map[netip.Addr]int),
		epoch:     time.Now(),
		refusals:  refusalLog{log: cfg.Logger},
	}
	reg, err := registry.New(registry.Config{
		Policy:   cfg.Policy,
		Interval: cfg.Timing.Interval,
		OnEvent: func(ev pulse.Event) {
			s.logEvent(ev)
			s.recordEnd(ev)
			cfg.Observer.Event(ev)
		},
		Logger:         cfg.Logger,
		StallThreshold: cfg.StallThreshold,
		StallGrace:     cfg.StallGrace,
		CatchUp:        s.catchUp,
	})
	if err != nil {
		return nil, fmt.Errorf("pulse: %w", err)
	}
	s.reg = reg
	return s, nil
}

// Config returns the server's configuration, defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// ListenAndServe listens on the TCP address addr and serves it.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pulse: listen: %w", err)
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln and serves each in its own goroutine. It
// returns ErrServerClosed after Shutdown or Close, or the listener's error.
// Serve closes ln when it returns. A failing accept (such as running out of
// file descriptors) is retried after a pause that doubles from 5 ms up to
// a second, and is reset by the next accept that succeeds. A connection
// past Config.MaxConns or Config.MaxConnsPerIP is told "ERR
// too_many_connections" and closed without being read.
func (s *Server) Serve(ln net.Listener) error {
	if !s.track(ln) {
		ln.Close()
		return ErrServerClosed
	}
	defer s.untrack(ln)
	s.log.Info("listening", "addr", ln.Addr().String(), "interval", s.cfg.Timing.Interval,
		"suspect_after", s.cfg.Timing.Suspect(), "timeout", s.cfg.Timing.Timeout(), "detector", s.cfg.Policy.Name(),
		"min_interval", s.cfg.MinInterval, "max_interval", s.cfg.MaxInterval)
	var pause time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shuttingDown.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && !errors.Is(err, net.ErrClosed) {
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; pausing", "error", err, "pause", pause)
				select {
				case <-time.After(pause):
					continue
				case <-s.done:
					return ErrServerClosed
				}
			}
			return fmt.Errorf("pulse: accept: %w", err)
		}
		pause = 0
		s.handle(nc)
	}
}

// handle admits an accepted connection and hands it to its transport, or
// refuses it.
func (s *Server) handle(nc net.Conn) {
	ip := peerIP(nc)
	s.mu.Lock()
	refused := s.admit(ip)
	s.mu.Unlock()
	if refused != nil {
		s.refuse(nc, refused)
		return
	}
	if loop := s.eventLoopFor(nc); loop != nil {
		err := loop.add(nc, ip)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrServerClosed) {
			s.log.Warn("event loop cannot take a connection; it gets a goroutine", "peer", nc.RemoteAddr().String(), "error", err)
		}
	}
	c := newConn(s, nc)
	if !s.trackConn(c, ip) {
		s.mu.Lock()
		s.release(ip)
		s.mu.Unlock()
		c.finish(endShutdown)
		return
	}
	go c.serve()
}

// eventLoopFor returns the event loop that is to run nc, starting it if
// need be, or nil if nc gets a goroutine of its own.
func (s *Server) eventLoopFor(nc net.Conn) *eventLoop {
	if s.cfg.Transport == TransportGoroutines || !eventLoopSupported {
		return nil
	}
	if _, ok := nc.(*net.TCPConn); !ok {
		return nil // TLS and other wrapped connections need a goroutine
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loop == nil && s.loopErr == nil && !s.shuttingDown.Load() {
		s.loop, s.loopErr = newEventLoop(s)
		if s.loopErr != nil {
			s.log.Warn("cannot start the event loop; every connection gets a goroutine", "error", s.loopErr)
		}
	}
	return s.loop
}

func (s *Server) track(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shuttingDown.Load() {
		return false
	}
	s.listeners[ln] = struct{}{}
	return true
}

func (s *Server) untrack(ln net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.listeners, ln)
	ln.Close()
}

// trackConn takes on c, admitted for ip, and reports false if the server
// is shutting down; then c is not tracked and its admission stays counted.
func (s *Server) trackConn(c tracked, ip netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shuttingDown.Load() {
		return false
	}
	s.conns[c] = ip
	s.connsWG.Add(1)
	return true
}

// forget is called by a connection's transport once it has closed it: on
// every path that closes a tracked connection, so that the connection
// limits count it no more.
func (s *Server) forget(c tracked) {
	s.mu.Lock()
	if ip, ok := s.conns[c]; ok {
		delete(s.conns, c)
		s.release(ip)
	}
	s.mu.Unlock()
	s.connsWG.Done()
}

// untrackConn gives up c before it ran, its connection still open and
// still counted, for another transport to take it.
func (s *Server) untrackConn(c tracked) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connsWG.Done()
}

// Shutdown stops the server gracefully: it stops accepting, tells every
// registered client "BYE shutdown" (each session leaves with the reason
// "shutdown"), and waits for the connections to close. If ctx ends first,
// the remaining connections are closed at once and Shutdown returns the
// context's error. Either way, the events are delivered and subscriptions
// closed before it returns.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop(endShutdown)
	drained := make(chan struct{})
	go func() {
		s.connsWG.Wait()
		close(drained)
	}()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		for c := range s.conns {
			c.kill()
		}
		s.mu.Unlock()
		<-drained
	}
	s.stopLoop()
	s.reg.Close()
	return err
}

// stopLoop stops the event loop, once its connections are gone.
func (s *Server) stopLoop() {
	s.mu.Lock()
	loop := s.loop
	s.mu.Unlock()
	if loop != nil {
		loop.close()
	}
}

// Close stops the server at once: it closes the listeners and every
// connection without a goodbye. Sessions leave with the reason "shutdown".
func (s *Server) Close() error {
	s.stop(endAbrupt)
	s.connsWG.Wait()
	s.stopLoop()
	s.reg.Close()
	return nil
}

// stop stops accepting and ends every connection as e says.
func (s *Server) stop(e *ending) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shuttingDown.CompareAndSwap(false, true) {
		close(s.done)
		s.log.Info("shutting down", "sessions", s.reg.Len(), "connections", len(s.conns))
	}
	for ln := range s.listeners {
		ln.Close()
	}
	s.refusals.stop()
	for c := range s.conns {
		c.end(e)
		if e.abrupt {
			c.kill()
		}
	}
}

// Sessions returns a snapshot of the live sessions, sorted by name.
func (s *Server) Sessions() []pulse.Session { return s.reg.Sessions() }

// Page returns a page of the live sessions in name order, as q selects
// them; see registry.Page. It takes bounded time and memory however many
// sessions there are.
func (s *Server) Page(q registry.Query) registry.Page { return s.reg.Page(q) }

// Counts returns the numbers of live sessions by state.
func (s *Server) Counts() registry.Counts { return s.reg.Counts() }

// Session returns the named live session.
func (s *Server) Session(name string) (pulse.Session, bool) { return s.reg.Lookup(name) }

// Kick removes the named session: its client gets "ERR kicked <detail>"
// and its connection is closed. It returns the session as it was, or an
// error wrapping registry.ErrNotFound if no live session has the name.
func (s *Server) Kick(name, detail string) (pulse.Session, error) { return s.reg.Kick(name, detail) }

// Replace ends the named session, if it is still the one with the given
// ID, as replaced: its client gets "ERR replaced <detail>" and one replaced
// event is emitted. A cluster calls it when a newer session of the name
// registered on another node. It returns an error wrapping
// registry.ErrNotFound if no live session has that name and ID.
func (s *Server) Replace(name, id, detail string) (pulse.Session, error) {
	return s.reg.Replace(name, id, detail)
}

// Subscribe returns a stream of the session events declared from now on,
// and of the server's own stalls (pulse.EventStall, with no session); see
// registry.Subscription. buffer is how many undelivered events it may hold
// before it is dropped (zero means 1024).
func (s *Server) Subscribe(buffer int) *registry.Subscription { return s.reg.Subscribe(buffer) }

// SubscribeWithSnapshot returns a stream of events together with the live
// sessions as they were just before its first event.
func (s *Server) SubscribeWithSnapshot(buffer int) (*registry.Subscription, []pulse.Session) {
	return s.reg.SubscribeWithSnapshot(buffer)
}

// metaGroup is a session's labels as a log group, sorted by key:
// meta.region=eu meta.role=web.
func metaGroup(meta map[string]string) slog.Attr {
	keys := slices.Sorted(maps.Keys(meta))
	attrs := make([]any, 0, len(keys))
	for _, k := range keys {
		attrs = append(attrs, slog.String(k, meta[k]))
	}
	return slog.Group("meta", attrs...)
}

// logEvent writes one event to the log.
func (s *Server) logEvent(ev pulse.Event) {
	if ev.Kind == pulse.EventStall {
		s.logStall(ev)
		return
	}
	level := slog.LevelInfo
	switch ev.Kind {
	case pulse.EventSuspect, pulse.EventDead, pulse.EventReplaced, pulse.EventKicked:
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("name", ev.Session.Name),
		slog.String("id", ev.Session.ID),
		slog.String("peer", ev.Session.Peer),
		slog.String("reason", ev.Reason),
	}
	if ev.Detail != "" {
		attrs = append(attrs, slog.String("detail", ev.Detail))
	}
	if ev.Kind == pulse.EventJoined && ev.Session.Interval != s.cfg.Timing.Interval {
		attrs = append(attrs, slog.Duration("interval", ev.Session.Interval)) // asked for its own
	}
	if ev.Kind == pulse.EventJoined && len(ev.Session.Meta) > 0 {
		attrs = append(attrs, metaGroup(ev.Session.Meta))
	}
	if !ev.Deadline.IsZero() {
		attrs = append(attrs, slog.Duration("late", ev.Time.Sub(ev.Deadline)))
	}
	if ev.Kind.Ends() {
		attrs = append(attrs, slog.Uint64("beats", ev.Session.Beats),
			slog.Duration("connected", ev.Time.Sub(ev.Session.ConnectedAt).Round(time.Millisecond)))
	}
	s.log.LogAttrs(context.Background(), level, "session "+ev.Kind.String(), attrs...)
}
