// A countdown to a moment (a hold's expires_at), ticking every second on
// the server's clock.
import { useEffect, useRef, useState } from 'react';
import { serverNow } from '../api/client';

export function formatRemaining(ms: number): string {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const mm = String(m).padStart(h > 0 ? 2 : 1, '0');
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function spoken(ms: number): string {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const m = Math.floor(total / 60);
  const s = total % 60;
  const parts = [];
  if (m) parts.push(`${m} ${m === 1 ? 'minute' : 'minutes'}`);
  if (s || !m) parts.push(`${s} ${s === 1 ? 'second' : 'seconds'}`);
  return parts.join(' ');
}

export interface CountdownProps {
  /** RFC 3339 time or ms since the epoch. */
  until: string | number;
  onExpire?: () => void;
  now?: () => number;
  /** Words before the time, for screen readers ("Hold expires in"). */
  label?: string;
}

export function Countdown({ until, onExpire, now = serverNow, label = 'Time left' }: CountdownProps) {
  const end = typeof until === 'number' ? until : Date.parse(until);
  // Whole seconds left, so a tick re-renders only when the display changes.
  const [secs, setSecs] = useState(() => Math.ceil((end - now()) / 1000));
  const expiredRef = useRef(false);
  const onExpireRef = useRef(onExpire);
  onExpireRef.current = onExpire;

  useEffect(() => {
    expiredRef.current = false;
    const tick = () => {
      const l = end - now();
      setSecs(Math.ceil(l / 1000));
      if (l <= 0 && !expiredRef.current) {
        expiredRef.current = true;
        onExpireRef.current?.();
      }
    };
    tick();
    const id = setInterval(tick, 250);
    return () => clearInterval(id);
  }, [end, now]);

  const left = secs * 1000;
  const urgent = left > 0 && left <= 60_000;
  return (
    <span
      className={`countdown${urgent ? ' is-urgent' : ''}${left <= 0 ? ' is-over' : ''}`}
      role="timer"
      aria-label={`${label}: ${spoken(left)}`}
      data-testid="countdown"
    >
      {formatRemaining(left)}
    </span>
  );
}
