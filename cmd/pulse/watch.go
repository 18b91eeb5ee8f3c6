package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/httpapi"
)

// watchCommand streams a server's session events, one line each.
type watchCommand struct {
	stdout, stderr io.Writer
	env            func(string) (string, bool)
}

const watchExamples = `  pulse watch
  pulse watch -o json | jq -c 'select(.kind == "dead")'
  pulse watch --color never > events.log
`

// Run streams events until ctx ends.
func (c *watchCommand) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("watch", "Stream the session events of a pulse server as they happen.",
		"One line per event: time, kind, name, peer, reason and detail; coloured on a\n"+
			"terminal, plain when piped (NO_COLOR is honoured). A stall of the server\n"+
			"itself, when it holds judgments, is a line of kind stall named (server).\n"+
			"With -o json, one JSON\n"+
			"object per line. If the server goes away, watch reconnects and resumes where\n"+
			"it left off, saying so when events were lost in between. It stops on Ctrl-C.",
		watchExamples, c.stdout, c.env)
	var api apiFlags
	api.register(fs)
	output := fs.choice("output", "text", []string{"text", "json"}, "output format")
	fs.alias("o", "output")
	color := fs.choice("color", "auto", []string{"auto", "always", "never"}, "colour the kinds: auto means on a terminal")
	if err := fs.parse(args); err != nil {
		return err
	}
	cl, err := api.client()
	if err != nil {
		return err
	}
	p := &eventPrinter{w: c.stdout, json: *output == "json", color: useColor(*color, c.stdout, c.env)}

	lastID, connected := "", false
	backoff := 250 * time.Millisecond
	for {
		err := cl.Events(ctx, lastID, func(m httpapi.Message) error {
			if !connected {
				connected = true
				backoff = 250 * time.Millisecond
				verb := "watching"
				if lastID != "" {
					verb = "reconnected to"
				}
				fmt.Fprintf(c.stderr, "pulse watch: %s %s\n", verb, cl.Base())
			}
			switch m.Type {
			case "reset":
				if lastID != "" {
					fmt.Fprintf(c.stderr, "pulse watch: events were lost while disconnected (%s); run pulse ls for the current table\n", m.Reason)
				}
			case "event":
				if err := p.print(m.Event); err != nil {
					return err
				}
			}
			lastID = m.ID
			return nil
		})
		if ctx.Err() != nil {
			return nil // Ctrl-C: a normal end
		}
		var apiErr *httpapi.Error
		switch {
		case errors.As(err, &apiErr):
			return explain(apiErr) // such as a missing token: say what to do
		case !connected && lastID == "":
			return explain(err) // never reached it: say so rather than wait
		case err != nil && !errors.Is(err, httpapi.ErrUnreachable):
			return err // such as stdout closed
		}
		if connected {
			fmt.Fprintf(c.stderr, "pulse watch: lost the stream from %s; reconnecting\n", cl.Base())
		}
		connected = false
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// useColor decides whether to colour the output.
func useColor(mode string, w io.Writer, env func(string) (string, bool)) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	if v, ok := env("NO_COLOR"); ok && v != "" {
		return false
	}
	if v, _ := env("TERM"); v == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// eventPrinter writes events one line each.
type eventPrinter struct {
	w     io.Writer
	json  bool
	color bool
	buf   []byte
}

// kindColors are the ANSI colours of the event kinds.
var kindColors = map[pulse.EventKind]string{
	pulse.EventJoined:    "\x1b[32m",   // green
	pulse.EventRecovered: "\x1b[32m",   // green
	pulse.EventSuspect:   "\x1b[33m",   // yellow
	pulse.EventDead:      "\x1b[1;31m", // bold red
	pulse.EventLeft:      "\x1b[36m",   // cyan
	pulse.EventReplaced:  "\x1b[35m",   // magenta
	pulse.EventKicked:    "\x1b[31m",   // red
	pulse.EventStall:     "\x1b[1;33m", // bold yellow
}

func (p *eventPrinter) print(ev httpapi.Event) error {
	if p.json {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = p.w.Write(append(b, '\n'))
		return err
	}
	kind := fmt.Sprintf("%-9s", ev.Kind)
	if p.color {
		kind = kindColors[ev.Kind] + kind + "\x1b[0m"
	}
	name, peer := ev.Session.Name, ev.Session.Peer
	if ev.Kind == pulse.EventStall {
		name = "(server)" // a stall is about the server, not a session
	}
	line := fmt.Sprintf("%s  %s  %-20s  %-21s  %s", ev.Time.Local().Format("15:04:05.000"), kind, name, peer, ev.Reason)
	if ev.Detail != "" {
		line += ": " + ev.Detail
	}
	if ev.LateMillis != nil {
		line += fmt.Sprintf(" (%.1fms after its deadline)", *ev.LateMillis)
	}
	if ev.Session.Node != "" {
		line += " [node " + ev.Session.Node + "]"
	}
	p.buf = append(p.buf[:0], strings.TrimRight(line, " ")...)
	p.buf = append(p.buf, '\n')
	_, err := p.w.Write(p.buf)
	return err
}
