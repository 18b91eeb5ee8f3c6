// Package auth decides whether a client may register a session name: by a
// JSON Web Token sent in HELLO (JWTVerifier), by the name in its verified
// TLS client certificate (ClientCertName), or by both (All).
//
// Every decision that refuses returns an *Error, whose Reason is a short
// fixed word for metrics and logs and whose message is safe to send to the
// client in "ERR unauthorized <message>".
package auth

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
)

// The reasons of an *Error. Metrics label refusals with them, so the set
// is small and fixed.
const (
	ReasonMissingToken     = "missing_token"      // HELLO carried no token
	ReasonMalformed        = "malformed"          // not a JWT
	ReasonBadAlgorithm     = "bad_alg"            // an algorithm the key does not allow, or none
	ReasonBadSignature     = "bad_signature"      // the signature does not verify with the key
	ReasonExpired          = "expired"            // exp is past (beyond the leeway)
	ReasonNotYetValid      = "not_yet_valid"      // nbf is ahead (beyond the leeway)
	ReasonNoExpiry         = "no_expiry"          // no exp claim
	ReasonSubjectMismatch  = "sub_mismatch"       // sub is not the name registered
	ReasonBadAudience      = "bad_audience"       // aud does not name this server
	ReasonBadIssuer        = "bad_issuer"         // iss is not the one expected
	ReasonInvalidClaims    = "invalid_claims"     // some other claim is invalid
	ReasonNoClientCert     = "no_client_cert"     // mTLS demanded, no verified certificate
	ReasonCertNameMismatch = "cert_name_mismatch" // the name is not the certificate's CN or a DNS SAN
)

// Error is a refusal: Reason for metrics and logs, and a message for the
// client.
type Error struct {
	// Reason is one of the Reason constants.
	Reason string
	// Message says why, in words the client may see.
	Message string
	// Err is the underlying error, if any; it is not sent to the client.
	Err error
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// AuthReason returns Reason; the server finds it through this method.
func (e *Error) AuthReason() string { return e.Reason }

func refuse(reason, msg string, err error) *Error {
	return &Error{Reason: reason, Message: msg, Err: err}
}

// ReasonOf returns the Reason of err if it is or wraps an *Error, and
// "other" if not.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return "other"
}

// ClientCertName accepts a name that is the Common Name or one of the DNS
// Subject Alternative Names of the client's verified certificate (the
// first of peerCerts), and refuses any other, and a connection without a
// verified certificate. It implements server.Authenticator.
type ClientCertName struct{}

// Authenticate implements server.Authenticator.
func (ClientCertName) Authenticate(name, _ string, peerCerts []*x509.Certificate) error {
	return MatchCertificate(name, peerCerts)
}

// MatchCertificate reports as ClientCertName does whether name is the
// name of the client certificate, the first of peerCerts.
func MatchCertificate(name string, peerCerts []*x509.Certificate) error {
	if len(peerCerts) == 0 {
		return refuse(ReasonNoClientCert, "a verified client certificate is required", nil)
	}
	c := peerCerts[0]
	if c.Subject.CommonName == name || slices.Contains(c.DNSNames, name) {
		return nil
	}
	return refuse(ReasonCertNameMismatch,
		fmt.Sprintf("the name %q is neither the client certificate's CN %q nor one of its DNS names", name, c.Subject.CommonName), nil)
}

// Authenticator is what All combines; server.Authenticator has the same
// method.
type Authenticator interface {
	Authenticate(name, token string, peerCerts []*x509.Certificate) error
}

// All returns an Authenticator that accepts a name only if every one of
// as does; it returns the first refusal. Nil entries are skipped.
func All(as ...Authenticator) Authenticator {
	as = slices.DeleteFunc(slices.Clone(as), func(a Authenticator) bool { return a == nil })
	return all(as)
}

type all []Authenticator

func (as all) Authenticate(name, token string, peerCerts []*x509.Certificate) error {
	for _, a := range as {
		if err := a.Authenticate(name, token, peerCerts); err != nil {
			return err
		}
	}
	return nil
}
