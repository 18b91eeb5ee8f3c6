package main

import (
	"context"
	"fmt"
	"io"
)

// kickCommand removes a session from a server.
type kickCommand struct {
	stdout, stderr io.Writer
	env            func(string) (string, bool)
}

const kickExamples = `  pulse kick web-1
  pulse kick web-1 --reason "drained for maintenance"
`

// Run kicks the named session.
func (c *kickCommand) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("kick", "Remove a live session from a pulse server.",
		"The server tells the session's client \"ERR kicked <reason>\", closes its\n"+
			"connection and declares a kicked event. A pulse agent that is kicked stops.",
		kickExamples, c.stdout, c.env)
	fs.operands = " NAME"
	var api apiFlags
	api.register(fs)
	reason := fs.String("reason", "", "why, as the client is told (default \"removed by an operator\")")
	operands, err := fs.parseArgs(args, []string{"the NAME of the session to kick"})
	if err != nil {
		return err
	}
	cl, err := api.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *api.timeout)
	defer cancel()
	s, err := cl.Kick(ctx, operands[0], *reason)
	if err != nil {
		return explain(err)
	}
	fmt.Fprintf(c.stdout, "kicked %s (session %s from %s)\n", s.Name, s.ID, s.Peer)
	return nil
}
