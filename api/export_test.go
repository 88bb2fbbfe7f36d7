package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// OpenAPISpec is the embedded OpenAPI document (openapi.yaml), for the
// black-box tests.
var OpenAPISpec = openAPISpec

// Routes returns the chi routes behind a handler made by New, for walking.
func Routes(h http.Handler) (chi.Routes, bool) {
	r, ok := h.(chi.Routes)
	return r, ok
}
