package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pulsehq/pulse/server"
)

var _ server.AuthObserver = (*Metrics)(nil)

func TestAuthFailures(t *testing.T) {
	m := New()
	reg := prometheus.NewPedanticRegistry()
	if err := m.Register(reg, counts{}); err != nil {
		t.Fatal(err)
	}
	m.AuthFailed("expired")
	m.AuthFailed("expired")
	m.AuthFailed("tls_handshake")
	want := `
# HELP pulse_auth_failures_total ` + authFailuresHelp + `
# TYPE pulse_auth_failures_total counter
pulse_auth_failures_total{reason="expired"} 2
pulse_auth_failures_total{reason="tls_handshake"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pulse_auth_failures_total"); err != nil {
		t.Fatal(err)
	}
}
