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

func TestCloneIsIndependent(t *testing.T) {
	t.Parallel()
	now := time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC)
	s := domain.NewShow()
	for _, c := range []domain.Command{
		domain.ScheduleShow{ShowID: 1, Name: "x", ShowType: domain.ShowBus, StartTime: now.Add(time.Hour), SeatNumbers: []string{"1", "2"}, Now: now},
		domain.LockSeats{BookingID: "b1", UserID: "u1", SeatNumbers: []string{"1"}, HoldTTL: time.Minute, Now: now},
	} {
		events, err := domain.Decide(s, c)
		require.NoError(t, err)
		for _, e := range events {
			s.Evolve(e)
		}
	}
	c := s.Clone()
	c.Evolve(domain.BookingConfirmed{BookingID: "b1", ConfirmedAt: now})
	c.Evolve(domain.SeatLocked{BookingID: "b2", UserID: "u2", SeatNumbers: []string{"2"}, ExpiresAt: now.Add(time.Minute)})
	b, _ := s.Booking("b1")
	assert.Equal(t, domain.StatusPending, b.Status, "the original is untouched")
	assert.Equal(t, 1, s.AvailableSeats())
	assert.Equal(t, 2, s.Version())
	assert.Equal(t, 0, c.AvailableSeats())
	assert.Equal(t, 4, c.Version())
	cb, _ := c.Booking("b1")
	assert.Equal(t, domain.StatusConfirmed, cb.Status)
}
