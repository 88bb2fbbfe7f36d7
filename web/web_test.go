package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
)

func get(h http.Handler, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestServesTheBuiltApp(t *testing.T) {
	app := fstest.MapFS{
		"index.html":          {Data: []byte("<html>app</html>")},
		"assets/index-abc.js": {Data: []byte("console.log(1)")},
		"favicon.svg":         {Data: []byte("<svg/>")},
	}
	h := handler(app, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))

	for _, path := range []string{"/", "/index.html", "/shows/12", "/bookings"} {
		rec := get(h, path)
		assert.Equal(t, http.StatusOK, rec.Code, path)
		assert.Equal(t, "<html>app</html>", rec.Body.String(), "%s: routes of the app get index.html", path)
		assert.Equal(t, "no-cache", rec.Header().Get("Cache-Control"), path)
	}
	rec := get(h, "/assets/index-abc.js")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "public, max-age=31536000, immutable", rec.Header().Get("Cache-Control"), "hashed assets are cached for good")
	rec = get(h, "/favicon.svg")
	assert.Equal(t, "no-cache", rec.Header().Get("Cache-Control"))
	assert.Equal(t, http.StatusTeapot, get(h, "/assets/gone-123.js").Code, "a missing file is not the app")
	assert.Equal(t, http.StatusTeapot, get(h, "/assets/").Code, "no directory listings")

	// index.html is revalidated by its ETag.
	etag := get(h, "/").Header().Get("ETag")
	assert.NotEmpty(t, etag)
	req := httptest.NewRequest(http.MethodGet, "/shows/3", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusNotModified, rec.Code)

	// Every answer carries the security headers; text is gzipped on request.
	rec = get(h, "/")
	assert.Contains(t, rec.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'")
	assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
	assert.Equal(t, "DENY", rec.Header().Get("X-Frame-Options"))
	req = httptest.NewRequest(http.MethodGet, "/assets/index-abc.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, "gzip", rec.Header().Get("Content-Encoding"))
}

func TestPlaceholderWhenNotBuilt(t *testing.T) {
	h := handler(fstest.MapFS{}, nil)
	rec := get(h, "/shows/1")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), "has not been built")
	assert.Contains(t, rec.Body.String(), "make web")
	assert.Equal(t, http.StatusNotFound, get(h, "/assets/index-abc.js").Code, "no file is the placeholder")
}
