package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/httpapi"
)

// lsCommand lists the live sessions of a server.
type lsCommand struct {
	stdout, stderr io.Writer
	env            func(string) (string, bool)
}

const lsExamples = `  pulse ls
  pulse ls --state suspect
  pulse ls --name web- -o json | jq -r '.[].name'
  PULSE_HTTP=10.0.0.5:7071 pulse ls
`

// Run lists the sessions.
func (c *lsCommand) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("ls", "List the live sessions of a pulse server.",
		"Asks the server's HTTP API (pulse serve --http) for every live session and\n"+
			"prints them sorted by name: a table, or with -o json a JSON array.",
		lsExamples, c.stdout, c.env)
	var api apiFlags
	api.register(fs)
	output := fs.choice("output", "table", []string{"table", "json"}, "output format")
	fs.alias("o", "output")
	state := fs.choice("state", "", []string{"alive", "suspect"}, "list only the sessions in this state")
	prefix := fs.String("name", "", "list only the names that start with this `prefix`")
	if err := fs.parse(args); err != nil {
		return err
	}
	cl, err := api.client()
	if err != nil {
		return err
	}
	opts := httpapi.ListOptions{Prefix: *prefix, Limit: 1000}
	if *state != "" {
		opts.State, _ = pulse.ParseState(*state)
	}
	ctx, cancel := context.WithTimeout(ctx, *api.timeout)
	defer cancel()
	// The first page's server time dates every row, whatever this
	// machine's clock says.
	first, err := cl.Sessions(ctx, opts)
	if err != nil {
		return explain(err)
	}
	sessions := first.Sessions
	for cursor := first.NextCursor; cursor != ""; {
		opts.Cursor = cursor
		page, err := cl.Sessions(ctx, opts)
		if err != nil {
			return explain(err)
		}
		sessions = append(sessions, page.Sessions...)
		cursor = page.NextCursor
	}
	c.warnIfCutOff(ctx, cl)

	if *output == "json" {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if sessions == nil {
			sessions = []httpapi.Session{}
		}
		return enc.Encode(sessions)
	}
	if len(sessions) == 0 {
		fmt.Fprintln(c.stderr, "No sessions.")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 3, ' ', 0)
	// A cluster's sessions each have a node: then a NODE column says which.
	cluster := slices.ContainsFunc(sessions, func(s httpapi.Session) bool { return s.Node != "" })
	if cluster {
		fmt.Fprintln(tw, "NAME\tNODE\tSTATE\tPEER\tAGE\tLAST-BEAT\tRTT")
	} else {
		fmt.Fprintln(tw, "NAME\tSTATE\tPEER\tAGE\tLAST-BEAT\tRTT")
	}
	now := first.ServerTime
	for _, s := range sessions {
		name := s.Name
		if cluster {
			name += "\t" + s.Node
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, s.State, s.Peer,
			ago(now.Sub(s.ConnectedAt)), ago(now.Sub(s.LastBeat)), rtt(s.RTTMillis))
	}
	return tw.Flush()
}

// warnIfCutOff says on stderr, never on stdout (which scripts parse), when
// the node that answered is in a cluster and cannot reach its store: the
// list is then that node's last view, its own sessions exact and the other
// nodes' as it last saw them. A server that cannot say (an older one, an
// error) gets no warning: the list was served all the same.
func (c *lsCommand) warnIfCutOff(ctx context.Context, cl *httpapi.Client) {
	info, err := cl.Cluster(ctx)
	if err != nil || info.Store != "unreachable" {
		return
	}
	fmt.Fprintf(c.stderr, "warning: node %s cannot reach the cluster's store (Redis): this is its last view; its own sessions are exact, other nodes' may be stale\n", info.Node)
}
