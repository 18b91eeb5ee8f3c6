package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pulsehq/pulse/auth"
	"github.com/pulsehq/pulse/server"
	"github.com/pulsehq/pulse/tlsconf"
)

// securityFlags are the flags of pulse serve for TLS and session
// authentication.
type securityFlags struct {
	tlsCert, tlsKey, tlsClientCA *string
	jwtKey, jwtAudience          *string
	jwtIssuer                    *string
	jwtLeeway                    *time.Duration
	fs                           *flagSet // to tell a flag given from its default
}

func (f *securityFlags) register(fs *flagSet) {
	f.fs = fs
	f.tlsCert = fs.String("tls-cert", "", "serve TLS on the heartbeat and HTTP ports with this PEM certificate chain `file` (needs --tls-key; reloaded on SIGHUP)")
	f.tlsKey = fs.String("tls-key", "", "the PEM private key `file` of --tls-cert (reloaded on SIGHUP)")
	f.tlsClientCA = fs.String("tls-client-ca", "", "demand client certificates signed by a CA in this PEM `file` on the heartbeat port (mTLS); a session's name must then be the certificate's CN or a DNS name of it (reloaded on SIGHUP)")
	f.jwtKey = fs.String("auth-jwt-key", "", "demand in every HELLO a JWT whose sub is the name, signed with this key `file`: an HMAC secret (HS256/384/512, at least 32 bytes) or a PEM public key (RS*, PS*, ES256/384/512, EdDSA) (reloaded on SIGHUP)")
	f.jwtAudience = fs.String("auth-jwt-audience", "", "with --auth-jwt-key, a JWT's aud must contain this `string`")
	f.jwtIssuer = fs.String("auth-jwt-issuer", "", "with --auth-jwt-key, a JWT's iss must be this `string`")
	f.jwtLeeway = fs.duration("auth-jwt-leeway", auth.DefaultLeeway, "clock skew allowed for a JWT's exp and nbf")
}

// serveSecurity is the TLS material and authenticators of pulse serve.
// A nil *serveSecurity is one with neither.
type serveSecurity struct {
	flags *securityFlags
	tls   *tlsconf.Server
	jwt   *auth.JWTVerifier
}

// load reads the files the flags name.
func (f *securityFlags) load() (*serveSecurity, error) {
	s := &serveSecurity{flags: f}
	switch {
	case *f.tlsCert != "" && *f.tlsKey != "":
		t, err := tlsconf.LoadServer(tlsconf.ServerFiles{Cert: *f.tlsCert, Key: *f.tlsKey, ClientCA: *f.tlsClientCA})
		if err != nil {
			return nil, fmt.Errorf("--tls-cert, --tls-key, --tls-client-ca: %w", err)
		}
		s.tls = t
	case *f.tlsCert != "" || *f.tlsKey != "":
		return nil, usageErrorf("--tls-cert and --tls-key go together")
	case *f.tlsClientCA != "":
		return nil, usageErrorf("--tls-client-ca needs TLS: give --tls-cert and --tls-key too")
	}
	if *f.jwtKey != "" {
		if *f.jwtLeeway < 0 {
			return nil, usageErrorf("--auth-jwt-leeway must not be negative, got %v", *f.jwtLeeway)
		}
		leeway := *f.jwtLeeway
		if leeway == 0 {
			leeway = -1 // none; zero means the default in JWTOptions
		}
		v, err := auth.LoadJWTVerifier(*f.jwtKey, auth.JWTOptions{Leeway: leeway, Audience: *f.jwtAudience, Issuer: *f.jwtIssuer})
		if err != nil {
			return nil, fmt.Errorf("--auth-jwt-key: %w", err)
		}
		s.jwt = v
	} else if *f.jwtAudience != "" || *f.jwtIssuer != "" || f.given("auth-jwt-leeway") {
		return nil, usageErrorf("--auth-jwt-audience, --auth-jwt-issuer and --auth-jwt-leeway need --auth-jwt-key")
	}
	return s, nil
}

// given reports whether the flag name was set, on the command line or from
// the environment.
func (f *securityFlags) given(name string) bool {
	set := false
	f.fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}

// authenticator returns what checks each HELLO: the JWT, the client
// certificate's name, both, or nil for neither.
func (s *serveSecurity) authenticator() server.Authenticator {
	var as []auth.Authenticator
	if s.jwt != nil {
		as = append(as, s.jwt)
	}
	if s.tls != nil && s.tls.MutualTLS() {
		as = append(as, auth.ClientCertName{})
	}
	if len(as) == 0 {
		return nil
	}
	return auth.All(as...)
}

// heartbeatListener wraps ln in TLS if it is on.
func (s *serveSecurity) heartbeatListener(ln net.Listener) net.Listener {
	if s.tls == nil {
		return ln
	}
	return tls.NewListener(ln, s.tls.HeartbeatConfig())
}

// httpTLS returns the TLS configuration of the HTTP port, nil if off.
func (s *serveSecurity) httpTLS() *tls.Config {
	if s.tls == nil {
		return nil
	}
	return s.tls.HTTPConfig()
}

// logSetup says what is on.
func (s *serveSecurity) logSetup(log *slog.Logger) {
	if s.tls != nil {
		log.Info("TLS on", "cert", *s.flags.tlsCert, "subject", s.tls.Leaf().Subject.String(),
			"not_after", s.tls.Leaf().NotAfter, "mtls", s.tls.MutualTLS())
	}
	if s.jwt != nil {
		log.Info("JWT session authentication on", "key", *s.flags.jwtKey, "key_type", s.jwt.KeyType(), "algorithms", s.jwt.Algorithms())
	}
}

// reload reads the TLS material and the JWT key again; what fails to load
// is logged and the old stays. Connections already up are untouched.
func (s *serveSecurity) reload(log *slog.Logger) error {
	var failed error
	if s.tls != nil {
		if err := s.tls.Reload(); err != nil {
			log.Error("TLS reload failed; keeping the old certificate", "error", err)
			failed = err
		} else {
			log.Info("TLS certificate reloaded", "subject", s.tls.Leaf().Subject.String(), "not_after", s.tls.Leaf().NotAfter)
		}
	}
	if s.jwt != nil {
		if err := s.jwt.ReloadFile(*s.flags.jwtKey); err != nil {
			log.Error("JWT key reload failed; keeping the old key", "error", err)
			failed = err
		} else {
			log.Info("JWT key reloaded", "key_type", s.jwt.KeyType())
		}
	}
	return failed
}

// reloading says what a SIGHUP reloads.
func (s *serveSecurity) reloading() string {
	switch {
	case s.tls != nil && s.jwt != nil:
		return "the TLS certificate and the JWT key"
	case s.tls != nil:
		return "the TLS certificate"
	}
	return "the JWT key"
}

// reloadOnSIGHUP reloads on every SIGHUP until ctx ends or the returned
// stop is called; stop waits for the goroutine to finish.
func (s *serveSecurity) reloadOnSIGHUP(ctx context.Context, log *slog.Logger) (stop func()) {
	if s.tls == nil && s.jwt == nil {
		return func() {}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading " + s.reloading())
				_ = s.reload(log) // logged; the old material stays
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
