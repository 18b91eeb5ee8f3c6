package httpapi

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/registry"
)

// sessions serves GET /v1/sessions: one page of the table.
func (a *API) sessions(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, "GET")
		return
	}
	q, apiErr := parseQuery(r)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	p := a.cfg.Source.Page(q)
	list := SessionList{
		Sessions:    make([]Session, len(p.Sessions)),
		LastEventID: a.hub.eventID(p.Seq),
		Counts:      newCounts(p.Counts),
		ServerTime:  time.Now().UTC(),
	}
	for i, s := range p.Sessions {
		list.Sessions[i] = NewSession(s)
	}
	if p.Next != "" {
		list.NextCursor = encodeCursor(p.Next)
	}
	writeJSON(w, http.StatusOK, list)
}

// parseQuery reads the parameters of GET /v1/sessions. Unknown ones are
// refused rather than ignored, so that a typo does not pass for a filter.
func parseQuery(r *http.Request) (registry.Query, *Error) {
	var q registry.Query
	params := r.URL.Query()
	for key, vals := range params {
		switch key {
		case "state", "name", "limit", "cursor", "names":
			if len(vals) > 1 {
				return q, errorf(http.StatusBadRequest, CodeBadRequest, "?%s given %d times; give it once", key, len(vals))
			}
		default:
			return q, errorf(http.StatusBadRequest, CodeBadRequest, "unknown parameter ?%s; the parameters are state, name, limit, cursor and names", key)
		}
	}
	if v := params.Get("state"); v != "" {
		s, err := pulse.ParseState(v)
		if err != nil || s == pulse.StateDead {
			return q, errorf(http.StatusBadRequest, CodeBadFilter, "?state=%s: the states of live sessions are alive and suspect", v)
		}
		q.State = s
	}
	if v := params.Get("name"); v != "" {
		if !pulse.ValidName(v) {
			return q, errorf(http.StatusBadRequest, CodeBadFilter,
				"?name=%s cannot start any name: names are 1 to %d of A-Z a-z 0-9 . _ - :", v, pulse.MaxNameLen)
		}
		q.Prefix = v
	}
	if v := params.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > registry.MaxPageLimit {
			return q, errorf(http.StatusBadRequest, CodeBadRequest, "?limit=%s: want a number from 1 to %d", v, registry.MaxPageLimit)
		}
		q.Limit = n
	}
	if v := params.Get("names"); v != "" {
		if params.Has("cursor") || params.Has("limit") {
			return q, errorf(http.StatusBadRequest, CodeBadRequest, "?names= gives one page of exactly those sessions: it takes no cursor or limit")
		}
		q.Names = strings.Split(v, ",")
		if len(q.Names) > registry.MaxPageLimit {
			return q, errorf(http.StatusBadRequest, CodeBadRequest, "?names= lists %d names; ask for at most %d at a time", len(q.Names), registry.MaxPageLimit)
		}
		for _, n := range q.Names {
			if !pulse.ValidName(n) {
				return q, errorf(http.StatusBadRequest, CodeBadRequest, "?names=: %q is not a name; separate names with commas", n)
			}
		}
	}
	if v := params.Get("cursor"); v != "" {
		name, ok := decodeCursor(v)
		if !ok {
			return q, errorf(http.StatusBadRequest, CodeBadCursor,
				"?cursor=%s is not a cursor this API gave; pass next_cursor from the previous page as it is", v)
		}
		q.After = name
	}
	return q, nil
}

const cursorPrefix = "s1:"

// encodeCursor turns the last name of a page into an opaque cursor.
func encodeCursor(name string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + name))
}

func decodeCursor(c string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", false
	}
	name, ok := strings.CutPrefix(string(b), cursorPrefix)
	return name, ok && pulse.ValidName(name)
}

// session serves GET and DELETE /v1/sessions/{name}.
func (a *API) session(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s, ok := a.cfg.Source.Session(name)
		if !ok {
			writeError(w, notFound(name))
			return
		}
		writeJSON(w, http.StatusOK, NewSession(s))
	case http.MethodDelete:
		detail := r.URL.Query().Get("reason")
		if detail == "" {
			detail = "removed by an operator"
		}
		s, err := a.cfg.Source.Kick(name, sanitize(detail))
		if errors.Is(err, registry.ErrNotFound) {
			writeError(w, notFound(name))
			return
		}
		if err != nil {
			writeError(w, errorf(http.StatusInternalServerError, "internal", "kick %s: %v", name, err))
			return
		}
		a.cfg.Logger.Info("session kicked through the API", "name", name, "id", s.ID, "by", r.RemoteAddr, "detail", detail)
		writeJSON(w, http.StatusOK, NewSession(s))
	default:
		methodNotAllowed(w, r, "GET, DELETE")
	}
}

func notFound(name string) *Error {
	return errorf(http.StatusNotFound, CodeNotFound, "no live session is named %q", name)
}

// sanitize makes a kick reason fit for the rest of an ERR line: no control
// characters, at most maxReason bytes of valid UTF-8.
func sanitize(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	for len(s) > maxReason {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return strings.TrimSpace(s)
}

const maxReason = 200
