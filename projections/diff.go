package projections

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// diff lists the rows of want (a replay) that got (the live tables) lacks or
// has otherwise, and the reverse, at most MaxDifferences per table and kind,
// in key order. It compares the models where they stand, through their own
// maps and seat indexes: a million seats are not copied into new maps.
func diff(want, got *Model) []Difference {
	var shows, seats, bookings []Difference
	for _, d := range []struct {
		kind        string
		from, other *Model
	}{{"missing", want, got}, {"unexpected", got, want}} {
		shows = append(shows, showDiffs(d.kind, d.from, d.other)...)
		seats = append(seats, seatDiffs(d.kind, d.from, d.other)...)
		bookings = append(bookings, bookingDiffs(d.kind, d.from, d.other)...)
	}
	return slices.Concat(shows, seats, bookings)
}

// showDiffs reports the show rows of from that other lacks or has otherwise.
func showDiffs(kind string, from, other *Model) []Difference {
	var rows []*showRow
	for id, s := range from.shows {
		if o := other.shows[id]; !s.orphan && (o == nil || o.orphan || !sameShow(s, o)) {
			rows = append(rows, s)
		}
	}
	return differences("shows", kind, rows, func(a, b *showRow) int { return cmp.Compare(a.id, b.id) }, showJSON)
}

// seatDiffs reports the seat rows of from that other lacks or has otherwise.
func seatDiffs(kind string, from, other *Model) []Difference {
	var rows []seatOf
	for id, s := range from.shows {
		o := other.shows[id]
		for _, seat := range s.seats {
			if o != nil {
				if i, ok := o.seatIndex[seat.number]; ok && sameSeat(seat, o.seats[i]) {
					continue
				}
			}
			rows = append(rows, seatOf{show: id, seatRow: seat})
		}
	}
	return differences("seats", kind, rows, func(a, b seatOf) int {
		return cmp.Or(cmp.Compare(a.show, b.show), cmp.Compare(a.number, b.number))
	}, seatJSON)
}

// bookingDiffs reports the booking rows of from that other lacks or has
// otherwise.
func bookingDiffs(kind string, from, other *Model) []Difference {
	var rows []*bookingRow
	for id, b := range from.bookings {
		if o := other.bookings[id]; o == nil || !sameBooking(b, o) {
			rows = append(rows, b)
		}
	}
	return differences("bookings", kind, rows, func(a, b *bookingRow) int {
		return bytes.Compare(a.id[:], b.id[:]) // the order of their text as well
	}, bookingJSON)
}

// differences reports the first MaxDifferences of rows in key order.
func differences[R any](table, kind string, rows []R, compare func(a, b R) int, asJSON func(R) map[string]any) []Difference {
	slices.SortFunc(rows, compare)
	var out []Difference
	for _, r := range rows[:min(len(rows), MaxDifferences)] {
		raw, _ := json.Marshal(asJSON(r))
		out = append(out, Difference{Table: table, Kind: kind, Row: string(raw)})
	}
	return out
}

// seatOf is a seat row with its show.
type seatOf struct {
	show int64
	seatRow
}

func sameTime(a, b time.Time) bool { return recordedAt(a).Equal(recordedAt(b)) }

// sameNullTime compares two values of a nullable timestamptz column: NULL,
// ±infinity or a time.
func sameNullTime(a, b pgtype.Timestamptz) bool {
	return a.Valid == b.Valid && a.InfinityModifier == b.InfinityModifier && sameTime(a.Time, b.Time)
}

func sameShow(a, b *showRow) bool {
	return a.id == b.id && a.name == b.name && a.showType == b.showType && sameTime(a.start, b.start) &&
		a.total == b.total && a.available == b.available && a.ver == b.ver && a.maxSeatsPerUser == b.maxSeatsPerUser &&
		sameTime(a.createdAt, b.createdAt) && sameTime(a.updatedAt, b.updatedAt)
}

// sameSeat compares two seats of one show.
func sameSeat(a, b seatRow) bool {
	return a.number == b.number && a.position == b.position && a.status == b.status &&
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
		"total_seats": s.total, "available_seats": s.available, "version": s.ver, "max_seats_per_user": s.maxSeatsPerUser,
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
