// End-to-end test of the web app in headless Chromium, driven by
// playwright-core against a running bookingd that serves the built app.
//
//   BASE_URL=http://127.0.0.1:8080 \
//   ADMIN_EMAIL=… ADMIN_PASSWORD=… AUDITOR_EMAIL=… AUDITOR_PASSWORD=… \
//   SCREENSHOT_DIR=test-output npm run e2e
//
// CHROMIUM names the browser (default /usr/bin/chromium, Debian's package).
// bookingd should run with CONFIRM_DELAY=0: with simulated payments on, the
// hold is paid before the person can confirm it. The scenario makes five
// auth calls (the default auth limit is 5 a minute per IP).
//
// The scenario, every step asserted, every wait bounded (15 s at most):
//  1. the admin logs in and creates a movie show with 20 seats through the form;
//  2. a new user registers in context A (a 390×844 phone), logs out and logs in;
//  3. context B (anonymous, desktop) opens the show and its feed goes live;
//  4. A holds A1 and A2 and sees the countdown tick;
//  5. B sees A1 and A2 turn locked without a reload;
//  6. A confirms, B sees them booked; A cancels, B sees them available;
//  7. B goes offline (its live feed drops), A holds A3; back online, B's
//     feed resumes after the last version it had and shows A3 locked; A
//     cancels that hold;
//  8. A's bookings page lists the cancelled booking;
//  9. the auditor opens the show's history from the show page, moves the
//     slider back to the hold and sees A1 and A2 locked, then booked;
// 10. the admin creates a 6-seat show capped at 2 seats per user through the
//     API; A's page says the cap, A holds A1 there, A2 is held behind the
//     page's back through the API, a third seat through the API is refused
//     (409 /problems/seat-limit, limit 2, held 2) and so is A3 through the
//     page, which says "You can hold at most 2 seats for this show";
// 11. a page whose show read is older than any live change (its read is made
//     to say version 0, every seat free) opens the feed with ?after=0, gets
//     one snapshot (A1 and A2 locked, the page at the snapshot's version),
//     then live changes: A cancels A1 and the page shows it free, no reload.
// Exit 0 on success; 1 with the failing step's name and a screenshot of
// every open page (fail-*.png) otherwise; the whole run gives up after 3 minutes.
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const WAIT = 15_000;
const GLOBAL_TIMEOUT = 180_000;

function env(name, fallback) {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') {
    console.error(`e2e: ${name} is not set`);
    process.exit(2);
  }
  return v;
}

