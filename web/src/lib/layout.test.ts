import { describe, expect, it } from 'vitest';
import { layoutSeats } from './layout';

describe('layoutSeats', () => {
  it('puts a movie in lettered rows, in seat order', () => {
    const l = layoutSeats('movie', ['A1', 'A2', 'A10', 'B1', 'B2']);
    expect(l.kind).toBe('movie');
    expect(l.rows).toEqual([
      { label: 'A', cells: ['A1', 'A2', 'A10'] },
      { label: 'B', cells: ['B1', 'B2'] },
    ]);
    expect(l.columns).toBe(3);
  });

  it('seats a bus two and two either side of an aisle', () => {
    const l = layoutSeats(
      'bus',
      Array.from({ length: 6 }, (_, i) => String(i + 1)),
    );
    expect(l.kind).toBe('bus');
    expect(l.rows).toEqual([
      { label: '1', cells: ['1', '2', null, '3', '4'] },
      { label: '2', cells: ['5', '6', null, null, null] },
    ]);
    expect(l.columns).toBe(5);
  });

  it('groups a doctor’s slots by hour, days apart', () => {
    const l = layoutSeats('doctor', ['08:00', '08:15', '09:00', 'd2 00:00', 'd2 00:15']);
    expect(l.kind).toBe('doctor');
    expect(l.rows.map((r) => r.label)).toEqual(['08:00', '09:00', 'Day 2, 00:00']);
    expect(l.rows[2].cells).toEqual(['d2 00:00', 'd2 00:15']);
  });

  it('falls back to a wrapping grid for labels that fit no pattern', () => {
    const l = layoutSeats('movie', ['Box 1', 'Box 2', 'Stalls']);
    expect(l.kind).toBe('grid');
    expect(l.rows.flatMap((r) => r.cells)).toEqual(['Box 1', 'Box 2', 'Stalls']);
  });
});
