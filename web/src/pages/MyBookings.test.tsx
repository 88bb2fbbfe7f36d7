import { act, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it, vi } from 'vitest';
import { json, logInAs, makeShow, mockFetch, renderApp } from '../test/helpers';

describe('MyBookings', () => {
  it('shows only the error when loading fails, with Try again, and reloads when back online', async () => {
    logInAs('user');
    let fail = true;
    mockFetch((_m, url) => {
      if (url.startsWith('/api/bookings')) {
        return fail ? json(500, { title: 'Internal Server Error', status: 500 }) : json(200, { bookings: [] });
      }
      return json(404, { title: 'Not found' });
    });
    renderApp('/bookings');
    expect(await screen.findByRole('button', { name: 'Try again' })).toBeInTheDocument();
    expect(screen.getByTestId('notice')).toHaveTextContent('Something went wrong on our side');
    expect(screen.queryByText('No bookings yet.')).not.toBeInTheDocument();
    fail = false;
    act(() => {
      window.dispatchEvent(new Event('online'));
    });
    expect(await screen.findByText('No bookings yet.')).toBeInTheDocument();
    expect(screen.queryByTestId('notice')).not.toBeInTheDocument();
  });
});

describe('navigation', () => {
  it('moves the focus to the new page’s heading and names the page in the title', async () => {
    mockFetch((_m, url) => {
      if (url.startsWith('/api/shows?')) {
        return json(200, { shows: [{ ...makeShow('movie', ['A1']), seats: undefined }] });
      }
      if (url === '/api/shows/1') return json(200, makeShow('movie', ['A1']));
      return json(404, { title: 'Not found' });
    });
    renderApp('/');
    const user = userEvent.setup();
    await user.click(await screen.findByRole('link', { name: /Test show/ }));
    const h1 = await screen.findByRole('heading', { level: 1, name: 'Test show' });
    await vi.waitFor(() => expect(h1).toHaveFocus());
    expect(document.title).toBe('Test show · Booking ledger');
  });
});
