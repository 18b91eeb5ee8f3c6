package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/httpapi"
	"github.com/pulsehq/pulse/registry"
)

// The Node serves the view of the whole cluster to the HTTP API.
var (
	_ httpapi.Source        = (*Node)(nil)
	_ httpapi.EventSource   = (*Node)(nil)
	_ httpapi.ClusterSource = (*Node)(nil)
)

// readTimeout bounds the round trips a read of the API makes to the store
// for fresh beat counts; without them it answers from the view.
const readTimeout = 300 * time.Millisecond

// Page returns a page of the sessions of every node, as registry.Page
// does; each session's beats are the latest its node wrote (this node's
// own, the latest it has).
func (n *Node) Page(q registry.Query) registry.Page {
	p := n.view.page(q)
	n.freshen(p.Sessions)
	return p
}

// Session returns the named session, whichever node holds it.
func (n *Node) Session(name string) (pulse.Session, bool) {
	s, ok := n.view.lookup(name)
	if !ok {
		return s, false
	}
	ss := []pulse.Session{s}
	n.freshen(ss)
	return ss[0], true
}

// freshen brings the beat counts of ss up to date: the local sessions'
// from the server, the others' from pulse:beats.
func (n *Node) freshen(ss []pulse.Session) {
	var local, remote []string
	for _, s := range ss {
		if s.Node == n.cfg.Node {
			local = append(local, s.Name)
		} else {
			remote = append(remote, s.Name)
		}
	}
	fresh := make(map[string]pulse.Session, len(ss))
	if len(local) > 0 {
		for _, s := range n.srv.Page(registry.Query{Names: local}).Sessions {
			fresh[s.Name] = s
		}
	}
	var beats []any
	if len(remote) > 0 && n.up() {
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		defer cancel()
		beats, _ = n.rdb.HMGet(ctx, n.key("beats"), remote...).Result() // stale counts rather than none
	}
	for i := range ss {
		s := &ss[i]
		if f, ok := fresh[s.Name]; ok && f.ID == s.ID {
			s.Beats, s.LastBeat, s.RTT = f.Beats, f.LastBeat, f.RTT
			continue
		}
		if len(beats) > 0 {
			if j := slices.Index(remote, s.Name); j >= 0 {
				if v, ok := beats[j].(string); ok {
					applyBeatInfo(s, v)
				}
			}
		}
	}
	if len(beats) > 0 {
		n.view.noteBeats(ss)
	}
}

// Kick removes the named session, whichever node holds it: a session of
// another node is kicked by that node, which this one asks through the
// store and waits for, up to Config.KickTimeout. It returns an error
// wrapping registry.ErrNotFound if no node holds the name.
func (n *Node) Kick(name, detail string) (pulse.Session, error) {
	if _, ok := n.srv.Session(name); ok {
		s, err := n.srv.Kick(name, detail)
		s.Node = n.cfg.Node
		return s, err
	}
	if !n.up() {
		if _, ok := n.view.lookup(name); ok {
			return pulse.Session{}, errors.New("the store is unreachable: a session of another node cannot be kicked from here now")
		}
		return pulse.Session{}, fmt.Errorf("%w: %q", registry.ErrNotFound, name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.KickTimeout)
	defer cancel()
	v, err := n.rdb.HGet(ctx, n.key("sessions"), name).Result()
	if errors.Is(err, goredis.Nil) {
		return pulse.Session{}, fmt.Errorf("%w: %q", registry.ErrNotFound, name)
	}
	if err != nil {
		return pulse.Session{}, fmt.Errorf("the store is unreachable: %w", err)
	}
	rec, err := decodeRecord(v)
	if err != nil {
		return pulse.Session{}, err
	}
	if rec.Node == n.cfg.Node { // it just left this node
		return pulse.Session{}, fmt.Errorf("%w: %q", registry.ErrNotFound, name)
	}
	reply := n.key("reply:" + n.cfg.Node + ":" + randomID())
	err = n.rdb.XAdd(ctx, &goredis.XAddArgs{Stream: n.key("cmd:" + rec.Node), MaxLen: 1000, Approx: true,
		Values: []any{"op", "kick", "name", name, "id", rec.ID, "detail", detail, "reply", reply}}).Err()
	if err != nil {
		return pulse.Session{}, fmt.Errorf("the store is unreachable: %w", err)
	}
	res, err := n.rdb.BLPop(ctx, n.cfg.KickTimeout, reply).Result()
	if err != nil {
		return pulse.Session{}, fmt.Errorf("node %s did not answer the kick within %v: %w", rec.Node, n.cfg.KickTimeout, err)
	}
	var answer struct {
		Found   bool   `json:"found"`
		Session record `json:"session"`
	}
	if len(res) != 2 || json.Unmarshal([]byte(res[1]), &answer) != nil {
		return pulse.Session{}, fmt.Errorf("node %s answered the kick with %q", rec.Node, res)
	}
	if !answer.Found {
		return pulse.Session{}, fmt.Errorf("%w: %q", registry.ErrNotFound, name)
	}
	return answer.Session.session(), nil
}

// Subscribe returns the stream of this node's own events: the API follows
// SubscribeEvents, the events of every node.
func (n *Node) Subscribe(buffer int) *registry.Subscription { return n.srv.Subscribe(buffer) }

// SubscribeEvents returns the stream of the events of every node, in the
// order of the store's event stream, numbered by their stream IDs, and the
// cluster's epoch. It ends with httpapi.ErrReset when the node resyncs
// with the store.
func (n *Node) SubscribeEvents(buffer int) (httpapi.Subscription, string) {
	return n.view.subscribe(buffer)
}

// Counts returns the numbers of live sessions of every node by state.
func (n *Node) Counts() registry.Counts { return n.view.page(registry.Query{Limit: 1}).Counts }

// Cluster returns the nodes the store knows and its state; while it is
// unreachable, the nodes as last read.
func (n *Node) Cluster(ctx context.Context) httpapi.Cluster {
	c := httpapi.Cluster{Store: "unreachable", Node: n.cfg.Node}
	if n.up() {
		ctx, cancel := context.WithTimeout(ctx, readTimeout)
		defer cancel()
		all, err := n.rdb.HGetAll(ctx, n.key("nodes")).Result()
		if err == nil {
			nodes := make([]httpapi.ClusterNode, 0, len(all))
			for _, v := range all {
				var info struct {
					Name     string `json:"name"`
					Addr     string `json:"addr"`
					HTTP     string `json:"http"`
					Sessions int    `json:"sessions"`
					Since    int64  `json:"since"`
					LastSeen int64  `json:"last_seen"`
				}
				if json.Unmarshal([]byte(v), &info) != nil {
					continue
				}
				nodes = append(nodes, httpapi.ClusterNode{Name: info.Name, Addr: info.Addr, HTTP: info.HTTP,
					Sessions: info.Sessions, Since: msTime(info.Since), LastSeen: msTime(info.LastSeen)})
			}
			slices.SortFunc(nodes, func(a, b httpapi.ClusterNode) int { return strings.Compare(a.Name, b.Name) })
			n.nodesMu.Lock()
			n.nodes = nodes
			n.nodesMu.Unlock()
			c.Store = "ok"
		}
	}
	n.nodesMu.Lock()
	c.Nodes = slices.Clone(n.nodes)
	n.nodesMu.Unlock()
	if c.Nodes == nil {
		c.Nodes = []httpapi.ClusterNode{}
	}
	return c
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
