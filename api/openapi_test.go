package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/api"
	"github.com/bookingledger/ledger/users"
)

func TestOpenAPIDocumentIsValid(t *testing.T) {
	t.Parallel()
	c, err := loadContract()
	require.NoError(t, err)
	assert.True(t, c.doc.IsOpenAPI31OrLater(), "OpenAPI 3.1: %s", c.doc.OpenAPI)
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			assert.NotEmpty(t, op.OperationID, "%s %s has an operationId", method, path)
			assert.NotNil(t, op.Responses.Status(http.StatusInternalServerError), "%s %s documents 500 (recovered panics)", method, path)
			assert.NotNil(t, op.Responses.Status(http.StatusUnauthorized), "%s %s documents 401 (a bad token is refused everywhere)", method, path)
			for status, resp := range op.Responses.Map() {
				if status >= "400" {
					require.Len(t, resp.Value.Content, 1, "%s %s %s", method, path, status)
					mt := resp.Value.Content.Get("application/problem+json")
					require.NotNil(t, mt, "%s %s %s is problem+json", method, path, status)
					assert.Equal(t, "#/components/schemas/Problem", mt.Schema.Ref, "%s %s %s", method, path, status)
				}
			}
		}
	}
}

// standardMethods are RFC 9110's methods and PATCH. A route that answers
// every one of them was registered for any method (chi's Handle, as
// /metrics is): the document describes it by its GET.
var standardMethods = []string{"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}

func answersAnyMethod(methods []string) bool {
	for _, m := range standardMethods {
		if !slices.Contains(methods, m) {
			return false
		}
	}
	return true
}

// The document and the router list the same operations: every route is
// documented with its method, and every documented operation is a route.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	t.Parallel()
	cfg := api.DefaultConfig()
	cfg.JWTSecret = testSecret
	h, err := api.New(api.Deps{Config: cfg})
	require.NoError(t, err)
	routes, ok := api.Routes(h)
	require.True(t, ok, "api.New returns a chi router")

	methodsOf := map[string][]string{}
	require.NoError(t, chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		methodsOf[route] = append(methodsOf[route], method)
		return nil
	}))
	var served []string
	for route, methods := range methodsOf {
		if answersAnyMethod(methods) {
			methods = []string{http.MethodGet}
		}
		for _, m := range methods {
			served = append(served, m+" "+route)
		}
	}

	c, err := loadContract()
	require.NoError(t, err)
	var documented []string
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	sort.Strings(served)
	sort.Strings(documented)
	assert.Subset(t, documented, served, "every route is documented")
	assert.Subset(t, served, documented, "every documented operation is a route")
	assert.ElementsMatch(t, documented, served, "each exactly once")
}

// GET /api/openapi.json serves the embedded document as JSON, publicly.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("GET", "/api/openapi.json", "", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.True(t, json.Valid(r.body))
	assert.NotContains(t, string(r.body), `\u003c`, "no HTML escaping (the document has <token>)")

	loader := openapi3.NewLoader()
	served, err := loader.LoadFromData(r.body)
	require.NoError(t, err)
	require.NoError(t, served.Validate(context.Background()))
	c, err := loadContract()
	require.NoError(t, err)
	want, err := json.Marshal(c.doc)
	require.NoError(t, err)
	got, err := json.Marshal(served)
	require.NoError(t, err)
	assert.JSONEq(t, string(want), string(got), "the served JSON is openapi.yaml")

	// A token is not needed, and a user's is accepted.
	user, _ := e.login(users.RoleUser)
	assert.Equal(t, http.StatusOK, e.do("GET", "/api/openapi.json", user, nil).status)
}
