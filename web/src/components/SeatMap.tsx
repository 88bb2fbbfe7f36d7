// The seat map: every seat (or time slot) is a toggle button that says what
// it is and whether it can be had ("Seat A1, available"), with arrow keys to
// move between seats. Rows scroll sideways on a narrow screen.
// The map is one Tab stop (a roving tabindex): arrow keys move within it.
// Seats that cannot be had are aria-disabled, not disabled, so a seat that
// a live update locks keeps the keyboard focus.
import { memo, useMemo, useState, type KeyboardEvent } from 'react';
import type { Seat, SeatStatus, ShowType } from '../api/types';
import { layoutSeats, placeNoun, type LayoutKind } from '../lib/layout';

const EMPTY: ReadonlySet<string> = new Set();

export interface SeatMapProps {
  showType: ShowType;
  /** Every seat with its status, in seat order. */
  seats: Seat[];
  selected?: ReadonlySet<string>;
  /** Seats the viewer holds or bought. */
  mine?: ReadonlySet<string>;
  /** Seats to flash (taken by someone else a moment ago). */
  flashing?: ReadonlySet<string>;
  /** Seats to outline (changed by the event on show in the timeline). */
  highlighted?: ReadonlySet<string>;
  onToggle?: (seat: string) => void;
  /** No selection at all (the history timeline). */
  readOnly?: boolean;
  label?: string;
}

function shortLabel(kind: LayoutKind, seat: string): string {
  if (kind === 'movie') return seat.replace(/^[A-Za-z]+\s*-?\s*/, '');
  if (kind === 'doctor') return seat.replace(/^d\d+\s+/, '');
  return seat;
}

export function seatAriaLabel(noun: string, seat: string, status: SeatStatus, mine: boolean): string {
  let s = `${noun} ${seat}, ${status}`;
  if (mine && status === 'locked') s += ', held by you';
  if (mine && status === 'booked') s += ', yours';
  return s;
}

/** Arrow keys move the focus between the seats that can be pressed. */
function onArrowKeys(e: KeyboardEvent<HTMLDivElement>) {
  const keys = ['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown', 'Home', 'End'];
  if (!keys.includes(e.key)) return;
  const target = e.target as HTMLElement;
  if (!target.matches('button.seat')) return;
  // The seats that can be pressed, and the focused one even if it just became unavailable.
  const all = Array.from(e.currentTarget.querySelectorAll<HTMLButtonElement>('button.seat:not(:disabled)')).filter(
    (b) => b === target || b.getAttribute('aria-disabled') !== 'true',
  );
  if (all.length === 0) return;
  const row = Number(target.dataset.row);
  const col = Number(target.dataset.col);
  const inRow = (r: number) => all.filter((b) => Number(b.dataset.row) === r);
  let next: HTMLButtonElement | undefined;
  const i = all.indexOf(target as HTMLButtonElement);
  switch (e.key) {
    case 'ArrowLeft':
      next = i > 0 ? all[i - 1] : undefined;
      break;
    case 'ArrowRight':
      next = i >= 0 && i < all.length - 1 ? all[i + 1] : undefined;
      break;
    case 'Home':
      next = inRow(row)[0];
      break;
    case 'End':
      next = inRow(row).at(-1);
      break;
    case 'ArrowUp':
    case 'ArrowDown': {
      const rows = [...new Set(all.map((b) => Number(b.dataset.row)))].sort((a, b) => a - b);
      const candidates = e.key === 'ArrowUp' ? rows.filter((r) => r < row).reverse() : rows.filter((r) => r > row);
      const r = candidates[0];
      if (r !== undefined) {
        next = inRow(r).reduce<HTMLButtonElement | undefined>((best, b) => {
          if (!best) return b;
          return Math.abs(Number(b.dataset.col) - col) < Math.abs(Number(best.dataset.col) - col) ? b : best;
        }, undefined);
      }
      break;
    }
  }
  e.preventDefault();
  next?.focus();
}

