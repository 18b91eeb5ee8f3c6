package auth

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
)

func TestClientCertName(t *testing.T) {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "web-1"}, DNSNames: []string{"web-1.eu", "alias"}}
	for _, name := range []string{"web-1", "web-1.eu", "alias"} {
		if err := (ClientCertName{}).Authenticate(name, "", []*x509.Certificate{cert}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if r := ReasonOf(ClientCertName{}.Authenticate("web-2", "", []*x509.Certificate{cert})); r != ReasonCertNameMismatch {
		t.Errorf("another name: reason %q", r)
	}
	if r := ReasonOf(ClientCertName{}.Authenticate("web-1", "", nil)); r != ReasonNoClientCert {
		t.Errorf("no certificate: reason %q", r)
	}
}

func TestAll(t *testing.T) {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "web-1"}}
	v, err := NewJWTVerifier(secret, JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := All(v, nil, ClientCertName{})
	// The JWT is checked first; both must pass.
	if r := ReasonOf(a.Authenticate("web-1", "", []*x509.Certificate{cert})); r != ReasonMissingToken {
		t.Errorf("no token, good certificate: %q", r)
	}
}
