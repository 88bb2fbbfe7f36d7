import { act, render } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { LiveMessage } from '../api/types';
import { FakeEventSource, installEventSource, makeShow } from '../test/helpers';
import { applyLiveMessage, useLiveShow, type LiveState } from './live';

const msg = (version: number, seats: LiveMessage['seats'], available = 0): LiveMessage => ({
  show_id: 1,
  version,
  seats,
  available_seats: available,
});

describe('applyLiveMessage', () => {
  const show = makeShow('bus', ['1', '2', '3'], { version: 4 });

  it('changes only the seats named, and takes the version and count', () => {
    const r = applyLiveMessage(show, msg(5, [{ seat_number: '2', status: 'locked' }], 2));
    expect(r.stale).toBe(false);
    expect(r.show.version).toBe(5);
    expect(r.show.available_seats).toBe(2);
    expect(r.show.seats.map((s) => s.status)).toEqual(['available', 'locked', 'available']);
    expect(r.show.seats[0]).toBe(show.seats[0]);
    expect([...r.changed]).toEqual([['2', 'locked']]);
  });

  it('applies a coalesced message whose version jumps, entry by entry in order', () => {
    // Versions 5 to 9 in one message: 1 locked and released, 2 locked, 3 locked, released and locked again.
    const r = applyLiveMessage(
      show,
      msg(
        9,
        [
          { seat_number: '1', status: 'locked' },
          { seat_number: '3', status: 'locked' },
          { seat_number: '2', status: 'locked' },
          { seat_number: '1', status: 'available' },
          { seat_number: '3', status: 'available' },
          { seat_number: '3', status: 'locked' },
        ],
        1,
      ),
    );
    expect(r.stale).toBe(false);
    expect(r.show.version).toBe(9);
    expect(r.show.seats.map((s) => s.status)).toEqual(['available', 'locked', 'locked']);
    expect(r.show.seats[0]).toBe(show.seats[0]);
    expect(r.show.available_seats).toBe(1);
  });

  it('applies a message that overlaps versions the map has, when it ends above them', () => {
    const held = makeShow('bus', ['1', '2', '3'], { version: 6 }, { '1': 'locked' });
    // Versions 5 (1 locked, already applied) to 7 (1 booked).
    const r = applyLiveMessage(held, msg(7, [{ seat_number: '1', status: 'locked' }, { seat_number: '1', status: 'booked' }], 2));
    expect(r.show.seats.map((s) => s.status)).toEqual(['booked', 'available', 'available']);
  });

  it('ignores seats messages at or below the map’s version, and messages of other shows', () => {
    const at = applyLiveMessage(show, msg(4, [{ seat_number: '1', status: 'booked' }]));
    expect(at.stale).toBe(true);
    expect(at.show).toBe(show);
    expect(applyLiveMessage(show, msg(3, [{ seat_number: '1', status: 'booked' }])).show).toBe(show);
    expect(applyLiveMessage(show, { ...msg(5, []), show_id: 2 }).stale).toBe(true);
  });

  it('replaces the seat map with a snapshot: statuses, version and count', () => {
    const before = makeShow('bus', ['1', '2', '3'], { version: 4 }, { '2': 'locked' });
    const r = applyLiveMessage(
      before,
      msg(
        40,
        [
          { seat_number: '1', status: 'booked' },
          { seat_number: '2', status: 'available' },
          { seat_number: '3', status: 'available' },
        ],
        2,
      ),
      'snapshot',
    );
    expect(r.stale).toBe(false);
    expect(r.show.version).toBe(40);
    expect(r.show.available_seats).toBe(2);
    expect(r.show.seats).toEqual([
      { seat_number: '1', status: 'booked' },
      { seat_number: '2', status: 'available' },
      { seat_number: '3', status: 'available' },
    ]);
    expect(r.show.seats[2]).toBe(before.seats[2]);
    expect([...r.changed]).toEqual([
      ['1', 'booked'],
      ['2', 'available'],
    ]);
    // A snapshot at the map's version still replaces it (the map may hold guesses); an older one does not.
    expect(applyLiveMessage(r.show, msg(40, [{ seat_number: '1', status: 'available' }, { seat_number: '2', status: 'available' }, { seat_number: '3', status: 'available' }], 3), 'snapshot').show.available_seats).toBe(3);
    expect(applyLiveMessage(r.show, msg(39, [], 0), 'snapshot').stale).toBe(true);
  });
});

