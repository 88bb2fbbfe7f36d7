package projections

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bookingledger/ledger/domain"
)

// A batchPlan is a batch of events folded into a handful of set-based
// statements: one guarded UPDATE of every show the batch touches, one INSERT
// of the holds it places, one UPDATE of the bookings placed before it and two
// of the seats. Under load the projector's cost is per statement, not per
// row, so projecting a batch this way costs about as much as projecting a few
// of its events one by one.
//
// Folding keeps the events' order: each show's events are consecutive
// versions, applied to the show's, booking's and seat's state as the
// per-event statements would, and only the final state of each row is
// written. The guard holds for the whole batch: every show must be at the
// version before its first event. When it is not (a duplicate delivery, a
// gap), the batch's statements are rolled back to a savepoint and the events
// are applied one by one, where each event's own guard tells a duplicate from
// a gap.
type batchPlan struct {
	scheduled []statement // ShowScheduled inserts, in stream order

	shows     map[domain.ShowID]*showChange
	showOrder []domain.ShowID

	bookings     map[domain.BookingID]*bookingChange
	bookingOrder []domain.BookingID

	// booked are confirmations of holds placed before the batch: their
	// seats are found by booking id, before the seat changes apply.
	booked []bookingRef

	seats     map[batchSeat]*seatChange
	seatOrder []batchSeat
}

type showChange struct {
	first, last int // stream versions of the show's first and last event in the batch
	delta       int // change of available seats
	at          time.Time
}

type bookingChange struct {
	show    domain.ShowID
	placed  bool // its SeatLocked is in the batch: the row is inserted
	user    domain.UserID
	seats   []string
	status  domain.BookingStatus
	created time.Time
	expires time.Time
	// confirmed, expired and cancelled are set when the batch sets them.
	confirmed, expired, cancelled *time.Time
	updated                       time.Time
}

type bookingRef struct {
	show    domain.ShowID
	booking domain.BookingID
}

type batchSeat struct {
	show domain.ShowID
	seat string
}

type seatChange struct {
	// expect is the booking the seat must hold for the change to apply,
	// when the batch first touched the seat by releasing that booking ("" when
	// it first locked it: a lock applies to the seat as it is).
	expect  domain.BookingID
	status  domain.SeatStatus
	booking domain.BookingID // "" for none
	until   *time.Time
}

// planBatch folds statements' events into a batchPlan. It returns false when
// the batch cannot be folded (a show's events are not consecutive versions),
// which the per-event path reports precisely.
func planBatch(sts []statement) (*batchPlan, bool) {
	p := &batchPlan{
		shows:    map[domain.ShowID]*showChange{},
		bookings: map[domain.BookingID]*bookingChange{},
		seats:    map[batchSeat]*seatChange{},
	}
	scheduledNow := map[domain.ShowID]int{} // shows scheduled in the batch, at their version
	for _, st := range sts {
		e, at := st.event, st.event.RecordedAt
		if _, ok := st.decoded.(domain.ShowScheduled); ok {
			if _, seen := p.shows[st.show]; seen {
				return nil, false
			}
			if _, seen := scheduledNow[st.show]; seen {
				return nil, false
			}
			scheduledNow[st.show] = e.StreamVersion
			p.scheduled = append(p.scheduled, st)
			continue
		}
		sc := p.shows[st.show]
		switch {
		case sc == nil:
			if v, ok := scheduledNow[st.show]; ok && v != e.StreamVersion-1 {
				return nil, false
			}
			sc = &showChange{first: e.StreamVersion, last: e.StreamVersion - 1}
			p.shows[st.show] = sc
			p.showOrder = append(p.showOrder, st.show)
		case sc.last != e.StreamVersion-1:
			return nil, false
		}
		sc.last, sc.at = e.StreamVersion, at

		switch ev := st.decoded.(type) {
		case domain.SeatLocked:
			if _, seen := p.bookings[ev.BookingID]; seen {
				return nil, false
			}
			sc.delta -= len(ev.SeatNumbers)
			p.addBooking(ev.BookingID, &bookingChange{
				show: st.show, placed: true, user: ev.UserID, seats: ev.SeatNumbers,
				status: domain.StatusPending, created: at, expires: ev.ExpiresAt, updated: at,
			})
			until := ev.ExpiresAt
			for _, n := range ev.SeatNumbers {
				c := p.seat(st.show, n, "")
				// A lock writes the seat whatever it held before.
				c.expect, c.status, c.booking, c.until = "", domain.SeatStatusLocked, ev.BookingID, &until
			}
		case domain.BookingConfirmed:
			b := p.booking(st.show, ev.BookingID)
			confirmed := ev.ConfirmedAt
			b.status, b.confirmed, b.updated = domain.StatusConfirmed, &confirmed, at
			if !b.placed {
				p.booked = append(p.booked, bookingRef{show: st.show, booking: ev.BookingID})
				continue
			}
			for _, n := range b.seats {
				if c := p.seats[batchSeat{st.show, n}]; c != nil && c.booking == ev.BookingID {
					c.status, c.until = domain.SeatStatusBooked, nil
				}
			}
		case domain.BookingExpired:
			p.release(st.show, sc, ev.BookingID, ev.SeatNumbers, domain.StatusExpired, at)
		case domain.BookingCancelled:
			p.release(st.show, sc, ev.BookingID, ev.SeatNumbers, domain.StatusCancelled, at)
		}
	}
	return p, true
}

