// Package redis joins a pulse server to a cluster of pulse servers that
// share one view of their sessions through Redis.
//
// Each node still detects the deaths of its own connections: its server and
// registry do not change. A Node follows the local server's events and
// mirrors them to Redis (a hash of sessions, a stream of events), follows
// the stream to keep a mirror of the whole cluster, and serves that mirror
// to the HTTP API (it is an httpapi.Source). Nodes hold leases in Redis;
// when one lapses, a survivor declares each session of the lost node dead
// with reason node_lost, exactly once. When Redis is unreachable the node
// serves its own clients as a single server would, and resyncs when it
// returns, even empty. docs/cluster.md describes the keys and guarantees.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/httpapi"
	"github.com/pulsehq/pulse/registry"
)

// Server is the local heartbeat server a node mirrors; a *server.Server is
// one.
type Server interface {
	SubscribeWithSnapshot(buffer int) (*registry.Subscription, []pulse.Session)
	Subscribe(buffer int) *registry.Subscription
	Page(q registry.Query) registry.Page
	Session(name string) (pulse.Session, bool)
	Kick(name, detail string) (pulse.Session, error)
	Replace(name, id, detail string) (pulse.Session, error)
}

// Observer is told of the state of the store; a *metrics.Metrics is one.
type Observer interface {
	// StoreUp is called with true when the node reaches the store and has
	// synced with it, false when it cannot reach it.
	StoreUp(up bool)
	// StoreError counts a failed round trip to the store.
	StoreError()
}

// Defaults for Config fields left zero.
const (
	DefaultNodeTTL     = 5 * time.Second
	DefaultPrefix      = "pulse:"
	DefaultHistory     = 10_000
	DefaultKickTimeout = 3 * time.Second
)

// Config configures a Node.
type Config struct {
	// URL is the Redis to join, as redis://[user:password@]host:port/db.
	// Required.
	URL string
	// Node is the name of this node, unique in the cluster. Required.
	Node string
	// TTL is the node's lease: if the node does not renew it for this long
	// (it renews every TTL/3), the others declare its sessions dead. Zero
	// means 5 s.
	TTL time.Duration
	// Interval is how often the node writes the beat counts of its
	// sessions: at most once per Interval per session. Zero means 1 s.
	Interval time.Duration
	// Addr and HTTP are the node's heartbeat and API addresses, for GET
	// /v1/cluster; either may be empty.
	Addr, HTTP string
	// History is the approximate length the event stream is trimmed to.
	// Zero means 10,000.
	History int
	// Prefix starts every key. Zero means "pulse:".
	Prefix string
	// KickTimeout bounds how long a kick of a session on another node waits
	// for that node's answer. Zero means 3 s.
	KickTimeout time.Duration
	// Logger receives the node's log. Nil means slog.Default().
	Logger *slog.Logger
	// Observer, if set, is told of the state of the store.
	Observer Observer
}

// ErrNodeInUse is returned by New, wrapped, when another live process of
// the cluster has the node's name: its lease in the store is not this
// process's. A node that finds itself in that state later (its lease
// lapsed, and another process of its name registered) stays out of the
// cluster, serving its own clients, until the other's lease lapses.
var ErrNodeInUse = errors.New("another live node of the cluster has this name")

// store states
const (
	stateUnknown int32 = iota // not synced yet
	stateUp                   // reachable and synced
	stateDown                 // unreachable; logged
)

// quietOnce silences go-redis's own log, once per process: it logs every
// failed dial of its pool, many a second while Redis is down, where a node
// logs once that the store is unreachable and once that it is back.
var quietOnce sync.Once

type discardLog struct{}

func (discardLog) Printf(context.Context, string, ...any) {}

// subBuffer is how many local events the node may hold before it syncs:
// if it falls further behind the store, it resyncs from a snapshot. The
// channel's array is allocated whole (about 270 bytes an event), so that
// it is as large as the API hub's and no larger: 4.4 MiB.
const subBuffer = 1 << 14

// maxEnded bounds how many sessions that ended during an outage a node
// remembers, to publish how each ended once the store returns; beyond it,
// a session gets a generic left event.
const maxEnded = 100_000

