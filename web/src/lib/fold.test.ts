import { describe, expect, it } from 'vitest';
import type { EventType, StoredEvent } from '../api/types';
import { foldHistory, HistoryCursor, type Step } from './fold';

let n = 0;
function ev(version: number, type: EventType, data: Record<string, unknown>): StoredEvent {
  n++;
  return {
    global_position: 100 + n,
    stream_id: 'show-1',
    stream_version: version,
    event_id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    event_type: type,
    data,
    metadata: {},
    recorded_at: new Date(Date.UTC(2026, 10, 26, 10, 0, version)).toISOString(),
  };
}

const b1 = 'b1000000-0000-4000-8000-000000000001';
const b2 = 'b2000000-0000-4000-8000-000000000002';
const stream = [
  ev(1, 'ShowScheduled', { show_id: 1, name: 'x', show_type: 'movie', start_time: '2027-01-01T00:00:00Z', seat_numbers: ['A1', 'A2', 'A3', 'A4'] }),
  ev(2, 'SeatLocked', { booking_id: b1, user_id: 'u1', seat_numbers: ['A1', 'A2'], expires_at: '2027-01-01T00:00:00Z' }),
  ev(3, 'SeatLocked', { booking_id: b2, user_id: 'u2', seat_numbers: ['A3'], expires_at: '2027-01-01T00:00:00Z' }),
  ev(4, 'BookingConfirmed', { booking_id: b1, confirmed_at: '2026-11-26T10:00:04Z' }),
  ev(5, 'BookingExpired', { booking_id: b2, seat_numbers: ['A3'] }),
  ev(6, 'BookingCancelled', { booking_id: b1, seat_numbers: ['A1', 'A2'] }),
];

function statuses(i: number, snaps: Step[] = foldHistory(stream), cursor = new HistoryCursor(snaps)): string {
  cursor.moveTo(i);
  return cursor.order.map((seat) => `${seat}=${cursor.seats.get(seat)?.status}`).join(' ');
}

describe('foldHistory', () => {
  it('gives the seat map as it stood after each event', () => {
    const snaps = foldHistory(stream);
    expect(snaps.map((s) => s.version)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(statuses(0, snaps)).toBe('A1=available A2=available A3=available A4=available');
    expect(statuses(1, snaps)).toBe('A1=locked A2=locked A3=available A4=available');
    expect(statuses(2, snaps)).toBe('A1=locked A2=locked A3=locked A4=available');
    expect(statuses(3, snaps)).toBe('A1=booked A2=booked A3=locked A4=available');
    expect(statuses(4, snaps)).toBe('A1=booked A2=booked A3=available A4=available');
    expect(statuses(5, snaps)).toBe('A1=available A2=available A3=available A4=available');
  });

  it('names the seats each event changed and who holds them', () => {
    const snaps = foldHistory(stream);
    expect(snaps.map((s) => s.changed)).toEqual([['A1', 'A2', 'A3', 'A4'], ['A1', 'A2'], ['A3'], ['A1', 'A2'], ['A3'], ['A1', 'A2']]);
    expect(new HistoryCursor(snaps).moveTo(3).seats.get('A1')).toEqual({ status: 'booked', bookingId: b1 });
    // Only what changed is kept per event.
    expect(snaps.map((s) => s.changes.length)).toEqual([4, 2, 1, 2, 1, 2]);
  });

  it('leaves earlier snapshots alone and sorts by stream version', () => {
    const snaps = foldHistory([...stream].reverse());
    expect(statuses(1, snaps)).toBe('A1=locked A2=locked A3=available A4=available');
    expect(statuses(5, snaps)).toBe('A1=available A2=available A3=available A4=available');
  });

  it('moves back and forth by applying and undoing only the events in between', () => {
    const snaps = foldHistory(stream);
    const cursor = new HistoryCursor(snaps);
    for (const i of [5, 0, 3, 1, 4, 2, 5, 3]) {
      expect(statuses(i, snaps, cursor)).toBe(statuses(i, snaps));
    }
    expect(cursor.moveTo(-1).seats.size).toBe(0);
  });
});
