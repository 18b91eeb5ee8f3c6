// Package ui is pulse's live dashboard: a single page, written by hand in
// plain HTML, CSS and JavaScript, embedded in the binary, that lists the
// live sessions and the latest events and follows the event stream of the
// HTTP API. It needs nothing from the network but the API that serves it.
//
// Mount Handler where the API is served: the page asks for v1/sessions and
// v1/events relative to its own address.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed index.html app.js style.css favicon.svg
var files embed.FS

// contentTypes gives the Content-Type of each kind of file embedded.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// csp allows the page its own files and its own API, and nothing else: no
// inline script, no other origin.
const csp = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'"

// file is one embedded file, ready to serve.
type file struct {
	body        []byte
	contentType string
	etag        string
}

// Handler returns the handler of the dashboard's files: the page at "/",
// and its script, style sheet and icon beside it. Any other path is 404;
// no directory is listed. Each answer says Cache-Control: no-cache, so that
// a browser revalidates (by ETag) and picks up a new version at once.
func Handler() http.Handler {
	h := handler{}
	entries, err := files.ReadDir(".")
	if err != nil {
		panic(err) // cannot happen: the files are embedded
	}
	for _, e := range entries {
		body, err := files.ReadFile(e.Name())
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(body)
		h["/"+e.Name()] = &file{
			body:        body,
			contentType: contentTypes[path.Ext(e.Name())],
			etag:        `"` + hex.EncodeToString(sum[:8]) + `"`,
		}
	}
	h["/"] = h["/index.html"]
	delete(h, "/index.html")
	return h
}

// handler maps each path it serves to its file.
type handler map[string]*file

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := h[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", f.contentType)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", f.etag)
	hdr.Set("X-Content-Type-Options", "nosniff")
	if strings.HasPrefix(f.contentType, "text/html") {
		hdr.Set("Content-Security-Policy", csp)
		hdr.Set("Referrer-Policy", "no-referrer")
	}
	// ServeContent answers If-None-Match with 304 and handles HEAD and
	// ranges; the zero time leaves Last-Modified out.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}
