// A message box for errors and confirmations; a rate-limit notice counts
// down its Retry-After.
import { useEffect, useState } from 'react';
import { Link, useLocation } from 'react-router';
import type { NoticeData } from '../lib/errors';

export function useRetryCountdown(seconds: number | undefined, key: unknown): number {
  const [left, setLeft] = useState(seconds ?? 0);
  useEffect(() => {
    if (!seconds) {
      setLeft(0);
      return;
    }
    const end = Date.now() + seconds * 1000;
    setLeft(seconds);
    const id = setInterval(() => {
      const l = Math.max(0, Math.ceil((end - Date.now()) / 1000));
      setLeft(l);
      if (l === 0) clearInterval(id);
    }, 250);
    return () => clearInterval(id);
  }, [seconds, key]);
  return left;
}

export function Notice({
  notice,
  onDismiss,
  onRetry,
}: {
  notice: NoticeData | null;
  onDismiss?: () => void;
  /** Offers a "Try again" button (a page that failed to load). */
  onRetry?: () => void;
}) {
  const left = useRetryCountdown(notice?.retryAfter, notice);
  const location = useLocation();
  if (!notice) return null;
  const polite = notice.tone === 'success' || notice.tone === 'info';
  return (
    <div
      className={`notice notice--${notice.tone}`}
      role={polite ? 'status' : 'alert'}
      data-testid="notice"
    >
      <div className="notice-body">
        <strong className="notice-title">{notice.title}</strong>
        {notice.detail && <span className="notice-detail"> {notice.detail}</span>}
        {notice.link && (
          <>
            {' '}
            <Link to={notice.link.to}>{notice.link.text}</Link>
          </>
        )}
        {notice.retryAfter !== undefined && (
          <span className="notice-retry" data-testid="retry-after">
            {left > 0 ? ` You can try again in ${left} s.` : ' You can try again now.'}
          </span>
        )}
        {notice.login && (
          <>
            {' '}
            <Link to={notice.loginTo ?? `/login?next=${encodeURIComponent(location.pathname + location.search)}`}>
              {notice.loginText ?? 'Log in'}
            </Link>
          </>
        )}
        {onRetry && (
          <>
            {' '}
            <button type="button" className="btn btn--ghost btn--small notice-retry-button" onClick={onRetry}>
              Try again
            </button>
          </>
        )}
      </div>
      {onDismiss && (
        <button type="button" className="notice-close" aria-label="Dismiss message" onClick={onDismiss}>
          ×
        </button>
      )}
    </div>
  );
}
