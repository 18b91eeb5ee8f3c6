package client_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/auth"
	"github.com/pulsehq/pulse/client"
	"github.com/pulsehq/pulse/server"
)

// TestTokenFuncPerAttempt: the token function is asked before every
// connection attempt, and its failure is retried, not fatal.
func TestTokenFuncPerAttempt(t *testing.T) {
	secret := []byte("a-secret-for-the-client-test-32b")
	v, err := auth.NewJWTVerifier(secret, auth.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Logger: quiet, Authenticator: v, Timing: pulse.Timing{Interval: 100 * time.Millisecond, Misses: 5}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	var calls atomic.Int32
	tokens := func() (string, error) {
		if calls.Add(1) == 1 {
			return "", errors.New("the token is not there yet")
		}
		return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "web-1", "exp": time.Now().Add(time.Minute).Unix()}).SignedString(secret)
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	c, err := client.Dial(ctx, ln.Addr().String(), "web-1", client.WithTokenFunc(tokens), client.WithBackoff(time.Millisecond, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := calls.Load(); n != 2 {
		t.Fatalf("token function called %d times, want 2: once failing, once for the registration", n)
	}
	if _, ok := srv.Session("web-1"); !ok {
		t.Fatal("not registered")
	}
}
