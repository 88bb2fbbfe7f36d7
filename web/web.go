// Package web serves the booking web app: the React single-page app built
// from this folder by Vite into dist/app and embedded into bookingd.
//
// Built assets under /assets/ carry a content hash in their names and are
// cached for a year; index.html is revalidated on every load. Any other path
// without a file extension is a route of the app and gets index.html (SPA
// fallback). When the app has not been built (a plain `go build` without
// Node.js), every page says so and names the command that builds it.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/go-chi/chi/v5/middleware"
)

//go:embed all:dist
var dist embed.FS

// placeholder is served when dist/app has not been built.
const placeholder = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Booking ledger</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem">
<h1>Booking ledger</h1>
<p>The web app has not been built into this binary. Run <code>make web</code> (it needs Node.js and npm)
and build <code>bookingd</code> again, or use <code>make run</code>, which does both.</p>
<p>The API works without it: see <a href="/api/openapi.json">/api/openapi.json</a> and the README.</p>
</body></html>
`

// Built reports whether the app was built into this binary.
func Built() bool {
	_, err := fs.Stat(dist, "dist/app/index.html")
	return err == nil
}

// Handler serves the app; requests for files that do not exist are passed
// to notFound (nil: a plain 404). Text responses are gzipped for clients
// that accept it.
func Handler(notFound http.Handler) http.Handler {
	app, _ := fs.Sub(dist, "dist/app")
	return handler(app, notFound)
}

// contentSecurityPolicy allows the app's own scripts, styles, API calls and
// live feed, the data: icon, and nothing else; no page may frame it.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// handler serves the built app in app (the placeholder when it has no
// index.html).
func handler(app fs.FS, notFound http.Handler) http.Handler {
	if notFound == nil {
		notFound = http.NotFoundHandler()
	}
	compress := middleware.Compress(5, "text/html", "text/css", "text/javascript", "application/javascript", "image/svg+xml", "application/json")
	if _, err := fs.Stat(app, "index.html"); err != nil {
		return secure(compress(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if path.Ext(r.URL.Path) != "" { // a file, not a page: there is none
				notFound.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			http.ServeContent(w, r, "index.html", time.Time{}, strings.NewReader(placeholder))
		})))
	}
	index, _ := fs.ReadFile(app, "index.html")
	sum := sha256.Sum256(index)
	indexTag := `"` + hex.EncodeToString(sum[:8]) + `"`
	files := http.FileServerFS(app)
	return secure(compress(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		if name == "" || name == "index.html" {
			serveIndex(w, r, index, indexTag)
			return
		}
		info, err := fs.Stat(app, name)
		switch {
		case err != nil && path.Ext(name) == "":
			serveIndex(w, r, index, indexTag) // a route of the app
			return
		case err != nil || info.IsDir(): // no file there, and no directory listings
			notFound.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(name, "assets/") {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})))
}

// secure adds the headers every page of the app carries.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// serveIndex answers with index.html, revalidated by its ETag.
func serveIndex(w http.ResponseWriter, r *http.Request, index []byte, etag string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", etag)
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(index))
}
