// The REST client: same-origin fetch calls to /api, the bearer token,
// Idempotency-Key headers, and every failure turned into an ApiError that
// carries the RFC 9457 problem (title, detail, unavailable_seats, a seat
// cap's limit and held) or says
// the network is down.
import { uuid } from '../lib/uuid';
import { SEAT_LIMIT_PROBLEM } from './types';
import type {
  Booking,
  CreateShowRequest,
  Problem,
  RegisteredUser,
  ShowDetail,
  ShowEvents,
  ShowPage,
  ShowType,
  StoredEvent,
  Token,
} from './types';

export type ErrorKind = 'http' | 'offline' | 'network';

export class ApiError extends Error {
  readonly kind: ErrorKind;
  readonly status: number;
  readonly problem: Problem;
  /** Seconds to wait, from Retry-After (429 and 503). */
  readonly retryAfter?: number;

  constructor(kind: ErrorKind, status: number, problem: Problem, retryAfter?: number) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = 'ApiError';
    this.kind = kind;
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }

  get unavailableSeats(): string[] {
    return Array.isArray(this.problem.unavailable_seats) ? this.problem.unavailable_seats : [];
  }

  /** A hold refused by the show's per-user seat cap (problem type /problems/seat-limit). */
  get seatLimit(): boolean {
    return this.status === 409 && typeof this.problem.type === 'string' && this.problem.type.endsWith(SEAT_LIMIT_PROBLEM);
  }
}

export function isApiError(e: unknown): e is ApiError {
  return e instanceof ApiError;
}

interface ClientHooks {
  getToken: () => string | null;
  /** Called when the server refuses the token we sent (expired, or signed by an earlier secret). */
  onUnauthorized: () => void;
}

let hooks: ClientHooks = { getToken: () => null, onUnauthorized: () => {} };

export function configureClient(h: Partial<ClientHooks>): void {
  hooks = { ...hooks, ...h };
}

/** Milliseconds the server's clock is ahead of ours, from the last Date header. */
let serverOffsetMs = 0;

/** The server's idea of now, in ms since the epoch (for countdowns to expires_at). */
export function serverNow(): number {
  return Date.now() + serverOffsetMs;
}

function noteServerDate(res: Response): void {
  const d = res.headers.get('Date');
  if (!d) return;
  const t = Date.parse(d);
  if (Number.isNaN(t)) return;
  const off = t - Date.now();
  // The header has one-second precision: only correct clocks that are clearly off.
  serverOffsetMs = Math.abs(off) > 2000 ? off : 0;
}

/** Parses Retry-After: delay-seconds or an HTTP date. */
export function parseRetryAfter(v: string | null, now = Date.now()): number | undefined {
  if (!v) return undefined;
  const s = v.trim();
  if (/^\d+$/.test(s)) return Number(s);
  const t = Date.parse(s);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, Math.ceil((t - now) / 1000));
}

export interface RequestOptions {
  body?: unknown;
  /** Sends an Idempotency-Key; network failures are retried with the same key. */
  idempotencyKey?: string;
  /** 'optional' routes are public: a refused stale token is dropped and the call repeated without it. */
  auth?: 'optional' | 'required';
  signal?: AbortSignal;
}

const NETWORK_RETRIES = 2;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    });
  });
}

function networkError(): ApiError {
  const offline = typeof navigator !== 'undefined' && navigator.onLine === false;
  return offline
    ? new ApiError('offline', 0, {
        title: 'You are offline',
        detail: 'Check your internet connection, then try again.',
      })
    : new ApiError('network', 0, {
        title: 'Cannot reach the booking service',
        detail: 'The server did not answer. Try again in a moment.',
      });
}

async function readProblem(res: Response): Promise<Problem> {
  const text = await res.text().catch(() => '');
  if (text) {
    try {
      const p = JSON.parse(text) as Problem;
      if (p && typeof p === 'object') return p;
    } catch {
      // not JSON: fall through
    }
  }
  return { title: res.statusText || `HTTP ${res.status}`, status: res.status };
}

