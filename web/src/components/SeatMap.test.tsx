import { render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { useState } from 'react';
import { describe, expect, it } from 'vitest';
import type { Seat, ShowType } from '../api/types';
import { movieLabels } from '../test/helpers';
import { SeatMap } from './SeatMap';

function seats(labels: string[], status: Record<string, Seat['status']> = {}): Seat[] {
  return labels.map((n) => ({ seat_number: n, status: status[n] ?? 'available' }));
}

/** A seat map whose selection works as on the show page. */
function Selectable({ type, list }: { type: ShowType; list: Seat[] }) {
  const [selected, setSelected] = useState<Set<string>>(new Set());
  return (
    <>
      <SeatMap
        showType={type}
        seats={list}
        selected={selected}
        onToggle={(s) =>
          setSelected((sel) => {
            const n = new Set(sel);
            if (n.has(s)) n.delete(s);
            else n.add(s);
            return n;
          })
        }
      />
      <output data-testid="picked">{[...selected].sort().join(',')}</output>
    </>
  );
}

describe('SeatMap', () => {
  it('draws a movie as lettered rows of labelled seat buttons', () => {
    render(<SeatMap showType="movie" seats={seats(movieLabels('AB', 10), { A3: 'locked', B1: 'booked' })} />);
    const map = screen.getByRole('group', { name: 'Seat map' });
    const buttons = within(map).getAllByRole('button');
    expect(buttons).toHaveLength(20);
    expect(screen.getByRole('button', { name: 'Seat A1, available' })).toBeEnabled();
    expect(screen.getByRole('button', { name: 'Seat A3, locked' })).toHaveAttribute('aria-disabled', 'true');
    expect(screen.getByRole('button', { name: 'Seat B1, booked' })).toHaveAttribute('aria-disabled', 'true');
    expect(screen.getByRole('button', { name: 'Seat B10, available' })).toHaveTextContent('10');
    expect(map.querySelectorAll('.seat-row')).toHaveLength(2);
    expect(map).toHaveTextContent('Screen');
  });

  it('draws a bus with an aisle after every second seat', () => {
    render(<SeatMap showType="bus" seats={seats(['1', '2', '3', '4', '5', '6', '7', '8'])} />);
    const rows = document.querySelectorAll('.seat-row');
    expect(rows).toHaveLength(2);
    const first = Array.from(rows[0].children).map((c) => (c.classList.contains('aisle') ? '|' : c.textContent));
    expect(first).toEqual(['1', '1', '2', '|', '3', '4']);
    expect(screen.getByRole('button', { name: 'Seat 7, available' })).toBeInTheDocument();
  });

  it('draws a doctor’s day as time slots by the hour', () => {
    render(<SeatMap showType="doctor" seats={seats(['08:00', '08:15', '08:30', '08:45', '09:00'], { '08:15': 'booked' })} />);
    expect(screen.getByRole('button', { name: 'Time slot 08:00, available' })).toBeEnabled();
    expect(screen.getByRole('button', { name: 'Time slot 08:15, booked' })).toHaveAttribute('aria-disabled', 'true');
    expect(document.querySelectorAll('.seat-row')).toHaveLength(2);
  });

  it('marks the viewer’s own seats in their labels', () => {
    render(
      <SeatMap
        showType="movie"
        seats={seats(['A1', 'A2'], { A1: 'locked', A2: 'booked' })}
        mine={new Set(['A1', 'A2'])}
      />,
    );
    expect(screen.getByRole('button', { name: 'Seat A1, locked, held by you' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Seat A2, booked, yours' })).toBeInTheDocument();
  });

  it('selects and deselects with a click, and tells it with aria-pressed', async () => {
    const user = userEvent.setup();
    render(<Selectable type="movie" list={seats(movieLabels('A', 4), { A4: 'locked' })} />);
    const a2 = screen.getByRole('button', { name: 'Seat A2, available' });
    expect(a2).toHaveAttribute('aria-pressed', 'false');
    await user.click(a2);
    expect(a2).toHaveAttribute('aria-pressed', 'true');
    expect(a2).toHaveClass('is-selected');
    expect(screen.getByTestId('picked')).toHaveTextContent('A2');
    await user.click(a2);
    expect(a2).toHaveAttribute('aria-pressed', 'false');
    // A locked seat cannot be picked.
    await user.click(screen.getByRole('button', { name: 'Seat A4, locked' }));
    expect(screen.getByTestId('picked')).toHaveTextContent('');
  });

  it('works from the keyboard: Tab, Enter, Space and the arrow keys', async () => {
    const user = userEvent.setup();
    render(<Selectable type="movie" list={seats(movieLabels('AB', 3), { A2: 'booked' })} />);
    await user.tab();
    expect(screen.getByRole('button', { name: 'Seat A1, available' })).toHaveFocus();
    await user.keyboard('{Enter}');
    expect(screen.getByTestId('picked')).toHaveTextContent('A1');
    // Right skips the booked A2.
    await user.keyboard('{ArrowRight}');
    expect(screen.getByRole('button', { name: 'Seat A3, available' })).toHaveFocus();
    await user.keyboard(' ');
    expect(screen.getByTestId('picked')).toHaveTextContent('A1,A3');
    await user.keyboard('{ArrowDown}');
    expect(screen.getByRole('button', { name: 'Seat B3, available' })).toHaveFocus();
    await user.keyboard('{Home}');
    expect(screen.getByRole('button', { name: 'Seat B1, available' })).toHaveFocus();
    await user.keyboard('{ArrowUp}');
    expect(screen.getByRole('button', { name: 'Seat A1, available' })).toHaveFocus();
    await user.keyboard('{Enter}');
    expect(screen.getByTestId('picked')).toHaveTextContent('A3');
  });

  it('is read-only on the timeline: every seat disabled, none pressed', () => {
    render(<SeatMap showType="movie" seats={seats(['A1', 'A2'])} readOnly />);
    for (const b of screen.getAllByRole('button')) {
      expect(b).toBeDisabled();
      expect(b).not.toHaveAttribute('aria-pressed');
    }
  });

  it('is one Tab stop, and a seat that becomes unavailable keeps the focus but cannot be picked', async () => {
    const user = userEvent.setup();
    const { rerender } = render(
      <>
        <Selectable type="movie" list={seats(movieLabels('AB', 5))} />
        <button type="button">after</button>
      </>,
    );
    expect(screen.getAllByRole('button').filter((b) => b.classList.contains('seat') && b.tabIndex === 0)).toHaveLength(1);
    await user.tab();
    expect(screen.getByRole('button', { name: 'Seat A1, available' })).toHaveFocus();
    await user.keyboard('{ArrowRight}');
    await user.tab();
    expect(screen.getByRole('button', { name: 'after' })).toHaveFocus();
    await user.tab({ shift: true });
    expect(screen.getByRole('button', { name: 'Seat A2, available' })).toHaveFocus();

    rerender(
      <>
        <Selectable type="movie" list={seats(movieLabels('AB', 5), { A2: 'locked' })} />
        <button type="button">after</button>
      </>,
    );
    const a2 = screen.getByRole('button', { name: 'Seat A2, locked' });
    expect(a2).toHaveFocus();
    expect(a2).toHaveAttribute('aria-disabled', 'true');
    await user.keyboard('{Enter}');
    expect(screen.getByTestId('picked')).toHaveTextContent('');
    await user.keyboard('{ArrowRight}');
    expect(screen.getByRole('button', { name: 'Seat A3, available' })).toHaveFocus();
  });
});
