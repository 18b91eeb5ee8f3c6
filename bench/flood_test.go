package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/auth"
	"github.com/pulsehq/pulse/server"
	"github.com/pulsehq/pulse/wire"
)

// floodSecret is the HMAC secret of the flood tests' server, made anew
// for each test binary: the server demands a token signed with it in every
// HELLO, as pulse serve --auth-jwt-key does.
var floodSecret = func() []byte {
	b := make([]byte, 48)
	rand.Read(b)
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return b
}()

// floodTokens signs the tokens of the healthy clients and of the
// non-readers (clients with valid credentials that misbehave) with
// floodSecret.
func floodTokens(t *testing.T) func(string) (string, error) {
	t.Helper()
	s, err := auth.ParseSigner(floodSecret)
	if err != nil {
		t.Fatal(err)
	}
	return SignedTokens(s, TokenOptions{})
}

// floodObserver counts what the flood tests' server refused, by code, and
// the sessions that joined, by the start of their name.
type floodObserver struct {
	mu       sync.Mutex
	rejected map[wire.Code]int
	joined   map[string]int // "healthy-", "flood-nonreader-", ...
}

func (o *floodObserver) Beat(time.Duration) {}

func (o *floodObserver) Rejected(code wire.Code) {
	o.mu.Lock()
	o.rejected[code]++
	o.mu.Unlock()
}

func (o *floodObserver) Event(ev pulse.Event) {
	if ev.Kind != pulse.EventJoined {
		return
	}
	name := ev.Session.Name
	if i := strings.LastIndexByte(name, '-'); i >= 0 {
		name = name[:i+1]
	}
	o.mu.Lock()
	o.joined[name]++
	o.mu.Unlock()
}

// counts returns a copy of the counts so far.
func (o *floodObserver) counts() (map[wire.Code]int, map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.rejected), maps.Clone(o.joined)
}

// floodServerConfig completes the configuration of the server the flood
// tests run against: a JWT authenticator for floodSecret. The limits are
// left at their defaults, as pulse serve has them: at most 1,000
// connections from one IP address (the floods and the healthy clients
// bind their sockets to 250 loopback addresses in turn, so a test's 1,500
// connections at most are 6 an address, and none is refused
// too_many_connections), a connection limit of the open-file limit less
// 128, and a beat rate of 20 lines a second (or 10 times the session's
// own) beyond a burst of a minute's worth: a healthy client beating every
// 200 ms sends 5 a second, far below; a non-reader writing beats as fast
// as its socket takes them passes it and is cut with ERR rate_limited, if
// its unread answers have not had it cut as a slow consumer first.
func floodServerConfig(t *testing.T, cfg *server.Config) {
	t.Helper()
	v, err := auth.NewJWTVerifier(floodSecret, auth.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Authenticator = v
}

// wantStormAnswer is what the server answers to a HELLO with a bad token.
const wantStormAnswer = "ERR unauthorized"

// The timings of the flood tests: the server cuts a connection that has
// not said HELLO after helloTimeout, and one whose answers stay unwritten
// for writeTimeout.
const (
	floodHelloTimeout = 500 * time.Millisecond
	floodWriteTimeout = 500 * time.Millisecond
)

// startFloodServer runs a pulse server (event loop transport, as pulse
// serve runs it) and its HTTP API on loopback ports.
func startFloodServer(t *testing.T) (string, string, *floodObserver) {
	t.Helper()
	obs := &floodObserver{rejected: map[wire.Code]int{}, joined: map[string]int{}}
	cfg := server.Config{Timing: generous, HelloTimeout: floodHelloTimeout, WriteTimeout: floodWriteTimeout, Logger: quiet, Observer: obs}
	floodServerConfig(t, &cfg)
	_, addr, api := startServerConfig(t, cfg)
	return addr, api, obs
}

// floodBeside runs a flood beside healthy clients that beat for window,
// and returns both results and the server's counts.
func floodBeside(t *testing.T, kind FloodKind, conns, healthy int, window time.Duration) (*FloodResult, *Result, *floodObserver) {
	t.Helper()
	addr, api, obs := startFloodServer(t)
	tokens := floodTokens(t)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var (
		wg       sync.WaitGroup
		fres     *FloodResult
		floodErr error
	)
	// The healthy clients ramp at once; the flood starts with them and
	// must be over before their window ends.
	floodCtx, floodCancel := context.WithTimeout(ctx, window)
	defer floodCancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		fres, floodErr = Flood(floodCtx, FloodConfig{Server: addr, Kind: kind, Conns: conns,
			SourceIPs: DefaultSourceIPs(addr), Rate: 5000, Token: tokens})
	}()
	res, err := Run(ctx, Config{Server: addr, HTTP: api, Clients: healthy, Duration: window, RampRate: 0,
		NamePrefix: "healthy-", SourceIPs: DefaultSourceIPs(addr), Token: tokens})
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if floodErr != nil {
		t.Fatal(floodErr)
	}
	t.Logf("flood %s: %+v", kind, *fres)
	if fres.CutAfter != nil {
		t.Logf("  cut after %+v", *fres.CutAfter)
	}
	t.Logf("healthy: %d connected, %d beats acked, rtt %+v, detection %+v",
		res.Connections.Connected, res.Beats.Acked, res.RTT, res.Detection)
	rejected, joined := obs.counts()
	t.Logf("server: rejected %v, joined %v", rejected, joined)
	if joined["healthy-"] != healthy {
		t.Errorf("%d healthy clients joined, want all %d with their tokens", joined["healthy-"], healthy)
	}
	return fres, res, obs
}

