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

/** One seat's status before and after an event (undefined: not on the map). */
export interface SeatChange {
  seat: string;
  before?: SeatState;
  after?: SeatState;
}

/**
 * One event's step through the history. Only what the event changed is
 * kept, so a long history of a big show costs O(seats + events), not a
 * whole seat map per event; HistoryCursor builds the map at any step.
 */
export interface Step {
  version: number;
  event: StoredEvent;
  /** Seat order as scheduled (shared between steps, not copied). */
  order: string[];
  changes: SeatChange[];
  /** Seats whose status this event changed. */
  changed: string[];
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** Every event's changes, in stream order. The input may come in any order; it is sorted by stream_version. */
export function foldHistory(events: StoredEvent[]): Step[] {
  const sorted = [...events].sort((a, b) => a.stream_version - b.stream_version);
  const out: Step[] = [];
  let order: string[] = [];
  const seats = new Map<string, SeatState>();
  const holds = new Map<string, string[]>();

  for (const ev of sorted) {
    const changes: SeatChange[] = [];
    const changed: string[] = [];
    const set = (seat: string, st: SeatState | undefined) => {
      const prev = seats.get(seat);
      if (prev === st) return;
      if (prev?.status !== st?.status && st) changed.push(seat);
      changes.push({ seat, before: prev, after: st });
      if (st) seats.set(seat, st);
      else seats.delete(seat);
    };
    const d = ev.data ?? {};
    const bookingId = typeof d.booking_id === 'string' ? d.booking_id : undefined;

    switch (ev.event_type) {
      case 'ShowScheduled': {
        order = strings(d.seat_numbers);
        const keep = new Set(order);
        for (const s of [...seats.keys()]) if (!keep.has(s)) set(s, undefined);
        for (const s of order) set(s, { status: 'available' });
        break;
      }
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
    out.push({ version: ev.stream_version, event: ev, order, changes, changed });
  }
  return out;
}

/**
 * The seat map at one step of the history, moved from step to step by
 * applying (forwards) or undoing (backwards) only the steps in between.
 */
export class HistoryCursor {
  readonly steps: Step[];
  /** The step the map stands after; -1 is before the first event. */
  index = -1;
  readonly seats = new Map<string, SeatState>();

  constructor(steps: Step[]) {
    this.steps = steps;
  }

  get order(): string[] {
    return this.index >= 0 ? this.steps[this.index].order : [];
  }

  moveTo(target: number): this {
    const to = Math.max(-1, Math.min(this.steps.length - 1, target));
    while (this.index < to) {
      this.index++;
      for (const c of this.steps[this.index].changes) {
        if (c.after) this.seats.set(c.seat, c.after);
        else this.seats.delete(c.seat);
      }
    }
    while (this.index > to) {
      const changes = this.steps[this.index].changes;
      for (let i = changes.length - 1; i >= 0; i--) {
        const c = changes[i];
        if (c.before) this.seats.set(c.seat, c.before);
        else this.seats.delete(c.seat);
      }
      this.index--;
    }
    return this;
  }
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
