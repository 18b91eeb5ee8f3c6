package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// CodeUnauthorized is the error code of a request without the API token,
// or with another: HTTP 401, with "WWW-Authenticate: Bearer".
const CodeUnauthorized = "unauthorized"

// open reports whether the request may be served without the token: the
// health check, and the dashboard's static files, which hold no data.
// Every other path, /metrics and everything under /v1/ included, and any
// path the mux would only redirect, wants it.
func (a *API) open(r *http.Request) bool {
	_, pattern := a.mux.Handler(r)
	return pattern == "/healthz" || (pattern == "/" && a.cfg.Dashboard != nil)
}

// authorize reports whether r carries the API token, and answers 401 if
// not. With no token configured, every request is authorized.
func (a *API) authorize(w http.ResponseWriter, r *http.Request) bool {
	if a.token == nil || a.open(r) {
		return true
	}
	given, ok := bearer(r.Header.Get("Authorization"))
	if ok {
		sum := sha256.Sum256([]byte(given)) // equal lengths: the compare takes the same time whatever the token's
		if subtle.ConstantTimeCompare(sum[:], a.token) == 1 {
			return true
		}
	}
	challenge := `Bearer realm="pulse"`
	msg := "this endpoint wants the API token: send Authorization: Bearer <token> (pulse ls --token-file FILE)"
	if ok {
		challenge += `, error="invalid_token"`
		msg = "the API token sent is not this server's"
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeError(w, errorf(http.StatusUnauthorized, CodeUnauthorized, "%s", msg))
	return false
}

// bearer returns the token of an Authorization header of the Bearer
// scheme, whose name is case-insensitive (RFC 6750, RFC 9110).
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// ErrNoToken is wrapped by the error of ReadTokenFile for a file that holds
// no token.
var ErrNoToken = errors.New("no token in the file")

// ReadTokenFile reads an API token from file: its content without the
// white space around it, which must leave one word.
func ReadTokenFile(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	switch {
	case token == "":
		return "", fmt.Errorf("token file %s: %w", file, ErrNoToken)
	case strings.ContainsAny(token, " \t\r\n"):
		return "", fmt.Errorf("token file %s: the token must be one line without spaces", file)
	}
	return token, nil
}