func (p *batchPlan) addBooking(id domain.BookingID, b *bookingChange) {
	p.bookings[id] = b
	p.bookingOrder = append(p.bookingOrder, id)
}

// booking is the batch's change of a booking, started when the batch first
// names a booking placed before it.
func (p *batchPlan) booking(show domain.ShowID, id domain.BookingID) *bookingChange {
	if b := p.bookings[id]; b != nil {
		return b
	}
	b := &bookingChange{show: show}
	p.addBooking(id, b)
	return b
}

// seat is the batch's change of a seat; expect is the booking the seat holds
// when the batch first touches it by releasing that booking.
func (p *batchPlan) seat(show domain.ShowID, n string, expect domain.BookingID) *seatChange {
	k := batchSeat{show, n}
	if c := p.seats[k]; c != nil {
		return c
	}
	c := &seatChange{expect: expect}
	p.seats[k] = c
	p.seatOrder = append(p.seatOrder, k)
	return c
}

func (p *batchPlan) release(show domain.ShowID, sc *showChange, id domain.BookingID, seats []string, to domain.BookingStatus, at time.Time) {
	b := p.booking(show, id)
	b.status, b.updated = to, at
	stamp := at
	if to == domain.StatusExpired {
		b.expired = &stamp
	} else {
		b.cancelled = &stamp
	}
	sc.delta += len(seats)
	for _, n := range seats {
		c, known := p.seats[batchSeat{show, n}]
		if known && c.booking != id {
			continue // the per-event statement frees only the booking's own seats
		}
		if !known {
			c = p.seat(show, n, id)
		}
		c.status, c.booking, c.until = domain.SeatStatusAvailable, "", nil
	}
}

// asyncCommit lets the projector's transaction commit without waiting for
// its WAL to reach the disk. The projection is derived data and its
// checkpoint commits with it: a crash can only lose the last few batches
// whole, tables and checkpoint together, and the projector projects them
// again from the events, which were committed durably.
const asyncCommit = `SET LOCAL synchronous_commit = off`

// keyedJoins make the batch's UPDATEs find their rows by primary key. The
// planner cannot know how many rows an unnest of a parameter yields; on a
// large batch it would hash the whole seats table to update a few thousand
// of its rows.
var keyedJoins = []string{`SET LOCAL enable_hashjoin = off`, `SET LOCAL enable_mergejoin = off`}

