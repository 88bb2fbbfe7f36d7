// One show: its seat map, live; pick seats, hold them, watch the hold's
// countdown, confirm (pay) or cancel.
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { Link, useLocation, useNavigate, useParams } from 'react-router';
import {
  cancelBooking,
  confirmBooking,
  getBooking,
  getShow,
  holdSeats,
  isApiError,
  listBookings,
  serverNow,
} from '../api/client';
import type { Booking, BookingStatus, LiveKind, LiveMessage, SeatStatus, ShowDetail } from '../api/types';
import { canAudit, canBook, useSession } from '../auth/session';
import { Countdown } from '../components/Countdown';
import { LiveBadge } from '../components/LiveBadge';
import { Notice } from '../components/Notice';
import { SeatLegend, SeatMap } from '../components/SeatMap';
import { describeError, listSeats, seatLimitNotice, SeatWords, seatWords, type NoticeData } from '../lib/errors';
import { formatDateTime, formatTime, STATUS_LABEL, TYPE_LABEL } from '../lib/format';
import { placeNoun } from '../lib/layout';
import { applyLiveMessage, useLiveShow } from '../lib/live';
import { useOnline, useOnReconnect } from '../lib/useOnline';
import { useTitle } from '../lib/useTitle';

const MAX_SEATS_PER_HOLD = 100;
const FLASH_MS = 2400;
const SELECTION_KEY = (id: number) => `bookingledger.selection.${id}`;

/** The booking status a 409 on confirm or cancel reports: "Hold expired", or
 * the status its detail names ("booking … is expired, not pending"). */
function conflictStatus(problem: { title?: string; detail?: string }): BookingStatus | null {
  if (problem.title === 'Hold expired') return 'expired';
  const m = /\bis (confirmed|expired|cancelled), not pending/.exec(problem.detail ?? '');
  return m ? (m[1] as BookingStatus) : null;
}

