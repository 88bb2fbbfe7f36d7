import type { ReactNode } from 'react';
import { Link, useLocation } from 'react-router';
import type { Role } from '../api/types';
import { useSession } from '../auth/session';

/** Shows children to a session with one of roles; asks others to log in. */
export function RequireRole({ roles, children, what }: { roles: Role[]; children: ReactNode; what: string }) {
  const { session } = useSession();
  const location = useLocation();
  const next = encodeURIComponent(location.pathname + location.search);
  if (!session) {
    return (
      <section className="empty">
        <h1>Please log in</h1>
        <p>
          <Link to={`/login?next=${next}`}>Log in</Link> to see {what}.
        </p>
      </section>
    );
  }
  if (!roles.includes(session.role)) {
    return (
      <section className="empty">
        <h1>Not available to your account</h1>
        <p>
          {what[0].toUpperCase() + what.slice(1)} {roles.length === 1 ? `needs the ${roles[0]} role` : `needs one of the roles ${roles.join(', ')}`}.
        </p>
      </section>
    );
  }
  return <>{children}</>;
}
