// Time travel for auditors: a show's event stream as a timeline, and a
// slider that redraws the seat map as it stood after any event.
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { Link, useParams } from 'react-router';
import { getShow, showEvents } from '../api/client';
import type { Seat, ShowDetail, StoredEvent } from '../api/types';
import { Notice } from '../components/Notice';
import { RequireRole } from '../components/RequireRole';
import { SeatLegend, SeatMap } from '../components/SeatMap';
import { describeError, type NoticeData } from '../lib/errors';
import { describeEvent, foldHistory, HistoryCursor } from '../lib/fold';
import { formatDateTime, formatTime, TYPE_LABEL } from '../lib/format';
import { useOnReconnect } from '../lib/useOnline';
import { useTitle } from '../lib/useTitle';

function counts(seats: Seat[]) {
  const c = { available: 0, locked: 0, booked: 0 };
  for (const s of seats) c[s.status]++;
  return c;
}

/** The end of an id: UUIDv7s begin with their timestamp, so their heads look alike. */
function shortId(id: unknown): string {
  return typeof id === 'string' ? id.slice(-8) : '';
}

function IdTail({ what, id }: { what: string; id: unknown }) {
  if (typeof id !== 'string' || !id) return null;
  return (
    <>
      {' · '}
      {what}{' '}
      <span className="id-tail" title={id}>
        …{shortId(id)}
      </span>
    </>
  );
}

export function seatsAt(cursor: HistoryCursor): Seat[] {
  return cursor.order.map((n) => ({ seat_number: n, status: cursor.seats.get(n)?.status ?? 'available' }));
}

function Timeline({ showId }: { showId: number }) {
  const [show, setShow] = useState<ShowDetail | null>(null);
  const [events, setEvents] = useState<StoredEvent[] | null>(null);
  const [index, setIndex] = useState(0);
  const [notice, setNotice] = useState<NoticeData | null>(null);

  const load = useCallback(
    async (signal?: AbortSignal) => {
      const [s, evs] = await Promise.all([getShow(showId, signal), showEvents(showId, signal)]);
      setShow(s);
      setEvents(evs);
      setIndex(Math.max(0, evs.length - 1));
    },
    [showId],
  );

  const [attempt, setAttempt] = useState(0);
  const retry = useCallback(() => setAttempt((n) => n + 1), []);
  useEffect(() => {
    const ctl = new AbortController();
    setNotice(null);
    load(ctl.signal).catch((e: unknown) => {
      if (!ctl.signal.aborted) setNotice(describeError(e));
    });
    return () => ctl.abort();
  }, [load, attempt]);
  const failed = notice !== null && !events;
  useOnReconnect(() => {
    if (failed) retry();
  });
  useTitle(show ? `History of ${show.name}` : 'History');

  const snapshots = useMemo(() => (events ? foldHistory(events) : []), [events]);
  // One seat map, moved along the history as the slider moves.
  const cursorRef = useRef<HistoryCursor | null>(null);
  if (!cursorRef.current || cursorRef.current.steps !== snapshots) cursorRef.current = new HistoryCursor(snapshots);

  if (notice && !events) return <Notice notice={notice} onRetry={retry} />;
  if (!events || !show) {
    return (
      <p className="muted" role="status">
        Loading the history…
      </p>
    );
  }
  if (snapshots.length === 0) return <p className="muted">This show has no events.</p>;

  const snap = snapshots[Math.min(index, snapshots.length - 1)];
  const seats = seatsAt(cursorRef.current.moveTo(Math.min(index, snapshots.length - 1)));
  const c = counts(seats);
  const last = snapshots.length;
  const step = (d: number) => setIndex((i) => Math.max(0, Math.min(last - 1, i + d)));

  return (
    <>
      <Notice notice={notice} onDismiss={() => setNotice(null)} />
      <p className="history-show">
        <span className={`type-badge type-badge--${show.show_type}`}>{TYPE_LABEL[show.show_type]}</span>{' '}
        <strong>{show.name}</strong> · starts {formatDateTime(show.start_time)}
      </p>
      <div className="history-controls card">
        <div className="history-now" aria-live="polite" data-testid="history-position">
          <strong>
            After event {snap.version} of {last}
          </strong>
          : {snap.event.event_type} · {formatDateTime(snap.event.recorded_at)}
        </div>
        <div className="slider-row">
          <button type="button" className="btn btn--ghost btn--small" onClick={() => step(-1)} disabled={index === 0} aria-label="Previous event">
            ‹
          </button>
          <input
            type="range"
            className="slider"
            min={1}
            max={last}
            step={1}
            value={index + 1}
            aria-label="Event in the show's history"
            aria-valuetext={`Event ${snap.version} of ${last}: ${describeEvent(snap.event)}`}
            onChange={(e) => setIndex(Number(e.target.value) - 1)}
            data-testid="history-slider"
          />
          <button type="button" className="btn btn--ghost btn--small" onClick={() => step(1)} disabled={index === last - 1} aria-label="Next event">
            ›
          </button>
          <button type="button" className="btn btn--ghost btn--small" onClick={() => load().catch((e) => setNotice(describeError(e)))}>
            Reload
          </button>
        </div>
        <p className="muted small" data-testid="history-counts">
          {c.available} free · {c.locked} held · {c.booked} booked
        </p>
      </div>

      <div className="show-layout">
        <div className="show-map card">
          <SeatMap
            showType={show.show_type}
            seats={seats}
            readOnly
            highlighted={new Set(snap.changed)}
            label={`Seat map after event ${snap.version}`}
          />
          <SeatLegend showType={show.show_type} readOnly />
        </div>
        <aside className="show-panel">
          <ol className="timeline" aria-label="Events">
            {snapshots.map((s, i) => (
              <li key={s.event.event_id} className={i === index ? 'is-current' : ''}>
                <button
                  type="button"
                  className="timeline-item"
                  aria-current={i === index ? 'step' : undefined}
                  onClick={() => setIndex(i)}
                >
                  <span className={`event-dot event-dot--${s.event.event_type}`} aria-hidden="true" />
                  <span className="timeline-text">
                    <span className="timeline-title">
                      {s.version}. {s.event.event_type}
                    </span>
                    <span className="timeline-desc">{describeEvent(s.event)}</span>
                    <span className="muted small">
                      {formatTime(s.event.recorded_at)}
                      <IdTail what="booking" id={s.event.data?.booking_id} />
                      <IdTail what="user" id={s.event.metadata?.user_id} />
                    </span>
                  </span>
                </button>
              </li>
            ))}
          </ol>
        </aside>
      </div>
    </>
  );
}

export function ShowHistory() {
  const params = useParams();
  const showId = /^[1-9]\d*$/.test(params.id ?? '') ? Number(params.id) : null;
  return (
    <section aria-labelledby="history-title">
      <div className="page-head">
        <div>
          <p className="eyebrow">
            <Link to={showId ? `/shows/${showId}` : '/'}>← Back to the show</Link>
          </p>
          <h1 id="history-title">History{showId ? ` of show ${showId}` : ''}</h1>
        </div>
      </div>
      <RequireRole roles={['auditor', 'admin']} what="a show's history">
        {showId === null ? <p>No such show.</p> : <Timeline showId={showId} />}
      </RequireRole>
    </section>
  );
}
