// Time travel over a show's stream: fold its events, in stream order, into
// the seat map as it stood after each one. The same rules as the domain's
// Evolve: a hold locks its seats, a confirmation books the hold's seats, an
// expiry or a cancellation frees them.
import type { SeatStatus, StoredEvent } from '../api/types';

export interface SeatState {
  status: SeatStatus;
  /** The booking that holds or bought the seat. */
  bookingId?: string;
}

export interface Snapshot {
  version: number;
  event: StoredEvent;
  /** Seat order as scheduled. */
  order: string[];
  seats: Map<string, SeatState>;
  /** Seats whose status this event changed. */
  changed: string[];
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** Every snapshot, one after each event. The input may come in any order; it is sorted by stream_version. */
export function foldHistory(events: StoredEvent[]): Snapshot[] {
  const sorted = [...events].sort((a, b) => a.stream_version - b.stream_version);
  const out: Snapshot[] = [];
  let order: string[] = [];
  let seats = new Map<string, SeatState>();
  const holds = new Map<string, string[]>();

  for (const ev of sorted) {
    const next = new Map(seats);
    const changed: string[] = [];
    const set = (seat: string, st: SeatState) => {
      const prev = next.get(seat);
      if (!prev || prev.status !== st.status) changed.push(seat);
      next.set(seat, st);
    };
    const d = ev.data ?? {};
    const bookingId = typeof d.booking_id === 'string' ? d.booking_id : undefined;

    switch (ev.event_type) {
      case 'ShowScheduled':
        order = strings(d.seat_numbers);
        next.clear();
        for (const s of order) set(s, { status: 'available' });
        break;
      case 'SeatLocked': {
        const list = strings(d.seat_numbers);
        if (bookingId) holds.set(bookingId, list);
        for (const s of list) set(s, { status: 'locked', bookingId });
        break;
      }
      case 'BookingConfirmed':
        for (const s of (bookingId && holds.get(bookingId)) || []) set(s, { status: 'booked', bookingId });
        break;
      case 'BookingExpired':
      case 'BookingCancelled': {
        const list = strings(d.seat_numbers);
        for (const s of list.length ? list : (bookingId && holds.get(bookingId)) || []) {
          set(s, { status: 'available' });
        }
        break;
      }
    }
    seats = next;
    out.push({ version: ev.stream_version, event: ev, order, seats, changed });
  }
  return out;
}

/** A short, plain-words account of an event for the timeline. */
export function describeEvent(ev: StoredEvent): string {
  const d = ev.data ?? {};
  const seats = strings(d.seat_numbers);
  const list = seats.length > 6 ? `${seats.slice(0, 6).join(', ')} … (${seats.length})` : seats.join(', ');
  switch (ev.event_type) {
    case 'ShowScheduled':
      return `Scheduled with ${seats.length} ${seats.length === 1 ? 'seat' : 'seats'}`;
    case 'SeatLocked':
      return `Held ${list}`;
    case 'BookingConfirmed':
      return 'Paid: the hold became a booking';
    case 'BookingExpired':
      return `Hold expired, freed ${list}`;
    case 'BookingCancelled':
      return `Cancelled, freed ${list}`;
    default:
      return ev.event_type;
  }
}
