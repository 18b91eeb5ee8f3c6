package server_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"

	"github.com/pulsehq/pulse/client"
	"github.com/pulsehq/pulse/server"
)

// A server with the default timing, a client that registers and leaves,
// and the events that tell of it.
func Example() {
	srv, err := server.New(server.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	events := srv.Subscribe(0)
	go srv.Serve(ln)

	c, err := client.Dial(context.Background(), ln.Addr().String(), "web-1")
	if err != nil {
		log.Fatal(err)
	}
	ev := <-events.C()
	fmt.Println(ev.Kind, ev.Session.Name, ev.Reason)
	fmt.Println(len(srv.Sessions()), "online")

	c.Close() // sends BYE
	ev = <-events.C()
	fmt.Println(ev.Kind, ev.Session.Name, ev.Reason)

	if err := srv.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}
	// Output:
	// joined web-1 hello
	// 1 online
	// left web-1 bye
}
