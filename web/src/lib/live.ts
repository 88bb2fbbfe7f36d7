// Live seat maps: an EventSource on GET /api/shows/{id}/live?after=<version>.
// Each "seats" message names the seats one event changed; messages come in
// stream-version order and the browser resumes after a dropped connection
// with Last-Event-ID. A stream the browser gave up on (an HTTP error) is
// reopened here, after the newest version applied; so is one closed while
// the browser was offline (a dead connection can look open for a long
// time, and EventSource shows no pings to notice it by). A hidden page (a
// background tab) closes its stream, so it holds none of the browser's six
// connections per site, and reopens it after its newest version when shown.
import { useEffect, useRef, useState } from 'react';
import type { LiveMessage, ShowDetail } from '../api/types';

export type LiveState = 'connecting' | 'live' | 'reconnecting' | 'unsupported';

export interface Applied {
  show: ShowDetail;
  /** The message skipped versions: the caller should reload the show. */
  gap: boolean;
  /** The message was older than the show and changed nothing. */
  stale: boolean;
}

/** Applies one live message to a show; versions at or below the show's are ignored. */
export function applyLiveMessage(show: ShowDetail, m: LiveMessage): Applied {
  if (m.show_id !== show.id || m.version <= show.version) return { show, gap: false, stale: true };
  const changes = new Map(m.seats.map((s) => [s.seat_number, s.status]));
  const seats = show.seats.map((s) => {
    const st = changes.get(s.seat_number);
    return st && st !== s.status ? { ...s, status: st } : s;
  });
  const available =
    typeof m.available_seats === 'number'
      ? m.available_seats
      : seats.filter((s) => s.status === 'available').length;
  return {
    show: { ...show, seats, version: m.version, available_seats: available },
    gap: m.version > show.version + 1,
    stale: false,
  };
}

export function parseLiveMessage(data: string): LiveMessage | null {
  try {
    const m = JSON.parse(data) as LiveMessage;
    if (!m || typeof m.version !== 'number' || !Array.isArray(m.seats)) return null;
    return m;
  } catch {
    return null;
  }
}

const MAX_BACKOFF_MS = 15000;

/**
 * Follows a show's live stream while showId and the loaded version are known.
 * latestVersion is read when the stream has to be reopened by hand; the
 * browser's own reconnects carry Last-Event-ID.
 */
export function useLiveShow(
  showId: number | null,
  latestVersion: () => number | null,
  onMessage: (m: LiveMessage) => void,
): LiveState {
  const [state, setState] = useState<LiveState>('connecting');
  const onMessageRef = useRef(onMessage);
  const versionRef = useRef(latestVersion);
  onMessageRef.current = onMessage;
  versionRef.current = latestVersion;
  const ready = showId !== null && latestVersion() !== null;

  useEffect(() => {
    if (showId === null || !ready) return;
    const ES = (globalThis as { EventSource?: typeof EventSource }).EventSource;
    if (!ES) {
      setState('unsupported');
      return;
    }
    let es: EventSource | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let failures = 0;
    let stopped = false;

    const open = () => {
      const after = versionRef.current() ?? 0;
      es = new ES(`/api/shows/${showId}/live?after=${after}`);
      es.onopen = () => {
        failures = 0;
        setState('live');
      };
      es.addEventListener('seats', (e) => {
        const m = parseLiveMessage((e as MessageEvent<string>).data);
        if (m) onMessageRef.current(m);
      });
      es.onerror = () => {
        if (stopped || !es) return;
        setState('reconnecting');
        if (es.readyState === ES.CLOSED) {
          // The browser gave up (an HTTP error answer): reopen with backoff.
          es.close();
          es = null;
          failures++;
          const wait = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(failures - 1, 4));
          timer = setTimeout(open, wait);
        }
      };
    };
    const offline = () => {
      clearTimeout(timer);
      es?.close();
      es = null;
      setState('reconnecting');
    };
    const hidden = () => typeof document !== 'undefined' && document.visibilityState === 'hidden';
    const online = () => {
      if (es || stopped || hidden()) return;
      clearTimeout(timer);
      failures = 0;
      open();
    };
    const visibility = () => {
      if (stopped) return;
      if (hidden()) {
        clearTimeout(timer);
        es?.close();
        es = null;
        setState('reconnecting');
      } else if (!es) {
        clearTimeout(timer);
        failures = 0;
        setState('connecting');
        open();
      }
    };
    window.addEventListener('offline', offline);
    window.addEventListener('online', online);
    document.addEventListener('visibilitychange', visibility);

    setState('connecting');
    if (!hidden()) open();

    return () => {
      stopped = true;
      clearTimeout(timer);
      es?.close();
      window.removeEventListener('offline', offline);
      window.removeEventListener('online', online);
      document.removeEventListener('visibilitychange', visibility);
    };
  }, [showId, ready]);

  return state;
}
