package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/client"
	"github.com/pulsehq/pulse/tlsconf"
	"github.com/pulsehq/pulse/wire"
)

// agentCommand registers a name with a server and keeps it alive until
// SIGINT or SIGTERM, when it says BYE.
type agentCommand struct {
	stdout, stderr io.Writer
	env            func(string) (string, bool)
}

const agentExamples = `  pulse agent --name web-1
  pulse agent --server pulse.internal:7070 --name "$(hostname)" --meta region=eu --meta role=web
  pulse agent --name phone-7 --interval 30s    # ask for a slower beat than the server's
  PULSE_SERVER=10.0.0.5:7070 PULSE_NAME=worker-3 pulse agent
  pulse agent --server pulse.internal:7070 --name web-1 --tls --ca ca.crt --token-file web-1.jwt
  pulse agent --server pulse.internal:7070 --name web-1 --ca ca.crt --cert web-1.crt --key web-1.key   # mTLS
`

// Run parses the flags and keeps the session alive until ctx ends.
func (c *agentCommand) Run(ctx context.Context, args []string) error {
	hostname, _ := os.Hostname()
	fs := newFlagSet("agent", "Register a name with a pulse server and beat at the interval it grants.",
		"The agent reconnects by itself, with exponential backoff and jitter, when the\n"+
			"server goes away or stops answering. On SIGINT or SIGTERM it says BYE and\n"+
			"exits 0. It exits 1 if the server rejects it for good: a bad name, a token\n"+
			"or client certificate the server refuses (ERR unauthorized), or its\n"+
			"session replaced by a newer one of the same name, or kicked.",
		agentExamples, c.stdout, c.env)
	var (
		addr        = fs.addr("server", "127.0.0.1:7070", "address of the pulse server")
		name        = fs.String("name", hostname, "session `name`: 1-64 of A-Z a-z 0-9 . _ - :")
		meta        = metaFlag{}
		noAck       = fs.bool("no-ack", false, "ask the server not to answer beats (no RTT, and a silent server goes unnoticed)")
		interval    = fs.duration("interval", 0, "beat interval to ask the server for; it grants one within its bounds")
		minBackoff  = fs.duration("backoff-min", client.DefaultMinBackoff, "first wait before reconnecting")
		maxBackoff  = fs.duration("backoff-max", client.DefaultMaxBackoff, "longest wait before reconnecting")
		statusEvery = fs.duration("status-every", time.Minute, "log the session's status this often while connected; 0 for never")
		useTLS      = fs.bool("tls", false, "speak TLS to the server (implied by --ca and --cert)")
		caFile      = fs.String("ca", "", "verify the server's certificate with the CA certificates in this PEM `file` instead of the system's")
		certFile    = fs.String("cert", "", "present this PEM client certificate `file`, for servers that demand one (mTLS; needs --key)")
		keyFile     = fs.String("key", "", "the PEM private key `file` of --cert")
		tokenFile   = fs.String("token-file", "", "send the token (a JWT) in this `file` in HELLO; read again before every connection, so it may be renewed")
		logs        logFlags
	)
	fs.defaults["name"] = "this host's name: " + hostname
	fs.defaults["interval"] = "the server's"
	fs.Var(meta, "meta", "a `key=value` label sent at registration; repeat, or separate with commas")
	logs.register(fs)
	if err := fs.parse(args); err != nil {
		return err
	}
	log, err := logs.logger(c.stderr)
	if err != nil {
		return err
	}
	if !pulse.ValidName(*name) {
		return usageErrorf("--name %q is not 1-64 of A-Z a-z 0-9 . _ - :", *name)
	}
	if err := wire.ValidateMeta(meta); err != nil {
		var we *wire.Error
		errors.As(err, &we)
		return usageErrorf("--meta: %s", we.Message)
	}
	if *minBackoff <= 0 || *maxBackoff < *minBackoff {
		return usageErrorf("want 0 < --backoff-min <= --backoff-max, got %v and %v", *minBackoff, *maxBackoff)
	}
	if *interval != 0 && (*interval < time.Millisecond || *interval > pulse.MaxInterval) {
		return usageErrorf("--interval must be from 1ms to %v, or 0 for the server's, got %v", pulse.MaxInterval, *interval)
	}
	if *statusEvery < 0 {
		return usageErrorf("--status-every must not be negative")
	}
	secOpts, err := agentSecurity(*useTLS, *caFile, *certFile, *keyFile, *tokenFile)
	if err != nil {
		return err
	}
	log = log.With("server", *addr, "name", *name)

	var last client.State
	opts := []client.Option{
		client.WithBackoff(*minBackoff, *maxBackoff),
		client.OnStatus(func(s client.Status) {
			logStatus(log, s, last)
			if asked := interval.Truncate(time.Millisecond); s.State == client.StateConnected && asked > 0 && s.Interval != asked {
				log.Warn("the server granted another interval than asked", "asked", asked, "granted", s.Interval)
			}
			last = s.State
		}),
	}
	if *interval > 0 {
		opts = append(opts, client.WithInterval(*interval))
	}
	if len(meta) > 0 {
		opts = append(opts, client.WithMeta(meta))
	}
	if *noAck {
		opts = append(opts, client.WithoutAck())
	}
	opts = append(opts, secOpts...)
	cl, err := client.Dial(ctx, *addr, *name, opts...)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("stopped before registering")
			return nil
		}
		return err
	}

	var tick <-chan time.Time
	if *statusEvery > 0 {
		t := time.NewTicker(*statusEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			connected := cl.Status().State == client.StateConnected
			cl.Close() // says BYE if connected
			if connected {
				log.Info("said BYE; stopped")
			} else {
				log.Info("stopped")
			}
			return nil
		case <-cl.Done():
			err := cl.Err()
			if errors.Is(err, client.ErrReplaced) {
				return fmt.Errorf("stopped: another agent registered the name %q (%w)", *name, err)
			}
			return fmt.Errorf("stopped: %w", err)
		case <-tick:
			if s := cl.Status(); s.State == client.StateConnected {
				log.Info("beating", "session", s.SessionID, "beats", s.Beats, "rtt", s.RTT, "connected_for", time.Since(s.Since).Round(time.Second))
			}
		}
	}
}