// Node is one pulse server's membership in a cluster. It implements
// httpapi.Source, serving the view of the whole cluster. Create it with
// New and stop it with Close after the server has shut down.
type Node struct {
	cfg Config
	srv Server
	// instance tells this process's lease from another's of the same name.
	instance string
	rdb      *goredis.Client
	log      *slog.Logger
	obs      Observer
	view     *view

	state atomic.Int32
	// gap is set by the reader when the event stream was trimmed past
	// where it had read: the writer then resyncs.
	gap atomic.Bool

	posMu  sync.Mutex
	evID   string // the reader's position in the event stream
	cmdID  string // and in the node's command stream
	posGen uint64
	synced chan struct{} // a sync set new positions

	// owned by the writer goroutine
	needSync bool
	inUse    bool                   // the last sync found the name in use; logged
	startErr error                  // set before firstSync is closed: New fails with it
	ended    map[string]pulse.Event // by session ID: ended while the store was unreachable
	flushed  map[string]flushedBeats

	nodesMu sync.Mutex
	nodes   []httpapi.ClusterNode // the last list read

	cancel     context.CancelFunc
	firstSync  chan struct{} // closed after the first attempt to sync
	writerDone chan struct{}
	readerDone chan struct{}
	closeOnce  sync.Once
}

// flushedBeats is what the node last wrote to pulse:beats for a session.
type flushedBeats struct {
	id    string
	beats uint64
}

