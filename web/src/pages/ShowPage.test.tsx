import { act, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Booking, LiveMessage, ShowDetail } from '../api/types';
import {
  FakeEventSource,
  installEventSource,
  json,
  logInAs,
  makeShow,
  mockFetch,
  movieLabels,
  renderApp,
} from '../test/helpers';

const BOOKING_ID = '0193a000-0000-7000-8000-0000000000b1';

function booking(seats: string[], overrides: Partial<Booking> = {}): Booking {
  return {
    id: BOOKING_ID,
    show_id: 1,
    user_id: '01a21767-0000-7000-8000-000000000001',
    seat_numbers: seats,
    status: 'pending',
    expires_at: new Date(Date.now() + 10 * 60_000).toISOString(),
    created_at: new Date().toISOString(),
    ...overrides,
  };
}

function seat(name: string) {
  return screen.getByRole('button', { name: new RegExp(`^Seat ${name},`) });
}

async function openShow(show: ShowDetail) {
  renderApp(`/shows/${show.id}`);
  await screen.findByRole('heading', { name: show.name });
  // The feed opens in an effect after the show renders: wait for it.
  const es = await waitFor(() => FakeEventSource.latest());
  act(() => es.open());
  return es;
}

describe('ShowPage', () => {
  beforeEach(() => installEventSource());

  it('opens the live stream after the loaded version and applies each message', async () => {
    mockFetch((_method, url) => {
      if (url === '/api/shows/1') return json(200, makeShow('movie', movieLabels('AB', 10), { version: 7 }));
      return json(404, { title: 'Not found', status: 404 });
    });
    const es = await openShow(makeShow('movie', movieLabels('AB', 10), { version: 7 }));
    expect(es.url).toBe('/api/shows/1/live?after=7');
    expect(screen.getByTestId('live-state')).toHaveTextContent('Live');
    expect(seat('A1')).toHaveAccessibleName('Seat A1, available');

    const msg: LiveMessage = {
      show_id: 1,
      version: 8,
      seats: [
        { seat_number: 'A1', status: 'locked' },
        { seat_number: 'A2', status: 'locked' },
      ],
      available_seats: 18,
    };
    act(() => es.emit('seats', msg, '8'));
    expect(seat('A1')).toHaveAccessibleName('Seat A1, locked');
    expect(seat('A1')).toHaveAttribute('aria-disabled', 'true');
    expect(screen.getByTestId('available-count')).toHaveTextContent('18 of 20 seats free');

    // An old or repeated version changes nothing.
    act(() => es.emit('seats', { ...msg, version: 8, seats: [{ seat_number: 'A1', status: 'available' }], available_seats: 19 }));
    expect(seat('A1')).toHaveAccessibleName('Seat A1, locked');

    act(() =>
      es.emit('seats', { show_id: 1, version: 9, seats: [{ seat_number: 'A1', status: 'booked' }, { seat_number: 'A2', status: 'booked' }], available_seats: 18 }),
    );
    expect(seat('A2')).toHaveAccessibleName('Seat A2, booked');

    act(() => es.drop());
    expect(screen.getByTestId('live-state')).toHaveTextContent('Reconnecting');
    act(() => es.open());
    expect(screen.getByTestId('live-state')).toHaveTextContent('Live');

    // Offline: the stream is closed, and reopened after the version reached once online.
    act(() => {
      window.dispatchEvent(new Event('offline'));
    });
    expect(es.readyState).toBe(FakeEventSource.CLOSED);
    expect(screen.getByTestId('live-state')).toHaveTextContent('Reconnecting');
    act(() => {
      window.dispatchEvent(new Event('online'));
    });
    const again = FakeEventSource.latest();
    expect(again).not.toBe(es);
    expect(again.url).toBe('/api/shows/1/live?after=9');
    act(() => again.open());
    expect(screen.getByTestId('live-state')).toHaveTextContent('Live');
  });

  it('replaces the map with a snapshot, then applies coalesced changes in order, without reloading the show', async () => {
    let showReads = 0;
    mockFetch((_method, url) => {
      if (url === '/api/shows/1') {
        showReads++;
        return json(200, makeShow('movie', movieLabels('A', 5), { version: 3 }, { A5: 'locked' }));
      }
      return json(404, { title: 'Not found', status: 404 });
    });
    const es = await openShow(makeShow('movie', movieLabels('A', 5), { version: 3 }));
    expect(es.url).toBe('/api/shows/1/live?after=3');
    expect(seat('A5')).toHaveAccessibleName('Seat A5, locked');

    // The server's ring no longer covers version 3: the whole map at version 40.
    const snapshot: LiveMessage = {
      show_id: 1,
      version: 40,
      seats: [
        { seat_number: 'A1', status: 'booked' },
        { seat_number: 'A2', status: 'locked' },
        { seat_number: 'A3', status: 'available' },
        { seat_number: 'A4', status: 'available' },
        { seat_number: 'A5', status: 'available' },
      ],
      available_seats: 3,
    };
    act(() => es.emit('snapshot', snapshot, '40'));
    expect(seat('A1')).toHaveAccessibleName('Seat A1, booked');
    expect(seat('A2')).toHaveAccessibleName('Seat A2, locked');
    expect(seat('A5')).toHaveAccessibleName('Seat A5, available');
    expect(screen.getByTestId('available-count')).toHaveTextContent('3 of 5 seats free');
    expect(document.querySelector('section[data-version]')).toHaveAttribute('data-version', '40');

    // Versions 41 to 47 coalesced: A3 locked then released ends available; A2 booked.
    act(() =>
      es.emit(
        'seats',
        {
          show_id: 1,
          version: 47,
          seats: [
            { seat_number: 'A3', status: 'locked' },
            { seat_number: 'A2', status: 'booked' },
            { seat_number: 'A4', status: 'locked' },
            { seat_number: 'A3', status: 'available' },
          ],
          available_seats: 2,
        },
        '47',
      ),
    );
    expect(seat('A3')).toHaveAccessibleName('Seat A3, available');
    expect(seat('A2')).toHaveAccessibleName('Seat A2, booked');
    expect(seat('A4')).toHaveAccessibleName('Seat A4, locked');
    expect(screen.getByTestId('available-count')).toHaveTextContent('2 of 5 seats free');
    expect(document.querySelector('section[data-version]')).toHaveAttribute('data-version', '47');

    // At or below the map's version: ignored.
    act(() => es.emit('seats', { show_id: 1, version: 47, seats: [{ seat_number: 'A4', status: 'available' }], available_seats: 3 }));
    act(() => es.emit('seats', { show_id: 1, version: 45, seats: [{ seat_number: 'A1', status: 'available' }], available_seats: 3 }));
    expect(seat('A4')).toHaveAccessibleName('Seat A4, locked');
    expect(seat('A1')).toHaveAccessibleName('Seat A1, booked');
    expect(screen.getByTestId('available-count')).toHaveTextContent('2 of 5 seats free');

    // Jumps in versions are not gaps: the show was read once, and the feed reopens after the newest version.
    expect(showReads).toBe(1);
    act(() => {
      window.dispatchEvent(new Event('offline'));
      window.dispatchEvent(new Event('online'));
    });
    expect(FakeEventSource.latest().url).toBe('/api/shows/1/live?after=47');
  });

  it('marks my hold booked when the feed books its seats, and asks the server when they come free', async () => {
    logInAs('user');
    const other = booking(['A3'], { id: '0193a000-0000-7000-8000-0000000000b2' });
    mockFetch((method, url) => {
      if (url === '/api/shows/1') return json(200, makeShow('movie', movieLabels('A', 5), { version: 5 }, { A1: 'locked', A3: 'locked' }));
      if (method === 'GET' && url.startsWith('/api/bookings?')) return json(200, { bookings: [booking(['A1']), other] });
      if (method === 'GET' && url === `/api/bookings/${other.id}`) return json(200, { ...other, status: 'cancelled' });
      return json(404, { title: 'Not found' });
    });
    const es = await openShow(makeShow('movie', movieLabels('A', 5), { version: 5 }));
    await waitFor(() => expect(screen.getAllByTestId('hold')).toHaveLength(2));
    // The simulated payment confirms A1; an admin cancels A3 (the messages name no bookings).
    act(() => es.emit('seats', { show_id: 1, version: 8, seats: [{ seat_number: 'A1', status: 'booked' }, { seat_number: 'A3', status: 'available' }], available_seats: 4 }));
    await waitFor(() => expect(screen.getAllByTestId('hold')[0]).toHaveTextContent('Booked seat A1'));
    expect(seat('A1')).toHaveAccessibleName('Seat A1, booked, yours');
    await waitFor(() => expect(screen.getAllByTestId('hold')[1]).toHaveTextContent('Seat A3: cancelled'));
  });

  it('says the seat cap up front, keeps the selection within it, and explains a seat-limit refusal', async () => {
    logInAs('user');
    let holds = 0;
    mockFetch((method, url) => {
      if (url === '/api/shows/1') return json(200, makeShow('movie', movieLabels('A', 6), { max_seats_per_user: 2 }));
      if (method === 'GET' && url.startsWith('/api/bookings')) return json(200, { bookings: [] });
      if (method === 'POST' && url === '/api/bookings') {
        holds++;
        return json(409, {
          type: '/problems/seat-limit',
          title: 'Seat limit reached',
          status: 409,
          detail: 'user holds 2 of at most 2 seats on show 1',
          limit: 2,
          held: 2,
        });
      }
      return json(404, { title: 'Not found' });
    });
    await openShow(makeShow('movie', movieLabels('A', 6)));
    expect(screen.getByTestId('seat-cap')).toHaveTextContent('You can hold at most 2 seats for this show.');

    const user = userEvent.setup();
    await user.click(seat('A1'));
    await user.click(seat('A2'));
    await user.click(seat('A3'));
    expect(seat('A3')).toHaveAttribute('aria-pressed', 'false');
    expect(screen.getByTestId('selection')).toHaveTextContent('A1 and A2');
    expect(screen.getByRole('alert')).toHaveTextContent('You can hold at most 2 seats for this show');

    // Another tab held two seats meanwhile: the server refuses, the selection stays.
    await user.click(screen.getByRole('button', { name: 'Hold 2 seats' }));
    const alert = await screen.findByRole('alert');
    await waitFor(() => expect(alert).toHaveTextContent('You can hold at most 2 seats for this show'));
    expect(alert).toHaveTextContent('You already hold or have bought 2 seats here; cancel one to pick another.');
    expect(holds).toBe(1);
    expect(seat('A1')).toHaveAttribute('aria-pressed', 'true');
    expect(screen.queryByTestId('hold')).not.toBeInTheDocument();
  });

  it('counts my holds and bookings against the cap', async () => {
    logInAs('user');
    mockFetch((method, url) => {
      if (url === '/api/shows/1') return json(200, makeShow('movie', movieLabels('A', 6), { max_seats_per_user: 3 }, { A1: 'locked', A2: 'booked' }));
      if (method === 'GET' && url.startsWith('/api/bookings'))
        return json(200, { bookings: [booking(['A1']), booking(['A2'], { id: '0193a000-0000-7000-8000-0000000000b3', status: 'confirmed' })] });
      return json(404, { title: 'Not found' });
    });
    await openShow(makeShow('movie', movieLabels('A', 6)));
    await waitFor(() => expect(screen.getByTestId('seat-cap')).toHaveTextContent('You can hold at most 3 seats for this show; you have 2, so 1 more.'));
    const user = userEvent.setup();
    await user.click(seat('A3'));
    await user.click(seat('A4'));
    expect(seat('A4')).toHaveAttribute('aria-pressed', 'false');
    expect(screen.getByRole('alert')).toHaveTextContent('You can hold at most 3 seats for this show');
    expect(screen.getByRole('alert')).toHaveTextContent('pick at most 1 more');
  });

  it('deselects and flashes a selected seat someone else just took (live)', async () => {
    logInAs('user');
    mockFetch((_m, url) => {
      if (url === '/api/shows/1') return json(200, makeShow('movie', movieLabels('A', 5)));
      if (url.startsWith('/api/bookings')) return json(200, { bookings: [] });
      return json(404, { title: 'Not found' });
    });
    const es = await openShow(makeShow('movie', movieLabels('A', 5)));
    const user = userEvent.setup();
    await user.click(seat('A3'));
    expect(seat('A3')).toHaveAttribute('aria-pressed', 'true');
    act(() =>
      es.emit('seats', { show_id: 1, version: 2, seats: [{ seat_number: 'A3', status: 'locked' }], available_seats: 4 }),
    );
    expect(seat('A3')).toHaveAttribute('aria-pressed', 'false');
    expect(seat('A3')).toHaveClass('is-flash');
    expect(screen.getByRole('alert')).toHaveTextContent('A3 was just taken by someone else');
  });

  it('holds seats with a fresh Idempotency-Key and shows the countdown; confirm books them', async () => {
    logInAs('user');
    const keys: string[] = [];
    const fetch = mockFetch((method, url, init) => {
      if (url === '/api/shows/1') return json(200, makeShow('movie', movieLabels('A', 5)));
      if (method === 'GET' && url.startsWith('/api/bookings')) return json(200, { bookings: [] });
      if (method === 'POST' && url === '/api/bookings') {
        keys.push(new Headers(init?.headers).get('Idempotency-Key') ?? '');
        expect(JSON.parse(String(init?.body))).toEqual({ show_id: 1, seat_numbers: ['A1', 'A2'] });
        return json(201, booking(['A1', 'A2']));
      }
      if (method === 'POST' && url === `/api/bookings/${BOOKING_ID}/confirm`) {
        return json(200, booking(['A1', 'A2'], { status: 'confirmed', confirmed_at: new Date().toISOString() }));
      }
      return json(404, { title: 'Not found' });
    });
    await openShow(makeShow('movie', movieLabels('A', 5)));
    const user = userEvent.setup();
    await user.click(seat('A2'));
    await user.click(seat('A1'));
    expect(screen.getByTestId('selection')).toHaveTextContent('A1 and A2');
    await user.click(screen.getByRole('button', { name: 'Hold 2 seats' }));

    const hold = await screen.findByTestId('hold');
    expect(hold).toHaveTextContent('Held seats A1 and A2');
    expect(hold).toHaveTextContent('Nobody else can take them until then');
    // The Hold button went disabled: the focus moves to the new hold, not to <body>.
    await waitFor(() => expect(within(hold).getByRole('heading', { name: 'Held seats A1 and A2' })).toHaveFocus());
    expect(within(hold).getByRole('timer')).toHaveTextContent(/^(10:00|9:5\d)$/);
    expect(seat('A1')).toHaveAccessibleName('Seat A1, locked, held by you');
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Headers(fetch.mock.calls.find((c) => c[0] === '/api/bookings' && c[1]?.method === 'POST')?.[1]?.headers).get('Authorization')).toMatch(/^Bearer /);

    await user.click(within(hold).getByRole('button', { name: 'Confirm and pay' }));
    await waitFor(() => expect(seat('A1')).toHaveAccessibleName('Seat A1, booked, yours'));
    expect(screen.getByTestId('hold')).toHaveTextContent('Booked seats A1 and A2');
    expect(screen.getByTestId('notice')).toHaveTextContent('Booked! Seats A1 and A2 are yours. See them in My bookings');
    expect(within(screen.getByTestId('notice')).getByRole('link', { name: 'See them in My bookings' })).toHaveAttribute('href', '/bookings');
  });

  it('on a 409 deselects and flashes the seats taken a moment ago, keeps the rest', async () => {
    logInAs('user');
    mockFetch((method, url) => {
      if (url === '/api/shows/1') return json(200, makeShow('movie', movieLabels('A', 5)));
      if (method === 'GET' && url.startsWith('/api/bookings')) return json(200, { bookings: [] });
      if (method === 'POST' && url === '/api/bookings') {
        return json(409, {
          type: 'about:blank',
          title: 'Seats unavailable',
          status: 409,
          detail: 'seats unavailable: A2',
          instance: '/api/bookings',
          request_id: 'r1',
          unavailable_seats: ['A2'],
        });
      }
      return json(404, { title: 'Not found' });
    });
    await openShow(makeShow('movie', movieLabels('A', 5)));
    const user = userEvent.setup();
    await user.click(seat('A1'));
    await user.click(seat('A2'));
    await user.click(screen.getByRole('button', { name: 'Hold 2 seats' }));

    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('Sorry, seat A2 was just taken by someone else');
    expect(alert).toHaveTextContent('A1 is still selected');
    expect(seat('A2')).toHaveClass('is-flash');
    expect(seat('A2')).toHaveAttribute('aria-pressed', 'false');
    expect(seat('A2')).toHaveAttribute('aria-disabled', 'true');
    expect(seat('A1')).toHaveAttribute('aria-pressed', 'true');
    expect(screen.queryByTestId('hold')).not.toBeInTheDocument();
  });

  it('says the hold expired when confirm answers 409 Hold expired', async () => {
    logInAs('user');
    const pending = booking(['A1'], { expires_at: new Date(Date.now() + 60_000).toISOString() });
    mockFetch((method, url) => {
      if (url === '/api/shows/1') return json(200, makeShow('movie', movieLabels('A', 3), {}, { A1: 'locked' }));
      if (method === 'GET' && url.startsWith('/api/bookings')) return json(200, { bookings: [pending] });
      if (url.endsWith('/confirm')) {
        return json(409, { title: 'Hold expired', status: 409, detail: `booking ${BOOKING_ID} hold expired`, request_id: 'r' });
      }
      return json(404, { title: 'Not found' });
    });
    await openShow(makeShow('movie', movieLabels('A', 3), {}, { A1: 'locked' }));
    const hold = await screen.findByTestId('hold');
    const user = userEvent.setup();
    await user.click(within(hold).getByRole('button', { name: 'Confirm and pay' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('Your hold has expired');
    expect(screen.getByTestId('hold')).toHaveTextContent('A1: expired');
  });

  it('shows the wait from Retry-After when rate limited, and blocks holding until then', async () => {
    logInAs('user');
    mockFetch((method, url) => {
      if (url === '/api/shows/1') return json(200, makeShow('movie', movieLabels('A', 3)));
      if (method === 'GET' && url.startsWith('/api/bookings')) return json(200, { bookings: [] });
      if (method === 'POST') return json(429, { title: 'Too Many Requests', status: 429, request_id: 'r' }, { 'Retry-After': '42' });
      return json(404, { title: 'Not found' });
    });
    await openShow(makeShow('movie', movieLabels('A', 3)));
    const user = userEvent.setup();
    await user.click(seat('A1'));
    await user.click(screen.getByRole('button', { name: 'Hold 1 seat' }));
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('Too many requests');
    await waitFor(() => expect(screen.getByTestId('retry-after')).toHaveTextContent(/try again in 4[12] s/));
    expect(screen.getByRole('button', { name: 'Hold 1 seat' })).toBeDisabled();
  });

  it('says so when the network is down', async () => {
    logInAs('user');
    mockFetch((method, url) => {
      if (url === '/api/shows/1') return json(200, makeShow('movie', movieLabels('A', 3)));
      if (method === 'GET' && url.startsWith('/api/bookings')) return json(200, { bookings: [] });
      throw new TypeError('Failed to fetch');
    });
    Object.defineProperty(navigator, 'onLine', { configurable: true, get: () => true });
    await openShow(makeShow('movie', movieLabels('A', 3)));
    const user = userEvent.setup();
    await user.click(seat('A1'));
    await user.click(screen.getByRole('button', { name: 'Hold 1 seat' }));
    expect(await screen.findByRole('alert', {}, { timeout: 5000 })).toHaveTextContent('Cannot reach the booking service');
    expect(seat('A1')).toHaveAttribute('aria-pressed', 'true');
  });

  it('sends people who are not logged in to the login page, keeping their pick', async () => {
    mockFetch((_m, url) => {
      if (url === '/api/shows/1') return json(200, makeShow('movie', movieLabels('A', 3)));
      return json(404, { title: 'Not found' });
    });
    await openShow(makeShow('movie', movieLabels('A', 3)));
    const user = userEvent.setup();
    await user.click(seat('A2'));
    await user.click(screen.getByRole('button', { name: 'Log in to hold seats' }));
    expect(await screen.findByRole('heading', { name: 'Log in' })).toBeInTheDocument();
    expect(sessionStorage.getItem('bookingledger.selection.1')).toBe('["A2"]');
  });

  it('loads the show again when the browser comes back online, and offers Try again', async () => {
    let up = false;
    Object.defineProperty(navigator, 'onLine', { configurable: true, get: () => up });
    mockFetch((_m, url) => {
      if (!up) throw new TypeError('Failed to fetch');
      if (url === '/api/shows/1') return json(200, makeShow('movie', movieLabels('A', 3)));
      return json(404, { title: 'Not found' });
    });
    try {
      renderApp('/shows/1');
      expect(await screen.findByRole('button', { name: 'Try again' }, { timeout: 5000 })).toBeInTheDocument();
      expect(screen.getByTestId('notice')).toHaveTextContent('You are offline');
      up = true;
      act(() => {
        window.dispatchEvent(new Event('online'));
      });
      expect(await screen.findByRole('heading', { name: 'Test show' })).toBeInTheDocument();
    } finally {
      Object.defineProperty(navigator, 'onLine', { configurable: true, get: () => true });
    }
  });

  it('says "Show not found" in the page heading for an unknown show', async () => {
    mockFetch(() => json(404, { title: 'Not found', status: 404 }));
    renderApp('/shows/99');
    expect(await screen.findByRole('heading', { level: 1, name: 'Show not found' })).toBeInTheDocument();
  });

  it('keeps a running hold when the login ends, with a way to log in again and pay', async () => {
    logInAs('user');
    let refused = false;
    mockFetch((method, url) => {
      if (url === '/api/shows/1') return json(200, makeShow('movie', movieLabels('A', 3)));
      if (method === 'GET' && url.startsWith('/api/bookings')) return json(200, { bookings: [booking(['A1'])] });
      if (method === 'POST' && url.endsWith('/confirm')) {
        refused = true;
        return json(401, { title: 'Unauthorized', status: 401, detail: 'token expired' });
      }
      return json(404, { title: 'Not found' });
    });
    await openShow(makeShow('movie', movieLabels('A', 3)));
    const hold = await screen.findByTestId('hold');
    expect(hold).toHaveTextContent('Held seat A1');
    expect(hold).toHaveTextContent('Nobody else can take it until then');
    const user = userEvent.setup();
    await user.click(within(hold).getByRole('button', { name: 'Confirm and pay' }));
    await waitFor(() => expect(screen.getByTestId('login-ended')).toBeInTheDocument());
    expect(refused).toBe(true);
    expect(screen.getByTestId('hold')).toHaveTextContent(/Your login ended — log in again to pay before \d/);
    expect(within(screen.getByTestId('login-ended')).getByRole('link', { name: 'Log in' })).toHaveAttribute(
      'href',
      '/login?next=%2Fshows%2F1',
    );
  });
});
