// How a show's seats are drawn: rows of lettered seats for a movie, a bus
// with two seats either side of an aisle, time slots grouped by hour for a
// doctor. Labels that do not fit their type's pattern (seat_numbers given
// by an admin) fall back to one wrapping grid in seat order.
import type { ShowType } from '../api/types';

export type LayoutKind = 'movie' | 'bus' | 'doctor' | 'grid';

export interface LayoutRow {
  /** Shown beside the row: "A", "3", "08:00". */
  label: string;
  /** Seat labels; null is the bus aisle or an empty place. */
  cells: (string | null)[];
}

export interface Layout {
  kind: LayoutKind;
  rows: LayoutRow[];
  /** Grid columns of the widest row (cells including aisles). */
  columns: number;
}

const MOVIE = /^([A-Za-z]{1,3})\s*-?\s*(\d{1,4})$/;
const BUS = /^\d{1,4}$/;
const DOCTOR = /^(?:d(\d+)\s+)?(\d{2}):(\d{2})$/;

function groupRows(seats: string[], key: (s: string) => string): LayoutRow[] {
  const rows: LayoutRow[] = [];
  const byKey = new Map<string, LayoutRow>();
  for (const s of seats) {
    const k = key(s);
    let row = byKey.get(k);
    if (!row) {
      row = { label: k, cells: [] };
      byKey.set(k, row);
      rows.push(row);
    }
    row.cells.push(s);
  }
  return rows;
}

function widest(rows: LayoutRow[]): number {
  return rows.reduce((m, r) => Math.max(m, r.cells.length), 0);
}

export function layoutSeats(showType: ShowType | string, seats: string[]): Layout {
  if (seats.length === 0) return { kind: 'grid', rows: [], columns: 0 };

  if (showType === 'movie' && seats.every((s) => MOVIE.test(s))) {
    const rows = groupRows(seats, (s) => (MOVIE.exec(s) as RegExpExecArray)[1].toUpperCase());
    return { kind: 'movie', rows, columns: widest(rows) };
  }

  if (showType === 'bus' && seats.every((s) => BUS.test(s))) {
    // Four seats a row in seat order: two, the aisle, two.
    const rows: LayoutRow[] = [];
    for (let i = 0; i < seats.length; i += 4) {
      const four = seats.slice(i, i + 4);
      const cells: (string | null)[] = [four[0] ?? null, four[1] ?? null, null, four[2] ?? null, four[3] ?? null];
      rows.push({ label: String(rows.length + 1), cells });
    }
    return { kind: 'bus', rows, columns: 5 };
  }

  if (showType === 'doctor' && seats.every((s) => DOCTOR.test(s))) {
    const rows = groupRows(seats, (s) => {
      const m = DOCTOR.exec(s) as RegExpExecArray;
      const hour = `${m[2]}:00`;
      return m[1] ? `Day ${m[1]}, ${hour}` : hour;
    });
    return { kind: 'doctor', rows, columns: widest(rows) };
  }

  const perRow = Math.min(10, seats.length);
  const rows: LayoutRow[] = [];
  for (let i = 0; i < seats.length; i += perRow) {
    rows.push({ label: '', cells: seats.slice(i, i + perRow) });
  }
  return { kind: 'grid', rows, columns: perRow };
}

/** What a screen reader calls one place: a seat, or a time slot at the doctor's. */
export function placeNoun(showType: ShowType | string): string {
  return showType === 'doctor' ? 'Time slot' : 'Seat';
}
