import { useEffect, useRef } from 'react';
import { NavLink, Route, Routes, useLocation, useNavigate } from 'react-router';
import { canBook, useSession } from './auth/session';
import { useOnline } from './lib/useOnline';
import { AdminNewShow } from './pages/AdminNewShow';
import { Login } from './pages/Login';
import { MyBookings } from './pages/MyBookings';
import { NotFound } from './pages/NotFound';
import { Register } from './pages/Register';
import { ShowHistory } from './pages/ShowHistory';
import { ShowList } from './pages/ShowList';
import { ShowPage } from './pages/ShowPage';

function Header() {
  const { session, signOut } = useSession();
  const navigate = useNavigate();
  return (
    <header className="topbar">
      <div className="topbar-inner">
        <NavLink to="/" className="brand" end>
          <span className="brand-mark" aria-hidden="true" />
          Booking ledger
        </NavLink>
        <nav aria-label="Main">
          <NavLink to="/" end>
            Shows
          </NavLink>
          {canBook(session) && <NavLink to="/bookings">My bookings</NavLink>}
          {session?.role === 'admin' && <NavLink to="/admin/shows/new">New show</NavLink>}
        </nav>
        <div className="account">
          {session ? (
            <>
              <span className="account-who" title={session.email} data-testid="account">
                <span className="account-email">{session.email}</span>
                {session.role !== 'user' && <span className="role-badge">{session.role}</span>}
              </span>
              <button
                type="button"
                className="btn btn--ghost btn--small"
                onClick={() => {
                  signOut();
                  navigate('/');
                }}
              >
                Log out
              </button>
            </>
          ) : (
            <>
              <NavLink to="/login" className="btn btn--ghost btn--small">
                Log in
              </NavLink>
              <NavLink to="/register" className="btn btn--primary btn--small">
                Register
              </NavLink>
            </>
          )}
        </div>
      </div>
    </header>
  );
}

function OfflineBanner() {
  const online = useOnline();
  if (online) return null;
  return (
    <div className="offline-banner" role="alert">
      You are offline. Seat maps catch up as soon as the connection is back.
    </div>
  );
}

/**
 * After a client-side navigation, moves the focus to the new page's <h1>
 * (so screen readers announce it and Tab starts from the page), waiting
 * for a page that loads first. The first page load keeps the browser's focus.
 */
function useFocusHeadingOnNavigate() {
  const location = useLocation();
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    const main = document.getElementById('main');
    if (!main) return;
    const focus = () => {
      const h1 = main.querySelector<HTMLElement>('h1');
      if (!h1) return false;
      if (!h1.hasAttribute('tabindex')) h1.tabIndex = -1;
      h1.focus({ preventScroll: false });
      return true;
    };
    if (focus()) return;
    const obs = new MutationObserver(() => {
      if (focus()) stop();
    });
    const timer = setTimeout(() => stop(), 10_000);
    const stop = () => {
      obs.disconnect();
      clearTimeout(timer);
    };
    obs.observe(main, { childList: true, subtree: true });
    return stop;
  }, [location.pathname]);
}

export function App() {
  useFocusHeadingOnNavigate();
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <Header />
      <OfflineBanner />
      <main id="main" className="page">
        <Routes>
          <Route path="/" element={<ShowList />} />
          <Route path="/shows/:id" element={<ShowPage />} />
          <Route path="/shows/:id/history" element={<ShowHistory />} />
          <Route path="/bookings" element={<MyBookings />} />
          <Route path="/login" element={<Login />} />
          <Route path="/register" element={<Register />} />
          <Route path="/admin/shows/new" element={<AdminNewShow />} />
          <Route path="*" element={<NotFound />} />
        </Routes>
      </main>
    </>
  );
}