const BASE = env('BASE_URL').replace(/\/+$/, '');
const ADMIN = { email: env('ADMIN_EMAIL'), password: env('ADMIN_PASSWORD') };
const AUDITOR = { email: env('AUDITOR_EMAIL'), password: env('AUDITOR_PASSWORD') };
const SHOTS = path.resolve(env('SCREENSHOT_DIR', 'test-output'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
mkdirSync(SHOTS, { recursive: true });
// Failure screenshots of an earlier run would mislead.
for (const f of readdirSync(SHOTS)) if (/^fail-.*\.png$/.test(f)) rmSync(path.join(SHOTS, f));

const started = Date.now();
let browser;
const pages = new Map(); // name → page, for failure screenshots
const pageErrors = [];
let current = '(start)';

async function closeBrowser() {
  if (browser) {
    const b = browser;
    browser = undefined;
    await b.close().catch(() => {});
  }
}

async function failureShots() {
  for (const [name, page] of pages) {
    if (page.isClosed()) continue;
    const file = path.join(SHOTS, `fail-${name}.png`);
    await page.screenshot({ path: file, fullPage: true, timeout: 5000 }).then(
      () => console.error(`   screenshot: ${file}`),
      () => {},
    );
  }
}

const globalTimer = setTimeout(async () => {
  console.error(`✗ e2e: gave up after ${GLOBAL_TIMEOUT / 1000} s, during: ${current}`);
  await failureShots().catch(() => {});
  await closeBrowser();
  process.exit(1);
}, GLOBAL_TIMEOUT);

async function step(name, fn) {
  current = name;
  const t = Date.now();
  await fn();
  console.log(`✓ ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

async function newPage(name, options = {}) {
  const context = await browser.newContext({ baseURL: BASE, ...options });
  context.setDefaultTimeout(WAIT);
  context.setDefaultNavigationTimeout(WAIT);
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  pages.set(name, page);
  return page;
}

/** A seat button by its accessible name, e.g. "Seat A1, locked". */
function seat(page, label) {
  return page.getByRole('button', { name: label, exact: true });
}

async function seesSeats(page, labels) {
  for (const l of labels) await seat(page, l).waitFor({ state: 'visible' });
}

async function logIn(page, who) {
  await page.goto('/login');
  await page.getByLabel('Email', { exact: true }).fill(who.email);
  await page.getByLabel('Password', { exact: true }).fill(who.password);
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
  const account = page.getByTestId('account').filter({ hasText: who.email.toLowerCase() });
  const refused = page.getByTestId('notice');
  await account.or(refused).first().waitFor();
  if (!(await account.isVisible())) {
    throw new Error(`logging in as ${who.email} failed: ${(await refused.first().textContent())?.trim()}`);
  }
}

async function waitLive(page) {
  await page.locator('[data-testid="live-state"][data-state="live"]').waitFor();
}

async function main() {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const stamp = Date.now().toString(36);
  const showName = `E2E premiere ${stamp}`;
  const user = { email: `e2e-${stamp}@example.com`, password: 'e2e user password' };
  let showPath = '';

  const admin = await newPage('admin', { viewport: { width: 1280, height: 900 } });
  await step('the admin logs in', async () => {
    await logIn(admin, ADMIN);
    await admin.locator('.role-badge', { hasText: 'admin' }).waitFor();
  });

  await step('the admin creates a movie show with 20 seats through the form', async () => {
    await admin.getByRole('link', { name: 'New show' }).first().click();
    await admin.waitForURL('**/admin/shows/new');
    await admin.getByLabel('Name', { exact: true }).fill(showName);
    await admin.getByRole('radio', { name: 'Movie' }).check();
    await admin.getByLabel('Seats', { exact: true }).fill('20');
    await shot(admin, '01-admin-new-show');
    await admin.getByRole('button', { name: 'Create show' }).click();
    await admin.waitForURL(/\/shows\/\d+$/);
    showPath = new URL(admin.url()).pathname;
    await admin.getByRole('heading', { name: showName }).waitFor();
    await admin.getByTestId('notice').filter({ hasText: 'Show created' }).waitFor();
    const seats = admin.getByRole('group', { name: /^Seat map/ }).getByRole('button');
    const n = await seats.count();
    check(n === 20, `the new show has ${n} seat buttons, want 20`);
    await seesSeats(admin, ['Seat A1, available', 'Seat B10, available']);
  });

  const a = await newPage('user-phone', {
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  await step('a new user registers and logs in (context A, 390×844)', async () => {
    await a.goto('/register');
    await a.getByLabel('Email', { exact: true }).fill(user.email);
    await a.getByLabel('Password', { exact: true }).fill(user.password);
    await a.getByRole('button', { name: 'Create account' }).click();
    await a.getByTestId('account').filter({ hasText: user.email }).waitFor();
    await a.getByRole('button', { name: 'Log out' }).click();
    await a.getByRole('link', { name: 'Log in' }).waitFor();
    await logIn(a, user);
  });

  await step('the show list lists the new show', async () => {
    await a.goto('/?type=movie');
    await a.getByRole('link', { name: new RegExp(showName) }).waitFor();
    await shot(a, '02-show-list-phone');
  });

  const b = await newPage('watcher', { viewport: { width: 1280, height: 900 } });
  const liveRequests = [];
  b.on('request', (r) => {
    if (r.url().includes('/live')) liveRequests.push({ url: r.url(), lastEventId: r.headers()['last-event-id'] });
  });
  await step('context B (anonymous) opens the show and follows it live', async () => {
    await b.goto(showPath);
    await b.getByRole('heading', { name: showName }).waitFor();
    await waitLive(b);
    await seesSeats(b, ['Seat A1, available', 'Seat A2, available']);
    // Gone if the page reloads: proves later changes arrive live.
    await b.evaluate(() => {
      window.__e2eNoReload = true;
    });
  });

  await step('A holds A1 and A2 and sees the countdown', async () => {
    await a.goto(showPath);
    await a.getByRole('heading', { name: showName }).waitFor();
    await waitLive(a);
    await seat(a, 'Seat A1, available').click();
    await seat(a, 'Seat A2, available').click();
    await a.getByTestId('selection').filter({ hasText: 'A1 and A2' }).waitFor();
    check((await seat(a, 'Seat A1, available').getAttribute('aria-pressed')) === 'true', 'A1 is not pressed after selecting it');
    await a.getByRole('button', { name: 'Hold 2 seats' }).click();
    const hold = a.getByTestId('hold').filter({ hasText: 'Held seats A1 and A2' });
    await hold.waitFor();
    const timer = hold.getByRole('timer');
    const first = (await timer.textContent())?.trim() ?? '';
    check(/^\d+:\d\d$/.test(first), `the countdown reads "${first}"`);
    const [m, s] = first.split(':').map(Number);
    check(m * 60 + s > 0 && m * 60 + s <= 24 * 3600, `the countdown starts at ${first}`);
    await a.waitForFunction(
      (before) => document.querySelector('[data-testid="hold"] [role="timer"]')?.textContent?.trim() !== before,
      first,
      { timeout: 5000 },
    );
    await seesSeats(a, ['Seat A1, locked, held by you', 'Seat A2, locked, held by you']);
    await shot(a, '03-hold-countdown-phone');
  });

  await step('B sees A1 and A2 turn locked without reloading', async () => {
    await seesSeats(b, ['Seat A1, locked', 'Seat A2, locked']);
    check(await b.evaluate(() => window.__e2eNoReload === true), 'B reloaded the page');
    await shot(b, '04-watcher-locked');
  });

  await step('A confirms; B sees them booked', async () => {
    await a.getByRole('button', { name: 'Confirm and pay' }).click();
    await a.getByTestId('hold').filter({ hasText: 'Booked seats A1 and A2' }).waitFor();
    await seesSeats(a, ['Seat A1, booked, yours', 'Seat A2, booked, yours']);
    await seesSeats(b, ['Seat A1, booked', 'Seat A2, booked']);
    check(await b.evaluate(() => window.__e2eNoReload === true), 'B reloaded the page');
    await shot(a, '05-confirmed-phone');
    await shot(b, '05-watcher-booked');
  });

  await step('A cancels; B sees them available again', async () => {
    await a.getByRole('button', { name: 'Cancel booking' }).click();
    await a.getByTestId('notice').filter({ hasText: 'Cancelled' }).waitFor();
    await seesSeats(a, ['Seat A1, available', 'Seat A2, available']);
    await seesSeats(b, ['Seat A1, available', 'Seat A2, available']);
    check(await b.evaluate(() => window.__e2eNoReload === true), 'B reloaded the page');
    await shot(b, '06-watcher-available');
  });

  await step('B goes offline, misses a hold, and catches up when back online', async () => {
    const version = await b.locator('section[data-version]').getAttribute('data-version');
    const before = liveRequests.length;
    await b.context().setOffline(true);
    await b.getByRole('alert').filter({ hasText: 'You are offline' }).waitFor();
    await b.locator('[data-testid="live-state"][data-state="reconnecting"]').waitFor();
    await seat(a, 'Seat A3, available').click();
    await a.getByRole('button', { name: 'Hold 1 seat' }).click();
    await a.getByTestId('hold').filter({ hasText: 'Held seat A3' }).waitFor();
    await shot(b, '06-watcher-offline');
    await b.context().setOffline(false);
    await waitLive(b);
    await seesSeats(b, ['Seat A3, locked']);
    const resumed = liveRequests.slice(before);
    check(
      resumed.some((r) => r.url.endsWith(`/live?after=${version}`) || r.lastEventId === version),
      `B did not resume its feed after version ${version}: ${JSON.stringify(resumed)}`,
    );
    check(await b.evaluate(() => window.__e2eNoReload === true), 'B reloaded the page');
    await a.getByRole('button', { name: 'Cancel hold' }).click();
    await seesSeats(b, ['Seat A3, available']);
  });

  await step("A's bookings list the cancelled booking", async () => {
    await a.getByRole('link', { name: 'My bookings' }).click();
    await a.waitForURL('**/bookings');
    const rows = a.getByTestId('booking').filter({ hasText: showName });
    for (const seats of ['A1 and A2', 'A3']) {
      await rows
        .filter({ has: a.getByText(seats, { exact: true }) })
        .filter({ has: a.getByText('Cancelled', { exact: true }) })
        .waitFor();
    }
    await shot(a, '07-my-bookings-phone');
  });

  const auditor = await newPage('auditor', { viewport: { width: 1280, height: 900 } });
  await step("the auditor opens the show's history", async () => {
    await logIn(auditor, AUDITOR);
    await auditor.goto(showPath);
    await auditor.getByRole('link', { name: 'History' }).click();
    await auditor.waitForURL(/\/history$/);
    const slider = auditor.getByRole('slider', { name: "Event in the show's history" });
    await slider.waitFor();
    const max = await slider.getAttribute('max');
    check(max === '6', `the history has ${max} events, want 6 (scheduled, locked, confirmed, cancelled, locked, cancelled)`);
    check((await slider.inputValue()) === '6', 'the slider does not start at the latest event');
    await auditor.getByTestId('history-position').filter({ hasText: 'After event 6 of 6' }).waitFor();
    await seesSeats(auditor, ['Seat A1, available', 'Seat A2, available']);
  });

  await step('the slider moved back to the hold shows A1 and A2 locked, then booked', async () => {
    const slider = auditor.getByRole('slider', { name: "Event in the show's history" });
    await slider.focus();
    for (let i = 0; i < 4; i++) await auditor.keyboard.press('ArrowLeft');
    check((await slider.inputValue()) === '2', `the slider is at ${await slider.inputValue()}, want 2`);
    await auditor.getByTestId('history-position').filter({ hasText: 'After event 2 of 6: SeatLocked' }).waitFor();
    await seesSeats(auditor, ['Seat A1, locked', 'Seat A2, locked', 'Seat A3, available']);
    await shot(auditor, '08-history-after-hold');
    await auditor.keyboard.press('ArrowRight');
    await seesSeats(auditor, ['Seat A1, booked', 'Seat A2, booked']);
    await slider.fill('1');
    await seesSeats(auditor, ['Seat A1, available', 'Seat A2, available']);
  });

  // ---- The seat cap, and a snapshot (issue 17) ----
  const token = async (page) => page.evaluate(() => sessionStorage.getItem('bookingledger.token'));
  /** An API call from a logged-in page, as the app makes it. */
  const api = async (page, method, url, body) =>
    page.evaluate(
      async ({ method, url, body }) => {
        const headers = { Accept: 'application/json', Authorization: `Bearer ${sessionStorage.getItem('bookingledger.token')}` };
        if (body !== undefined) {
          headers['Content-Type'] = 'application/json';
          headers['Idempotency-Key'] = `e2e-${Date.now()}-${Math.random().toString(36).slice(2)}`;
        }
        const r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
        const text = await r.text();
        let json = null;
        try {
          json = JSON.parse(text);
        } catch {
          // not JSON
        }
        return { status: r.status, type: r.headers.get('Content-Type'), body: json ?? text };
      },
      { method, url, body },
    );

  const capName = `E2E capped ${stamp}`;
  let capShow;
  let capPath = '';
  await step('the admin creates a show capped at 2 seats per user through the API', async () => {
    check((await token(admin)) !== null, 'the admin page has no token');
    const start = new Date(Date.now() + 2 * 86400_000).toISOString();
    const r = await api(admin, 'POST', '/api/shows', {
      name: capName,
      show_type: 'movie',
      start_time: start,
      total_seats: 6,
      max_seats_per_user: 2,
    });
    check(r.status === 201, `POST /api/shows answered ${r.status}: ${JSON.stringify(r.body)}`);
    capShow = r.body;
    check(capShow.max_seats_per_user === 2, `the new show has max_seats_per_user ${capShow.max_seats_per_user}, want 2`);
    capPath = `/shows/${capShow.id}`;
    // Only its creator reads their own write at once; others read the
    // projections, which follow the stream a moment later: wait for them, as
    // the first scenario waits for the show list.
    const deadline = Date.now() + WAIT;
    for (;;) {
      const r = await fetch(new URL(`/api/shows/${capShow.id}`, BASE));
      if (r.ok) break;
      check(r.status === 404 && Date.now() < deadline, `GET /api/shows/${capShow.id} answered ${r.status}`);
      await new Promise((done) => setTimeout(done, 100));
    }
  });

  await step('A sees the cap, holds up to it, and one more is refused with the cap message', async () => {
    await a.goto(capPath);
    await a.getByRole('heading', { name: capName }).waitFor();
    await waitLive(a);
    await a.getByTestId('seat-cap').filter({ hasText: 'You can hold at most 2 seats for this show' }).waitFor();
    await seat(a, 'Seat A1, available').click();
    await a.getByRole('button', { name: 'Hold 1 seat' }).click();
    await a.getByTestId('hold').filter({ hasText: 'Held seat A1' }).waitFor();
    await a.getByTestId('seat-cap').filter({ hasText: 'you have 1, so 1 more' }).waitFor();

    // A second seat behind the page's back (another tab, say): the cap is reached.
    const second = await api(a, 'POST', '/api/bookings', { show_id: capShow.id, seat_numbers: ['A2'] });
    check(second.status === 201, `holding A2 through the API answered ${second.status}: ${JSON.stringify(second.body)}`);
    await seesSeats(a, ['Seat A2, locked']);
    const third = await api(a, 'POST', '/api/bookings', { show_id: capShow.id, seat_numbers: ['A4'] });
    check(
      third.status === 409 &&
        /problem\+json/.test(third.type ?? '') &&
        third.body?.type === '/problems/seat-limit' &&
        third.body?.limit === 2 &&
        third.body?.held === 2,
      `a third seat through the API: ${third.status} ${third.type} ${JSON.stringify(third.body)}, want 409 /problems/seat-limit with limit 2 and held 2`,
    );

    // The page still thinks one more is allowed; the server refuses it.
    await seat(a, 'Seat A3, available').click();
    await a.getByRole('button', { name: 'Hold 1 seat' }).click();
    await a
      .getByTestId('notice')
      .filter({ hasText: 'You can hold at most 2 seats for this show' })
      .filter({ hasText: 'You already hold or have bought 2 seats here' })
      .waitFor();
    await seesSeats(a, ['Seat A3, available']);
    check((await a.getByTestId('hold').count()) >= 1, 'the hold on A1 is gone');
    check(
      (await a.getByTestId('hold').filter({ hasText: 'A3' }).count()) === 0,
      'a hold on A3 shows although the server refused it',
    );
    // The page read my bookings again: the other tab's hold counts. (While
    // seats are picked, a phone's sticky selection bar hides this hint.)
    await a.getByTestId('seat-cap').filter({ hasText: 'you have 2, so no more' }).waitFor({ state: 'attached' });
    await shot(a, '09-seat-limit-phone');
  });

  const c = await newPage('snapshot', { viewport: { width: 1280, height: 900 } });
  await step('a page behind the live ring gets a snapshot, then live changes', async () => {
    // Every live message the app's EventSource receives, in order.
    await c.addInitScript(() => {
      const Native = window.EventSource;
      window.__e2eLive = [];
      window.EventSource = class extends Native {
        constructor(url, init) {
          super(url, init);
          window.__e2eLive.push({ kind: 'open', url: String(url) });
          for (const kind of ['snapshot', 'seats']) {
            this.addEventListener(kind, (e) => {
              let m = {};
              try {
                m = JSON.parse(e.data);
              } catch {
                // recorded as is
              }
              window.__e2eLive.push({ kind, id: e.lastEventId, version: m.version, seats: m.seats?.length });
            });
          }
        }
      };
    });
    // The page's read of the show says version 0 with every seat free, as a
    // read from before any change would: only the snapshot can tell it more.
    const showURL = new URL(`/api/shows/${capShow.id}`, BASE).href;
    await c.route(
      (u) => u.href === showURL,
      async (route) => {
        const res = await route.fetch();
        const show = await res.json();
        show.version = 0;
        show.seats = show.seats.map((x) => ({ ...x, status: 'available' }));
        show.available_seats = show.seats.length;
        await route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(show) });
      },
    );
    await c.goto(capPath);
    await c.getByRole('heading', { name: capName }).waitFor();
    await waitLive(c);
    await c.evaluate(() => {
      window.__e2eNoReload = true;
    });
    await seesSeats(c, ['Seat A1, locked', 'Seat A2, locked', 'Seat A3, available']);
    const log = await c.evaluate(() => window.__e2eLive);
    check(log[0]?.kind === 'open' && log[0].url.endsWith(`/live?after=0`), `the feed opened as ${JSON.stringify(log[0])}`);
    const snap = log.find((m) => m.kind === 'snapshot');
    check(snap && log.indexOf(snap) === 1, `the feed did not start with a snapshot: ${JSON.stringify(log)}`);
    check(snap.seats === 6 && String(snap.version) === snap.id, `the snapshot is ${JSON.stringify(snap)}`);
    const version = await c.locator('section[data-version]').getAttribute('data-version');
    check(Number(version) >= Number(snap.id) && Number(snap.id) >= 3, `the page is at version ${version} after a snapshot at ${snap.id}`);

    await a.getByTestId('hold').filter({ hasText: 'Held seat A1' }).getByRole('button', { name: 'Cancel hold' }).click();
    await a.getByTestId('notice').filter({ hasText: 'Cancelled' }).waitFor();
    await seesSeats(c, ['Seat A1, available', 'Seat A2, locked']);
    const after = await c.evaluate(() => window.__e2eLive);
    const changes = after.slice(after.indexOf(after.find((m) => m.kind === 'snapshot')) + 1);
    check(
      changes.length > 0 && changes.every((m) => m.kind === 'seats' && Number(m.id) > Number(snap.id)),
      `after the snapshot the feed sent ${JSON.stringify(changes)}`,
    );
    check(after.filter((m) => m.kind === 'snapshot').length === 1, `more than one snapshot: ${JSON.stringify(after)}`);
    check(await c.evaluate(() => window.__e2eNoReload === true), 'the snapshot page reloaded');
    await shot(c, '10-snapshot-then-changes');
  });

  await step('no page threw an uncaught error', async () => {
    check(pageErrors.length === 0, `uncaught errors in the pages:\n  ${pageErrors.join('\n  ')}`);
  });
}

let code = 0;
try {
  await main();
  console.log(`e2e: all steps passed in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${SHOTS}`);
} catch (e) {
  code = 1;
  console.error(`✗ ${current}`);
  console.error(`  ${String(e?.message ?? e).split('\n').join('\n  ')}`);
  await failureShots().catch(() => {});
} finally {
  clearTimeout(globalTimer);
  await closeBrowser();
}
process.exit(code);
