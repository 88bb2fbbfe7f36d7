// Live seat maps: an EventSource on GET /api/shows/{id}/live?after=<version>.
// A client the server cannot bring up to date from its ring of recent
// changes (after=0, or a version too old) first gets one "snapshot" message,
// the whole seat map at a version, which replaces the page's map. Then come
// "seats" messages: every seat change since the previous message, coalesced
// (versions jump by more than one; that is not a gap), applied in order. A
// message at or below the map's version is ignored (a reconnect may overlap).
// The browser resumes after a dropped connection with Last-Event-ID. A stream
// the browser gave up on (an HTTP error) is reopened here, after the newest
// version applied; so is one closed while the browser was offline (a dead
// connection can look open for a long time, and EventSource shows no pings to
// notice it by). A hidden page (a background tab) closes its stream, so it
// holds none of the browser's six connections per site, and reopens it after
// its newest version when shown.
import { useEffect, useRef, useState } from 'react';
import type { LiveKind, LiveMessage, SeatStatus, ShowDetail } from '../api/types';

export type LiveState = 'connecting' | 'live' | 'reconnecting' | 'unsupported';

export interface Applied {
  show: ShowDetail;
  /** The message was at or below the show's version (or of another show) and changed nothing. */
  stale: boolean;
  /** Each seat the message changed, with its status now (the last entry for it wins). */
  changed: Map<string, SeatStatus>;
}

const NOTHING: Map<string, SeatStatus> = new Map();

function countAvailable(seats: ShowDetail['seats']): number {
  let n = 0;
  for (const s of seats) if (s.status === 'available') n++;
  return n;
}

/**
 * Applies one live message to a show. A "seats" message above the show's
 * version sets each named seat's status, entry by entry in order (a seat
 * locked and released within one message ends available). A "snapshot"
 * replaces the seat map (statuses, version and count), unless it is older
 * than the map; seats whose status did not change keep their objects.
 */
export function applyLiveMessage(show: ShowDetail, m: LiveMessage, kind: LiveKind = 'seats'): Applied {
  const snapshot = kind === 'snapshot';
  if (m.show_id !== show.id || (snapshot ? m.version < show.version : m.version <= show.version)) {
    return { show, stale: true, changed: NOTHING };
  }
  const changed = new Map<string, SeatStatus>();
  let seats: ShowDetail['seats'];
  if (snapshot) {
    const before = new Map(show.seats.map((s) => [s.seat_number, s]));
    seats = m.seats.map((s) => {
      const old = before.get(s.seat_number);
      if (old && old.status === s.status) return old;
      changed.set(s.seat_number, s.status);
      return { seat_number: s.seat_number, status: s.status };
    });
  } else {
    // In order: the last entry for a seat is its status at m.version.
    for (const s of m.seats) changed.set(s.seat_number, s.status);
    seats = show.seats.map((s) => {
      const st = changed.get(s.seat_number);
      return st && st !== s.status ? { ...s, status: st } : s;
    });
  }
  const available = typeof m.available_seats === 'number' ? m.available_seats : countAvailable(seats);
  return {
    show: {
      ...show,
      seats,
      version: m.version,
      available_seats: available,
      ...(snapshot ? { total_seats: seats.length } : {}),
    },
    stale: false,
    changed,
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
  onMessage: (m: LiveMessage, kind: LiveKind) => void,
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
      for (const kind of ['snapshot', 'seats'] as const) {
        es.addEventListener(kind, (e) => {
          const m = parseLiveMessage((e as MessageEvent<string>).data);
          if (m) onMessageRef.current(m, kind);
        });
      }
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
