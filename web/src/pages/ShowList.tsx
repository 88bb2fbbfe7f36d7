// Shows, filtered by type and date (kept in the URL), a page at a time.
import { useEffect, useState, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router';
import { listShows } from '../api/client';
import { SHOW_TYPES, type ShowSummary, type ShowType } from '../api/types';
import { useSession } from '../auth/session';
import { Notice } from '../components/Notice';
import { describeError, type NoticeData } from '../lib/errors';
import { dayEnd, dayStart, formatDateTime, TYPE_LABEL, TYPE_PLURAL } from '../lib/format';
import { useOnReconnect } from '../lib/useOnline';
import { useTitle } from '../lib/useTitle';

const PAGE_SIZE = 20;

function isShowType(v: string | null): v is ShowType {
  return v !== null && (SHOW_TYPES as readonly string[]).includes(v);
}

export function ShowCard({ show }: { show: ShowSummary }) {
  const pct = show.total_seats > 0 ? Math.round((show.available_seats / show.total_seats) * 100) : 0;
  const soldOut = show.available_seats === 0;
  return (
    <li className="show-card">
      <Link to={`/shows/${show.id}`} className="show-card-link">
        <span className={`type-badge type-badge--${show.show_type}`}>{TYPE_LABEL[show.show_type]}</span>
        <span className="show-card-name">{show.name}</span>
        <span className="show-card-time">{formatDateTime(show.start_time)}</span>
        <span className="availability">
          <span className="availability-bar" aria-hidden="true">
            <span style={{ width: `${pct}%` }} />
          </span>
          <span className={soldOut ? 'sold-out' : ''}>
            {soldOut ? 'Sold out' : `${show.available_seats} of ${show.total_seats} free`}
          </span>
        </span>
      </Link>
    </li>
  );
}

export function ShowList() {
  useTitle("What's on");
  const [params, setParams] = useSearchParams();
  const { session } = useSession();
  const typeParam = params.get('type');
  const type: ShowType | '' = isShowType(typeParam) ? typeParam : '';
  const from = params.get('from') ?? '';
  const to = params.get('to') ?? '';

  const [shows, setShows] = useState<ShowSummary[]>([]);
  const [cursor, setCursor] = useState<string | undefined>();
  const [loading, setLoading] = useState(true);
  const [loadingMore, setLoadingMore] = useState(false);
  const [notice, setNotice] = useState<NoticeData | null>(null);
  const [reload, setReload] = useState(0);
  // A list that failed to load (offline, say) loads again when the connection is back.
  const failed = notice !== null;
  useOnReconnect(() => {
    if (failed) setReload((n) => n + 1);
  });

  useEffect(() => {
    const ctl = new AbortController();
    setLoading(true);
    setNotice(null);
    listShows({ type, from: dayStart(from), to: dayEnd(to), limit: PAGE_SIZE }, ctl.signal)
      .then((page) => {
        setShows(page.shows);
        setCursor(page.next_cursor);
      })
      .catch((e: unknown) => {
        if (!ctl.signal.aborted) {
          setShows([]);
          setCursor(undefined);
          setNotice(describeError(e));
        }
      })
      .finally(() => {
        if (!ctl.signal.aborted) setLoading(false);
      });
    return () => ctl.abort();
  }, [type, from, to, reload]);

  const loadMore = async () => {
    if (!cursor) return;
    setLoadingMore(true);
    try {
      const page = await listShows({ type, from: dayStart(from), to: dayEnd(to), limit: PAGE_SIZE, cursor });
      setShows((s) => [...s, ...page.shows.filter((n) => !s.some((o) => o.id === n.id))]);
      setCursor(page.next_cursor);
    } catch (e) {
      setNotice(describeError(e));
    } finally {
      setLoadingMore(false);
    }
  };

  const update = (key: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(key, value);
    else next.delete(key);
    setParams(next, { replace: true });
  };

  const onSubmit = (e: FormEvent) => e.preventDefault();
  const filtered = type !== '' || from !== '' || to !== '';

  return (
    <section aria-labelledby="shows-title">
      <div className="page-head">
        <h1 id="shows-title">What's on</h1>
        {session?.role === 'admin' && (
          <Link to="/admin/shows/new" className="btn btn--primary">
            New show
          </Link>
        )}
      </div>

      <form className="filters" onSubmit={onSubmit} aria-label="Filter shows">
        <fieldset className="segmented">
          <legend className="sr-only">Type</legend>
          {(['', ...SHOW_TYPES] as const).map((t) => (
            <label key={t || 'all'} className={type === t ? 'is-on' : ''}>
              <input
                type="radio"
                name="type"
                value={t}
                checked={type === t}
                onChange={() => update('type', t)}
              />
              {t === '' ? 'All' : TYPE_PLURAL[t]}
            </label>
          ))}
        </fieldset>
        <label className="field field--inline">
          <span>From</span>
          <input type="date" value={from} max={to || undefined} onChange={(e) => update('from', e.target.value)} />
        </label>
        <label className="field field--inline">
          <span>To</span>
          <input type="date" value={to} min={from || undefined} onChange={(e) => update('to', e.target.value)} />
        </label>
        {filtered && (
          <button type="button" className="btn btn--ghost btn--small" onClick={() => setParams({}, { replace: true })}>
            Clear filters
          </button>
        )}
      </form>

      <Notice notice={notice} />
      {notice && (
        <button type="button" className="btn btn--ghost" onClick={() => setReload((n) => n + 1)}>
          Try again
        </button>
      )}

      {loading ? (
        <p className="muted" role="status">
          Loading shows…
        </p>
      ) : shows.length === 0 && !notice ? (
        <div className="empty">
          <p>{filtered ? 'No shows match these filters.' : 'No shows are scheduled yet.'}</p>
        </div>
      ) : (
        <>
          <ul className="show-grid" aria-label="Shows">
            {shows.map((s) => (
              <ShowCard key={s.id} show={s} />
            ))}
          </ul>
          {cursor && (
            <div className="more">
              <button type="button" className="btn btn--ghost" onClick={loadMore} disabled={loadingMore}>
                {loadingMore ? 'Loading…' : 'Load more'}
              </button>
            </div>
          )}
        </>
      )}
    </section>
  );
}
