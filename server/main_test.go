package server

import (
	"fmt"
	"os"
	"testing"
)

// testTransport is the transport the loopback tests run on; TestMain runs
// them on each in turn.
var testTransport Transport

func TestMain(m *testing.M) {
	for _, tr := range []Transport{TransportEventLoop, TransportGoroutines} {
		if tr == TransportEventLoop && !eventLoopSupported {
			continue
		}
		testTransport = tr
		if code := m.Run(); code != 0 {
			fmt.Fprintf(os.Stderr, "the tests above failed on the %q transport\n", tr)
			os.Exit(code)
		}
	}
	os.Exit(0)
}
