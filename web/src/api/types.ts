// The shapes of the REST API (api/openapi.yaml) that the app reads and sends.

export type ShowType = 'movie' | 'bus' | 'doctor';
export type SeatStatus = 'available' | 'locked' | 'booked';
export type BookingStatus = 'pending' | 'confirmed' | 'expired' | 'cancelled';
export type Role = 'user' | 'admin' | 'auditor';

export const SHOW_TYPES: readonly ShowType[] = ['movie', 'bus', 'doctor'];

export interface Seat {
  seat_number: string;
  status: SeatStatus;
}

export interface ShowSummary {
  id: number;
  name: string;
  show_type: ShowType;
  start_time: string;
  total_seats: number;
  available_seats: number;
  version: number;
  /** The most seats one user may hold or have bought on this show; 0 (or absent, from an older server) = no cap. */
  max_seats_per_user?: number;
}

export interface ShowDetail extends ShowSummary {
  seats: Seat[];
}

export interface ShowPage {
  shows: ShowSummary[];
  next_cursor?: string;
}

export interface Booking {
  id: string;
  show_id: number;
  user_id: string;
  seat_numbers: string[];
  status: BookingStatus;
  expires_at: string;
  created_at?: string;
  confirmed_at?: string;
  expired_at?: string;
  cancelled_at?: string;
}

export interface Token {
  token: string;
  expires_at: string;
  token_type: 'Bearer';
}

export interface RegisteredUser {
  id: string;
  email: string;
  role: Role;
}

export interface CreateShowRequest {
  name: string;
  show_type: ShowType;
  start_time: string;
  total_seats?: number;
  seat_numbers?: string[];
  /** Absent: the server's default (MAX_SEATS_PER_USER); 0 = no cap. */
  max_seats_per_user?: number;
}

export type EventType =
  | 'ShowScheduled'
  | 'SeatLocked'
  | 'BookingConfirmed'
  | 'BookingExpired'
  | 'BookingCancelled';

/** One stored event of a show's stream (GET /api/shows/{id}/events). */
export interface StoredEvent {
  global_position: number;
  transaction_id?: number;
  stream_id: string;
  stream_version: number;
  event_id: string;
  event_type: EventType;
  data: Record<string, unknown>;
  metadata: { user_id?: string; request_id?: string };
  recorded_at: string;
}

export interface ShowEvents {
  show_id: number;
  events: StoredEvent[];
}

/** RFC 9457 problem details, with this API's extension members. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  instance?: string;
  request_id?: string;
  unavailable_seats?: string[];
  /** /problems/seat-limit: the show's cap, and the seats the user holds or bought on it already. */
  limit?: number;
  held?: number;
}

/** The problem type of a hold refused by the show's per-user seat cap. */
export const SEAT_LIMIT_PROBLEM = '/problems/seat-limit';

/**
 * A message of GET /api/shows/{id}/live. Its version is the stream version
 * it brings the map to (also the SSE id).
 * - "snapshot": every seat of the show, in show order; it replaces the map.
 * - "seats": every seat change of the stream versions after the previous
 *   message up to `version`, in version order (a seat changed twice appears
 *   twice, the last entry is its status at `version`); versions jump between
 *   messages, and a message may overlap what the client has already applied.
 */
export interface LiveMessage {
  show_id: number;
  version: number;
  seats: Seat[];
  available_seats: number;
}

export type LiveKind = 'snapshot' | 'seats';
