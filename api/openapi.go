package api

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"go.yaml.in/yaml/v3"
)

// openAPISpec is the OpenAPI 3.1 description of the REST contract as this
// package implements it. The package's tests load and validate it, check
// that it lists exactly the router's routes, and validate every response
// they get against it.
//
//go:embed openapi.yaml
var openAPISpec []byte

// openAPIJSON is openAPISpec as JSON, converted once on first use.
var openAPIJSON = sync.OnceValues(func() ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(openAPISpec, &doc); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("openapi.yaml as JSON: %w", err)
	}
	return buf.Bytes(), nil
})

// openAPI serves the OpenAPI document as JSON.
func (s *server) openAPI(w http.ResponseWriter, r *http.Request) {
	body, err := openAPIJSON()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeRawJSON(w, http.StatusOK, body)
}