// New joins srv to the cluster that cfg describes and starts following it.
// It tries Redis once before it returns, but does not wait for it: until it
// reaches it, the node serves as a single server would and GET /v1/cluster
// says "unreachable".
func New(srv Server, cfg Config) (*Node, error) {
	if cfg.Node == "" {
		return nil, errors.New("redis: Config.Node is required")
	}
	if !pulse.ValidName(cfg.Node) {
		return nil, fmt.Errorf("redis: node name %q: use 1 to %d of A-Z a-z 0-9 . _ - :", cfg.Node, pulse.MaxNameLen)
	}
	quietOnce.Do(func() { goredis.SetLogger(discardLog{}) })
	opt, err := goredis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultNodeTTL
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.History <= 0 {
		cfg.History = DefaultHistory
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.KickTimeout <= 0 {
		cfg.KickTimeout = DefaultKickTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// A round trip that takes longer than half a lease is an outage: the
	// node serves on its own rather than wait on it.
	timeout := min(max(cfg.TTL/2, 200*time.Millisecond), 3*time.Second)
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = timeout, timeout, timeout, timeout
	opt.MaxRetries = 1
	// One dial per attempt: go-redis otherwise dials 5 times, 100 ms
	// apart, each up to DialTimeout, so that an unreachable Redis held
	// New (and every sync) for 10 times the timeout, 25 s at the default
	// ttl, while the node's own events waited.
	opt.DialerRetries = 1
	n := &Node{
		cfg:        cfg,
		srv:        srv,
		instance:   randomID() + randomID(),
		rdb:        goredis.NewClient(opt),
		log:        cfg.Logger.With("node", cfg.Node),
		obs:        cfg.Observer,
		view:       newView(),
		synced:     make(chan struct{}, 1),
		ended:      make(map[string]pulse.Event),
		flushed:    make(map[string]flushedBeats),
		firstSync:  make(chan struct{}),
		writerDone: make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	sub, snap := srv.SubscribeWithSnapshot(subBuffer)
	n.view.reset("local", 0, withNode(snap, cfg.Node))
	go n.write(ctx, sub, snap)
	go n.read(ctx)
	<-n.firstSync // so that the API starts with the cluster's view, if Redis answers
	if n.startErr != nil {
		cancel()
		<-n.writerDone
		<-n.readerDone
		_ = n.rdb.Close()
		return nil, n.startErr
	}
	return n, nil
}

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Node }

// Close stops following the cluster. Call it after the server has shut
// down, so that the node publishes its sessions' last events (within ctx)
// and leaves the cluster cleanly: the others see them leave, not lost.
func (n *Node) Close(ctx context.Context) error {
	var err error
	n.closeOnce.Do(func() {
		select {
		case <-n.writerDone:
		case <-ctx.Done():
			err = ctx.Err()
		}
		n.cancel()
		<-n.writerDone
		<-n.readerDone
		n.view.close()
		if cerr := n.rdb.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("redis: close: %w", cerr)
		}
	})
	return err
}

func (n *Node) key(k string) string { return n.cfg.Prefix + k }

func withNode(ss []pulse.Session, node string) []pulse.Session {
	for i := range ss {
		ss[i].Node = node
	}
	return ss
}

// up reports whether the store is reachable and synced.
func (n *Node) up() bool { return n.state.Load() == stateUp }

// fail records a failed round trip; the first after a success logs that the
// store is unreachable.
func (n *Node) fail(err error) {
	if n.obs != nil {
		n.obs.StoreError()
	}
	if n.state.Swap(stateDown) != stateDown {
		n.log.Warn("store unreachable; serving this node's clients on their own until it is back", "error", err)
		if n.obs != nil {
			n.obs.StoreUp(false)
		}
	}
}

// firstSyncOf is the node's first sync. If the name's lease is another
// process's, it waits for that lease to lapse, trying again every TTL/3
// for a TTL and a third: a node restarted at once after a crash (kill -9,
// a supervisor restarting it) finds the lease of its previous process,
// which lapses within a TTL, and joins then; a live node of the name
// renews its lease, and this one is refused with ErrNodeInUse.
func (n *Node) firstSyncOf(ctx context.Context, local map[string]pulse.Session) error {
	err := n.sync(ctx, local)
	if !errors.Is(err, ErrNodeInUse) {
		return err
	}
	wait := n.cfg.TTL + n.cfg.TTL/3
	n.log.Warn("the store holds a lease of this node's name from another process: a previous run of this node that died, or a live node of the same name; waiting for it to lapse", "node", n.cfg.Node, "wait", wait)
	deadline := time.Now().Add(wait)
	for errors.Is(err, ErrNodeInUse) && time.Now().Before(deadline) {
		select {
		case <-time.After(n.cfg.TTL / 3):
		case <-ctx.Done():
			return err
		}
		err = n.sync(ctx, local)
	}
	return err
}

// setUp records a finished sync that republished sessions, the node's own.
func (n *Node) setUp(sessions int) {
	switch n.state.Swap(stateUp) {
	case stateDown:
		n.log.Info("store reachable again; this node's sessions are republished", "sessions", sessions)
	case stateUnknown:
		n.log.Info("joined the cluster", "store", n.rdb.Options().Addr)
	}
	if n.obs != nil {
		n.obs.StoreUp(true)
	}
}

// write is the goroutine that mirrors the local server to the store: its
// events as they come, the beat counts every interval, the lease every
// TTL/3, and a full sync whenever the node (re)connects. It is the only
// goroutine that writes for this node, so that no sync races an event.
func (n *Node) write(ctx context.Context, sub *registry.Subscription, snap []pulse.Session) {
	defer close(n.writerDone)
	local := make(map[string]pulse.Session, len(snap))
	for _, s := range snap {
		local[s.Name] = s
	}
	if err := n.firstSyncOf(ctx, local); errors.Is(err, ErrNodeInUse) {
		n.startErr = err
		sub.Close()
		close(n.firstSync)
		return
	}
	close(n.firstSync)
	lease := time.NewTicker(n.cfg.TTL / 3)
	defer lease.Stop()
	beats := time.NewTicker(n.cfg.Interval)
	defer beats.Stop()
	batch := make([]pulse.Event, 0, 256)
	for {
		select {
		case <-ctx.Done():
			sub.Close()
			return
		case ev, ok := <-sub.C():
			if !ok {
				if !errors.Is(sub.Err(), registry.ErrSlowSubscriber) {
					n.leave(ctx)
					return
				}
				n.log.Warn("this node fell behind its own events; it syncs with the store again")
				sub, snap = n.srv.SubscribeWithSnapshot(subBuffer)
				clear(local)
				for _, s := range snap {
					local[s.Name] = s
				}
				n.sync(ctx, local)
				continue
			}
			batch = append(batch[:0], ev)
		more:
			for len(batch) < cap(batch) {
				select {
				case ev, ok := <-sub.C():
					if !ok {
						break more
					}
					batch = append(batch, ev)
				default:
					break more
				}
			}
			n.handle(ctx, batch, local)
		case <-lease.C:
			n.renew(ctx, local)
		case <-beats.C:
			if n.up() {
				n.flushBeats(ctx)
			}
		}
	}
}

// handle mirrors a batch of local events: to the store, or, while it is
// unreachable, straight to the node's own view.
func (n *Node) handle(ctx context.Context, batch []pulse.Event, local map[string]pulse.Session) {
	for i := range batch {
		ev := &batch[i]
		ev.Session.Node = n.cfg.Node
		s := ev.Session
		switch {
		case ev.Kind == pulse.EventJoined:
			local[s.Name] = s
		case ev.Kind.Ends():
			if local[s.Name].ID == s.ID {
				delete(local, s.Name)
				delete(n.flushed, s.Name)
			}
		case s.ID != "" && local[s.Name].ID == s.ID:
			local[s.Name] = s
		}
	}
	if n.up() {
		err := n.publish(ctx, batch)
		if err == nil {
			return
		}
		n.fail(err)
	}
	for _, ev := range batch {
		if ev.Kind.Ends() && len(n.ended) < maxEnded {
			n.ended[ev.Session.ID] = ev
		}
		n.view.apply(ev, true)
	}
}

// publish writes local events to the store in one pipeline.
func (n *Node) publish(ctx context.Context, batch []pulse.Event) error {
	pipe := n.rdb.Pipeline()
	me, maxlen := n.cfg.Node, n.cfg.History
	for _, ev := range batch {
		s := ev.Session
		fields := eventFields(ev, me)
		switch {
		case ev.Kind == pulse.EventJoined:
			args := append([]any{s.Name, newRecord(s, me).encode(), me, s.ID, "join", s.ConnectedAt.UnixMicro(), maxlen, n.cfg.Prefix}, fields...)
			claimScript.EvalSha(ctx, pipe, []string{n.key("sessions"), n.key("owned:" + me), n.key("events")}, args...)
		case ev.Kind.Ends():
			args := append([]any{s.Name, s.ID, ev.Kind.String(), maxlen}, fields...)
			endScript.EvalSha(ctx, pipe, []string{n.key("sessions"), n.key("owned:" + me), n.key("events"), n.key("beats")}, args...)
		case s.ID != "":
			args := append([]any{s.Name, s.ID, newRecord(s, me).encode(), maxlen}, fields...)
			updateScript.EvalSha(ctx, pipe, []string{n.key("sessions"), n.key("events")}, args...)
		default: // a stall of this node
			pipe.XAdd(ctx, &goredis.XAddArgs{Stream: n.key("events"), MaxLen: int64(maxlen), Approx: true, Values: fields})
		}
	}
	return execPipe(ctx, pipe)
}

// execPipe runs a pipeline; a script's nil answer is not an error.
func execPipe(ctx context.Context, pipe goredis.Pipeliner) error {
	if pipe.Len() == 0 {
		return nil
	}
	cmds, err := pipe.Exec(ctx)
	if err == nil {
		return nil
	}
	for _, c := range cmds {
		if e := c.Err(); e != nil && !errors.Is(e, goredis.Nil) {
			return fmt.Errorf("redis: %s: %w", c.Name(), e)
		}
	}
	if len(cmds) == 0 {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// renew renews the node's lease and reaps lost nodes; if the store is
// unreachable, or forgot this node, it syncs instead.
func (n *Node) renew(ctx context.Context, local map[string]pulse.Session) {
	if n.gap.Swap(false) {
		n.log.Warn("this node fell behind the cluster's event stream; it syncs with the store again")
		n.needSync = true
	}
	if !n.up() || n.needSync {
		n.sync(ctx, local)
		return
	}
	ok, err := renewScript.Run(ctx, n.rdb, []string{n.key("nodes"), n.key("lease:" + n.cfg.Node), n.key("epoch")},
		n.cfg.Node, len(local), n.cfg.TTL.Milliseconds(), n.instance).Int()
	if err != nil {
		n.fail(err)
		return
	}
	if ok < 0 {
		n.needSync = true
		n.nameInUse(fmt.Errorf("%w: %q (this node's lease lapsed, and another process of the name registered)", ErrNodeInUse, n.cfg.Node))
		return
	}
	if ok == 0 {
		n.log.Warn("the store no longer knows this node (it restarted empty, or the others took this node for lost); registering again")
		n.sync(ctx, local)
		return
	}
	reaped, err := reapScript.Run(ctx, n.rdb, []string{n.key("nodes"), n.key("events"), n.key("sessions"), n.key("beats")},
		n.cfg.Node, n.cfg.TTL.Milliseconds(), n.cfg.History, n.cfg.Prefix).Int()
	if err != nil {
		n.fail(err)
		return
	}
	if reaped > 0 {
		n.log.Warn("a node lost its lease; its sessions are declared dead", "sessions", reaped)
	}
}

// sync (re)joins the store: it registers the node, publishes how the
// sessions it had published and lost meanwhile ended, republishes the
// ones it holds, reloads the view and resets its event streams.
func (n *Node) sync(ctx context.Context, local map[string]pulse.Session) error {
	if err := n.syncOnce(ctx, local); err != nil {
		n.needSync = true
		if errors.Is(err, ErrNodeInUse) {
			n.nameInUse(err)
		} else {
			n.fail(err)
		}
		return err
	}
	n.needSync = false
	n.inUse = false
	n.setUp(len(local))
	// Only now, up, wake the reader at its new positions.
	select {
	case n.synced <- struct{}{}:
	default:
	}
	return nil
}

// nameInUse keeps the node out of the cluster while another process holds
// its name: it serves its own clients, as while the store is unreachable,
// and logs once.
func (n *Node) nameInUse(err error) {
	if n.state.Load() == stateUnknown {
		return // New fails with err
	}
	if !n.inUse {
		n.inUse = true
		n.log.Error("another live node of the cluster has this node's name; this node stays out of the cluster, serving its own clients, until that node's lease lapses: give every node its own --node", "error", err)
	}
	if n.state.Swap(stateDown) != stateDown && n.obs != nil {
		n.obs.StoreUp(false)
	}
}

func (n *Node) syncOnce(ctx context.Context, local map[string]pulse.Session) error {
	me := n.cfg.Node
	for _, s := range scripts {
		if err := s.Load(ctx, n.rdb).Err(); err != nil {
			return fmt.Errorf("redis: load scripts: %w", err)
		}
	}
	if err := n.rdb.SetNX(ctx, n.key("epoch"), randomID(), 0).Err(); err != nil {
		return fmt.Errorf("redis: epoch: %w", err)
	}
	epoch, err := n.rdb.Get(ctx, n.key("epoch")).Result()
	if err != nil {
		return fmt.Errorf("redis: epoch: %w", err)
	}
	info := fmt.Sprintf(`{"name":%q,"addr":%q,"http":%q,"sessions":%d}`, me, n.cfg.Addr, n.cfg.HTTP, len(local))
	if err := registerScript.Run(ctx, n.rdb, []string{n.key("nodes"), n.key("lease:" + me)}, me, info, n.cfg.TTL.Milliseconds(), n.instance).Err(); err != nil {
		if pttl, ok := strings.CutPrefix(err.Error(), "NODEINUSE "); ok {
			within := ""
			if ms, err := strconv.ParseInt(pttl, 10, 64); err == nil && ms > 0 {
				within = fmt.Sprintf(" within %v", (time.Duration(ms) * time.Millisecond).Round(100*time.Millisecond))
			}
			return fmt.Errorf("%w: %q (if that node is gone, its lease lapses%s)", ErrNodeInUse, me, within)
		}
		return fmt.Errorf("redis: register: %w", err)
	}

	// What the store says this node holds, and no longer does.
	owned, err := n.rdb.SMembers(ctx, n.key("owned:"+me)).Result()
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	pipe := n.rdb.Pipeline()
	if len(owned) > 0 {
		vals, err := n.rdb.HMGet(ctx, n.key("sessions"), owned...).Result()
		if err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		now := time.Now()
		for i, name := range owned {
			v, _ := vals[i].(string)
			rec, err := decodeRecord(v)
			if v == "" || err != nil || rec.Node != me {
				pipe.SRem(ctx, n.key("owned:"+me), name)
				continue
			}
			if local[name].ID == rec.ID {
				continue // republished below
			}
			ev, ok := n.ended[rec.ID]
			if !ok {
				ev = pulse.Event{Kind: pulse.EventLeft, Time: now, Session: rec.session(), Reason: pulse.ReasonClosed,
					Detail: "ended while the store was unreachable"}
			}
			args := append([]any{name, rec.ID, ev.Kind.String(), n.cfg.History}, eventFields(ev, me)...)
			endScript.EvalSha(ctx, pipe, []string{n.key("sessions"), n.key("owned:" + me), n.key("events"), n.key("beats")}, args...)
		}
	}
	// Republish what it holds; a session already there unchanged adds no
	// event.
	type claim struct {
		s   pulse.Session
		cmd *goredis.Cmd
	}
	claims := make([]claim, 0, len(local))
	now := time.Now()
	for _, s := range local {
		ev := pulse.Event{Kind: pulse.EventJoined, Time: now, Session: s, Reason: pulse.ReasonHello,
			Detail: "republished: the node registered again with the store"}
		args := append([]any{s.Name, newRecord(s, me).encode(), me, s.ID, "republish", s.ConnectedAt.UnixMicro(), n.cfg.History, n.cfg.Prefix},
			eventFields(ev, me)...)
		claims = append(claims, claim{s, claimScript.EvalSha(ctx, pipe, []string{n.key("sessions"), n.key("owned:" + me), n.key("events")}, args...)})
		if pipe.Len() >= 1000 {
			if err := execPipe(ctx, pipe); err != nil {
				return err
			}
			pipe = n.rdb.Pipeline()
		}
	}
	if err := execPipe(ctx, pipe); err != nil {
		return err
	}
	for _, c := range claims {
		if res, err := c.cmd.StringSlice(); err == nil && len(res) == 3 && res[0] == "lost" {
			detail := "a newer session of the name is on node " + res[1]
			if _, err := n.srv.Replace(c.s.Name, c.s.ID, detail); err == nil {
				n.log.Info("a session of this node lost its name to a newer one on another node while the store was unreachable",
					"name", c.s.Name, "other", res[1])
			}
		}
	}
	clear(n.ended)
	clear(n.flushed)

	// Reload the view: the sessions and the stream's last ID, atomically.
	tx := n.rdb.TxPipeline()
	lastEv := tx.XRevRangeN(ctx, n.key("events"), "+", "-", 1)
	lastCmd := tx.XRevRangeN(ctx, n.key("cmd:"+me), "+", "-", 1)
	all := tx.HGetAll(ctx, n.key("sessions"))
	if _, err := tx.Exec(ctx); err != nil {
		return fmt.Errorf("redis: reload: %w", err)
	}
	evID, cmdID := "0-0", "0-0"
	if m := lastEv.Val(); len(m) > 0 {
		evID = m[0].ID
	}
	if m := lastCmd.Val(); len(m) > 0 {
		cmdID = m[0].ID
	}
	seq, err := streamSeq(evID)
	if err != nil {
		return err
	}
	sessions := make([]pulse.Session, 0, len(all.Val()))
	for _, v := range all.Val() {
		rec, err := decodeRecord(v)
		if err != nil {
			n.log.Warn("skipping a session the store holds that this node cannot read", "error", err)
			continue
		}
		sessions = append(sessions, rec.session())
	}
	n.view.reset(epoch, seq, sessions)
	n.posMu.Lock()
	n.evID, n.cmdID = evID, cmdID
	n.posGen++
	n.posMu.Unlock()
	return nil
}

// leave removes the node from the store after its server shut down and
// its sessions' last events were published.
func (n *Node) leave(ctx context.Context) {
	if !n.up() {
		return
	}
	me := n.cfg.Node
	pipe := n.rdb.TxPipeline()
	pipe.HDel(ctx, n.key("nodes"), me)
	pipe.Del(ctx, n.key("lease:"+me), n.key("cmd:"+me))
	if err := execPipe(ctx, pipe); err != nil {
		n.log.Warn("could not leave the cluster cleanly; the others will take this node for lost after its lease", "error", err)
		return
	}
	n.log.Info("left the cluster")
}

// flushBeats writes the beat counts of the sessions that beat since the
// last flush, in one pipeline.
func (n *Node) flushBeats(ctx context.Context) {
	pipe := n.rdb.Pipeline()
	fields := make([]any, 0, 2*registry.MaxPageLimit)
	after := ""
	for {
		p := n.srv.Page(registry.Query{After: after, Limit: registry.MaxPageLimit})
		for _, s := range p.Sessions {
			if f := n.flushed[s.Name]; f.id == s.ID && f.beats == s.Beats {
				continue
			}
			n.flushed[s.Name] = flushedBeats{s.ID, s.Beats}
			fields = append(fields, s.Name, beatInfo(s))
		}
		if len(fields) > 0 {
			pipe.HSet(ctx, n.key("beats"), fields...)
			fields = fields[:0:0]
		}
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if err := execPipe(ctx, pipe); err != nil {
		clear(n.flushed)
		n.fail(err)
	}
}

// read is the goroutine that follows the event stream into the view, and
// the node's command stream.
func (n *Node) read(ctx context.Context) {
	defer close(n.readerDone)
	for ctx.Err() == nil {
		n.posMu.Lock()
		gen, evID, cmdID := n.posGen, n.evID, n.cmdID
		n.posMu.Unlock()
		if !n.up() || evID == "" {
			select {
			case <-n.synced:
			case <-ctx.Done():
			}
			continue
		}
		res, err := n.rdb.XRead(ctx, &goredis.XReadArgs{
			Streams: []string{n.key("events"), n.key("cmd:" + n.cfg.Node), evID, cmdID},
			Count:   readCount,
			Block:   min(n.cfg.TTL/3, time.Second),
		}).Result()
		if errors.Is(err, goredis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				n.fail(err)
			}
			continue
		}
		for _, st := range res {
			if len(st.Messages) == 0 {
				continue
			}
			last := st.Messages[len(st.Messages)-1].ID
			if st.Stream == n.key("events") && len(st.Messages) == readCount && n.trimmedPast(ctx, evID) {
				n.gap.Store(true) // the writer resyncs at its next tick; until then, read on
			}
			if st.Stream == n.key("events") {
				for _, m := range st.Messages {
					ev, err := decodeEvent(m)
					if err != nil {
						n.log.Warn("skipping an event this node cannot read", "error", err)
						continue
					}
					n.view.apply(ev, false)
				}
				n.advance(gen, &n.evID, last)
			} else {
				for _, m := range st.Messages {
					n.command(ctx, m)
				}
				n.advance(gen, &n.cmdID, last)
			}
		}
	}
}

// readCount is the most entries one XREAD returns.
const readCount = 1000

// trimmedPast reports whether the event stream no longer holds id, the
// last entry the reader had read: the stream was trimmed past it, so the
// reader fell about the stream's length behind and may have missed events.
// It is asked only after a full read, when the reader may be behind.
func (n *Node) trimmedPast(ctx context.Context, id string) bool {
	first, err := n.rdb.XRangeN(ctx, n.key("events"), "-", "+", 1).Result()
	if err != nil || len(first) == 0 {
		return false
	}
	a, err1 := streamSeq(first[0].ID)
	b, err2 := streamSeq(id)
	return err1 == nil && err2 == nil && b != 0 && a > b
}

// advance moves a position of the reader, unless a sync set new ones.
func (n *Node) advance(gen uint64, pos *string, id string) {
	n.posMu.Lock()
	defer n.posMu.Unlock()
	if n.posGen == gen {
		*pos = id
	}
}

// command carries out a command another node sent this one.
func (n *Node) command(ctx context.Context, m goredis.XMessage) {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	name, id, detail := str("name"), str("id"), str("detail")
	switch str("op") {
	case "replace":
		if _, err := n.srv.Replace(name, id, detail); err == nil {
			n.log.Info("session replaced by a newer one on another node", "name", name, "id", id)
		}
	case "kick":
		answer := `{"found":false}`
		if s, ok := n.srv.Session(name); ok && (id == "" || s.ID == id) {
			if s, err := n.srv.Kick(name, detail); err == nil {
				answer = fmt.Sprintf(`{"found":true,"session":%s}`, newRecord(s, n.cfg.Node).encode())
			}
		}
		if reply := str("reply"); reply != "" {
			pipe := n.rdb.Pipeline()
			pipe.LPush(ctx, reply, answer)
			pipe.Expire(ctx, reply, 30*time.Second)
			if err := execPipe(ctx, pipe); err != nil {
				n.fail(err)
			}
		}
	default:
		n.log.Warn("ignoring an unknown command", "op", str("op"), "id", m.ID)
	}
}

func randomID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
