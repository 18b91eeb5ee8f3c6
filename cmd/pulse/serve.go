package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/server"
)

// serveCommand runs the heartbeat server until SIGINT or SIGTERM.
type serveCommand struct {
	stdout, stderr io.Writer
	env            func(string) (string, bool)
	// ready, if set, is called with the address the server listens on.
	ready func(addr net.Addr)
}

const serveExamples = `  pulse serve
  pulse serve --listen 0.0.0.0:7070 --interval 1s --misses 3
  PULSE_INTERVAL=10s pulse serve --log-format json
`

// Run parses the flags and serves until ctx ends.
func (c *serveCommand) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("serve", "Run the pulse heartbeat server.",
		"Clients send BEAT every --interval. A client silent for --suspect-after is\n"+
			"suspect; silent for --interval × --misses it is dead: its connection is\n"+
			"closed and its session removed. Every session event is logged.",
		serveExamples, c.stdout, c.env)
	var (
		listen          = fs.addr("listen", "127.0.0.1:7070", "TCP address to listen on for heartbeats")
		interval        = fs.duration("interval", pulse.DefaultInterval, "how often clients beat")
		misses          = fs.int("misses", pulse.DefaultMisses, "missed intervals after which a silent session is dead")
		suspectAfter    = fs.duration("suspect-after", 0, "silence after which a session is suspect")
		helloTimeout    = fs.duration("hello-timeout", pulse.DefaultHelloTimeout, "time a new connection has to send HELLO")
		writeTimeout    = fs.duration("write-timeout", server.DefaultWriteTimeout, "time a write to a client that does not read may stay blocked before the client is cut")
		shutdownTimeout = fs.duration("shutdown-timeout", 10*time.Second, "on SIGINT or SIGTERM, time to say BYE and drain before closing what remains")
		logs            logFlags
	)
	fs.defaults["suspect-after"] = "1.5 × interval"
	logs.register(fs)
	if err := fs.parse(args); err != nil {
		return err
	}
	log, err := logs.logger(c.stderr)
	if err != nil {
		return err
	}
	timing := pulse.Timing{Interval: *interval, Misses: *misses, SuspectAfter: *suspectAfter}
	if err := timing.Validate(); err != nil {
		return usageErrorf("--interval %v, --misses %d, --suspect-after %v: %v", *interval, *misses, timing.Suspect(), err)
	}
	for name, d := range map[string]time.Duration{"hello-timeout": *helloTimeout, "write-timeout": *writeTimeout, "shutdown-timeout": *shutdownTimeout} {
		if d <= 0 {
			return usageErrorf("--%s must be positive, got %v", name, d)
		}
	}
	srv, err := server.New(server.Config{
		Timing:       timing,
		HelloTimeout: *helloTimeout,
		WriteTimeout: *writeTimeout,
		Logger:       log,
	})
	if err != nil {
		return usageErrorf("%v", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w (is another server running there? choose another address with --listen)", err)
	}
	if err != nil {
		return err
	}
	if c.ready != nil {
		c.ready(ln.Addr())
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		srv.Close()
		return fmt.Errorf("serving %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	log.Info("signal received; saying BYE to every client", "timeout", *shutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	<-served
	log.Info("stopped")
	return nil
}
