// The caller's bookings, newest first, with the holds still running.
import { useCallback, useEffect, useState } from 'react';
import { Link } from 'react-router';
import { cancelBooking, confirmBooking, getShow, isApiError, listBookings, serverNow } from '../api/client';
import type { Booking, ShowSummary } from '../api/types';
import { Countdown } from '../components/Countdown';
import { Notice } from '../components/Notice';
import { RequireRole } from '../components/RequireRole';
import { describeError, listSeats, type NoticeData } from '../lib/errors';
import { formatDateTime, STATUS_LABEL, TYPE_LABEL } from '../lib/format';
import { useOnReconnect } from '../lib/useOnline';
import { useTitle } from '../lib/useTitle';

const MAX_SHOW_LOOKUPS = 20;

function BookingsList() {
  const [bookings, setBookings] = useState<Booking[] | null>(null);
  const [shows, setShows] = useState<Map<number, ShowSummary>>(new Map());
  const [notice, setNotice] = useState<NoticeData | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [, setTick] = useState(0);
  const [loadError, setLoadError] = useState<NoticeData | null>(null);
  const [attempt, setAttempt] = useState(0);
  const retry = useCallback(() => setAttempt((n) => n + 1), []);
  // Bookings that failed to load (offline, say) load again when the connection is back.
  const failed = loadError !== null;
  useOnReconnect(() => {
    if (failed) retry();
  });

  const load = useCallback(async (signal?: AbortSignal) => {
    const list = await listBookings(signal);
    setBookings(list);
    const ids = [...new Set(list.map((b) => b.show_id))].slice(0, MAX_SHOW_LOOKUPS);
    const found = await Promise.all(ids.map((id) => getShow(id, signal).catch(() => null)));
    setShows(new Map(found.filter((s): s is NonNullable<typeof s> => s !== null).map((s) => [s.id, s])));
  }, []);

  useEffect(() => {
    const ctl = new AbortController();
    setLoadError(null);
    load(ctl.signal).catch((e: unknown) => {
      if (!ctl.signal.aborted) setLoadError(describeError(e));
    });
    return () => ctl.abort();
  }, [load, attempt]);

  const act = async (b: Booking, what: 'confirm' | 'cancel') => {
    setBusy(`${what}:${b.id}`);
    setNotice(null);
    try {
      const nb = what === 'confirm' ? await confirmBooking(b.id) : await cancelBooking(b.id);
      setBookings((bs) => bs?.map((x) => (x.id === nb.id ? { ...x, ...nb } : x)) ?? null);
      setNotice({
        tone: 'success',
        title: what === 'confirm' ? 'Booked!' : 'Cancelled',
        detail:
          what === 'confirm'
            ? `${listSeats(nb.seat_numbers)} ${nb.seat_numbers.length === 1 ? 'is' : 'are'} yours.`
            : `${listSeats(nb.seat_numbers)} ${nb.seat_numbers.length === 1 ? 'is' : 'are'} free again.`,
      });
    } catch (e) {
      if (isApiError(e) && e.status === 409 && e.problem.title === 'Hold expired') {
        setNotice({ tone: 'error', title: 'Your hold has expired', detail: 'The seats went back on sale.' });
      } else {
        setNotice(describeError(e));
      }
      load().catch(() => {});
    } finally {
      setBusy(null);
    }
  };

  if (bookings === null && loadError) {
    // Only the error: no "No bookings yet" under it, since we do not know.
    return <Notice notice={loadError} onRetry={retry} />;
  }
  if (bookings === null) {
    return (
      <p className="muted" role="status">
        Loading your bookings…
      </p>
    );
  }

  return (
    <>
      <Notice notice={notice} onDismiss={() => setNotice(null)} />
      {bookings.length === 0 ? (
        <div className="empty">
          <p>No bookings yet.</p>
          <p>
            <Link to="/">Find a show</Link>
          </p>
        </div>
      ) : (
        <ul className="booking-list" aria-label="Bookings">
          {bookings.map((b) => {
            const show = shows.get(b.show_id);
            const running = b.status === 'pending' && Date.parse(b.expires_at) > serverNow();
            const shown = b.status === 'pending' && !running ? 'expired' : b.status;
            const started = show ? Date.parse(show.start_time) <= serverNow() : false;
            return (
              <li key={b.id} className="booking-row card" data-testid="booking" data-status={shown}>
                <div className="booking-main">
                  <Link to={`/shows/${b.show_id}`} className="booking-show">
                    {show ? show.name : `Show ${b.show_id}`}
                  </Link>
                  {show && (
                    <span className="muted small">
                      {TYPE_LABEL[show.show_type]} · {formatDateTime(show.start_time)}
                    </span>
                  )}
                  <span className="booking-seats">{listSeats(b.seat_numbers)}</span>
                </div>
                <div className="booking-side">
                  <span className={`status-pill status-pill--${shown}`}>{STATUS_LABEL[shown]}</span>
                  {running && (
                    <span className="small">
                      expires in{' '}
                      <Countdown until={b.expires_at} label="Hold expires in" onExpire={() => setTick((n) => n + 1)} />
                    </span>
                  )}
                  <div className="hold-actions">
                    {running && (
                      <button
                        type="button"
                        className="btn btn--primary btn--small"
                        disabled={busy !== null}
                        onClick={() => act(b, 'confirm')}
                      >
                        {busy === `confirm:${b.id}` ? 'Paying…' : 'Confirm and pay'}
                      </button>
                    )}
                    {(running || (b.status === 'confirmed' && !started)) && (
                      <button
                        type="button"
                        className="btn btn--ghost btn--small"
                        disabled={busy !== null}
                        onClick={() => act(b, 'cancel')}
                      >
                        {busy === `cancel:${b.id}` ? 'Cancelling…' : 'Cancel'}
                      </button>
                    )}
                  </div>
                </div>
              </li>
            );
          })}
        </ul>
      )}
    </>
  );
}

export function MyBookings() {
  useTitle('My bookings');
  return (
    <section aria-labelledby="bookings-title">
      <div className="page-head">
        <h1 id="bookings-title">My bookings</h1>
      </div>
      <RequireRole roles={['user', 'admin']} what="your bookings">
        <BookingsList />
      </RequireRole>
    </section>
  );
}
