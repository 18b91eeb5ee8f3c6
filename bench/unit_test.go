package bench

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRolesSpreadExactCounts(t *testing.T) {
	for _, tt := range []struct {
		n                   int
		silence, disconnect float64
		silent, leave       int
	}{
		{50, 0.1, 0.1, 5, 5},
		{20, 0.1, 0.1, 2, 2},
		{1000, 0.01, 0, 10, 0},
		{7, 0.5, 0.5, 4, 3},
		{3, 1, 0, 3, 0},
		{3, 0, 1, 0, 3},
		{19000, 0.013, 0.002, 247, 38},
		{1, 0.01, 0.01, 0, 0},
	} {
		rl := newRoles(tt.n, tt.silence, tt.disconnect)
		counts := map[role]int{}
		for i := range tt.n {
			counts[rl.of(i)]++
		}
		if counts[silent] != tt.silent || counts[leaver] != tt.leave || counts[healthy] != tt.n-tt.silent-tt.leave {
			t.Errorf("%d clients, silence %v, disconnect %v: %v, want %d silent and %d leavers",
				tt.n, tt.silence, tt.disconnect, counts, tt.silent, tt.leave)
		}
	}
}

// The phases of any run of consecutive clients cover the interval evenly:
// no gap between two beats is much longer than the interval shared out.
func TestPhasesSpreadEvenly(t *testing.T) {
	for _, first := range []int{0, 1000, 12345} {
		for _, n := range []int{10, 100, 1000} {
			ps := make([]float64, n)
			for i := range n {
				ps[i] = phase(first + i)
			}
			slices.Sort(ps)
			gap := ps[0] + 1 - ps[n-1]
			for i := 1; i < n; i++ {
				gap = max(gap, ps[i]-ps[i-1])
			}
			if gap > 3.0/float64(n) {
				t.Errorf("clients %d to %d: a gap of %.4f of the interval, want under %.4f", first, first+n-1, gap, 3.0/float64(n))
			}
		}
	}
}

func TestNames(t *testing.T) {
	nm := names{prefix: "bench-ab12-", n: 100}
	for _, tt := range []struct {
		name string
		i    int
		ok   bool
	}{
		{"bench-ab12-0", 0, true},
		{"bench-ab12-99", 99, true},
		{"bench-ab12-100", 0, false},
		{"bench-ab12-07", 0, false},
		{"bench-ab12-", 0, false},
		{"bench-ab13-1", 0, false},
		{"web-1", 0, false},
	} {
		if i, ok := nm.index(tt.name); i != tt.i || ok != tt.ok {
			t.Errorf("index(%q) = %d, %v; want %d, %v", tt.name, i, ok, tt.i, tt.ok)
		}
	}
	if nm.name(42) != "bench-ab12-42" {
		t.Error(nm.name(42))
	}
	if a, b := randomPrefix(), randomPrefix(); a == b || !strings.HasPrefix(a, "bench-") || len(a) != len("bench-ab12-") {
		t.Errorf("random prefixes %q and %q", a, b)
	}
}

// Percentiles read from the histogram are within 3% of the exact ones, and
// histograms of several processes add up after a trip through JSON.
func TestHistogram(t *testing.T) {
	var h1, h2 histogram
	var all []float64
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		d := time.Duration(math.Exp(rng.NormFloat64()*1.5) * float64(200*time.Microsecond))
		if i%2 == 0 {
			h1.record(d)
		} else {
			h2.record(d)
		}
		all = append(all, millis(d))
	}
	var back hist
	b, err := json.Marshal(h2.snapshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	sum := h1.snapshot().add(back)
	got, want := sum.percentiles(), exactPercentiles(all)
	if got.Count != want.Count || got.MinMS != want.MinMS || got.MaxMS != want.MaxMS {
		t.Errorf("count, min, max %v %v %v; want %v %v %v", got.Count, got.MinMS, got.MaxMS, want.Count, want.MinMS, want.MaxMS)
	}
	for _, q := range [][2]float64{{got.P50MS, want.P50MS}, {got.P99MS, want.P99MS}} {
		if math.Abs(q[0]-q[1])/q[1] > 0.03 {
			t.Errorf("percentile %vms, exactly %vms", q[0], q[1])
		}
	}
	if d := sum.since(h1.snapshot()); d.count() != 10000 {
		t.Errorf("%d counted since, want 10000", d.count())
	}
	for _, ns := range []int64{0, 1, 31, 32, 63, 64, 1000, 1e6, 1e9, 1 << 40, 1 << 50} {
		if b := bucketOf(ns); b < 0 || b >= histBuckets || (ns < 1<<40 && math.Abs(float64(bucketValue(b)-ns)) > 0.03*float64(ns)+1) {
			t.Errorf("%d ns: bucket %d, value %d", ns, b, bucketValue(b))
		}
	}
	var empty hist
	if empty.percentiles() != nil || empty.quantile(0.5) != 0 || exactPercentiles(nil) != nil {
		t.Error("an empty histogram has percentiles")
	}
}

