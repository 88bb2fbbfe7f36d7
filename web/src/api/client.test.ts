import { describe, expect, it } from 'vitest';
import { fakeToken, json, mockFetch } from '../test/helpers';
import { ApiError, getShow, holdSeats, listShows, parseRetryAfter } from './client';
import '../auth/session';

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('30')).toBe(30);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
    const now = Date.parse('2026-11-26T10:00:00Z');
    expect(parseRetryAfter('Thu, 26 Nov 2026 10:00:12 GMT', now)).toBe(12);
  });
});

describe('request', () => {
  it('sends filters as query parameters', async () => {
    const fetch = mockFetch(() => json(200, { shows: [] }));
    await listShows({ type: 'bus', from: '2026-12-01T00:00:00Z', limit: 20, cursor: 'abc' });
    expect(fetch.mock.calls[0][0]).toBe('/api/shows?type=bus&from=2026-12-01T00%3A00%3A00Z&limit=20&cursor=abc');
  });

  it('turns a problem+json answer into an ApiError with its seats', async () => {
    sessionStorage.setItem('bookingledger.token', fakeToken('user'));
    mockFetch(() =>
      json(409, { title: 'Seats unavailable', status: 409, detail: 'seats unavailable: A2', unavailable_seats: ['A2'], request_id: 'x' }),
    );
    const err = await holdSeats(1, ['A1', 'A2']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(409);
    expect((err as ApiError).unavailableSeats).toEqual(['A2']);
    expect((err as ApiError).message).toBe('seats unavailable: A2');
  });

  it('drops a refused token and reads a public page without it', async () => {
    sessionStorage.setItem('bookingledger.token', fakeToken('user'));
    const auth: (string | null)[] = [];
    mockFetch((_m, _u, init) => {
      const a = new Headers(init?.headers).get('Authorization');
      auth.push(a);
      return a ? json(401, { title: 'Unauthorized', status: 401 }) : json(200, { id: 1 });
    });
    await expect(getShow(1)).resolves.toEqual({ id: 1 });
    expect(auth[0]).toMatch(/^Bearer /);
    expect(auth[1]).toBeNull();
    expect(sessionStorage.getItem('bookingledger.token')).toBeNull();
  });
});