// The batch's statements. Arrays travel as parameters, one element per row.
const (
	batchShowsSQL = `
		UPDATE shows s SET version = u.last, available_seats = s.available_seats + u.delta, updated_at = u.at
		FROM unnest($1::bigint[], $2::int[], $3::int[], $4::int[], $5::timestamptz[]) AS u(id, first, last, delta, at)
		WHERE s.id = u.id AND s.version = u.first - 1`
	batchInsertBookingsSQL = `
		INSERT INTO bookings (id, show_id, user_id, seat_numbers, status, created_at, expires_at, confirmed_at, expired_at, cancelled_at, updated_at)
		SELECT u.id, u.show_id, u.user_id, string_to_array(u.seats, chr(31)), u.status, u.created, u.expires, u.confirmed, u.expired, u.cancelled, u.updated
		FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[],
			$8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[])
			AS u(id, show_id, user_id, seats, status, created, expires, confirmed, expired, cancelled, updated)`
	batchUpdateBookingsSQL = `
		UPDATE bookings b SET status = u.status, updated_at = u.updated,
			confirmed_at = coalesce(u.confirmed, b.confirmed_at),
			expired_at = coalesce(u.expired, b.expired_at),
			cancelled_at = coalesce(u.cancelled, b.cancelled_at)
		FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[], $7::timestamptz[])
			AS u(id, show_id, status, confirmed, expired, cancelled, updated)
		WHERE b.id = u.id AND b.show_id = u.show_id`
	batchBookSeatsSQL = `
		UPDATE seats s SET status = 'booked', locked_until = NULL
		FROM unnest($1::bigint[], $2::uuid[]) AS u(show_id, booking_id)
		WHERE s.show_id = u.show_id AND s.booking_id = u.booking_id`
	batchSeatsSQL = `
		UPDATE seats s SET status = u.status, booking_id = u.booking_id, locked_until = u.until
		FROM unnest($1::bigint[], $2::text[], $3::uuid[], $4::text[], $5::uuid[], $6::timestamptz[])
			AS u(show_id, seat_number, expect, status, booking_id, until)
		WHERE s.show_id = u.show_id AND s.seat_number = u.seat_number
			AND (u.expect IS NULL OR s.booking_id = u.expect)`
)

// seatSeparator joins a booking's seat labels into one text element (text[][]
// must be rectangular); labels are printable, so it cannot occur in one.
const seatSeparator = "\x1f"

// queue adds the plan's statements to b: the ShowScheduled inserts, then
// the guarded UPDATE of the shows, then the rest.
func (p *batchPlan) queue(b *pgx.Batch) {
	for _, st := range p.scheduled {
		b.Queue(st.sql, st.args...)
	}

	ids, firsts, lasts, deltas, ats := make([]int64, 0, len(p.showOrder)), make([]int32, 0, len(p.showOrder)),
		make([]int32, 0, len(p.showOrder)), make([]int32, 0, len(p.showOrder)), make([]time.Time, 0, len(p.showOrder))
	for _, id := range p.showOrder {
		sc := p.shows[id]
		ids, firsts, lasts = append(ids, int64(id)), append(firsts, int32(sc.first)), append(lasts, int32(sc.last))
		deltas, ats = append(deltas, int32(sc.delta)), append(ats, sc.at)
	}
	b.Queue(batchShowsSQL, ids, firsts, lasts, deltas, ats)

	var ins, upd struct {
		id, user, seats, status       []string
		show                          []int64
		created, expires              []time.Time
		confirmed, expired, cancelled []*time.Time
		updated                       []time.Time
	}
	for _, id := range p.bookingOrder {
		c := p.bookings[id]
		if c.placed {
			ins.id, ins.show, ins.user = append(ins.id, string(id)), append(ins.show, int64(c.show)), append(ins.user, string(c.user))
			ins.seats, ins.status = append(ins.seats, joinSeats(c.seats)), append(ins.status, string(c.status))
			ins.created, ins.expires = append(ins.created, c.created), append(ins.expires, c.expires)
			ins.confirmed, ins.expired, ins.cancelled = append(ins.confirmed, c.confirmed), append(ins.expired, c.expired), append(ins.cancelled, c.cancelled)
			ins.updated = append(ins.updated, c.updated)
			continue
		}
		upd.id, upd.show, upd.status = append(upd.id, string(id)), append(upd.show, int64(c.show)), append(upd.status, string(c.status))
		upd.confirmed, upd.expired, upd.cancelled = append(upd.confirmed, c.confirmed), append(upd.expired, c.expired), append(upd.cancelled, c.cancelled)
		upd.updated = append(upd.updated, c.updated)
	}
	if len(ins.id) > 0 {
		b.Queue(batchInsertBookingsSQL, ins.id, ins.show, ins.user, ins.seats, ins.status, ins.created, ins.expires,
			ins.confirmed, ins.expired, ins.cancelled, ins.updated)
	}
	if len(upd.id) > 0 {
		b.Queue(batchUpdateBookingsSQL, upd.id, upd.show, upd.status, upd.confirmed, upd.expired, upd.cancelled, upd.updated)
	}

	if len(p.booked) > 0 {
		shows, bookings := make([]int64, len(p.booked)), make([]string, len(p.booked))
		for i, r := range p.booked {
			shows[i], bookings[i] = int64(r.show), string(r.booking)
		}
		b.Queue(batchBookSeatsSQL, shows, bookings)
	}

	if len(p.seatOrder) > 0 {
		n := len(p.seatOrder)
		shows, labels, statuses := make([]int64, n), make([]string, n), make([]string, n)
		expects, bookings, untils := make([]*string, n), make([]*string, n), make([]*time.Time, n)
		for i, k := range p.seatOrder {
			c := p.seats[k]
			shows[i], labels[i], statuses[i], untils[i] = int64(k.show), k.seat, string(c.status), c.until
			expects[i], bookings[i] = nullable(string(c.expect)), nullable(string(c.booking))
		}
		b.Queue(batchSeatsSQL, shows, labels, expects, statuses, bookings, untils)
	}
}

