package bench

import (
	"time"

	"github.com/pulsehq/pulse/auth"
)

// DefaultTokenTTL is how long the tokens of SignedTokens are valid when
// TokenOptions.TTL is zero. A server checks a token only at HELLO, so it
// need only outlast the ramp.
const DefaultTokenTTL = time.Hour

// TokenOptions are the claims and algorithm of the tokens SignedTokens
// signs, beyond sub (the client's name) and exp.
type TokenOptions struct {
	// TTL is how long each token is valid from when it is signed. Zero
	// means DefaultTokenTTL.
	TTL time.Duration
	// Algorithm is one of the signer's; empty means its default.
	Algorithm string
	// Audience and Issuer, if set, are the aud and iss claims, for a
	// server with --auth-jwt-audience or --auth-jwt-issuer.
	Audience, Issuer string
}

// SignedTokens returns a Config.Token that signs each client's token with
// s: the one pulse serve --auth-jwt-key verifies, with the client's name
// as sub.
func SignedTokens(s *auth.Signer, o TokenOptions) func(name string) (string, error) {
	ttl := orDefault(o.TTL, DefaultTokenTTL)
	return func(name string) (string, error) {
		now := time.Now()
		return s.Sign(o.Algorithm, auth.Claims{Subject: name, IssuedAt: now, Expires: now.Add(ttl),
			Audience: o.Audience, Issuer: o.Issuer})
	}
}