export async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const send = async (withToken: boolean): Promise<Response> => {
    const headers: Record<string, string> = { Accept: 'application/json' };
    const token = withToken ? hooks.getToken() : null;
    if (token) headers.Authorization = `Bearer ${token}`;
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    if (opts.idempotencyKey) headers['Idempotency-Key'] = opts.idempotencyKey;
    const init: RequestInit = {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
      credentials: 'same-origin',
    };
    const retries = opts.idempotencyKey || method === 'GET' ? NETWORK_RETRIES : 0;
    for (let attempt = 0; ; attempt++) {
      try {
        return await fetch(path, init);
      } catch (e) {
        if (opts.signal?.aborted) throw e;
        if (attempt >= retries || (typeof navigator !== 'undefined' && navigator.onLine === false)) {
          throw networkError();
        }
        await sleep(400 * 3 ** attempt, opts.signal);
      }
    }
  };

  const sentToken = hooks.getToken() !== null;
  let res = await send(true);
  if (res.status === 401 && sentToken) {
    hooks.onUnauthorized();
    if (opts.auth === 'optional') res = await send(false);
  }
  noteServerDate(res);
  if (res.ok) {
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }
  const problem = await readProblem(res);
  if (res.status === 401 && sentToken && opts.auth !== 'optional') {
    problem.title = 'Please log in again';
    problem.detail = 'Your session has ended.';
  }
  throw new ApiError('http', res.status, problem, parseRetryAfter(res.headers.get('Retry-After')));
}

// ---- the calls ----

export function login(email: string, password: string): Promise<Token> {
  return request<Token>('POST', '/api/auth/login', { body: { email, password }, auth: 'optional' });
}

export function register(email: string, password: string): Promise<RegisteredUser> {
  return request<RegisteredUser>('POST', '/api/auth/register', { body: { email, password }, auth: 'optional' });
}

export interface ShowFilter {
  type?: ShowType | '';
  from?: string;
  to?: string;
  limit?: number;
  cursor?: string;
}

export function listShows(f: ShowFilter, signal?: AbortSignal): Promise<ShowPage> {
  const q = new URLSearchParams();
  if (f.type) q.set('type', f.type);
  if (f.from) q.set('from', f.from);
  if (f.to) q.set('to', f.to);
  if (f.limit) q.set('limit', String(f.limit));
  if (f.cursor) q.set('cursor', f.cursor);
  const qs = q.toString();
  return request<ShowPage>('GET', `/api/shows${qs ? `?${qs}` : ''}`, { auth: 'optional', signal });
}

export function getShow(id: number | string, signal?: AbortSignal): Promise<ShowDetail> {
  return request<ShowDetail>('GET', `/api/shows/${encodeURIComponent(String(id))}`, { auth: 'optional', signal });
}

export function createShow(req: CreateShowRequest): Promise<ShowDetail> {
  return request<ShowDetail>('POST', '/api/shows', { body: req, idempotencyKey: uuid(), auth: 'required' });
}

export async function listBookings(signal?: AbortSignal): Promise<Booking[]> {
  const r = await request<{ bookings: Booking[] }>('GET', '/api/bookings?limit=500', { auth: 'required', signal });
  return r.bookings;
}

/** Holds seats; each call is a new attempt with a fresh Idempotency-Key. */
export function holdSeats(showId: number, seatNumbers: string[], idempotencyKey = uuid()): Promise<Booking> {
  return request<Booking>('POST', '/api/bookings', {
    body: { show_id: showId, seat_numbers: seatNumbers },
    idempotencyKey,
    auth: 'required',
  });
}

export function getBooking(id: string, signal?: AbortSignal): Promise<Booking> {
  return request<Booking>('GET', `/api/bookings/${encodeURIComponent(id)}`, { auth: 'required', signal });
}

export function confirmBooking(id: string): Promise<Booking> {
  return request<Booking>('POST', `/api/bookings/${encodeURIComponent(id)}/confirm`, {
    idempotencyKey: uuid(),
    auth: 'required',
  });
}

export function cancelBooking(id: string): Promise<Booking> {
  return request<Booking>('POST', `/api/bookings/${encodeURIComponent(id)}/cancel`, {
    idempotencyKey: uuid(),
    auth: 'required',
  });
}

/** A show's whole stream, following after_version until a short page. */
export async function showEvents(id: number | string, signal?: AbortSignal): Promise<StoredEvent[]> {
  const limit = 10000;
  const all: StoredEvent[] = [];
  let after = 0;
  for (;;) {
    const page = await request<ShowEvents>(
      'GET',
      `/api/shows/${encodeURIComponent(String(id))}/events?after_version=${after}&limit=${limit}`,
      { auth: 'required', signal },
    );
    all.push(...page.events);
    if (page.events.length < limit) return all;
    after = page.events[page.events.length - 1].stream_version;
  }
}