function SeatMapImpl({
  showType,
  seats,
  selected = EMPTY,
  mine = EMPTY,
  flashing = EMPTY,
  highlighted = EMPTY,
  onToggle,
  readOnly = false,
  label = 'Seat map',
}: SeatMapProps) {
  const status = useMemo(() => new Map(seats.map((s) => [s.seat_number, s.status])), [seats]);
  const layout = useMemo(
    () =>
      layoutSeats(
        showType,
        seats.map((s) => s.seat_number),
      ),
    [showType, seats],
  );
  const noun = placeNoun(showType);
  const [active, setActive] = useState<string | null>(null);
  // The one seat in the Tab order: the last one focused, else the first selected, else the first free one.
  const tabStop = useMemo(() => {
    if (active !== null && status.has(active)) return active;
    for (const s of seats) if (selected.has(s.seat_number)) return s.seat_number;
    return (seats.find((s) => s.status === 'available') ?? seats[0])?.seat_number ?? null;
  }, [active, status, seats, selected]);

  return (
    <div className={`seatmap seatmap--${layout.kind}`} role="group" aria-label={label}>
      {layout.kind === 'movie' && (
        <div className="seatmap-front" aria-hidden="true">
          Screen
        </div>
      )}
      {layout.kind === 'bus' && (
        <div className="seatmap-front" aria-hidden="true">
          Front · driver
        </div>
      )}
      <div className="seatmap-scroll">
        <div
          className="seatmap-grid"
          style={{ ['--cols' as string]: layout.columns }}
          onKeyDown={onArrowKeys}
        >
          {layout.rows.map((row, r) => (
            <div className="seat-row" key={`${row.label}-${r}`}>
              <span className="row-label" aria-hidden="true">
                {row.label}
              </span>
              {row.cells.map((seat, c) => {
                if (seat === null) return <span className="aisle" key={`aisle-${c}`} aria-hidden="true" />;
                const st = status.get(seat) ?? 'available';
                const unavailable = !readOnly && st !== 'available';
                const isSelected = !readOnly && selected.has(seat);
                const isMine = mine.has(seat);
                const classes = [
                  'seat',
                  `seat--${st}`,
                  isSelected ? 'is-selected' : '',
                  isMine ? 'is-mine' : '',
                  flashing.has(seat) ? 'is-flash' : '',
                  highlighted.has(seat) ? 'is-changed' : '',
                ]
                  .filter(Boolean)
                  .join(' ');
                return (
                  <button
                    key={seat}
                    type="button"
                    className={classes}
                    aria-label={seatAriaLabel(noun, seat, st, isMine)}
                    aria-pressed={readOnly ? undefined : isSelected}
                    disabled={readOnly}
                    aria-disabled={unavailable || undefined}
                    tabIndex={seat === tabStop ? 0 : -1}
                    onFocus={() => setActive(seat)}
                    data-seat={seat}
                    data-status={st}
                    data-row={r}
                    data-col={c}
                    title={seatAriaLabel(noun, seat, st, isMine)}
                    onClick={() => {
                      if (!unavailable) onToggle?.(seat);
                    }}
                  >
                    {shortLabel(layout.kind, seat)}
                  </button>
                );
              })}
            </div>
          ))}
        </div>
      </div>
    </div>
  );
}

export const SeatMap = memo(SeatMapImpl);

/** What the colours mean; a read-only map (the timeline) has no selection and no owner. */
export function SeatLegend({ showType, readOnly = false }: { showType: ShowType; readOnly?: boolean }) {
  const noun = placeNoun(showType).toLowerCase();
  return (
    <ul className="legend" aria-label="Legend">
      <li>
        <span className="swatch seat--available" aria-hidden="true" /> Free {noun}
      </li>
      {!readOnly && (
        <li>
          <span className="swatch is-selected" aria-hidden="true" /> Selected
        </li>
      )}
      <li>
        <span className="swatch seat--locked" aria-hidden="true" /> Held
      </li>
      <li>
        <span className="swatch seat--booked" aria-hidden="true" /> Booked
      </li>
      {!readOnly && (
        <li>
          <span className="swatch is-mine" aria-hidden="true" /> Yours
        </li>
      )}
    </ul>
  );
}
