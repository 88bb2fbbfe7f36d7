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
}

/** One message of GET /api/shows/{id}/live (event "seats"). */
export interface LiveMessage {
  show_id: number;
  version: number;
  type: EventType;
  booking_id?: string;
  seats: Seat[];
  available_seats: number;
}
