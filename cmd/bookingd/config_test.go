package main

import (
	"maps"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// MAX_SEATS_PER_USER sets the seats per user of new shows that name none:
// 10 by default, 0 for no cap, and anything else that is not 0 to 100000
// stops bookingd with an error naming the variable.
func TestConfigMaxSeatsPerUser(t *testing.T) {
	t.Parallel()
	base := map[string]string{"DATABASE_URL": "x", "JWT_SECRET": strings.Repeat("s", 32)}
	with := func(v string) map[string]string {
		m := maps.Clone(base)
		m["MAX_SEATS_PER_USER"] = v
		return m
	}
	cfg, err := loadConfig(env(base), "")
	require.NoError(t, err)
	assert.Equal(t, 10, cfg.API.MaxSeatsPerUser)
	for v, want := range map[string]int{"0": 0, "4": 4, "100000": 100_000} {
		cfg, err := loadConfig(env(with(v)), "")
		require.NoError(t, err, v)
		assert.Equal(t, want, cfg.API.MaxSeatsPerUser, v)
	}
	for _, v := range []string{"-1", "ten", "2.5", "100001", " 3"} {
		_, err := loadConfig(env(with(v)), "")
		require.Error(t, err, v)
		assert.Contains(t, err.Error(), `MAX_SEATS_PER_USER="`+v+`"`)
		assert.Contains(t, err.Error(), "0 (no cap) to 100000")
	}
}