// agentSecurity returns the client options of the TLS and token flags.
func agentSecurity(useTLS bool, caFile, certFile, keyFile, tokenFile string) ([]client.Option, error) {
	var opts []client.Option
	if useTLS || caFile != "" || certFile != "" || keyFile != "" {
		cfg, err := tlsconf.Client(tlsconf.ClientFiles{CA: caFile, Cert: certFile, Key: keyFile})
		if err != nil {
			return nil, usageErrorf("--ca, --cert, --key: %v", err)
		}
		opts = append(opts, client.WithTLS(cfg))
	}
	if tokenFile != "" {
		if _, err := readToken(tokenFile); err != nil { // say so now rather than at every attempt
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		opts = append(opts, client.WithTokenFunc(func() (string, error) { return readToken(tokenFile) }))
	}
	return opts, nil
}

// readToken reads a token file: its content, less surrounding white space.
func readToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("%s is empty", file)
	}
	return t, nil
}

// logStatus logs a change of the client's state from prev.
func logStatus(log *slog.Logger, s client.Status, prev client.State) {
	switch s.State {
	case client.StateConnecting:
		if s.Attempt == 0 {
			log.Info("connecting")
		} else {
			log.Debug("connecting", "attempt", s.Attempt+1)
		}
	case client.StateConnected:
		log.Info("registered", "session", s.SessionID, "interval", s.Interval, "timeout", s.Timeout, "rtt", s.RTT)
	case client.StateBackoff:
		msg := "cannot connect; retrying"
		if prev == client.StateConnected {
			msg = "connection lost; retrying"
		}
		log.Warn(msg, "error", s.Err, "retry_in", s.Retry.Round(time.Millisecond), "attempt", s.Attempt)
	case client.StateClosed:
		if s.Err != nil {
			log.Error("rejected by the server; stopping", "error", s.Err)
		}
	}
}
