package httpapi

import (
	"context"
	"net/http"
	"os"
	"time"

	"github.com/pulsehq/pulse/registry"
)

// Cluster is the answer to GET /v1/cluster: the nodes that share one view
// of the sessions, and the state of the store they share it through.
type Cluster struct {
	// Store is "ok" when the node reaches the cluster's store,
	// "unreachable" when it does not (it then serves from what it knows),
	// and "none" on a single server, which has no store.
	Store string `json:"store"`
	// Node is the name of the node that answered.
	Node string `json:"node"`
	// Nodes are the nodes registered in the store, sorted by name; on a
	// single server, the server itself.
	Nodes []ClusterNode `json:"nodes"`
}

// ClusterNode is one node of a cluster.
type ClusterNode struct {
	Name string `json:"name"`
	// Addr is the heartbeat address it listens on, HTTP its API's; either
	// is empty when unknown or off.
	Addr string `json:"addr,omitempty"`
	HTTP string `json:"http,omitempty"`
	// Sessions is how many sessions it holds.
	Sessions int `json:"sessions"`
	// Since is when it (re)registered with the store, and LastSeen when it
	// last renewed its lease, both by the store's clock.
	Since    time.Time `json:"since,omitzero"`
	LastSeen time.Time `json:"last_seen"`
}

// ClusterSource is a Source that is one node of a cluster; GET /v1/cluster
// answers what it says. A Source that is not answers with the server
// alone and "store": "none".
type ClusterSource interface {
	Cluster(ctx context.Context) Cluster
}

// cluster serves GET /v1/cluster.
func (a *API) cluster(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, "GET")
		return
	}
	if cs, ok := a.cfg.Source.(ClusterSource); ok {
		writeJSON(w, http.StatusOK, cs.Cluster(r.Context()))
		return
	}
	name, _ := os.Hostname()
	p := a.cfg.Source.Page(registry.Query{Limit: 1})
	writeJSON(w, http.StatusOK, Cluster{Store: "none", Node: name, Nodes: []ClusterNode{{
		Name: name, Sessions: p.Counts.Total(), LastSeen: time.Now().UTC(),
	}}})
}