func joinSeats(seats []string) string { return strings.Join(seats, seatSeparator) }

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// applyBatch projects sts through tx: folded into a batchPlan when the whole
// batch's guard holds, else one event at a time. Either way it costs one
// round trip in the common case.
func applyBatch(ctx context.Context, tx pgx.Tx, sts []statement) error {
	if plan, ok := planBatch(sts); ok {
		applied, err := plan.apply(ctx, tx)
		if err != nil || applied {
			return err
		}
	}
	return applyEach(ctx, tx, sts)
}

// apply sends the plan in one round trip behind a savepoint. It returns
// false, with the savepoint rolled back, when the guard did not hold for
// every show or a statement failed (a duplicate hold's INSERT does): the
// per-event path then tells what happened.
func (p *batchPlan) apply(ctx context.Context, tx pgx.Tx) (bool, error) {
	b := &pgx.Batch{}
	b.Queue(asyncCommit)
	for _, set := range keyedJoins {
		b.Queue(set)
	}
	b.Queue(`SAVEPOINT projector_batch`)
	p.queue(b)
	guard := 2 + len(keyedJoins) + len(p.scheduled) // the index of the shows' UPDATE
	br := tx.SendBatch(ctx, b)
	held := true
	for i := range b.Len() {
		tag, err := br.Exec()
		if err != nil {
			held = false
			break
		}
		if i == guard && tag.RowsAffected() != int64(len(p.showOrder)) {
			held = false
		}
	}
	if err := br.Close(); err != nil && held {
		return false, fmt.Errorf("project a batch: %w", err)
	}
	if !held {
		if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT projector_batch`); err != nil {
			return false, fmt.Errorf("project a batch: %w", err)
		}
		return false, nil
	}
	return true, nil
}

// applyEach projects sts one statement each, in one round trip, and checks
// every statement's guard.
func applyEach(ctx context.Context, tx pgx.Tx, sts []statement) error {
	b := &pgx.Batch{}
	b.Queue(asyncCommit)
	for _, st := range sts {
		b.Queue(st.sql, st.args...)
	}
	br := tx.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return err
	}
	results := make([]int64, len(sts))
	for i, st := range sts {
		tag, err := br.Exec()
		if err != nil {
			_ = br.Close()
			return fmt.Errorf("project %s v%d: %w", st.event.StreamID, st.event.StreamVersion, err)
		}
		results[i] = tag.RowsAffected()
	}
	if err := br.Close(); err != nil {
		return err
	}
	for i, st := range sts {
		if err := st.checkRows(ctx, tx, results[i]); err != nil {
			return err
		}
	}
	return nil
}
