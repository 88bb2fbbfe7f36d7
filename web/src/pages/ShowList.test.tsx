import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { ShowSummary } from '../api/types';
import { json, mockFetch, renderApp } from '../test/helpers';

function summary(id: number, type: ShowSummary['show_type']): ShowSummary {
  return {
    id,
    name: `Show ${id}`,
    show_type: type,
    start_time: '2027-01-10T20:00:00Z',
    total_seats: 20,
    available_seats: id === 2 ? 0 : 20,
    version: 1,
  };
}

describe('ShowList', () => {
  it('filters by type and date and pages with next_cursor', async () => {
    const fetch = mockFetch((_m, url) => {
      const q = new URL(url, 'http://x').searchParams;
      if (q.get('cursor') === 'next') return json(200, { shows: [summary(3, 'bus')] });
      if (q.get('type') === 'bus') return json(200, { shows: [summary(2, 'bus')], next_cursor: 'next' });
      return json(200, { shows: [summary(1, 'movie'), summary(2, 'bus')] });
    });
    const user = userEvent.setup();
    renderApp('/');
    expect(await screen.findByRole('link', { name: /Show 1/ })).toHaveAttribute('href', '/shows/1');

    await user.click(screen.getByRole('radio', { name: 'Bus trips' }));
    await waitFor(() => expect(screen.queryByRole('link', { name: /Show 1/ })).not.toBeInTheDocument());
    expect(screen.getByRole('link', { name: /Show 2/ })).toHaveTextContent('Sold out');
    expect(String(fetch.mock.calls.at(-1)?.[0])).toContain('type=bus');

    await user.click(screen.getByRole('button', { name: 'Load more' }));
    expect(await screen.findByRole('link', { name: /Show 3/ })).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Load more' })).not.toBeInTheDocument();

    const from = screen.getByLabelText('From');
    await user.type(from, '2026-12-01');
    await waitFor(() => expect(String(fetch.mock.calls.at(-1)?.[0])).toMatch(/from=2026-1[12]-\d\dT\d\d%3A00%3A00Z/));
  });
});
