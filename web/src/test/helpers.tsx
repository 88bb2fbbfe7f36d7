// Test doubles: a bearer token with a role, a fetch that answers from a
// routing function, and an EventSource the test drives by hand.
import { render } from '@testing-library/react';
import { MemoryRouter } from 'react-router';
import { vi } from 'vitest';
import { App } from '../App';
import { SessionProvider } from '../auth/session';
import type { Role, Seat, ShowDetail, ShowType } from '../api/types';

function b64url(s: string): string {
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function fakeToken(role: Role, email = `${role}@example.com`, sub = '01a21767-0000-7000-8000-000000000001'): string {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const payload = b64url(JSON.stringify({ email, role, iss: 'bookingledger', sub, exp }));
  return `${header}.${payload}.signature`;
}

export function logInAs(role: Role): void {
  sessionStorage.setItem('bookingledger.token', fakeToken(role));
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  const problem = status >= 400;
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': problem ? 'application/problem+json' : 'application/json', ...headers },
  });
}

export type Handler = (method: string, url: string, init: RequestInit | undefined) => Response | Promise<Response>;

/** Replaces fetch; returns the mock to inspect its calls. */
export function mockFetch(handler: Handler) {
  const fn = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    return handler((init?.method ?? 'GET').toUpperCase(), url, init);
  });
  vi.stubGlobal('fetch', fn);
  return fn;
}

export function makeShow(type: ShowType, labels: string[], overrides: Partial<ShowDetail> = {}, status: Record<string, Seat['status']> = {}): ShowDetail {
  const seats = labels.map((n) => ({ seat_number: n, status: status[n] ?? 'available' }));
  return {
    id: 1,
    name: 'Test show',
    show_type: type,
    start_time: new Date(Date.now() + 7 * 86400_000).toISOString(),
    total_seats: labels.length,
    available_seats: seats.filter((s) => s.status === 'available').length,
    version: 1,
    seats,
    ...overrides,
  };
}

export function movieLabels(rows: string, perRow: number): string[] {
  return [...rows].flatMap((r) => Array.from({ length: perRow }, (_, i) => `${r}${i + 1}`));
}

type Listener = (e: MessageEvent<string>) => void;

export class FakeEventSource {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSED = 2;
  static instances: FakeEventSource[] = [];

  readonly url: string;
  readyState = FakeEventSource.CONNECTING;
  onopen: ((e: Event) => void) | null = null;
  onerror: ((e: Event) => void) | null = null;
  onmessage: Listener | null = null;
  private listeners = new Map<string, Listener[]>();

  constructor(url: string | URL) {
    this.url = String(url);
    FakeEventSource.instances.push(this);
  }

  addEventListener(type: string, fn: Listener) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), fn]);
  }

  removeEventListener(type: string, fn: Listener) {
    this.listeners.set(type, (this.listeners.get(type) ?? []).filter((f) => f !== fn));
  }

  close() {
    this.readyState = FakeEventSource.CLOSED;
  }

  // ---- driven by the test ----

  open() {
    this.readyState = FakeEventSource.OPEN;
    this.onopen?.(new Event('open'));
  }

  emit(type: string, data: unknown, id?: string) {
    const e = new MessageEvent<string>(type, { data: JSON.stringify(data), lastEventId: id ?? '' });
    for (const fn of this.listeners.get(type) ?? []) fn(e);
  }

  /** A dropped connection the browser retries (readyState CONNECTING). */
  drop() {
    this.readyState = FakeEventSource.CONNECTING;
    this.onerror?.(new Event('error'));
  }

  static latest(): FakeEventSource {
    const es = FakeEventSource.instances.at(-1);
    if (!es) throw new Error('no EventSource was opened');
    return es;
  }
}

export function installEventSource(): void {
  FakeEventSource.instances = [];
  vi.stubGlobal('EventSource', FakeEventSource);
}

export function renderApp(path: string) {
  return render(
    <MemoryRouter initialEntries={[path]}>
      <SessionProvider>
        <App />
      </SessionProvider>
    </MemoryRouter>,
  );
}
