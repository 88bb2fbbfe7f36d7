package projections

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// diff lists the rows of want (a replay) that got (the live tables) lacks or
// has otherwise, and the reverse, at most MaxDifferences per table and kind.
func diff(want, got *Model) []Difference {
	var out []Difference
	out = append(out, diffTable("shows", rowsOfShows(want), rowsOfShows(got))...)
	out = append(out, diffTable("seats", rowsOfSeats(want), rowsOfSeats(got))...)
	out = append(out, diffTable("bookings", rowsOfBookings(want), rowsOfBookings(got))...)
	return out
}

// row is one table row as comparable values; times are normalized to UTC
// microseconds (what the tables keep) so equal rows compare equal.
type row map[string]any

func diffTable(table string, want, got map[string]row) []Difference {
	var out []Difference
	report := func(kind string, from, other map[string]row) {
		n := 0
		for _, key := range slices.Sorted(maps.Keys(from)) {
			if o, ok := other[key]; ok && equalRows(from[key], o) {
				continue
			}
			if n++; n > MaxDifferences {
				return
			}
			raw, _ := json.Marshal(from[key])
			out = append(out, Difference{Table: table, Kind: kind, Row: string(raw)})
		}
	}
	report("missing", want, got)
	report("unexpected", got, want)
	return out
}

func equalRows(a, b row) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		if fmt.Sprint(va) != fmt.Sprint(b[k]) {
			return false
		}
	}
	return true
}

func ts(t time.Time) string { return recordedAt(t).Format(time.RFC3339Nano) }

func tsp(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ts(*t)
}

func rowsOfShows(m *Model) map[string]row {
	out := map[string]row{}
	for id, s := range m.shows {
		if s.orphan {
			continue
		}
		out[fmt.Sprint(id)] = row{"id": s.id, "name": s.name, "show_type": s.showType, "start_time": ts(s.start),
			"total_seats": s.total, "available_seats": s.available, "version": s.ver,
			"created_at": ts(s.createdAt), "updated_at": ts(s.updatedAt)}
	}
	return out
}

func rowsOfSeats(m *Model) map[string]row {
	out := map[string]row{}
	for id, s := range m.shows {
		for _, seat := range s.seats {
			out[fmt.Sprintf("%d/%s", id, seat.number)] = row{"show_id": id, "seat_number": seat.number,
				"position": seat.position, "status": seat.status, "booking_id": seat.bookingID, "locked_until": tsp(seat.lockedUntil)}
		}
	}
	return out
}

func rowsOfBookings(m *Model) map[string]row {
	out := map[string]row{}
	for id, b := range m.bookings {
		out[id] = row{"id": b.id, "show_id": b.showID, "user_id": b.userID, "seat_numbers": b.seats, "status": b.status,
			"created_at": ts(b.createdAt), "expires_at": ts(b.expiresAt), "confirmed_at": tsp(b.confirmedAt),
			"expired_at": tsp(b.expiredAt), "cancelled_at": tsp(b.cancelledAt), "updated_at": ts(b.updatedAt)}
	}
	return out
}