// checkHealthy asserts that the healthy clients lost nothing.
func checkHealthy(t *testing.T, res *Result, n int) {
	t.Helper()
	if cn := res.Connections; cn.Connected != n || cn.Failed != 0 || cn.Dropped != 0 {
		t.Errorf("healthy connections %+v, want all %d connected and none dropped", cn, n)
	}
	if b := res.Beats; b.Sent == 0 || b.Acked != b.Sent || b.Unanswered != 0 {
		t.Errorf("healthy beats %+v: want every one acknowledged", b)
	}
	d := res.Detection
	if d == nil {
		t.Fatal("no detection figures")
	}
	if d.FalseSuspects != 0 || d.FalseDeaths != 0 || d.EventsLost {
		t.Errorf("healthy clients: %d false suspects, %d false deaths (events lost: %v)", d.FalseSuspects, d.FalseDeaths, d.EventsLost)
	}
}

// checkAllEnded asserts that every flood connection opened and was ended
// by the server (or left), none left open when the flood stopped.
func checkAllEnded(t *testing.T, f *FloodResult, n int) {
	t.Helper()
	if f.Attempted != n || f.Connected != n || len(f.DialFailed) != 0 {
		t.Errorf("flood attempted %d, connected %d (failed %v), want %d", f.Attempted, f.Connected, f.DialFailed, n)
	}
	if f.StillOpen != 0 {
		t.Errorf("%d flood connections still open: the server did not cut them", f.StillOpen)
	}
}

// Each test holds a few hundred healthy sessions beside a flood at reduced
// scale: under the race detector, every healthy client is a goroutine, and
// the test process holds both ends of every connection. pulse bench
// --flood runs them at full scale (docs/security.md).
const (
	floodHealthy = 200
	floodWindow  = 3 * time.Second
)

func TestFloodIdleConnectionsAreCutByTheHelloTimeout(t *testing.T) {
	const n = 1500
	f, res, obs := floodBeside(t, FloodIdle, n, floodHealthy, floodWindow)
	checkHealthy(t, res, floodHealthy)
	checkAllEnded(t, f, n)
	if f.Answers["ERR hello_timeout"] != n || len(f.Answers) != 1 {
		t.Errorf("answers %v, want ERR hello_timeout to all %d", f.Answers, n)
	}
	if f.CutAfter == nil || f.CutAfter.MinMS < millis(floodHelloTimeout)-5 {
		t.Errorf("cut after %+v: none before the hello timeout of %v", f.CutAfter, floodHelloTimeout)
	}
	// None was refused for the per-IP or connection limits: each was let
	// in and timed out.
	if rejected, _ := obs.counts(); rejected[wire.CodeHelloTimeout] != n || rejected[wire.CodeTooManyConnections] != 0 {
		t.Errorf("server rejected %v, want hello_timeout %d and nothing else", rejected, n)
	}
}

