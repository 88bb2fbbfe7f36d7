// Failures in words a person understands, from the API's problem details.
import { ApiError } from '../api/client';

export type Tone = 'error' | 'warning' | 'info' | 'success';

export interface NoticeData {
  tone: Tone;
  title: string;
  detail?: string;
  /** Seconds to wait before trying again (rate limits, a busy show). */
  retryAfter?: number;
  /** Offer a link to the login page. */
  login?: boolean;
  /** Where the login link goes (default: the login page, back to this one). */
  loginTo?: string;
  /** The login link's words (default "Log in"). */
  loginText?: string;
  /** A link after the detail, e.g. to My bookings. */
  link?: { to: string; text: string };
}

export function describeError(e: unknown, context?: string): NoticeData {
  if (e instanceof ApiError) {
    if (e.kind === 'offline') {
      return { tone: 'warning', title: 'You are offline', detail: 'Check your connection and try again.' };
    }
    if (e.kind === 'network') {
      return {
        tone: 'error',
        title: 'Cannot reach the booking service',
        detail: 'The server did not answer. Try again in a moment.',
      };
    }
    if (e.status === 429) {
      const wait = e.retryAfter;
      return {
        tone: 'warning',
        title: 'Too many requests',
        // The notice counts the wait down from retryAfter.
        detail:
          wait !== undefined
            ? 'You have made a lot of requests in a short time.'
            : 'You have made a lot of requests in a short time. Please wait a moment.',
        retryAfter: wait,
      };
    }
    if (e.seatLimit) {
      return seatLimitNotice(e.problem.limit, e.problem.held);
    }
    if (e.status === 503 && e.retryAfter !== undefined) {
      return {
        tone: 'warning',
        title: e.problem.title || 'Busy',
        detail: 'Many people are booking this show right now. Nothing was recorded; try again shortly.',
        retryAfter: e.retryAfter,
      };
    }
    if (e.status === 401) {
      return {
        tone: 'warning',
        title: e.problem.title === 'Unauthorized' ? 'Please log in' : e.problem.title || 'Please log in',
        detail: e.problem.detail,
        login: true,
      };
    }
    if (e.status === 403) {
      return {
        tone: 'error',
        title: 'Not allowed',
        detail: e.problem.detail || 'Your account cannot do this.',
      };
    }
    if (e.status >= 500) {
      return {
        tone: 'error',
        title: 'Something went wrong on our side',
        detail: e.problem.request_id ? `Try again. (Request ${e.problem.request_id})` : 'Try again.',
      };
    }
    return {
      tone: 'error',
      title: e.problem.title || `Request failed (${e.status})`,
      detail: e.problem.detail,
    };
  }
  const msg = e instanceof Error ? e.message : String(e);
  return { tone: 'error', title: context ?? 'Something went wrong', detail: msg };
}

/** "A1", "A1 and A2", "A1, A2 and A3". */
export function listSeats(seats: string[]): string {
  if (seats.length <= 1) return seats.join('');
  return `${seats.slice(0, -1).join(', ')} and ${seats[seats.length - 1]}`;
}

/** "seat A1", "seats A1 and A2", "time slot 08:00": the noun keeps bare bus seat numbers readable. */
export function seatWords(noun: string, seats: string[]): string {
  const n = noun.toLowerCase();
  return `${seats.length === 1 ? n : `${n}s`} ${listSeats(seats)}`;
}

/** seatWords with a capital first letter, to start a sentence. */
export function SeatWords(noun: string, seats: string[]): string {
  const s = seatWords(noun, seats);
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/**
 * "You can hold at most N seats for this show": a hold the show's per-user
 * cap refuses (limit from the problem, or the show), with what the user has
 * there already when known.
 */
export function seatLimitNotice(limit: number | undefined, held?: number, noun = 'Seat'): NoticeData {
  const n = noun.toLowerCase();
  const title =
    typeof limit === 'number'
      ? `You can hold at most ${limit} ${limit === 1 ? n : `${n}s`} for this show`
      : `You cannot hold more ${n}s for this show`;
  let detail: string | undefined;
  if (typeof held === 'number' && held > 0) {
    const left = typeof limit === 'number' ? Math.max(0, limit - held) : 0;
    detail = `You already hold or have bought ${held} ${held === 1 ? n : `${n}s`} here; ${
      left > 0 ? `pick at most ${left} more.` : `cancel one to pick another.`
    }`;
  } else if (typeof limit === 'number') {
    detail = `Pick at most ${limit}.`;
  }
  return { tone: 'error', title, detail };
}
