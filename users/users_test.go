package users_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/bookingledger/ledger/internal/pgtest"
	"github.com/bookingledger/ledger/users"
)

func TestCreateAndAuthenticate(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := users.NewStore(pool).WithCost(bcrypt.MinCost)
	ctx := context.Background()

	u, err := store.Create(ctx, "  Alice@Example.COM ", "correct horse", users.RoleAuditor)
	require.NoError(t, err)
	assert.Equal(t, "alice@example.com", u.Email)
	assert.Equal(t, users.RoleAuditor, u.Role)

	_, err = store.Create(ctx, "ALICE@example.com", "another password", users.RoleUser)
	require.ErrorIs(t, err, users.ErrEmailTaken)

	got, err := store.Authenticate(ctx, "alice@EXAMPLE.com", "correct horse")
	require.NoError(t, err)
	assert.Equal(t, u.ID, got.ID)
	assert.Equal(t, users.RoleAuditor, got.Role)

	_, err = store.Authenticate(ctx, "alice@example.com", "wrong horse")
	require.ErrorIs(t, err, users.ErrInvalidCredentials)
	_, err = store.Authenticate(ctx, "bob@example.com", "correct horse")
	require.ErrorIs(t, err, users.ErrInvalidCredentials)

	var hash string
	require.NoError(t, pool.QueryRow(ctx, `SELECT password_hash FROM users WHERE id = $1`, u.ID).Scan(&hash))
	assert.NotContains(t, hash, "correct horse")
	require.NoError(t, bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse")))
}

func TestCreateValidates(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := users.NewStore(pool).WithCost(bcrypt.MinCost)
	tests := []struct {
		name, email, password string
		role                  users.Role
		field                 string
	}{
		{"no at", "alice.example.com", "password1", users.RoleUser, "email"},
		{"display name", "Alice <alice@example.com>", "password1", users.RoleUser, "email"},
		{"no domain dot", "alice@localhost", "password1", users.RoleUser, "email"},
		{"not UTF-8", "x\xffy@example.com", "password1", users.RoleUser, "email"},
		{"short password", "a@example.com", "short", users.RoleUser, "password"},
		{"long password", "a@example.com", string(make([]byte, 73)), users.RoleUser, "password"},
		{"role", "a@example.com", "password1", "root", "role"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := store.Create(context.Background(), tc.email, tc.password, tc.role)
			require.ErrorIs(t, err, users.ErrInvalid)
			var inv *users.InvalidError
			require.ErrorAs(t, err, &inv)
			assert.Equal(t, tc.field, inv.Field)
		})
	}
}
