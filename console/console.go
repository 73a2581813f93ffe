package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every answer of the console: the
// application loads scripts, styles and data from its own origin only,
// runs no inline code, and may not be framed.
const ContentSecurityPolicy = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"

// Cache-Control values: index.html is checked on every load (its ETag
// makes that cheap), so a new binary's application is picked up at
// once; the assets it names are kept for an hour.
const (
	cacheIndex  = "no-cache"
	cacheAssets = "public, max-age=3600"
)

// apiPrefixes are the paths that belong to the API, never to the console:
// a mistyped API URL must not answer with the application's page.
var apiPrefixes = []string{"/v1", "/healthz", "/metrics"}

// contentTypes names the types of the files the application is made of,
// so that the answer does not depend on the host's mime.types.
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".json":  "application/json",
	".map":   "application/json",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".webp":  "image/webp",
	".woff2": "font/woff2",
	".txt":   "text/plain; charset=utf-8",
}

// Handler returns the handler that serves the embedded application.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic("console: " + err.Error()) // static is embedded: it is always there
	}
	return newHandler(sub)
}

// file is one file of the application, read once.
type file struct {
	data        []byte
	etag        string
	contentType string
}

type handler struct {
	index  *file // nil when the tree has no index.html
	assets map[string]*file
}

// newHandler reads every file of fsys: the tree is small and never
// changes while the process runs.
func newHandler(fsys fs.FS) *handler {
	h := &handler{assets: map[string]*file{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		f := &file{data: data, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: contentType(p)}
		if p == "index.html" {
			h.index = f
		} else {
			h.assets["/"+p] = f
		}
		return nil
	})
	if err != nil {
		panic("console: read the embedded files: " + err.Error())
	}
	return h
}

func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// isAPIPath reports whether p is under /v1, /healthz or /metrics, the
// paths the console never answers.
func isAPIPath(p string) bool {
	for _, prefix := range apiPrefixes {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return true
		}
	}
	return false
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := path.Clean("/" + r.URL.Path)
	if isAPIPath(p) {
		http.NotFound(w, r)
		return
	}
	if f, ok := h.assets[p]; ok {
		h.serve(w, r, f, cacheAssets)
		return
	}
	// A path without a dot in its last segment is one of the
	// application's pages (the application routes on the fragment, but
	// a link to /events must not end in a 404); one with a dot names a
	// file, which is missing.
	if p == "/index.html" || (!strings.HasPrefix(p, "/assets/") && !strings.Contains(path.Base(p), ".")) {
		if h.index == nil {
			http.NotFound(w, r)
			return
		}
		h.serve(w, r, h.index, cacheIndex)
		return
	}
	http.NotFound(w, r)
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request, f *file, cache string) {
	hdr := w.Header()
	hdr.Set("Content-Type", f.contentType)
	hdr.Set("Cache-Control", cache)
	hdr.Set("ETag", f.etag)
	// ServeContent answers HEAD, ranges and If-None-Match; the zero
	// modification time leaves Last-Modified out (embedded files have
	// none).
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.data))
}
