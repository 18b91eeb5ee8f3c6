package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error is an error answer of the API. Its JSON body is
// {"error":{"code":"…","message":"…"}}; Status is the HTTP status.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes of the API; the status that goes with each is in docs/api.md.
const (
	CodeBadRequest       = "bad_request"        // 400: a parameter is malformed or unknown
	CodeBadFilter        = "bad_filter"         // 400: ?state= or ?name= cannot match anything
	CodeBadCursor        = "bad_cursor"         // 400: ?cursor= is not one the API gave
	CodeBadEventID       = "bad_event_id"       // 400: Last-Event-ID is not one the API gave
	CodeNotFound         = "not_found"          // 404: no such session, or no such endpoint
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeUnavailable      = "unavailable"        // 503: the server is shutting down
)

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d %s)", e.Message, e.Status, e.Code)
}

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// writeJSON writes v as the JSON body of a status answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client is gone; nothing to do
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, struct {
		Error *Error `json:"error"`
	}{e})
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
		"%s is not allowed on %s; use %s", r.Method, r.URL.Path, allow))
}
