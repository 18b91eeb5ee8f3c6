package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/pulsehq/pulse"
)

// catchUp is the registry's CatchUp: after a stall, it asks the transports
// to read everything that arrived during it, and calls done once they have.
// The event loop can say so exactly: it calls done after a full pass over
// the sockets that were ready once it was asked. Connections on goroutines
// cannot: each reads its backlog when the Go scheduler runs it again, which
// the registry's grace after the catch-up leaves time for.
func (s *Server) catchUp(done func()) {
	s.mu.Lock()
	loop := s.loop
	s.mu.Unlock()
	if loop == nil {
		done()
		return
	}
	loop.catchUp(done)
}

// logStall writes a stall event to the log.
func (s *Server) logStall(ev pulse.Event) {
	attrs := []slog.Attr{slog.String("reason", ev.Reason)}
	if st := ev.Stall; st != nil {
		attrs = append(attrs,
			slog.Duration("stall", st.Length.Round(time.Millisecond)),
			slog.Int("overdue", st.Overdue),
			slog.Duration("grace", st.Grace))
	}
	attrs = append(attrs, slog.String("detail", ev.Detail))
	s.log.LogAttrs(context.Background(), slog.LevelWarn, "server stalled; holding judgments", attrs...)
}