function Probe({ version, onState }: { version: number; onState: (s: LiveState) => void }) {
  onState(useLiveShow(1, () => version, () => {}));
  return null;
}

describe('useLiveShow', () => {
  beforeEach(() => {
    installEventSource();
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it('passes snapshot and seats messages on with their kind, and ignores what does not parse', () => {
    const got: [string, number][] = [];
    function Collect() {
      useLiveShow(1, () => 0, (m, kind) => got.push([kind, m.version]));
      return null;
    }
    render(<Collect />);
    const es = FakeEventSource.latest();
    expect(es.url).toBe('/api/shows/1/live?after=0');
    act(() => {
      es.open();
      es.emit('snapshot', msg(12, [{ seat_number: '1', status: 'locked' }], 0), '12');
      es.emit('seats', msg(15, [{ seat_number: '1', status: 'available' }], 1), '15');
      es.emit('seats', 'not json');
    });
    expect(got).toEqual([
      ['snapshot', 12],
      ['seats', 15],
    ]);
  });

  it('reopens a stream the browser gave up on, with backoff, after the newest version', () => {
    const states: LiveState[] = [];
    const { rerender, unmount } = render(<Probe version={3} onState={(s) => states.push(s)} />);
    const first = FakeEventSource.latest();
    expect(first.url).toBe('/api/shows/1/live?after=3');

    rerender(<Probe version={6} onState={(s) => states.push(s)} />);
    act(() => {
      first.readyState = FakeEventSource.CLOSED; // e.g. a 503: EventSource does not retry
      first.onerror?.(new Event('error'));
    });
    expect(states.at(-1)).toBe('reconnecting');
    expect(FakeEventSource.instances).toHaveLength(1);
    act(() => vi.advanceTimersByTime(1000));
    expect(FakeEventSource.instances).toHaveLength(2);
    expect(FakeEventSource.latest().url).toBe('/api/shows/1/live?after=6');

    // The second failure in a row waits twice as long.
    act(() => {
      const es = FakeEventSource.latest();
      es.readyState = FakeEventSource.CLOSED;
      es.onerror?.(new Event('error'));
    });
    act(() => vi.advanceTimersByTime(1999));
    expect(FakeEventSource.instances).toHaveLength(2);
    act(() => vi.advanceTimersByTime(1));
    expect(FakeEventSource.instances).toHaveLength(3);
    act(() => FakeEventSource.latest().open());
    expect(states.at(-1)).toBe('live');

    unmount();
    expect(FakeEventSource.latest().readyState).toBe(FakeEventSource.CLOSED);
  });

  it('closes the stream while the page is hidden and resumes after the newest version when shown', () => {
    let visibility: DocumentVisibilityState = 'visible';
    const spy = vi.spyOn(document, 'visibilityState', 'get').mockImplementation(() => visibility);
    try {
      const states: LiveState[] = [];
      const { rerender, unmount } = render(<Probe version={3} onState={(s) => states.push(s)} />);
      const first = FakeEventSource.latest();
      act(() => first.open());
      rerender(<Probe version={5} onState={(s) => states.push(s)} />);

      visibility = 'hidden';
      act(() => {
        document.dispatchEvent(new Event('visibilitychange'));
      });
      expect(first.readyState).toBe(FakeEventSource.CLOSED);
      expect(FakeEventSource.instances).toHaveLength(1);
      // Coming back online while hidden opens nothing either.
      act(() => {
        window.dispatchEvent(new Event('online'));
        vi.advanceTimersByTime(60_000);
      });
      expect(FakeEventSource.instances).toHaveLength(1);

      visibility = 'visible';
      act(() => {
        document.dispatchEvent(new Event('visibilitychange'));
      });
      expect(FakeEventSource.instances).toHaveLength(2);
      expect(FakeEventSource.latest().url).toBe('/api/shows/1/live?after=5');
      act(() => FakeEventSource.latest().open());
      expect(states.at(-1)).toBe('live');
      unmount();
    } finally {
      spy.mockRestore();
    }
  });
});
