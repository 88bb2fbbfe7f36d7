import { NavLink, Route, Routes, useNavigate } from 'react-router';
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

export function App() {
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
