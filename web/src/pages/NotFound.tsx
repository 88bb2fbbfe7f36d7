import { Link } from 'react-router';
import { useTitle } from '../lib/useTitle';

export function NotFound() {
  useTitle('Page not found');
  return (
    <section className="empty">
      <h1>Page not found</h1>
      <p>
        <Link to="/">See what's on</Link>
      </p>
    </section>
  );
}
