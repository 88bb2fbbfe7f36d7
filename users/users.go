// Package users stores accounts: email, bcrypt password hash and role.
//
// Users live in the primary database; they are plain rows, not
// event-sourced — nothing about them needs an audit trail of seat changes.
package users

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/crypto/bcrypt"
)

// Role is what a user may do.
type Role string

// The roles of DESIGN.md.
const (
	RoleUser    Role = "user"
	RoleAdmin   Role = "admin"
	RoleAuditor Role = "auditor"
)

// ParseRole accepts the three role names.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleUser, RoleAdmin, RoleAuditor:
		return r, nil
	}
	return "", &InvalidError{Field: "role", Reason: "must be user, admin or auditor"}
}

// Password length limits. bcrypt reads at most 72 bytes.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 72
)

// Errors.
var (
	ErrInvalid            = errors.New("invalid user data")
	ErrEmailTaken         = errors.New("email already registered")
	ErrInvalidCredentials = errors.New("invalid email or password")
)

// InvalidError says which field is wrong.
type InvalidError struct {
	Field, Reason string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason) }

func (e *InvalidError) Unwrap() error { return ErrInvalid }

// User is an account, without its password hash.
type User struct {
	ID        uuid.UUID `json:"id"`
	Email     string    `json:"email"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

// DB is what the store needs.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Store keeps users.
type Store struct {
	db   DB
	cost int
}

// NewStore returns a store on db hashing with bcrypt's default cost.
func NewStore(db DB) *Store { return &Store{db: db, cost: bcrypt.DefaultCost} }

// WithCost returns a store hashing at another bcrypt cost (tests use MinCost).
func (s *Store) WithCost(cost int) *Store { return &Store{db: s.db, cost: cost} }

// NormalizeEmail validates an address and returns it trimmed and lower-cased.
func NormalizeEmail(email string) (string, error) {
	if !utf8.ValidString(email) {
		return "", &InvalidError{Field: "email", Reason: "must be UTF-8 text"}
	}
	email = strings.ToLower(strings.TrimSpace(email))
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > 254 || !strings.Contains(email[strings.LastIndexByte(email, '@'):], ".") {
		return "", &InvalidError{Field: "email", Reason: "must be an address like name@example.com"}
	}
	return email, nil
}

// Create adds a user. A client of the API never chooses role; operators do.
func (s *Store) Create(ctx context.Context, email, password string, role Role) (User, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return User{}, err
	}
	if len(password) < MinPasswordLen || len(password) > MaxPasswordLen {
		return User{}, &InvalidError{Field: "password", Reason: "must be 8 to 72 bytes"}
	}
	if _, err := ParseRole(string(role)); err != nil {
		return User{}, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return User{}, fmt.Errorf("hash password: %w", err)
	}
	u := User{ID: uuid.Must(uuid.NewV7()), Email: email, Role: role}
	err = s.db.QueryRow(ctx, `INSERT INTO users (id, email, password_hash, role) VALUES ($1, $2, $3, $4) RETURNING created_at`,
		u.ID, u.Email, string(hash), string(role)).Scan(&u.CreatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return User{}, fmt.Errorf("%s: %w", email, ErrEmailTaken)
	}
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// Authenticate returns the user whose email and password match.
func (s *Store) Authenticate(ctx context.Context, email, password string) (User, error) {
	var (
		u    User
		hash string
		role string
	)
	err := s.db.QueryRow(ctx, `SELECT id, email, password_hash, role, created_at FROM users WHERE lower(email) = lower($1)`,
		strings.TrimSpace(email)).Scan(&u.ID, &u.Email, &hash, &role, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		// Spend the time of a comparison anyway, so timing does not tell
		// which emails exist.
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return User{}, ErrInvalidCredentials
	}
	if err != nil {
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return User{}, ErrInvalidCredentials
	}
	u.Role = Role(role)
	return u, nil
}

var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("timing-equaliser"), bcrypt.DefaultCost)
	return h
})