func TestParseProc(t *testing.T) {
	stat := []byte("4242 (pulse (x) y) S 1 4242 4242 0 -1 4194560 2012 0 0 0 150 25 0 0 20 0 9 0 1234 1000 300 18446744073709551615\n")
	cpu, err := parseStatCPU(stat)
	if err != nil || cpu != 1750*time.Millisecond {
		t.Errorf("cpu %v, %v; want 1.75s", cpu, err)
	}
	if _, err := parseStatCPU([]byte("4242 (pulse) S 1")); err == nil {
		t.Error("a short stat parsed")
	}
	status := []byte("Name:\tpulse\nVmPeak:\t  20000 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n")
	if rss, err := parseStatusRSS(status); err != nil || rss != 12345*1024 {
		t.Errorf("rss %d, %v", rss, err)
	}
	if _, err := parseStatusRSS([]byte("Name:\tkthreadd\n")); err == nil {
		t.Error("no VmRSS parsed")
	}
	u, err := ReadProcess(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if u.RSS <= 0 || u.CPU < 0 {
		t.Errorf("this process: %+v", u)
	}
	if _, err := ReadProcess(1 << 30); err == nil {
		t.Error("a process that does not exist was read")
	}
}

func TestParseSourceIPs(t *testing.T) {
	for _, tt := range []struct {
		in          string
		n           int
		first, last string
	}{
		{"127.0.0.1-127.0.0.250", 250, "127.0.0.1", "127.0.0.250"},
		{"127.0.0.250-127.0.1.4", 11, "127.0.0.250", "127.0.1.4"},
		{"4", 4, "127.0.0.1", "127.0.0.4"},
		{"127.0.0.7", 1, "127.0.0.7", "127.0.0.7"},
		{"127.0.0.1,127.0.0.9", 2, "127.0.0.1", "127.0.0.9"},
		{"::1", 1, "::1", "::1"},
	} {
		ips, err := ParseSourceIPs(tt.in)
		if err != nil || len(ips) != tt.n || ips[0].String() != tt.first || ips[len(ips)-1].String() != tt.last {
			t.Errorf("%q: %v, %v", tt.in, ips, err)
		}
	}
	for _, bad := range []string{"", "0", "127.0.0.9-127.0.0.1", "127.0.0.1-::1", "nowhere", "127.0.0.1,", "10.0.0.0-10.255.255.255"} {
		if _, err := ParseSourceIPs(bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%q: %v, want an invalid config", bad, err)
		}
	}
	want, _ := ParseSourceIPs("127.0.0.1-127.0.0.250")
	if got := DefaultSourceIPs("127.0.0.1:7070"); len(got) != 0 && !slices.Equal(got, want) {
		t.Errorf("default source addresses against loopback: %v", got)
	}
	for _, addr := range []string{"10.1.2.3:7070", "[::1]:7070", "nonsense"} {
		if got := DefaultSourceIPs(addr); got != nil {
			t.Errorf("default source addresses against %s: %v", addr, got)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Server: "127.0.0.1:7070", Clients: 10, Duration: time.Second}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Server = "7070" }, "want host:port"},
		{func(c *Config) { c.Clients = 0 }, "clients must be at least 1"},
		{func(c *Config) { c.Duration = 0 }, "duration must be positive"},
		{func(c *Config) { c.Interval = -time.Second }, "interval"},
		{func(c *Config) { c.RampRate = -1 }, "ramp rate"},
		{func(c *Config) { c.Silence = 1.5 }, "share from 0 to 1"},
		{func(c *Config) { c.Silence, c.Disconnect = 0.6, 0.6 }, "more than every client"},
		{func(c *Config) { c.Silence, c.FailAt = 0.1, 2*time.Second }, "within the window"},
		{func(c *Config) { c.NamePrefix = "no spaces " }, "name prefix"},
		{func(c *Config) { c.NamePrefix = strings.Repeat("x", 64) }, "name prefix"},
		{func(c *Config) { c.SourceIPs = []netip.Addr{{}} }, "not an IP address"},
		{func(c *Config) { c.PerProcess = 4 }, "no worker command"},
	} {
		c := ok
		tt.change(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", c, err, tt.want)
		}
	}
}

func TestStatsMerge(t *testing.T) {
	var h histogram
	h.record(time.Millisecond)
	a := stats{Clients: 2, Connected: 2, Failed: map[string]int{"refused": 1}, Ramped: true, Acks: true,
		Interval: time.Second, Sent: [tags]uint64{0, 1, 2, 3}, Dropped: map[string]int{"reset": 1}, RTT: h.snapshot()}
	b := stats{Clients: 3, Connected: 1, Failed: map[string]int{"refused": 2, "timeout": 1}, Ramped: false,
		Interval: time.Second, Sent: [tags]uint64{0, 1, 1, 1}, FirstError: "x", RTT: h.snapshot()}
	m := a.merge(b)
	if m.Clients != 5 || m.Connected != 3 || m.Failed["refused"] != 3 || m.Failed["timeout"] != 1 || m.Ramped ||
		!m.Acks || m.Sent != [tags]uint64{0, 2, 3, 4} || m.Dropped["reset"] != 1 || m.FirstError != "x" || m.RTT.count() != 2 {
		t.Errorf("merged %+v", m)
	}
	if a.Failed["refused"] != 1 {
		t.Error("merge changed its operand")
	}
}
