package api_test

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/users"
)

func TestRegisterAndLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	r := e.do("POST", "/api/auth/register", "", map[string]string{"email": "Ann@Example.com", "password": "long enough"})
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	got := r.json(t)
	assert.Equal(t, "ann@example.com", got["email"])
	assert.Equal(t, "user", got["role"])
	_, err := uuid.Parse(got["id"].(string))
	require.NoError(t, err)

	requireProblem(t, e.do("POST", "/api/auth/register", "", map[string]string{"email": "ann@example.com", "password": "long enough"}), http.StatusConflict)
	requireProblem(t, e.do("POST", "/api/auth/register", "", map[string]string{"email": "not-an-email", "password": "long enough"}), http.StatusUnprocessableEntity)
	requireProblem(t, e.do("POST", "/api/auth/register", "", map[string]string{"email": "bo@example.com", "password": "short"}), http.StatusUnprocessableEntity)
	// A client never chooses its role: the field is refused outright.
	p := requireProblem(t, e.do("POST", "/api/auth/register", "", map[string]string{"email": "eve@example.com", "password": "long enough", "role": "admin"}), http.StatusBadRequest)
	assert.Contains(t, p["detail"], "role")
	requireProblem(t, e.do("POST", "/api/auth/register", "", `{"email": "x@example.com"`), http.StatusBadRequest)
	requireProblem(t, e.do("POST", "/api/auth/register", "", `{"email":"x@example.com","password":"long enough"} {}`), http.StatusBadRequest)

	r = e.do("POST", "/api/auth/login", "", map[string]string{"email": "ann@example.com", "password": "long enough"})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	login := r.json(t)
	token := login["token"].(string)
	expires, err := time.Parse(time.RFC3339Nano, login["expires_at"].(string))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(24*time.Hour), expires, time.Minute)

	var c jwt.MapClaims
	_, _, err = jwt.NewParser().ParseUnverified(token, &c)
	require.NoError(t, err)
	assert.Equal(t, got["id"], c["sub"])
	assert.Equal(t, "ann@example.com", c["email"])
	assert.Equal(t, "user", c["role"])

	r = e.do("GET", "/api/bookings", token, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.JSONEq(t, `{"bookings": []}`, string(r.body))

	requireProblem(t, e.do("POST", "/api/auth/login", "", map[string]string{"email": "ann@example.com", "password": "wrong password"}), http.StatusUnauthorized)
	requireProblem(t, e.do("POST", "/api/auth/login", "", map[string]string{"email": "nobody@example.com", "password": "long enough"}), http.StatusUnauthorized)
}

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return s
}

// Tokens that must never authenticate: each is refused with 401.
func TestTokenAttacks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, userID := e.login(users.RoleUser)
	valid := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": userID, "email": "x@example.com", "role": "admin", "iss": "bookingledger",
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	noneToken := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid())
	expired := valid()
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	noExp := valid()
	delete(noExp, "exp")
	badRole := valid()
	badRole["role"] = "root"
	otherIssuer := valid()
	otherIssuer["iss"] = "someone-else"
	badSubject := valid()
	badSubject["sub"] = "42"

	tests := map[string]string{
		"alg none":             noneToken,
		"signed with RS256":    sign(t, jwt.SigningMethodRS256, rsaKey, valid()),
		"HS384 with our key":   sign(t, jwt.SigningMethodHS384, testSecret, valid()),
		"another secret":       sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), valid()),
		"expired":              sign(t, jwt.SigningMethodHS256, testSecret, expired),
		"no expiry":            sign(t, jwt.SigningMethodHS256, testSecret, noExp),
		"unknown role":         sign(t, jwt.SigningMethodHS256, testSecret, badRole),
		"other issuer":         sign(t, jwt.SigningMethodHS256, testSecret, otherIssuer),
		"subject not a uuid":   sign(t, jwt.SigningMethodHS256, testSecret, badSubject),
		"garbage":              "not.a.token",
		"tampered payload":     tamper(sign(t, jwt.SigningMethodHS256, testSecret, valid())),
		"empty after bearer":   " ",
		"basic scheme instead": "",
	}
	for name, token := range tests {
		t.Run(name, func(t *testing.T) {
			var r response
			if name == "basic scheme instead" {
				r = e.do("GET", "/api/events", "", nil, "Authorization", "Basic YWRtaW46YWRtaW4=")
			} else {
				r = e.do("GET", "/api/events", "", nil, "Authorization", "Bearer "+token)
			}
			requireProblem(t, r, http.StatusUnauthorized)
			assert.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
		})
	}
	// The same claims signed properly do get through: the refusals above are
	// about the token, not the claims.
	r := e.do("GET", "/api/events", sign(t, jwt.SigningMethodHS256, testSecret, valid()), nil)
	assert.Equal(t, http.StatusOK, r.status, "%s", r.body)
}

func tamper(token string) string {
	parts := strings.Split(token, ".")
	parts[1] = parts[1][:len(parts[1])-2] + "AA"
	return strings.Join(parts, ".")
}

func TestRoles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user, _ := e.login(users.RoleUser)
	admin, _ := e.login(users.RoleAdmin)
	auditor, _ := e.login(users.RoleAuditor)
	show := e.createShow(admin, map[string]any{"total_seats": 4})
	e.waitShow(show, 1)
	showPath := fmt.Sprintf("/api/shows/%d", show)

	tests := []struct {
		name, method, path, token string
		body                      any
		want                      int
	}{
		{"anonymous lists shows", "GET", "/api/shows", "", nil, http.StatusOK},
		{"anonymous reads a show", "GET", showPath, "", nil, http.StatusOK},
		{"anonymous cannot book", "POST", "/api/bookings", "", map[string]any{"show_id": show, "seat_numbers": []string{"1"}}, http.StatusUnauthorized},
		{"anonymous cannot list bookings", "GET", "/api/bookings", "", nil, http.StatusUnauthorized},
		{"user cannot create shows", "POST", "/api/shows", user, map[string]any{"name": "x", "show_type": "bus", "total_seats": 3}, http.StatusForbidden},
		{"auditor cannot create shows", "POST", "/api/shows", auditor, map[string]any{"name": "x", "show_type": "bus", "total_seats": 3}, http.StatusForbidden},
		{"user cannot read the global stream", "GET", "/api/events", user, nil, http.StatusForbidden},
		{"user cannot read a show's stream", "GET", showPath + "/events", user, nil, http.StatusForbidden},
		{"auditor reads the global stream", "GET", "/api/events", auditor, nil, http.StatusOK},
		{"auditor does not book", "POST", "/api/bookings", auditor, map[string]any{"show_id": show, "seat_numbers": []string{"1"}}, http.StatusForbidden},
		{"admin reads a show's stream", "GET", showPath + "/events", admin, nil, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.token, tc.body)
			assert.Equal(t, tc.want, r.status, "%s", r.body)
			if tc.want >= 400 {
				requireProblem(t, r, tc.want)
			}
		})
	}
}
