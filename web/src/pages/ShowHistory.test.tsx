import { fireEvent, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { EventType, StoredEvent } from '../api/types';
import { json, logInAs, makeShow, mockFetch, renderApp } from '../test/helpers';

function ev(v: number, type: EventType, data: Record<string, unknown>): StoredEvent {
  return {
    global_position: v * 10,
    stream_id: 'show-1',
    stream_version: v,
    event_id: `00000000-0000-4000-8000-00000000000${v}`,
    event_type: type,
    data,
    metadata: { user_id: 'u' },
    recorded_at: `2026-11-26T10:00:0${v}Z`,
  };
}

const events = [
  ev(1, 'ShowScheduled', { seat_numbers: ['A1', 'A2', 'A3'] }),
  ev(2, 'SeatLocked', { booking_id: 'b1', seat_numbers: ['A1', 'A2'] }),
  ev(3, 'BookingConfirmed', { booking_id: 'b1' }),
  ev(4, 'BookingCancelled', { booking_id: 'b1', seat_numbers: ['A1', 'A2'] }),
];

describe('ShowHistory', () => {
  it('redraws the seat map as it stood after the event the slider points at', async () => {
    logInAs('auditor');
    const fetch = mockFetch((_m, url) => {
      if (url === '/api/shows/1') return json(200, makeShow('movie', ['A1', 'A2', 'A3'], { version: 4 }));
      if (url.startsWith('/api/shows/1/events')) return json(200, { show_id: 1, events });
      return json(404, { title: 'Not found' });
    });
    renderApp('/shows/1/history');
    const slider = await screen.findByRole('slider', { name: "Event in the show's history" });
    expect(fetch.mock.calls.some((c) => String(c[0]).startsWith('/api/shows/1/events?after_version=0'))).toBe(true);

    // Latest first: cancelled, all free again.
    expect(slider).toHaveValue('4');
    expect(screen.getByTestId('history-position')).toHaveTextContent('After event 4 of 4');
    expect(screen.getByRole('button', { name: 'Seat A1, available' })).toBeDisabled();

    fireEvent.change(slider, { target: { value: '2' } });
    expect(screen.getByTestId('history-position')).toHaveTextContent('After event 2 of 4: SeatLocked');
    expect(screen.getByRole('button', { name: 'Seat A1, locked' })).toHaveClass('is-changed');
    expect(screen.getByRole('button', { name: 'Seat A2, locked' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Seat A3, available' })).toBeInTheDocument();
    expect(screen.getByTestId('history-counts')).toHaveTextContent('1 free · 2 held · 0 booked');

    fireEvent.change(slider, { target: { value: '3' } });
    expect(screen.getByRole('button', { name: 'Seat A1, booked' })).toBeInTheDocument();

    fireEvent.click(screen.getByRole('button', { name: /^1\. ShowScheduled/ }));
    expect(slider).toHaveValue('1');
    expect(screen.getByTestId('history-counts')).toHaveTextContent('3 free · 0 held · 0 booked');
  });

  it('is for auditors and admins only', async () => {
    logInAs('user');
    mockFetch(() => json(404, { title: 'Not found' }));
    renderApp('/shows/1/history');
    expect(await screen.findByRole('heading', { name: 'Not available to your account' })).toBeInTheDocument();
  });
});