func TestFloodGarbageGetsERRAndClose(t *testing.T) {
	const n = 700
	f, res, _ := floodBeside(t, FloodGarbage, n, floodHealthy, floodWindow)
	checkHealthy(t, res, floodHealthy)
	checkAllEnded(t, f, n)
	allowed := map[string]bool{"ERR bad_command": true, "ERR line_too_long": true, "ERR bad_name": true,
		"ERR bad_options": true, "ERR not_registered": true}
	total := 0
	for answer, k := range f.Answers {
		if !allowed[answer] {
			t.Errorf("%d garbage connections answered %q", k, answer)
		}
		total += k
	}
	if total != n {
		t.Errorf("answers %v add up to %d, want %d", f.Answers, total, n)
	}
	if f.Answers["ERR line_too_long"] != n/garbageKinds {
		t.Errorf("%d endless lines cut as too long, want %d", f.Answers["ERR line_too_long"], n/garbageKinds)
	}
}

// Every HELLO of the storm carries a token that is not a JWT signed with
// the server's key: each is refused, none registers.
func TestFloodHelloStormIsRefused(t *testing.T) {
	const n = 700
	f, res, obs := floodBeside(t, FloodHelloStorm, n, floodHealthy, floodWindow)
	checkHealthy(t, res, floodHealthy)
	checkAllEnded(t, f, n)
	if f.Answers[wantStormAnswer] != n || len(f.Answers) != 1 {
		t.Errorf("answers %v, want %s to all %d", f.Answers, wantStormAnswer, n)
	}
	if f.Left != 0 {
		t.Errorf("%d storm connections were welcomed", f.Left)
	}
	rejected, joined := obs.counts()
	if rejected[wire.CodeUnauthorized] != n || joined["flood-hello-storm-"] != 0 {
		t.Errorf("server: %d refused unauthorized, %d storm sessions joined; want %d and 0", rejected[wire.CodeUnauthorized], joined["flood-hello-storm-"], n)
	}
}

func TestFloodNonReadersAreCutWithoutHurtingOthers(t *testing.T) {
	// Each non-reader must send enough beats to fill the server's socket
	// buffer (up to 4 MiB) with unread ACKs before the server can tell:
	// a few of them are load enough for a machine running the race
	// detector.
	const n = 20
	f, res, obs := floodBeside(t, FloodNonReader, n, floodHealthy, 2*floodWindow)
	checkHealthy(t, res, floodHealthy)
	checkAllEnded(t, f, n)
	// With the default beat rate limit, each is cut with ERR rate_limited
	// once past its burst (1,200 lines, sent within the first sweeps),
	// unread, so the connection is reset; without the limit, its unread
	// ACKs would have it cut as a slow consumer instead.
	if f.Answers["unread"] != n {
		t.Errorf("answers %v, want all %d cut unread", f.Answers, n)
	}
	if got := fmt.Sprint(f.Cut); f.Cut["reset"]+f.Cut["broken_pipe"] != n {
		t.Errorf("non-readers cut by %s, want a reset each", got)
	}
	// They registered with valid tokens; the server cut each as a slow
	// consumer or for its beat rate, and refused none at HELLO.
	rejected, joined := obs.counts()
	if joined["flood-nonreader-"] != n || rejected[wire.CodeUnauthorized] != 0 {
		t.Errorf("server: %d non-readers joined, %d refused unauthorized; want %d and 0", joined["flood-nonreader-"], rejected[wire.CodeUnauthorized], n)
	}
	if cut := rejected[wire.CodeSlowConsumer] + rejected[wire.CodeRateLimited]; cut != n {
		t.Errorf("server: rejected %v, want all %d non-readers cut slow_consumer or rate_limited", rejected, n)
	}
}
