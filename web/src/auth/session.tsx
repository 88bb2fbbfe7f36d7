// The logged-in session: the bearer token lives in sessionStorage (one tab,
// gone when the tab closes) and its JWT payload tells the email and role.
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { configureClient } from '../api/client';
import type { Role } from '../api/types';

const STORAGE_KEY = 'bookingledger.token';

export interface Session {
  token: string;
  userId: string;
  email: string;
  role: Role;
  /** Expiry, ms since the epoch. */
  expiresAt: number;
}

function base64UrlDecode(s: string): string {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(s.length / 4) * 4, '=');
  const bin = atob(b64);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/**
 * Reads a token's claims (api/auth.go: sub = user id, email, role, exp).
 * The signature is the server's business; this only decides what to show.
 */
export function decodeToken(token: string): Session | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const c = JSON.parse(base64UrlDecode(parts[1])) as Record<string, unknown>;
    const role = c.role;
    if (role !== 'user' && role !== 'admin' && role !== 'auditor') return null;
    const exp = typeof c.exp === 'number' ? c.exp * 1000 : Number.POSITIVE_INFINITY;
    return {
      token,
      userId: typeof c.sub === 'string' ? c.sub : '',
      email: typeof c.email === 'string' ? c.email : '',
      role,
      expiresAt: exp,
    };
  } catch {
    return null;
  }
}

function storage(): Storage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

export function loadSession(now = Date.now()): Session | null {
  const raw = storage()?.getItem(STORAGE_KEY);
  if (!raw) return null;
  const s = decodeToken(raw);
  if (!s || s.expiresAt <= now) {
    storage()?.removeItem(STORAGE_KEY);
    return null;
  }
  return s;
}

/** The token to send now, or null when there is none or it has run out. */
function currentToken(): string | null {
  return loadSession()?.token ?? null;
}

const REFUSED_EVENT = 'bookingledger:token-refused';

// Configured once, before any component fetches: the client reads the token
// from storage on every call, and a refused token is dropped at once.
configureClient({
  getToken: currentToken,
  onUnauthorized: () => {
    storage()?.removeItem(STORAGE_KEY);
    window.dispatchEvent(new Event(REFUSED_EVENT));
  },
});

interface SessionContext {
  session: Session | null;
  /** Keeps the token from POST /api/auth/login. */
  signIn: (token: string) => Session;
  signOut: () => void;
  /** True once the server refused our token; cleared by the next sign-in. */
  expired: boolean;
}

const Ctx = createContext<SessionContext | null>(null);

export function SessionProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<Session | null>(() => loadSession());
  const [expired, setExpired] = useState(false);

  const signOut = useCallback(() => {
    storage()?.removeItem(STORAGE_KEY);
    setSession(null);
  }, []);

  const signIn = useCallback((token: string) => {
    const s = decodeToken(token);
    if (!s) throw new Error('The server sent a token this page cannot read.');
    storage()?.setItem(STORAGE_KEY, token);
    setSession(s);
    setExpired(false);
    return s;
  }, []);

  useEffect(() => {
    const onRefused = () => {
      setSession(null);
      setExpired(true);
    };
    window.addEventListener(REFUSED_EVENT, onRefused);
    return () => window.removeEventListener(REFUSED_EVENT, onRefused);
  }, []);

  // Drop the session when its token runs out while the page is open.
  useEffect(() => {
    if (!session || !Number.isFinite(session.expiresAt)) return;
    const ms = session.expiresAt - Date.now();
    const t = setTimeout(
      () => {
        signOut();
        setExpired(true);
      },
      Math.max(0, Math.min(ms, 2 ** 31 - 1)),
    );
    return () => clearTimeout(t);
  }, [session, signOut]);

  const value = useMemo(() => ({ session, signIn, signOut, expired }), [session, signIn, signOut, expired]);
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useSession(): SessionContext {
  const c = useContext(Ctx);
  if (!c) throw new Error('useSession outside SessionProvider');
  return c;
}

export function canBook(s: Session | null): boolean {
  return s !== null && (s.role === 'user' || s.role === 'admin');
}

export function canAudit(s: Session | null): boolean {
  return s !== null && (s.role === 'auditor' || s.role === 'admin');
}
