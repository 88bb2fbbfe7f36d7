import { useState, type FormEvent } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { isApiError, login, register } from '../api/client';
import { useSession } from '../auth/session';
import { Notice } from '../components/Notice';
import { describeError, type NoticeData } from '../lib/errors';
import { safeNext } from './Login';
import { useTitle } from '../lib/useTitle';

function byteLength(s: string): number {
  return new TextEncoder().encode(s).length;
}

export function Register() {
  useTitle('Create an account');
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const { signIn } = useSession();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<NoticeData | null>(null);
  const next = params.get('next');

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const bytes = byteLength(password);
    if (bytes < 8 || bytes > 72) {
      setNotice({ tone: 'error', title: 'Choose another password', detail: 'It must be 8 to 72 characters long.' });
      return;
    }
    setBusy(true);
    setNotice(null);
    const address = email.trim();
    try {
      await register(address, password);
    } catch (err) {
      setBusy(false);
      if (isApiError(err) && err.status === 409) {
        // To the login page with the address filled in, and on to where this page was going.
        const q = new URLSearchParams({ email: address });
        if (next) q.set('next', safeNext(next));
        setNotice({
          tone: 'error',
          title: 'That email is already registered.',
          login: true,
          loginTo: `/login?${q.toString()}`,
          loginText: 'Log in instead',
        });
      } else if (isApiError(err) && err.status === 422) {
        setNotice({ tone: 'error', title: 'Check your details', detail: err.problem.detail });
      } else {
        setNotice(describeError(err));
      }
      return;
    }
    // The account exists: log straight in.
    try {
      const t = await login(address, password);
      signIn(t.token);
      navigate(safeNext(next), { replace: true });
    } catch (err) {
      setBusy(false);
      const n = describeError(err);
      const q = new URLSearchParams({ email: address });
      if (next) q.set('next', safeNext(next));
      setNotice({
        ...n,
        title: `Your account is ready, but logging in failed: ${n.title}`,
        login: true,
        loginTo: `/login?${q.toString()}`,
      });
    }
  };

  return (
    <section className="auth card" aria-labelledby="register-title">
      <h1 id="register-title">Create an account</h1>
      <Notice notice={notice} />
      <form onSubmit={submit} className="form">
        <label className="field">
          <span>Email</span>
          <input
            type="email"
            name="email"
            autoComplete="email"
            required
            maxLength={254}
            value={email}
            onChange={(e) => setEmail(e.target.value)}
          />
        </label>
        <div className="field">
          <label htmlFor="register-password">Password</label>
          <input
            id="register-password"
            type="password"
            name="password"
            autoComplete="new-password"
            required
            minLength={8}
            maxLength={72}
            aria-describedby="password-hint"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
          <small id="password-hint" className="muted">
            8 to 72 characters.
          </small>
        </div>
        <button type="submit" className="btn btn--primary btn--block" disabled={busy}>
          {busy ? 'Creating…' : 'Create account'}
        </button>
      </form>
      <p className="muted">
        Have an account? <Link to={`/login${next ? `?next=${encodeURIComponent(next)}` : ''}`}>Log in</Link>
      </p>
    </section>
  );
}