function withSeats(show: ShowDetail, seats: Iterable<string>, status: SeatStatus, onlyFrom?: SeatStatus): ShowDetail {
  const set = new Set(seats);
  let changed = false;
  const next = show.seats.map((s) => {
    if (!set.has(s.seat_number) || s.status === status || (onlyFrom && s.status !== onlyFrom)) return s;
    changed = true;
    return { ...s, status };
  });
  if (!changed) return show;
  return { ...show, seats: next, available_seats: next.filter((s) => s.status === 'available').length };
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

interface BookingCardProps {
  booking: Booking;
  noun: string;
  busy: string | null;
  timedOut: boolean;
  onConfirm: (b: Booking) => void;
  onCancel: (b: Booking) => void;
  onTimeout: (b: Booking) => void;
  onDismiss: (b: Booking) => void;
  /** The login ended (expired or refused): the hold still runs, but paying needs a new login. */
  loggedOut: boolean;
}

function BookingCard({ booking: b, noun, busy, timedOut, onConfirm, onCancel, onTimeout, onDismiss, loggedOut }: BookingCardProps) {
  const seats = listSeats(b.seat_numbers);
  const words = seatWords(noun, b.seat_numbers);
  const one = b.seat_numbers.length === 1;
  const pending = b.status === 'pending' && !timedOut;
  return (
    <li className={`hold hold--${timedOut && b.status === 'pending' ? 'expired' : b.status}`} data-testid="hold" data-booking={b.id}>
      {pending && (
        <>
          <div className="hold-head">
            <h3 className="hold-title" tabIndex={-1}>
              Held {words}
            </h3>
            <span className="hold-timer">
              <span className="muted">expires in</span>{' '}
              <Countdown until={b.expires_at} label="Hold expires in" onExpire={() => onTimeout(b)} />
            </span>
          </div>
          {loggedOut ? (
            <p className="small" data-testid="login-ended">
              Your login ended — log in again to pay before {formatTime(b.expires_at)}.{' '}
              <Link to={`/login?next=${encodeURIComponent(`/shows/${b.show_id}`)}`}>Log in</Link>
            </p>
          ) : (
            <p className="muted small">
              Nobody else can take {one ? 'it' : 'them'} until then. Pay to make {one ? 'it' : 'them'} yours.
            </p>
          )}
          {!loggedOut && <div className="hold-actions">
            <button
              type="button"
              className="btn btn--primary"
              onClick={() => onConfirm(b)}
              disabled={busy !== null}
            >
              {busy === `confirm:${b.id}` ? 'Paying…' : 'Confirm and pay'}
            </button>
            <button type="button" className="btn btn--ghost" onClick={() => onCancel(b)} disabled={busy !== null}>
              {busy === `cancel:${b.id}` ? 'Cancelling…' : 'Cancel hold'}
            </button>
          </div>}
        </>
      )}
      {b.status === 'pending' && timedOut && (
        <div className="hold-head">
          <h3 className="hold-title" tabIndex={-1}>
            Your hold on {words} has expired
          </h3>
          <button type="button" className="btn btn--ghost btn--small" onClick={() => onDismiss(b)}>
            Dismiss
          </button>
        </div>
      )}
      {b.status === 'confirmed' && (
        <>
          <div className="hold-head">
            <h3 className="hold-title" tabIndex={-1}>
              Booked {words}
            </h3>
            <span className="status-pill status-pill--confirmed">{STATUS_LABEL.confirmed}</span>
          </div>
          <div className="hold-actions">
            <button type="button" className="btn btn--ghost" onClick={() => onCancel(b)} disabled={busy !== null}>
              {busy === `cancel:${b.id}` ? 'Cancelling…' : 'Cancel booking'}
            </button>
          </div>
        </>
      )}
      {(b.status === 'cancelled' || b.status === 'expired') && (
        <div className="hold-head">
          <h3 className="hold-title" tabIndex={-1}>
            {one ? noun : `${noun}s`} {seats}: {STATUS_LABEL[b.status].toLowerCase()}
          </h3>
          <button type="button" className="btn btn--ghost btn--small" onClick={() => onDismiss(b)}>
            Dismiss
          </button>
        </div>
      )}
    </li>
  );
}

export function ShowPage() {
  const params = useParams();
  const showId = /^[1-9]\d*$/.test(params.id ?? '') ? Number(params.id) : null;
  const { session, expired } = useSession();
  const online = useOnline();
  const navigate = useNavigate();
  const location = useLocation();

  const [show, setShowState] = useState<ShowDetail | null>(null);
  const showRef = useRef<ShowDetail | null>(null);
  const [loadError, setLoadError] = useState<NoticeData | null>(null);
  const [selected, setSelected] = useState<Set<string>>(() => new Set());
  const [flashing, setFlashing] = useState<Set<string>>(() => new Set());
  const [bookings, setBookings] = useState<Booking[]>([]);
  const [timedOut, setTimedOut] = useState<Set<string>>(() => new Set());
  const [notice, setNotice] = useState<NoticeData | null>(
    () => (location.state as { notice?: NoticeData } | null)?.notice ?? null,
  );
  const [busy, setBusy] = useState<string | null>(null);
  // Said to screen readers only (the hold card shows the same).
  const [announcement, setAnnouncement] = useState('');
  const [blockedUntil, setBlockedUntil] = useState(0);
  const [attempt, setAttempt] = useState(0);
  const [focusHold, setFocusHold] = useState<string | null>(null);
  // Bumped to read my bookings on this show again (after a seat-limit refusal).
  const [bookingsTick, setBookingsTick] = useState(0);
  const pendingHold = useRef<Set<string> | null>(null);
  const flashTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  const commit = useCallback((s: ShowDetail | null) => {
    showRef.current = s;
    setShowState(s);
  }, []);

  const flash = useCallback((seats: string[]) => {
    setFlashing(new Set(seats));
    clearTimeout(flashTimer.current);
    flashTimer.current = setTimeout(() => setFlashing(new Set()), FLASH_MS);
  }, []);
  useEffect(() => () => clearTimeout(flashTimer.current), []);

  // A rate limit's wait ends by itself.
  useEffect(() => {
    if (!blockedUntil) return;
    const t = setTimeout(() => setBlockedUntil(0), Math.max(0, blockedUntil - Date.now()));
    return () => clearTimeout(t);
  }, [blockedUntil]);

  const reload = useCallback(
    async (signal?: AbortSignal) => {
      if (showId === null) return;
      const s = await getShow(showId, signal);
      const cur = showRef.current;
      // A lagging read model may answer with a version live messages have
      // already passed; at the same version, what this page learnt since
      // (a 409's taken seats) is newer.
      if (!cur || cur.id !== s.id || s.version > cur.version) {
        commit(s);
      }
    },
    [showId, commit],
  );

  // The show.
  useEffect(() => {
    commit(null);
    setLoadError(null);
    if (showId === null) {
      setLoadError({ tone: 'error', title: 'No such show', detail: 'This address does not name a show.' });
      return;
    }
    const ctl = new AbortController();
    reload(ctl.signal).catch((e: unknown) => {
      if (ctl.signal.aborted) return;
      const n = describeError(e);
      setLoadError(
        isApiError(e) && e.status === 404
          ? { tone: 'error', title: 'Show not found', detail: 'It may have been removed, or the address is wrong.' }
          : n,
      );
    });
    return () => ctl.abort();
  }, [showId, reload, commit, attempt]);

  // A page that failed to load (offline, say) tries again when the connection is back.
  const retry = useCallback(() => setAttempt((n) => n + 1), []);
  useOnReconnect(() => {
    if (!showRef.current) retry();
  });

  // After a hold, the keyboard focus moves to its card (the Hold button is disabled meanwhile).
  useEffect(() => {
    if (!focusHold) return;
    const el = document.querySelector<HTMLElement>(`[data-booking="${CSS.escape(focusHold)}"] .hold-title`);
    if (el) {
      el.focus();
      setFocusHold(null);
    }
  });

  // A selection kept across the trip to the login page.
  useEffect(() => {
    if (!show || showId === null) return;
    const raw = sessionStorage.getItem(SELECTION_KEY(showId));
    if (!raw) return;
    sessionStorage.removeItem(SELECTION_KEY(showId));
    try {
      const free = new Set(show.seats.filter((s) => s.status === 'available').map((s) => s.seat_number));
      const keep = (JSON.parse(raw) as string[]).filter((s) => free.has(s));
      if (keep.length) setSelected(new Set(keep));
    } catch {
      // ignore a damaged entry
    }
    // Only once, when the show has loaded.
  }, [show !== null, showId]);

  // My bookings on this show that still matter.
  useEffect(() => {
    if (!canBook(session) || showId === null) {
      // A login that ended (expired, or refused by the server) keeps the
      // running holds on show, with a way back to pay for them.
      setBookings((bs) =>
        !session && expired ? bs.filter((b) => b.status === 'pending' && Date.parse(b.expires_at) > serverNow()) : [],
      );
      return;
    }
    const ctl = new AbortController();
    listBookings(ctl.signal)
      .then((all) => {
        const now = serverNow();
        setBookings(
          all.filter(
            (b) =>
              b.show_id === showId &&
              ((b.status === 'pending' && Date.parse(b.expires_at) > now) || b.status === 'confirmed'),
          ),
        );
      })
      .catch(() => {
        // The seat map works without them; errors show on the next action.
      });
    return () => ctl.abort();
  }, [session, showId, attempt, bookingsTick]);

  const bookingsRef = useRef(bookings);
  bookingsRef.current = bookings;
  const selectedRef = useRef(selected);
  selectedRef.current = selected;

  // A live change to the seats of one of my bookings: the messages no longer
  // name bookings, so the seats tell. All of a pending hold's seats booked:
  // it was paid (the simulated payment, or another tab). A seat of a hold or
  // booking of mine available again: it expired or was cancelled (by an
  // admin, or another tab); which one, the server says. A message is applied
  // only above the map's version, so it is newer than what the map shows.
  const refreshing = useRef<Set<string>>(new Set());
  const refreshBooking = useCallback((id: string) => {
    if (refreshing.current.has(id)) return;
    refreshing.current.add(id);
    getBooking(id)
      .then((nb) => {
        if (nb.status === 'pending') return; // the read model has not caught up; the countdown still runs
        setBookings((bs) => bs.map((b) => (b.id === id && b.status !== nb.status ? { ...b, ...nb } : b)));
      })
      .catch(() => {})
      .finally(() => refreshing.current.delete(id));
  }, []);

  const onLive = useCallback(
    (m: LiveMessage, kind: LiveKind) => {
      const cur = showRef.current;
      if (!cur) return;
      const r = applyLiveMessage(cur, m, kind);
      if (r.stale) return;
      commit(r.show);
      if (r.changed.size === 0) return;

      const status = new Map(r.show.seats.map((s) => [s.seat_number, s.status]));
      const paid: string[] = [];
      for (const b of bookingsRef.current) {
        if (b.status !== 'pending' && b.status !== 'confirmed') continue;
        if (!b.seat_numbers.some((n) => r.changed.has(n))) continue;
        if (b.seat_numbers.some((n) => status.get(n) === 'available')) refreshBooking(b.id);
        else if (b.status === 'pending' && b.seat_numbers.every((n) => status.get(n) === 'booked')) paid.push(b.id);
      }
      if (paid.length) {
        setBookings((bs) => bs.map((b) => (paid.includes(b.id) && b.status === 'pending' ? { ...b, status: 'confirmed' } : b)));
      }

      // Seats someone else just took out of my selection.
      const inFlight = pendingHold.current;
      const taken = [...r.changed]
        .filter(([n, st]) => st !== 'available' && selectedRef.current.has(n) && !inFlight?.has(n))
        .map(([n]) => n);
      if (taken.length) {
        setSelected((sel) => {
          const next = new Set(sel);
          taken.forEach((s) => next.delete(s));
          return next;
        });
        flash(taken);
        setNotice({
          tone: 'warning',
          title: `${SeatWords(placeNoun(cur.show_type), taken)} ${taken.length === 1 ? 'was' : 'were'} just taken by someone else`,
          detail: `We removed ${taken.length === 1 ? 'it' : 'them'} from your selection.`,
        });
      }
    },
    [commit, flash, refreshBooking],
  );

  useTitle(
    show?.name ??
      (loadError?.title === 'Show not found' || loadError?.title === 'No such show' ? 'Show not found' : 'Show'),
  );

  const live = useLiveShow(showId, () => showRef.current?.version ?? null, onLive);

  const mine = useMemo(() => {
    const s = new Set<string>();
    for (const b of bookings) {
      if (b.status === 'pending' || b.status === 'confirmed') b.seat_numbers.forEach((n) => s.add(n));
    }
    return s;
  }, [bookings]);

  // The show's per-user seat cap (0: none) and what I hold or bought there:
  // confirmed bookings and holds whose time has not run out, as the server counts.
  const cap = show?.max_seats_per_user ?? 0;
  const held = useMemo(
    () =>
      bookings
        .filter((b) => b.status === 'confirmed' || (b.status === 'pending' && !timedOut.has(b.id)))
        .reduce((n, b) => n + b.seat_numbers.length, 0),
    [bookings, timedOut],
  );
  const allowance = cap > 0 ? Math.max(0, cap - held) : Infinity;
  const capRef = useRef({ cap, held, allowance, noun: placeNoun(show?.show_type ?? 'movie') });
  capRef.current = { cap, held, allowance, noun: placeNoun(show?.show_type ?? 'movie') };

  const toggle = useCallback((seat: string) => {
    const sel = selectedRef.current;
    if (sel.has(seat)) {
      setSelected((cur) => {
        const next = new Set(cur);
        next.delete(seat);
        return next;
      });
      return;
    }
    const c = capRef.current;
    if (sel.size >= c.allowance) {
      // The server stays the authority; this only spares a refused hold.
      setNotice(seatLimitNotice(c.cap, c.held, c.noun));
      return;
    }
    setSelected((cur) => {
      if (cur.has(seat) || cur.size >= Math.min(MAX_SEATS_PER_HOLD, capRef.current.allowance)) return cur;
      const next = new Set(cur);
      next.add(seat);
      return next;
    });
  }, []);

  if (loadError) {
    const notFound = loadError.title === 'Show not found' || loadError.title === 'No such show';
    return (
      <section aria-labelledby="show-title">
        <h1 id="show-title">{notFound ? 'Show not found' : 'The show could not be loaded'}</h1>
        {notFound ? <p>{loadError.detail}</p> : <Notice notice={loadError} onRetry={retry} />}
        <p>
          <Link to="/">Back to all shows</Link>
        </p>
      </section>
    );
  }
  if (!show) {
    return (
      <p className="muted" role="status">
        Loading the seat map…
      </p>
    );
  }

  const noun = placeNoun(show.show_type);
  const started = Date.parse(show.start_time) <= serverNow();
  const orderedSelection = show.seats.map((s) => s.seat_number).filter((s) => selected.has(s));
  const rateLimited = blockedUntil > Date.now();

  const hold = async () => {
    if (!canBook(session)) {
      sessionStorage.setItem(SELECTION_KEY(show.id), JSON.stringify(orderedSelection));
      navigate(`/login?next=${encodeURIComponent(`/shows/${show.id}`)}`);
      return;
    }
    if (orderedSelection.length === 0) return;
    pendingHold.current = new Set(orderedSelection);
    setBusy('hold');
    setNotice(null);
    setAnnouncement('');
    try {
      const b = await holdSeats(show.id, orderedSelection);
      setBookings((bs) => [b, ...bs.filter((x) => x.id !== b.id)]);
      setSelected(new Set());
      setFocusHold(b.id);
      if (showRef.current) commit(withSeats(showRef.current, b.seat_numbers, 'locked', 'available'));
      setAnnouncement(
        `Held ${seatWords(noun, b.seat_numbers)}. Confirm before the timer runs out, or cancel to let ${b.seat_numbers.length === 1 ? 'it' : 'them'} go.`,
      );
    } catch (e) {
      if (isApiError(e) && e.seatLimit) {
        // Over the show's per-user cap: the selection stays (fewer seats may
        // do), and my bookings are read again (another tab may have held).
        setNotice(seatLimitNotice(e.problem.limit ?? (cap || undefined), e.problem.held, noun));
        setBookingsTick((n) => n + 1);
      } else if (isApiError(e) && e.status === 409 && e.unavailableSeats.length > 0) {
        const taken = e.unavailableSeats;
        const left = orderedSelection.filter((s) => !taken.includes(s));
        setSelected(new Set(left));
        flash(taken);
        if (showRef.current) commit(withSeats(showRef.current, taken, 'locked', 'available'));
        setNotice({
          tone: 'error',
          title: `Sorry, ${seatWords(noun, taken)} ${taken.length === 1 ? 'was' : 'were'} just taken by someone else`,
          detail:
            left.length > 0
              ? `We deselected ${taken.length === 1 ? 'it' : 'them'}; ${listSeats(left)} ${left.length === 1 ? 'is' : 'are'} still selected. Hold again, or pick others.`
              : `We deselected ${taken.length === 1 ? 'it' : 'them'}. Please pick other ${noun.toLowerCase()}s.`,
        });
        reload().catch(() => {});
      } else {
        const n = describeError(e);
        setNotice(n);
        if (n.retryAfter) setBlockedUntil(Date.now() + n.retryAfter * 1000);
      }
    } finally {
      pendingHold.current = null;
      setBusy(null);
    }
  };

  const setBookingStatus = (id: string, status: BookingStatus) =>
    setBookings((bs) => bs.map((b) => (b.id === id ? { ...b, status } : b)));

  // settled records a confirmed or cancelled booking and its seats' new status.
  const settled = (nb: Booking, seats: 'booked' | 'available') => {
    setBookings((bs) => bs.map((x) => (x.id === nb.id ? { ...x, ...nb } : x)));
    if (showRef.current) commit(withSeats(showRef.current, nb.seat_numbers, seats));
  };

  const confirm = async (b: Booking) => {
    setBusy(`confirm:${b.id}`);
    setNotice(null);
    try {
      const nb = await confirmBooking(b.id);
      settled(nb, 'booked');
      setNotice({
        tone: 'success',
        title: 'Booked!',
        detail: `${SeatWords(noun, nb.seat_numbers)} ${nb.seat_numbers.length === 1 ? 'is' : 'are'} yours.`,
        link: { to: '/bookings', text: `See ${nb.seat_numbers.length === 1 ? 'it' : 'them'} in My bookings` },
      });
    } catch (e) {
      if (isApiError(e) && e.status === 409) {
        const st = conflictStatus(e.problem);
        if (st === 'expired') {
          setBookingStatus(b.id, 'expired');
          setNotice({
            tone: 'error',
            title: 'Your hold has expired',
            detail: `${SeatWords(noun, b.seat_numbers)} went back on sale before the payment arrived. Pick ${b.seat_numbers.length === 1 ? 'it' : 'them'} again if ${b.seat_numbers.length === 1 ? 'it is' : 'they are'} still free.`,
          });
        } else if (st) {
          setBookingStatus(b.id, st);
          setNotice({
            tone: st === 'confirmed' ? 'info' : 'error',
            title: st === 'confirmed' ? 'Already paid' : `This booking is ${st}`,
            detail: e.problem.detail,
          });
        } else {
          setNotice(describeError(e));
        }
        reload().catch(() => {});
      } else {
        const n = describeError(e);
        setNotice(n);
        if (n.retryAfter) setBlockedUntil(Date.now() + n.retryAfter * 1000);
      }
    } finally {
      setBusy(null);
    }
  };

  const cancel = async (b: Booking) => {
    setBusy(`cancel:${b.id}`);
    setNotice(null);
    try {
      const nb = await cancelBooking(b.id);
      settled(nb, 'available');
      setNotice({
        tone: 'info',
        title: 'Cancelled',
        detail: `${SeatWords(noun, nb.seat_numbers)} ${nb.seat_numbers.length === 1 ? 'is' : 'are'} free again.`,
      });
    } catch (e) {
      if (isApiError(e) && e.status === 409) {
        const st = conflictStatus(e.problem);
        if (st && st !== 'pending') setBookingStatus(b.id, st);
        setNotice({
          tone: 'error',
          title: st === 'expired' ? 'This hold has already expired' : e.problem.title || 'Cannot cancel',
          detail: e.problem.detail,
        });
        reload().catch(() => {});
      } else {
        setNotice(describeError(e));
      }
    } finally {
      setBusy(null);
    }
  };

  const visibleBookings = bookings.filter((b) => b.show_id === show.id);
  const holdLabel =
    orderedSelection.length === 0
      ? `Select ${noun.toLowerCase()}s to hold`
      : `Hold ${plural(orderedSelection.length, noun.toLowerCase())}`;

  return (
    <section className="show-page" aria-labelledby="show-title" data-version={show.version}>
      <div className="page-head">
        <div>
          <p className="eyebrow">
            <span className={`type-badge type-badge--${show.show_type}`}>{TYPE_LABEL[show.show_type]}</span>{' '}
            {formatDateTime(show.start_time)}
          </p>
          <h1 id="show-title">{show.name}</h1>
        </div>
        <div className="page-head-side">
          <LiveBadge state={live} online={online} />
          {canAudit(session) && (
            <Link className="btn btn--ghost btn--small" to={`/shows/${show.id}/history`}>
              History
            </Link>
          )}
        </div>
      </div>

      <div className="show-layout">
        <div className="show-map card">
          <p className="availability-line" aria-live="polite" data-testid="available-count">
            {show.available_seats === 0
              ? 'Sold out'
              : `${show.available_seats} of ${show.total_seats} ${noun.toLowerCase()}s free`}
          </p>
          <SeatMap
            showType={show.show_type}
            seats={show.seats}
            selected={selected}
            mine={mine}
            flashing={flashing}
            onToggle={toggle}
            readOnly={started || session?.role === 'auditor'}
            label={`${show.show_type === 'doctor' ? 'Appointment slots' : 'Seat map'} for ${show.name}`}
          />
          <SeatLegend showType={show.show_type} />
        </div>

        <aside className="show-panel" aria-label="Your booking">
          <p className="sr-only" role="status">
            {announcement}
          </p>
          <Notice notice={notice} onDismiss={() => setNotice(null)} />

          {visibleBookings.length > 0 && (
            <ul className="holds" aria-label="Your holds and bookings for this show">
              {visibleBookings.map((b) => (
                <BookingCard
                  key={b.id}
                  booking={b}
                  noun={noun}
                  busy={busy}
                  timedOut={timedOut.has(b.id)}
                  onConfirm={confirm}
                  onCancel={cancel}
                  onTimeout={(x) => setTimedOut((t) => new Set(t).add(x.id))}
                  onDismiss={(x) => setBookings((bs) => bs.filter((y) => y.id !== x.id))}
                  loggedOut={!canBook(session)}
                />
              ))}
            </ul>
          )}

          {started ? (
            <p className="muted">This {show.show_type === 'bus' ? 'trip' : 'show'} has started; booking is closed.</p>
          ) : session?.role === 'auditor' ? (
            <p className="muted">Auditors can look at seat maps and history, but not book.</p>
          ) : (
            <div className={`card selection${orderedSelection.length > 0 ? ' selection--active' : ''}`}>
              <h2 className="h3">Your selection</h2>
              {cap > 0 && (
                <p className="muted small" data-testid="seat-cap">
                  You can hold at most {plural(cap, noun.toLowerCase())} for this show
                  {canBook(session) && held > 0
                    ? `; you have ${held}, so ${allowance === 0 ? 'no more' : `${allowance} more`}.`
                    : '.'}
                </p>
              )}
              {orderedSelection.length === 0 ? (
                <p className="muted">
                  Tap or click {noun.toLowerCase()}s on the map to pick them. With a keyboard, Tab to the map and move with
                  the arrow keys.
                </p>
              ) : (
                <p data-testid="selection">
                  {SeatWords(noun, orderedSelection)}{' '}
                  <button type="button" className="link-button" onClick={() => setSelected(new Set())}>
                    Clear
                  </button>
                </p>
              )}
              {canBook(session) ? (
                <button
                  type="button"
                  className="btn btn--primary btn--block"
                  onClick={hold}
                  disabled={orderedSelection.length === 0 || busy !== null || rateLimited || !online}
                >
                  {busy === 'hold' ? 'Holding…' : holdLabel}
                </button>
              ) : (
                <button type="button" className="btn btn--primary btn--block" onClick={hold}>
                  Log in to hold {noun.toLowerCase()}s
                </button>
              )}
              {!online && <p className="muted small">You are offline; holding waits for the connection.</p>}
            </div>
          )}
        </aside>
      </div>
    </section>
  );
}

