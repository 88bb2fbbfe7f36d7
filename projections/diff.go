package projections

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// diff lists the rows of want (a replay) that got (the live tables) lacks or
// has otherwise, and the reverse, at most MaxDifferences per table and kind.
func diff(want, got *Model) []Difference {
	var out []Difference
	out = append(out, diffTable("shows", showsOf(want), showsOf(got), sameShow, showJSON)...)
	out = append(out, diffTable("seats", seatsOf(want), seatsOf(got), sameSeat, seatJSON)...)
	out = append(out, diffTable("bookings", bookingsOf(want), bookingsOf(got), sameBooking, bookingJSON)...)
	return out
}

func diffTable[K cmp.Ordered, R any](table string, want, got map[K]R, same func(a, b R) bool, asJSON func(R) map[string]any) []Difference {
	var out []Difference
	report := func(kind string, from, other map[K]R) {
		var keys []K
		for k, r := range from {
			if o, ok := other[k]; !ok || !same(r, o) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys[:min(len(keys), MaxDifferences)] {
			raw, _ := json.Marshal(asJSON(from[k]))
			out = append(out, Difference{Table: table, Kind: kind, Row: string(raw)})
		}
	}
	report("missing", want, got)
	report("unexpected", got, want)
	return out
}

func showsOf(m *Model) map[int64]*showRow {
	out := make(map[int64]*showRow, len(m.shows))
	for id, s := range m.shows {
		if !s.orphan {
			out[id] = s
		}
	}
	return out
}

type seatKey = string // "show/seat"

type seatOf struct {
	show int64
	seatRow
}

func seatsOf(m *Model) map[seatKey]seatOf {
	out := map[seatKey]seatOf{}
	for id, s := range m.shows {
		for _, seat := range s.seats {
			out[fmt.Sprintf("%d/%s", id, seat.number)] = seatOf{show: id, seatRow: seat}
		}
	}
	return out
}

// bookingsOf keys the bookings by their id's text, which orders the report.
func bookingsOf(m *Model) map[string]*bookingRow {
	out := make(map[string]*bookingRow, len(m.bookings))
	for id, b := range m.bookings {
		out[id.String()] = b
	}
	return out
}

func sameTime(a, b time.Time) bool { return recordedAt(a).Equal(recordedAt(b)) }

// sameNullTime compares two values of a nullable timestamptz column: NULL,
// ±infinity or a time.
func sameNullTime(a, b pgtype.Timestamptz) bool {
	return a.Valid == b.Valid && a.InfinityModifier == b.InfinityModifier && sameTime(a.Time, b.Time)
}

func sameShow(a, b *showRow) bool {
	return a.id == b.id && a.name == b.name && a.showType == b.showType && sameTime(a.start, b.start) &&
		a.total == b.total && a.available == b.available && a.ver == b.ver &&
		sameTime(a.createdAt, b.createdAt) && sameTime(a.updatedAt, b.updatedAt)
}

func sameSeat(a, b seatOf) bool {
	return a.show == b.show && a.number == b.number && a.position == b.position && a.status == b.status &&
		a.bookingID == b.bookingID && sameNullTime(a.lockedUntil, b.lockedUntil)
}

func sameBooking(a, b *bookingRow) bool {
	return a.id == b.id && a.userID == b.userID && a.showID == b.showID && slices.Equal(a.seats, b.seats) &&
		a.status == b.status && sameTime(a.createdAt, b.createdAt) && sameTime(a.expiresAt, b.expiresAt) &&
		sameTime(a.updatedAt, b.updatedAt) && sameNullTime(a.confirmedAt, b.confirmedAt) &&
		sameNullTime(a.expiredAt, b.expiredAt) && sameNullTime(a.cancelledAt, b.cancelledAt)
}

func ts(t time.Time) string { return recordedAt(t).Format(time.RFC3339Nano) }

// tsn is a nullable time's JSON.
func tsn(t pgtype.Timestamptz) any {
	switch {
	case !t.Valid:
		return nil
	case t.InfinityModifier != pgtype.Finite:
		return t.InfinityModifier.String()
	}
	return ts(t.Time)
}

// uuidn is a nullable id's JSON.
func uuidn(id pgtype.UUID) any {
	if !id.Valid {
		return nil
	}
	return uuid.UUID(id.Bytes).String()
}

func showJSON(s *showRow) map[string]any {
	return map[string]any{"id": s.id, "name": s.name, "show_type": s.showType, "start_time": ts(s.start),
		"total_seats": s.total, "available_seats": s.available, "version": s.ver,
		"created_at": ts(s.createdAt), "updated_at": ts(s.updatedAt)}
}

func seatJSON(s seatOf) map[string]any {
	return map[string]any{"show_id": s.show, "seat_number": s.number, "position": s.position, "status": s.status,
		"booking_id": uuidn(s.bookingID), "locked_until": tsn(s.lockedUntil)}
}

func bookingJSON(b *bookingRow) map[string]any {
	return map[string]any{"id": b.id.String(), "show_id": b.showID, "user_id": b.userID.String(), "seat_numbers": b.seats, "status": b.status,
		"created_at": ts(b.createdAt), "expires_at": ts(b.expiresAt), "confirmed_at": tsn(b.confirmedAt),
		"expired_at": tsn(b.expiredAt), "cancelled_at": tsn(b.cancelledAt), "updated_at": ts(b.updatedAt)}
}
