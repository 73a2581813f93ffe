package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

var testFiles = fstest.MapFS{
	"index.html":          {Data: []byte(`<!doctype html><title>Herald</title><script type="module" src="/assets/app.js"></script>`)},
	"assets/app.js":       {Data: []byte(`export const x = 1;`)},
	"assets/app.css":      {Data: []byte(`body{margin:0}`)},
	"assets/icon.svg":     {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)},
	"assets/views/ev.mjs": {Data: []byte(`export default 1;`)},
}

type answer struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, h http.Handler, method, target string, header ...string) answer {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return answer{rec.Code, rec.Result().Header, string(b)}
}

func TestHandlerServesFiles(t *testing.T) {
	t.Parallel()
	h := newHandler(testFiles)
	index := string(testFiles["index.html"].Data)
	for _, c := range []struct {
		target, contentType, cache, body string
	}{
		{"/", "text/html; charset=utf-8", "no-cache", index},
		{"/index.html", "text/html; charset=utf-8", "no-cache", index},
		{"/assets/app.js", "text/javascript; charset=utf-8", "public, max-age=3600", "export const x = 1;"},
		{"/assets/app.css", "text/css; charset=utf-8", "public, max-age=3600", "body{margin:0}"},
		{"/assets/icon.svg", "image/svg+xml", "public, max-age=3600", `<svg xmlns="http://www.w3.org/2000/svg"/>`},
		{"/assets/views/ev.mjs", "text/javascript; charset=utf-8", "public, max-age=3600", "export default 1;"},
		// Deep links: any path without a dot outside the API is a page.
		{"/events", "text/html; charset=utf-8", "no-cache", index},
		{"/events/0190a1b2-c3d4", "text/html; charset=utf-8", "no-cache", index},
		{"/subscriptions/sub_1?tab=attempts", "text/html; charset=utf-8", "no-cache", index},
		{"/v1x", "text/html; charset=utf-8", "no-cache", index},
	} {
		a := get(t, h, "GET", c.target)
		if a.status != 200 || a.header.Get("Content-Type") != c.contentType || a.header.Get("Cache-Control") != c.cache || a.body != c.body {
			t.Errorf("GET %s: %d %q %q %q, want 200 %q %q %q", c.target, a.status,
				a.header.Get("Content-Type"), a.header.Get("Cache-Control"), a.body, c.contentType, c.cache, c.body)
		}
		if got := a.header.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
			t.Errorf("GET %s: Content-Security-Policy %q, want %q", c.target, got, ContentSecurityPolicy)
		}
		if got := a.header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", c.target, got)
		}
	}
}

func TestHandlerNotFound(t *testing.T) {
	t.Parallel()
	h := newHandler(testFiles)
	for _, target := range []string{
		"/assets/missing.js",
		"/assets/views",    // a folder, not a file
		"/assets/nothing",  // no dot, but under /assets: not a page
		"/favicon.ico",     // a file name outside /assets that is not there
		"/events/data.csv", // a dot names a file
		"/v1",
		"/v1/events",
		"/v1/nothing/here",
		"/healthz",
		"/metrics",
		"/metrics/extra",
		"/assets/../v1/events",
	} {
		a := get(t, h, "GET", target)
		if a.status != 404 {
			t.Errorf("GET %s: %d, want 404", target, a.status)
		}
		if got := a.header.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
			t.Errorf("GET %s: Content-Security-Policy %q, want it on a 404 too", target, got)
		}
	}
}

func TestHandlerMethods(t *testing.T) {
	t.Parallel()
	h := newHandler(testFiles)
	a := get(t, h, "HEAD", "/assets/app.js")
	if a.status != 200 || a.body != "" || a.header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("HEAD /assets/app.js: %d %q body %q, want 200 with the type and no body", a.status, a.header.Get("Content-Type"), a.body)
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		a := get(t, h, m, "/")
		if a.status != 405 || a.header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /: %d Allow %q, want 405 GET, HEAD", m, a.status, a.header.Get("Allow"))
		}
	}
}

func TestHandlerRevalidates(t *testing.T) {
	t.Parallel()
	h := newHandler(testFiles)
	first := get(t, h, "GET", "/")
	etag := first.header.Get("ETag")
	if etag == "" {
		t.Fatal("GET /: no ETag")
	}
	if a := get(t, h, "GET", "/", "If-None-Match", etag); a.status != 304 {
		t.Errorf("GET / If-None-Match %s: %d, want 304", etag, a.status)
	}
	if other := get(t, h, "GET", "/assets/app.js").header.Get("ETag"); other == etag {
		t.Errorf("index.html and app.js share the ETag %s", etag)
	}
}

// TestEmbeddedApplication checks the application built into the binary:
// its page is served, and every file it names under /assets/ is there.
func TestEmbeddedApplication(t *testing.T) {
	t.Parallel()
	h := Handler()
	a := get(t, h, "GET", "/")
	if a.status != 200 || !strings.Contains(strings.ToLower(a.body), "<!doctype html>") {
		t.Fatalf("GET /: %d %.80q, want the application's page", a.status, a.body)
	}
	for _, ref := range assetRefs(a.body) {
		if r := get(t, h, "GET", ref); r.status != 200 {
			t.Errorf("index.html names %s, which answers %d", ref, r.status)
		}
	}
}

// assetRefs returns the /assets/ URLs a page names in src and href
// attributes.
func assetRefs(page string) []string {
	var refs []string
	for _, attr := range []string{`src="`, `href="`} {
		rest := page
		for {
			i := strings.Index(rest, attr)
			if i < 0 {
				break
			}
			rest = rest[i+len(attr):]
			j := strings.IndexByte(rest, '"')
			if j < 0 {
				break
			}
			if ref := rest[:j]; strings.HasPrefix(ref, "/assets/") {
				refs = append(refs, ref)
			}
		}
	}
	return refs
}
