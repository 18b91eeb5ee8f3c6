//go:build linux

package client_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/client"
)

// TestClientOutlivesItsOwnStall stops this whole process (client and
// server alike, as a paused VM would be) with SIGSTOP for three times the
// timeout. On resume the client goes on beating on the same connection:
// the tick its stall delayed must not give its write a deadline in the
// past. Without acks, nothing else can end the session.
func TestClientOutlivesItsOwnStall(t *testing.T) {
	ts := serve(t, "127.0.0.1:0") // 100 ms × 5: dead after 500 ms
	var states []client.State
	c, err := client.Dial(context.Background(), ts.addr, "paused", client.WithoutAck(),
		client.OnStatus(func(s client.Status) { states = append(states, s.State) }))
	if err != nil {
		t.Fatal(err)
	}
	joined := ts.await(t, pulse.EventJoined, "paused")

	stopSelf(t, 1500*time.Millisecond)

	ts.await(t, pulse.EventStall, "")
	before := c.Status().Beats
	for deadline := time.Now().Add(patience); c.Status().Beats < before+5; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the client sent %d beats after the stall", c.Status().Beats-before)
		}
	}
	if st := c.Status(); st.State != client.StateConnected || st.SessionID != joined.Session.ID {
		t.Fatalf("after the stall: %+v, want connected as session %s", st, joined.Session.ID)
	}
	c.Close()
	if len(states) != 3 || states[1] != client.StateConnected || states[2] != client.StateClosed {
		t.Fatalf("the client went through %v; want connecting, connected, closed", states)
	}
	if left := ts.await(t, pulse.EventLeft, "paused"); left.Session.ID != joined.Session.ID || left.Reason != pulse.ReasonBye {
		t.Fatalf("the session ended %s (%s), want by its BYE", left.Reason, left.Detail)
	}
}

// stopSelf stops this process with SIGSTOP and has a helper resume it
// with SIGCONT d after it is seen stopped.
func stopSelf(t *testing.T, d time.Duration) {
	t.Helper()
	pid := os.Getpid()
	script := fmt.Sprintf(`until grep -q '^[0-9]* (.*) T ' /proc/%d/stat; do sleep 0.01; done; sleep %g; kill -CONT %d`, pid, d.Seconds(), pid)
	helper := exec.Command("sh", "-c", script)
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := helper.Wait(); err != nil {
		t.Fatalf("the helper that resumes the test: %v", err)
	}
}
