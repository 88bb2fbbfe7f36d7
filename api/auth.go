package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/bookingledger/ledger/internal/logctx"
	"github.com/bookingledger/ledger/users"
)

// claims are the JWT's claims: the user id is the subject.
type claims struct {
	Email string     `json:"email"`
	Role  users.Role `json:"role"`
	jwt.RegisteredClaims
}

const tokenIssuer = "bookingledger"

// issueToken signs an HS256 token for u valid until expires.
func (s *server) issueToken(u users.User, now time.Time) (string, time.Time, error) {
	expires := now.Add(s.Config.TokenTTL)
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{
		Email: u.Email,
		Role:  u.Role,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   u.ID.String(),
			Issuer:    tokenIssuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(expires),
			ID:        uuid.NewString(),
		},
	})
	signed, err := t.SignedString(s.Config.JWTSecret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return signed, expires, nil
}

// errUnauthenticated: no usable bearer token where one is required.
var errUnauthenticated = errors.New("authentication required")

// principal is the authenticated caller.
type principal struct {
	UserID uuid.UUID
	Email  string
	Role   users.Role
}

type principalKey struct{}

func principalFrom(ctx context.Context) (principal, bool) {
	p, ok := ctx.Value(principalKey{}).(principal)
	return p, ok
}

// verifyToken accepts only HS256 tokens signed with our secret, issued by
// us, unexpired, naming a user id and a known role. "alg: none" and tokens
// signed with other algorithms (the RS/HS confusion) are refused by pinning
// the method list.
func (s *server) verifyToken(raw string) (principal, error) {
	var c claims
	_, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return s.Config.JWTSecret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(tokenIssuer),
		jwt.WithTimeFunc(s.Now),
		jwt.WithLeeway(5*time.Second),
	)
	if err != nil {
		return principal{}, err
	}
	id, err := uuid.Parse(c.Subject)
	if err != nil {
		return principal{}, fmt.Errorf("token subject: %w", err)
	}
	if _, err := users.ParseRole(string(c.Role)); err != nil {
		return principal{}, err
	}
	return principal{UserID: id, Email: c.Email, Role: c.Role}, nil
}

// authenticate reads a bearer token when there is one. A present but invalid
// token is refused at once (401), even on public routes: a client that sends
// credentials should learn they are bad.
func (s *server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		if h == "" {
			next.ServeHTTP(w, r)
			return
		}
		scheme, raw, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || raw == "" {
			s.unauthorized(w, r, "the Authorization header must be: Bearer <token>")
			return
		}
		p, err := s.verifyToken(strings.TrimSpace(raw))
		if err != nil {
			s.unauthorized(w, r, "invalid or expired token")
			return
		}
		ctx := context.WithValue(r.Context(), principalKey{}, p)
		logctx.SetUser(ctx, p.UserID.String())
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (s *server) unauthorized(w http.ResponseWriter, r *http.Request, detail string) {
	s.writeError(w, r, refuse(errUnauthenticated, "%s", detail))
}

// requireRole lets through authenticated callers with one of roles: 401
// without a token, 403 with another role.
func (s *server) requireRole(roles ...users.Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := principalFrom(r.Context())
			if !ok {
				s.unauthorized(w, r, "log in and send the token as: Authorization: Bearer <token>")
				return
			}
			if !slices.Contains(roles, p.Role) {
				s.writeError(w, r, forbidden("this call needs the role %s", joinRoles(roles)))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func joinRoles(roles []users.Role) string {
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	return strings.Join(names, " or ")
}

type credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (s *server) register(w http.ResponseWriter, r *http.Request) {
	var in credentials
	if err := s.decode(w, r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	u, err := s.Users.Create(r.Context(), in.Email, in.Password, users.RoleUser)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": u.ID, "email": u.Email, "role": u.Role})
}

func (s *server) login(w http.ResponseWriter, r *http.Request) {
	var in credentials
	if err := s.decode(w, r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	u, err := s.Users.Authenticate(r.Context(), in.Email, in.Password)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	token, expires, err := s.issueToken(u, s.Now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": token, "expires_at": expires.UTC(), "token_type": "Bearer"})
}
