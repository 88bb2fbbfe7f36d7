import { useState, type FormEvent } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { isApiError, login } from '../api/client';
import { useSession } from '../auth/session';
import { Notice } from '../components/Notice';
import { describeError, type NoticeData } from '../lib/errors';
import { useTitle } from '../lib/useTitle';

/** Where to go after logging in: only paths on this site. */
export function safeNext(next: string | null): string {
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

export function Login() {
  useTitle('Log in');
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const { signIn, expired } = useSession();
  const [email, setEmail] = useState(params.get('email') ?? '');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<NoticeData | null>(
    expired ? { tone: 'info', title: 'Your session has ended', detail: 'Please log in again.' } : null,
  );

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setNotice(null);
    try {
      const t = await login(email.trim(), password);
      signIn(t.token);
      navigate(safeNext(params.get('next')), { replace: true });
    } catch (err) {
      if (isApiError(err) && err.status === 401) {
        setNotice({ tone: 'error', title: 'Wrong email or password', detail: 'Check both and try again.' });
      } else {
        setNotice(describeError(err));
      }
    } finally {
      setBusy(false);
    }
  };

  const next = params.get('next');
  return (
    <section className="auth card" aria-labelledby="login-title">
      <h1 id="login-title">Log in</h1>
      <Notice notice={notice} />
      <form onSubmit={submit} className="form">
        <label className="field">
          <span>Email</span>
          <input
            type="email"
            name="email"
            autoComplete="username"
            required
            value={email}
            onChange={(e) => setEmail(e.target.value)}
          />
        </label>
        <label className="field">
          <span>Password</span>
          <input
            type="password"
            name="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        <button type="submit" className="btn btn--primary btn--block" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
      </form>
      <p className="muted">
        New here? <Link to={`/register${next ? `?next=${encodeURIComponent(next)}` : ''}`}>Create an account</Link>
      </p>
    </section>
  );
}
