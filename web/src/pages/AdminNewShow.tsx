// Admins schedule a show: name, type, start and a seat count (the server
// names the seats: A1… for a movie, 1… for a bus, 08:00… for a doctor).
import { useState, type FormEvent } from 'react';
import { useNavigate } from 'react-router';
import { createShow } from '../api/client';
import { SHOW_TYPES, type ShowType } from '../api/types';
import { Notice } from '../components/Notice';
import { RequireRole } from '../components/RequireRole';
import { describeError, type NoticeData } from '../lib/errors';
import { localInputToRFC3339, toLocalInput, TYPE_LABEL } from '../lib/format';
import { useTitle } from '../lib/useTitle';

const DEFAULT_SEATS: Record<ShowType, number> = { movie: 100, bus: 48, doctor: 32 };
const SEAT_HINT: Record<ShowType, string> = {
  movie: 'Seats are named by row: A1, A2 … B1 …',
  bus: 'Seats are numbered 1, 2, 3 … four to a row.',
  doctor: 'Each seat is a 15-minute slot from 08:00: 08:00, 08:15 …',
};

function tomorrowEvening(): string {
  const d = new Date();
  d.setDate(d.getDate() + 1);
  d.setHours(19, 0, 0, 0);
  return toLocalInput(d);
}

function NewShowForm() {
  const navigate = useNavigate();
  const [name, setName] = useState('');
  const [type, setType] = useState<ShowType>('movie');
  const [start, setStart] = useState(tomorrowEvening);
  const [seats, setSeats] = useState(String(DEFAULT_SEATS.movie));
  const [seatsTouched, setSeatsTouched] = useState(false);
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<NoticeData | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const startTime = localInputToRFC3339(start);
    const total = Number(seats);
    if (!name.trim()) {
      setNotice({ tone: 'error', title: 'Give the show a name' });
      return;
    }
    if (!startTime || Date.parse(startTime) <= Date.now()) {
      setNotice({ tone: 'error', title: 'Choose a start time in the future' });
      return;
    }
    if (!Number.isInteger(total) || total < 1 || total > 100000) {
      setNotice({ tone: 'error', title: 'Seats must be a whole number from 1 to 100000' });
      return;
    }
    setBusy(true);
    setNotice(null);
    try {
      const show = await createShow({ name: name.trim(), show_type: type, start_time: startTime, total_seats: total });
      navigate(`/shows/${show.id}`, {
        state: { notice: { tone: 'success', title: 'Show created', detail: `${show.name} is open for booking.` } },
      });
    } catch (err) {
      setNotice(describeError(err));
      setBusy(false);
    }
  };

  return (
    <>
      <Notice notice={notice} />
      <form onSubmit={submit} className="form card" aria-label="New show">
        <label className="field">
          <span>Name</span>
          <input
            name="name"
            required
            maxLength={200}
            value={name}
            onChange={(e) => setName(e.target.value)}
            placeholder="Dune: Part Three"
          />
        </label>
        <fieldset className="field">
          <legend>Type</legend>
          <div className="segmented">
            {SHOW_TYPES.map((t) => (
              <label key={t} className={type === t ? 'is-on' : ''}>
                <input
                  type="radio"
                  name="show_type"
                  value={t}
                  checked={type === t}
                  onChange={() => {
                    setType(t);
                    if (!seatsTouched) setSeats(String(DEFAULT_SEATS[t]));
                  }}
                />
                {TYPE_LABEL[t]}
              </label>
            ))}
          </div>
        </fieldset>
        <label className="field">
          <span>Starts</span>
          <input
            type="datetime-local"
            name="start_time"
            required
            value={start}
            onChange={(e) => setStart(e.target.value)}
          />
        </label>
        <div className="field">
          <label htmlFor="total_seats">{type === 'doctor' ? 'Appointment slots' : 'Seats'}</label>
          <input
            id="total_seats"
            type="number"
            name="total_seats"
            required
            min={1}
            max={100000}
            step={1}
            inputMode="numeric"
            value={seats}
            aria-describedby="seats-hint"
            onChange={(e) => {
              setSeats(e.target.value);
              setSeatsTouched(true);
            }}
          />
          <small id="seats-hint" className="muted">
            {SEAT_HINT[type]}
          </small>
        </div>
        <button type="submit" className="btn btn--primary" disabled={busy}>
          {busy ? 'Creating…' : 'Create show'}
        </button>
      </form>
    </>
  );
}

export function AdminNewShow() {
  useTitle('New show');
  return (
    <section className="narrow" aria-labelledby="new-show-title">
      <h1 id="new-show-title">New show</h1>
      <RequireRole roles={['admin']} what="the new show form">
        <NewShowForm />
      </RequireRole>
    </section>
  );
}
