package domain_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookingledger/ledger/domain"
)

func TestGenerateSeatLabels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		typ   domain.ShowType
		n     int
		first []string
		last  string
	}{
		{"small movie", domain.ShowMovie, 25, []string{"A1", "A2"}, "C5"},
		{"big movie has 26 long rows", domain.ShowMovie, 10_000, []string{"A1"}, "Z375"},
		{"huge movie", domain.ShowMovie, 100_000, []string{"A1"}, "Z3825"},
		{"bus", domain.ShowBus, 40, []string{"1", "2"}, "40"},
		{"doctor", domain.ShowDoctor, 4, []string{"08:00", "08:15", "08:30"}, "08:45"},
		{"doctor past midnight", domain.ShowDoctor, 65, []string{"08:00"}, "d2 00:00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.GenerateSeatLabels(tc.typ, tc.n)
			require.NoError(t, err)
			require.Len(t, got, tc.n)
			assert.Equal(t, tc.first, got[:len(tc.first)])
			assert.Equal(t, tc.last, got[len(got)-1])
			seen := map[string]bool{}
			for _, l := range got {
				require.False(t, seen[l], "duplicate label %s", l)
				seen[l] = true
			}
			_, err = domain.Decide(domain.NewShow(), domain.ScheduleShow{ShowID: 1, Name: "x", ShowType: tc.typ,
				StartTime: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), SeatNumbers: got, Now: time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC)})
			require.NoError(t, err, "generated labels are valid seat numbers")
		})
	}
	for _, bad := range []struct {
		typ domain.ShowType
		n   int
	}{{domain.ShowMovie, 0}, {domain.ShowBus, 100_001}, {"opera", 10}} {
		_, err := domain.GenerateSeatLabels(bad.typ, bad.n)
		require.ErrorIs(t, err, domain.ErrInvalidCommand)
	}
}
