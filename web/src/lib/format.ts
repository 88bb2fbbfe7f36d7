import type { BookingStatus, ShowType } from '../api/types';

export const TYPE_LABEL: Record<ShowType, string> = {
  movie: 'Movie',
  bus: 'Bus trip',
  doctor: 'Doctor',
};

export const TYPE_PLURAL: Record<ShowType, string> = {
  movie: 'Movies',
  bus: 'Bus trips',
  doctor: 'Doctors',
};

export const STATUS_LABEL: Record<BookingStatus, string> = {
  pending: 'Held, awaiting payment',
  confirmed: 'Confirmed',
  expired: 'Expired',
  cancelled: 'Cancelled',
};

const dateTime = new Intl.DateTimeFormat(undefined, {
  weekday: 'short',
  day: 'numeric',
  month: 'short',
  year: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
});

const timeOnly = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

export function formatDateTime(iso: string): string {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : dateTime.format(t);
}

export function formatTime(iso: string): string {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : timeOnly.format(t);
}

/** A yyyy-mm-dd date input's value as the RFC 3339 time of that local midnight. */
export function dayStart(day: string): string | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (!m) return undefined;
  return toRFC3339(new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
}

/** The local midnight after a yyyy-mm-dd day (an exclusive upper bound). */
export function dayEnd(day: string): string | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (!m) return undefined;
  return toRFC3339(new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + 1));
}

/** RFC 3339 in UTC without fractional seconds. */
export function toRFC3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A datetime-local input's value (local time) as RFC 3339, or undefined. */
export function localInputToRFC3339(v: string): string | undefined {
  if (!v) return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : toRFC3339(d);
}

/** A Date as a datetime-local input's value, to the minute. */
export function toLocalInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
