package client_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"time"

	"github.com/pulsehq/pulse/client"
	"github.com/pulsehq/pulse/server"
)

// Keep a session alive and watch the client's own state.
func ExampleDial() {
	srv, _ := server.New(server.Config{Logger: slog.New(slog.DiscardHandler)})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, ln.Addr().String(), "worker-7",
		client.WithMeta(map[string]string{"queue": "emails"}),
		client.OnStatus(func(s client.Status) { fmt.Println("state:", s.State) }),
	)
	if err != nil {
		log.Fatal(err)
	}
	st := c.Status()
	fmt.Println("beating every", st.Interval)
	c.Close()
	// Output:
	// state: connecting
	// state: connected
	// beating every 3s
	// state: closed
}
