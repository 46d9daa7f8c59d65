// The console in headless Debian chromium (playwright-core), against the real local server
// (`target/debug/deskbridge serve`, fresh data dir) and the vendor fakes as a process
// (`target/debug/deskbridge-fakes`). Run by scripts/test after `cargo build`; alone:
//   cargo build -p deskbridge-local -p deskbridge-tests --bins && (cd tests/browser && npm ci && npm test)
//
// Covers the "Done when" scenarios of issue 12 in order (they share one server), runs axe-core
// on every main page, writes screenshots to target/console-screenshots/, prints each console
// answer's time and the first page load's transferred bytes, and checks that every request
// the page made went to the server's origin.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID, randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';
import { AxeBuilder } from '@axe-core/playwright';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const TARGET = process.env.CARGO_TARGET_DIR || join(ROOT, 'target');
const SERVE = join(TARGET, 'debug', 'deskbridge');
const FAKES = join(TARGET, 'debug', 'deskbridge-fakes');
const SHOTS = join(TARGET, 'console-screenshots');
const CHROMIUM = process.env.DESKBRIDGE_CHROMIUM || '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];
const TOKEN = randomBytes(20).toString('hex');
const ADMIN = { email: 'ada@msp.example', password: `pw-${randomBytes(8).toString('hex')}` };
const TECH = { email: 'tina@msp.example', password: `pw-${randomBytes(8).toString('hex')}` };
const ACME_SITE_UID = '0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f';
const DEVICE_UID = 'b2e4a7c1-6f3d-4e58-a9b0-7d2c1e8f4a63';

const children = [];
let origin;
let fakes;
let context;
let page;
let userDataDir;
let dataDir;
const requested = [];
const state = {};

// ---------------------------------------------------------------- helpers

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

function start(bin, args, env) {
  assert.ok(existsSync(bin), `${bin} is missing: run cargo build -p deskbridge-local -p deskbridge-tests --bins first`);
  const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const lines = [];
  child.stderr.on('data', (d) => { lines.push(String(d)); if (lines.length > 200) lines.shift(); });
  child.logTail = () => lines.join('').split('\n').slice(-30).join('\n');
  return child;
}

function firstLine(child) {
  return new Promise((res, rej) => {
    const rl = createInterface({ input: child.stdout });
    rl.once('line', (l) => res(l));
    child.once('exit', (code) => rej(new Error(`exited with ${code} before printing: ${child.logTail()}`)));
  });
}

async function until(what, fn, timeoutMs = 20000, everyMs = 250) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => { setTimeout(r, everyMs); });
  }
}

/** The JSON API with the service token (test set-up and checks, not what the page does). */
async function api(method, path, body) {
  const resp = await fetch(origin + path, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await resp.text();
  if (!resp.ok) throw new Error(`${method} ${path}: ${resp.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function control(path, body) {
  const resp = await fetch(fakes.control + path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await resp.text();
  assert.equal(resp.status, 200, `${path}: ${answer}`);
  return JSON.parse(answer);
}

async function text(selector) {
  return (await page.locator(selector).first().textContent()) || '';
}

async function waitText(selector, substring, timeoutMs = 20000) {
  return until(`"${substring}" in ${selector}`, async () => (await text(selector)).includes(substring) && (await text(selector)), timeoutMs);
}

async function open(hash, heading) {
  await page.goto(`${origin}/console#${hash}`);
  await until(`the page ${hash}`, async () => {
    const h1 = await page.locator('main h1').first().textContent({ timeout: 1000 });
    return h1 && (!heading || h1.includes(heading));
  });
}

const axeFindings = [];
async function axe(name) {
  const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']).analyze();
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  axeFindings.push([name, result.violations.length, bad.length]);
  assert.deepEqual(bad.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`), [],
    `axe-core found serious or critical violations on ${name}`);
}

async function shot(name, narrow = false) {
  await page.screenshot({ path: join(SHOTS, `${name}-1280x800.png`) });
  if (narrow) {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(SHOTS, `${name}-390.png`), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
  }
}

/** Every main page: open it, axe it, photograph it. */
async function visit(name, hash, heading, narrow = false) {
  await open(hash, heading);
  await axe(name);
  await shot(name, narrow);
}

/** Datto's substitution of the placeholders in a payload copied from the page. */
function asDattoSends(payload, uid, device = { uid: DEVICE_UID, hostname: 'ACME-DC01' }) {
  const values = {
    '[alert_uid]': uid,
    '[alert_message]': `Disk C: below 10% free ${uid.slice(0, 8)}`,
    '[alert_priority]': 'High',
    '[device_uid]': device.uid,
    '[device_hostname]': device.hostname,
    '[site_uid]': ACME_SITE_UID,
    '[site_name]': 'Acme Ltd - Head Office',
  };
  const out = {};
  for (const [k, v] of Object.entries(payload)) out[k] = typeof v === 'string' && v in values ? values[v] : v;
  return out;
}

async function postWebhook(body) {
  const resp = await fetch(`${origin}/datto/webhook`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const answer = await resp.json();
  assert.equal(resp.status, 200, JSON.stringify(answer));
  return answer;
}

// ---------------------------------------------------------------- set-up

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  const f = start(FAKES, [], {});
  fakes = JSON.parse(await firstLine(f));
  const port = await freePort();
  origin = `http://127.0.0.1:${port}`;
  dataDir = mkdtempSync(join(tmpdir(), 'deskbridge-console-data-'));
  const server = start(SERVE, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--allow-loopback-vendors'], {
    DESKBRIDGE_API_TOKEN: TOKEN, DESKBRIDGE_PUBLIC_URL: origin, RUST_LOG: 'warn',
  });
  state.serverOut = [];
  server.stdout.on('data', (d) => state.serverOut.push(String(d)));
  await until('deskbridge serve to answer /healthz', async () => (await fetch(`${origin}/healthz`)).ok, 30000);

  // The desk the scenarios work in (made through the API: the console has no customer screens).
  state.customer = await api('POST', '/api/customers', { name: 'Fabrikam' });
  state.user = await api('POST', '/api/users', { name: 'Mark Lee', email: 'mark.lee@fabrikam.example', customer_id: state.customer.id });
  await api('POST', '/api/ticket-types', { name: 'Incident', default_priority: 'medium', is_default: true });
  state.alice = await api('POST', '/api/agents', { name: 'Alice Martin', email: 'alice@msp.example', bt_enabled: true, bt_name: 'Alice Martin' });
  state.bob = await api('POST', '/api/agents', { name: 'Bob Keller', email: 'bob@msp.example', bt_enabled: true, bt_name: 'Bob' });
  state.sam = await api('POST', '/api/agents', { name: 'Sam Ortiz', email: 'sam@msp.example', bt_enabled: true, bt_name: 'Sam' });
  state.tina = await api('POST', '/api/agents', { name: 'Tina Tech', email: TECH.email, role: 'technician' });
  await api('PUT', `/api/agents/${state.tina.id}/password`, { password: TECH.password });
  state.chat = await api('POST', '/api/chats', { user_name: 'Mark Lee', customer_id: state.customer.id });
  await api('POST', `/api/chats/${state.chat.id}/messages`, { from: 'Mark Lee', text: 'My screen is frozen' });

  userDataDir = mkdtempSync(join(tmpdir(), 'deskbridge-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1280, height: 800 },
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
  context.on('request', (r) => requested.push(r.url()));
  page = context.pages()[0] || await context.newPage();
  page.on('pageerror', (e) => { state.pageErrors = [...(state.pageErrors || []), e.message]; });
});

after(async () => {
  if (context) await context.close().catch(() => {});
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => { c.once('exit', r); setTimeout(r, 5000); }) : null)));
  for (const d of [userDataDir, dataDir]) if (d) rmSync(d, { recursive: true, force: true });
  console.log('\naxe-core per page (violations of any impact / serious or critical):');
  for (const [name, all, bad] of axeFindings) console.log(`  ${name}: ${all} / ${bad}`);
});

// ---------------------------------------------------------------- scenarios

test('the first page load stays under 300 KB and every console answer is timed', async () => {
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  let bytes = 0;
  const files = [];
  cdp.on('Network.loadingFinished', (e) => { bytes += e.encodedDataLength; });
  cdp.on('Network.responseReceived', (e) => files.push(e.response.url));
  await page.goto(`${origin}/console`, { waitUntil: 'networkidle' });
  await until('the sign-in page', async () => (await text('main h1')).includes('Sign in'));
  await cdp.detach();
  console.log(`first page load: ${files.length} responses, ${bytes} bytes transferred (${(bytes / 1024).toFixed(1)} KiB; budget 300 KB)`);
  assert.ok(bytes < 300_000, `the first page load transferred ${bytes} bytes`);

  // The server's answer time for the page and each asset it loaded (20 requests each).
  const paths = [...new Set(files.map((u) => new URL(u).pathname).filter((p) => p.startsWith('/console')))];
  assert.ok(paths.length >= 5, `the page loaded its scripts: ${paths}`);
  for (const path of paths) {
    const times = [];
    for (let i = 0; i < 20; i += 1) {
      const t0 = performance.now();
      const resp = await fetch(origin + path);
      await resp.arrayBuffer();
      times.push(performance.now() - t0);
      assert.equal(resp.status, 200, path);
    }
    times.sort((a, b) => a - b);
    console.log(`answer time ${path}: median ${times[10].toFixed(2)} ms, max ${times[19].toFixed(2)} ms`);
  }
  await axe('sign-in');
  await shot('sign-in', true);
});

test('first-admin setup from the link deskbridge serve printed, and sign-in', async () => {
  const printed = state.serverOut.join('');
  const m = /\/console\/setup#token=(\S+)/.exec(printed);
  assert.ok(m, `deskbridge serve printed the first-admin link: ${printed}`);
  await page.goto(`${origin}/console/setup#token=${m[1]}`);
  await until('the setup screen', async () => (await text('main h1')) === 'Set up deskbridge');
  assert.equal(await page.getByLabel('Setup token', { exact: true }).inputValue(), m[1], 'the link fills the token in');
  await axe('first-admin');
  await shot('first-admin');
  await page.getByLabel('Name', { exact: true }).fill('Ada Admin');
  await page.getByLabel('E-mail', { exact: true }).fill(ADMIN.email);
  await page.getByLabel('Password', { exact: true }).fill(ADMIN.password);
  await page.getByRole('button', { name: 'Create admin and sign in' }).click();
  await until('the ticket list', async () => (await text('main h1')) === 'Tickets');
  await waitText('#who', 'Ada Admin (admin)');
  state.admin = (await page.evaluate(async () => (await fetch('/api/auth/me')).json())).agent;

  // Signed out, the admin signs in again with e-mail and password.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await until('the sign-in page', async () => (await text('main h1')) === 'Sign in');
  await page.getByLabel('E-mail', { exact: true }).fill(ADMIN.email);
  await page.getByLabel('Password', { exact: true }).fill(ADMIN.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await until('the ticket list', async () => (await text('main h1')) === 'Tickets');
  await waitText('#who', 'Ada Admin (admin)');
});

test('a wrong password is refused next to the form, never swallowed', async () => {
  const p2 = await context.newPage();
  await p2.goto(`${origin}/console#/signin`);
  await p2.getByLabel('E-mail', { exact: true }).fill('nobody@msp.example');
  await p2.getByLabel('Password', { exact: true }).fill('not-the-password');
  await p2.getByRole('button', { name: 'Sign in' }).click();
  await until('the refusal', async () => ((await p2.locator('form .form-error').first().textContent()) || '').includes('wrong e-mail or password'));
  await p2.close();
});

test('configure Datto against the fake, copy the raised payload, post it and see the ticket appear without a reload', async () => {
  await open('/datto', 'Datto RMM setup');
  await page.getByLabel('API URL', { exact: true }).fill(fakes.datto);
  await page.getByLabel('API key', { exact: true }).fill(fakes.datto_api_key);
  await page.getByLabel('API secret', { exact: true }).fill(fakes.datto_api_secret);
  await page.getByRole('button', { name: 'Test Connection' }).click();
  await waitText('#datto-test-result', '✓');
  await axe('datto-setup');
  await shot('datto-setup', true);

  // A field error appears beside its field: a sync interval of 0 is refused by the API.
  await page.getByLabel('Sync interval (minutes)', { exact: true }).fill('0');
  await page.getByRole('button', { name: 'Save settings' }).click();
  const shown = await waitText('[data-error-for="sync_interval_minutes"]', 'sync_interval_minutes');
  console.log(`a refused sync interval shows beside its field: ${shown}`);
  await page.getByLabel('Sync interval (minutes)', { exact: true }).fill('5');
  await page.getByRole('button', { name: 'Save settings' }).click();
  await until('saved', async () => (await page.locator('main .status').first().textContent()).startsWith('Saved'));

  await page.getByRole('button', { name: 'Copy raised payload' }).click();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  const raised = JSON.parse(copied);
  assert.equal(raised.alert_uid, '[alert_uid]', 'the payload carries Datto placeholders');
  assert.ok(typeof raised.state === 'string' && raised.state.length > 10, 'the payload carries the state');

  await open('/tickets', 'Tickets');
  await page.evaluate(() => { window.sameDocument = true; });
  state.uid = randomUUID();
  const answer = await postWebhook(asDattoSends(raised, state.uid));
  assert.equal(answer.result, 'created');
  state.ticketId = answer.ticket_id;
  state.raised = raised;
  await until('the new ticket in the list', async () => (await text('#ticket-results')).includes(`#${state.ticketId}`), 15000);
  assert.equal(await page.evaluate(() => window.sameDocument), true, 'the list refreshed itself, without a reload');
  await axe('tickets');
  await shot('tickets', true);
});

test('open the alert ticket and see the alert timeline', async () => {
  await page.getByRole('link', { name: `#${state.ticketId}`, exact: true }).click();
  await until('the ticket page', async () => (await text('main h1')).startsWith(`#${state.ticketId} `));
  await waitText('#alert-panel', state.uid);
  const rows = await page.locator('#alert-panel table tbody tr').count();
  assert.ok(rows >= 1, 'the timeline has the decision that made the ticket');
  assert.match(await text('#alert-panel table tbody tr'), /webhook/);
  await axe('ticket');
  await shot('ticket', true);
});

test('configure BeyondTrust against the fake, get its teams', async () => {
  await open('/beyondtrust', 'BeyondTrust setup');
  await page.getByLabel('Site URL', { exact: true }).fill(fakes.beyondtrust);
  await page.getByLabel('OAuth client id', { exact: true }).fill(fakes.beyondtrust_client_id);
  await page.getByLabel('OAuth client secret', { exact: true }).fill(fakes.beyondtrust_client_secret);
  await page.getByLabel('Allow invites for other agents and teams', { exact: true }).check();
  await page.getByLabel('$REMOTEINVITE text', { exact: true }).fill('Open $LINKTOREMOTE or enter $REMOTESESSIONCODE');
  await waitText('.preview', 'https://support.example.com/?ak=8f2c1d');
  await page.getByRole('button', { name: 'Test Configuration' }).click();
  await waitText('#bt-test-result', '✓');
  await axe('beyondtrust-setup');
  await shot('beyondtrust-setup');

  await open('/beyondtrust/teams', 'BeyondTrust teams');
  await page.getByRole('button', { name: 'Get Teams' }).click();
  await waitText('main', 'Service Desk');
  await axe('beyondtrust-teams');
  await shot('beyondtrust-teams');
  await visit('beyondtrust-agents', '/beyondtrust/agents', 'Agents');
});

test('send an invite from the ticket: TECHUNAVAILABLE for a logged-out agent, a tick for a logged-in one', async () => {
  await control('/bt/log-out', { rep_id: '17' }); // Bob
  await open(`/tickets/${state.ticketId}`, `#${state.ticketId}`);
  await page.getByLabel('Invite into', { exact: true }).selectOption({ label: 'Agent: Bob Keller' });
  await page.getByLabel("E-mail to (blank: the ticket's user)", { exact: true }).fill('mark.lee@fabrikam.example');
  await page.getByRole('button', { name: 'Send BeyondTrust invite' }).click();
  const refused = await waitText('#invite-result', 'TECHUNAVAILABLE');
  assert.match(refused, /✗/);
  await shot('ticket-invite-unavailable');

  await page.getByLabel('Invite into', { exact: true }).selectOption({ label: 'Agent: Alice Martin' });
  await page.getByRole('button', { name: 'Send BeyondTrust invite' }).click();
  const sent = await waitText('#invite-result', '✓');
  assert.match(sent, /Invite sent to mark\.lee@fabrikam\.example/);
});

test('the chat screen sends an invite into the chat', async () => {
  await visit('chats', '/chats', 'Live chats');
  await open(`/chats/${state.chat.id}`, `Chat #${state.chat.id}`);
  await page.getByLabel('Invite into', { exact: true }).selectOption({ label: 'Agent: Alice Martin' });
  await page.getByRole('button', { name: 'Send BeyondTrust invite' }).click();
  await waitText('#invite-result', '✓');
  await waitText('.messages', 'Open http');
  await axe('chat');
  await shot('chat', true);
});

test('link a parked remote session from the search screen', async () => {
  const parked = await control('/bt/parked-session', {});
  const { url } = await api('GET', '/api/config/beyondtrust/event-url');
  const resp = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: parked.event_body });
  assert.equal(resp.status, 200, await resp.text());
  const session = await until('the session to be imported and parked', async () => {
    const page0 = await api('GET', '/api/remote-sessions?linked=false');
    return page0.items.find((s) => s.lsid === parked.lsid);
  }, 30000);

  await open(`/tickets/${state.ticketId}`, `#${state.ticketId}`);
  await page.getByRole('link', { name: 'Link remote session' }).click();
  await until('the search screen', async () => (await text('main h1')).startsWith('Link a remote session'));
  await page.getByLabel('Technician', { exact: true }).selectOption({ label: 'Sam Ortiz' });
  await page.getByRole('button', { name: 'Search' }).click();
  const link = page.getByRole('button', { name: `Link "${session.name}"` });
  await link.waitFor();
  await axe('link-session');
  await shot('link-session', true);
  await link.click();
  await until('back on the ticket', async () => (await text('main h1')).startsWith(`#${state.ticketId} `));
  await until('the remote-session action', async () => (await page.locator('.actions .kind-remote_session').count()) === 1);
  const linked = await api('GET', `/api/remote-sessions/${session.id}`);
  assert.equal(linked.linked_ticket_id, state.ticketId);
});

test('replay a dead letter', async () => {
  // Datto refuses the alert lookup with a 401 twice (a fresh token too): a refusal no retry
  // heals, so the enrichment is dead-lettered at once; the replay finds Datto answering again.
  // The refusal is for this alert's lookup only: the worker's scheduled sync also reads
  // alerts, and a fault it took would let this enrichment succeed.
  const uid = randomUUID();
  await control('/datto/fail', { path_prefix: `/api/v2/alert/${uid}`, times: 2, status: 401 });
  // Its own device: an alert of the first ticket's device joins that ticket (noise control),
  // and only an alert that opens a ticket is enriched.
  const answer = await postWebhook(asDattoSends(state.raised, uid, { uid: randomUUID(), hostname: 'ACME-WS07' }));
  assert.equal(answer.result, 'created', JSON.stringify(answer));
  const dead = await until('the enrichment in the dead letters', async () => {
    const list = await api('GET', '/api/dead-letters');
    return list.items.find((d) => d.queue === 'alert-enrich' && d.body.includes(uid));
  }, 30000);
  assert.match(dead.error || '', /refused the API key and secret/, `the dead letter says why: ${JSON.stringify(dead)}`);
  await open('/operations/dead-letters', 'Dead letters');
  await waitText('main', dead.id);
  await waitText('main', 'refused the API key and secret');
  await axe('dead-letters');
  await shot('dead-letters', true);
  await page.getByRole('button', { name: 'Replay alert-enrich message' }).click();
  await waitText('main .status', `Replayed ${dead.id}`);
  await until('the replayed enrichment to have run', async () => {
    const a = await api('GET', `/api/alerts/${uid}`);
    return a.enriched;
  }, 30000);
  assert.equal((await api('GET', '/api/dead-letters')).items.filter((d) => d.id === dead.id).length, 0);
  state.secondTicket = answer.ticket_id;
});

test('noise control: a rule made on the screen routes the next alert as its preview said; a window holds one; related alerts show on their ticket', async () => {
  const team = await api('POST', '/api/teams', { name: 'Infra' });
  await open('/noise', 'Alert noise control');
  // A value out of range is refused beside its field, then a good one saves.
  await page.getByLabel('Relate alerts of one device within (minutes)', { exact: true }).fill('99999');
  await page.getByRole('button', { name: 'Save settings' }).click();
  await waitText('[data-error-for="related_window_minutes"]', 'related_window_minutes');
  await page.getByLabel('Relate alerts of one device within (minutes)', { exact: true }).fill('15');
  await page.getByRole('button', { name: 'Save settings' }).click();
  await until('settings saved', async () => (await text('main .status')).startsWith('Saved'));
  assert.equal((await api('GET', '/api/noise/settings')).related_window_minutes, 15);

  await page.getByLabel('Name', { exact: true }).fill('Servers to Infra');
  await page.getByLabel('High', { exact: true }).check();
  await page.getByLabel('Device names', { exact: true }).fill('ACME-SRV*');
  await page.getByLabel('Team', { exact: true }).selectOption(String(team.id));
  await page.getByLabel('Priority', { exact: true }).selectOption('critical');
  await page.getByLabel('Custom fields', { exact: true }).fill('category = Servers');
  await page.getByRole('button', { name: 'Add rule' }).click();
  await waitText('#rule-list', 'Servers to Infra');
  assert.match(await text('#rule-list'), /team Infra, priority critical, category = Servers/);

  await page.getByLabel('Device hostname', { exact: true }).fill('ACME-SRV01');
  await page.getByLabel('Datto priority', { exact: true }).selectOption('High');
  await page.getByLabel('Message', { exact: true }).fill('Disk C: 95% full');
  await page.getByRole('button', { name: 'Preview' }).click();
  await waitText('#preview-result', "Rule 1 'Servers to Infra' routes it.");
  assert.match(await text('#preview-result'), /Infra/);
  assert.match(await text('#preview-result'), /critical/);
  await axe('noise');
  await shot('noise', true);

  // The real alert is routed as the preview said.
  const device = { uid: randomUUID(), hostname: 'ACME-SRV01' };
  const first = await postWebhook(asDattoSends(state.raised, randomUUID(), device));
  assert.equal(first.decision, "routed by rule 1 'Servers to Infra'", JSON.stringify(first));
  const ticket = await api('GET', `/api/tickets/${first.ticket_id}`);
  assert.equal(ticket.team_id, team.id);
  assert.equal(ticket.priority, 'critical');
  assert.equal(ticket.custom_fields.category, 'Servers');
  // A second alert of that device joins its ticket, and the ticket page lists both.
  const secondUid = randomUUID();
  const second = await postWebhook(asDattoSends(state.raised, secondUid, device));
  assert.equal(second.ticket_id, first.ticket_id, JSON.stringify(second));
  await open(`/tickets/${first.ticket_id}`, `#${first.ticket_id}`);
  await waitText('#ticket-alerts', secondUid);

  // Editing the rule to suppress, then deleting it, from the list.
  await open('/noise', 'Alert noise control');
  await page.getByRole('button', { name: 'Edit rule Servers to Infra' }).click();
  assert.equal(await page.getByLabel('Device names', { exact: true }).inputValue(), 'ACME-SRV*');
  await page.getByLabel('Action', { exact: true }).selectOption('suppress');
  await page.getByRole('button', { name: 'Save rule' }).click();
  await waitText('#rule-list', 'suppress (no ticket)');
  await page.getByRole('button', { name: 'Delete rule Servers to Infra' }).click();
  await waitText('#rule-list', 'none yet');
  assert.equal((await api('GET', '/api/noise/rules')).items.length, 0);

  // A maintenance window for one device: its alert opens no ticket and says why.
  await open('/noise/windows', 'Maintenance windows');
  await page.getByLabel('Name', { exact: true }).fill('Patch night');
  await page.getByLabel('Applies to', { exact: true }).selectOption('device');
  await page.getByLabel('Device (Datto uid or hostname)', { exact: true }).fill('ACME-SRV09');
  const minute = (d) => new Date(d).toISOString().slice(0, 16);
  await page.getByLabel('Starts', { exact: true }).fill(minute(Date.now() - 3600e3));
  await page.getByLabel('Ends', { exact: true }).fill(minute(Date.now() + 3650 * 86400e3));
  await page.getByLabel('Time zone (IANA)', { exact: true }).fill('UTC');
  await page.getByRole('button', { name: 'Add window' }).click();
  // Ten years is refused beside the field that is wrong; a day is saved.
  await waitText('[data-error-for="schedule.one_off.ends_at"]', 'at most 366 days');
  await page.getByLabel('Ends', { exact: true }).fill(minute(Date.now() + 86400e3));
  await page.getByRole('button', { name: 'Add window' }).click();
  const refusals = async () => (await page.locator('#window-form [role=alert]').allTextContents()).join('');
  await until('the window saved or refused', async () => (await text('#window-list')).includes('Patch night') || (await refusals()));
  assert.equal(await refusals(), '', 'the window form shows no error');
  assert.match(await text('#window-list'), /device ACME-SRV09/);
  await axe('maintenance-windows');
  await shot('maintenance-windows', true);
  const held = await postWebhook(asDattoSends(state.raised, randomUUID(), { uid: randomUUID(), hostname: 'ACME-SRV09' }));
  assert.ok(held.ticket_id == null, JSON.stringify(held));
  assert.equal(held.decision, "suppressed by maintenance window 'Patch night'");
  await page.getByRole('button', { name: 'Delete window Patch night' }).click();
  await waitText('#window-list', 'none');
});

test('every other main page passes axe and is photographed', async () => {
  await visit('new-ticket', '/tickets/new', 'New ticket', true);
  await visit('datto-sites', '/datto/sites', 'Datto sites');
  await waitText('main', 'Acme Ltd - Head Office');
  await shot('datto-sites', true);
  await visit('request-log', '/operations/requests', 'Request log', true);
  const firstEntry = page.locator('main table tbody tr a').first();
  await firstEntry.click();
  await until('a request entry', async () => (await text('main h1')).startsWith('Request '));
  await axe('request-entry');
  await shot('request-entry');
  await visit('health', '/operations/health', 'Health', true);
  await waitText('#datto-budget', 'of 500');
  assert.match(await text('main'), /alert-enrich/);
  assert.match(await text('main'), /Last success/);
  await visit('audit-log', '/operations/audit', 'Audit log');
  await waitText('main', 'first_admin_created');
});

test('a new ticket with a field error shown beside its field, then created', async () => {
  await open('/tickets/new', 'New ticket');
  await page.getByRole('button', { name: 'Create ticket' }).click();
  await waitText('[data-error-for="customer_id"]', 'choose a customer');
  await page.getByLabel('Summary', { exact: true }).fill('x'.repeat(201));
  await page.getByLabel('Customer', { exact: true }).selectOption({ label: 'Fabrikam' });
  await page.getByRole('button', { name: 'Create ticket' }).click();
  await until('the summary error from the API', async () => (await text('[data-error-for="summary"]')).length > 0, 5000);
  await page.getByLabel('Summary', { exact: true }).fill('Printer offline');
  await page.getByRole('button', { name: 'Create ticket' }).click();
  await until('the new ticket page', async () => (await text('main h1')).includes('Printer offline'));
});

test('a technician does not see the admin screens and gets the API\'s 403 on their URLs', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await until('the sign-in page', async () => (await text('main h1')) === 'Sign in');
  await page.getByLabel('E-mail', { exact: true }).fill(TECH.email);
  await page.getByLabel('Password', { exact: true }).fill(TECH.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await until('the ticket list', async () => (await text('main h1')) === 'Tickets');
  await waitText('#who', 'Tina Tech (technician)');
  const nav = await text('#nav');
  assert.match(nav, /Tickets/);
  for (const adminLink of ['Datto setup', 'BeyondTrust setup', 'Dead letters', 'Request log', 'Health', 'Audit log', 'Agents']) {
    assert.ok(!nav.includes(adminLink), `a technician's navigation has no "${adminLink}": ${nav}`);
  }
  await shot('technician-tickets');
  for (const [hash, name] of [['/datto', 'datto'], ['/beyondtrust', 'beyondtrust'], ['/operations/dead-letters', 'dead-letters'], ['/operations/health', 'health'], ['/datto/sites', 'sites']]) {
    await page.goto(`${origin}/console#/tickets`);
    await until('the ticket list', async () => (await text('main h1')) === 'Tickets');
    await page.goto(`${origin}/console#${hash}`);
    await until(`the 403 page at ${hash}`, async () => (await text('main h1')) === 'Not allowed (403)');
    assert.match(await text('main .form-error'), /needs the admin role/, hash);
    if (name === 'datto') {
      await axe('forbidden');
      await shot('technician-403', true);
    }
  }
  // Daily work stays open to the technician.
  await open(`/tickets/${state.ticketId}`, `#${state.ticketId}`);
  await open(`/chats/${state.chat.id}`, `Chat #${state.chat.id}`);
});

test('every request the page made went to the server', async () => {
  const foreign = requested.filter((u) => !u.startsWith(`${origin}/`) && !u.startsWith('data:'));
  console.log(`requests made by the page: ${requested.length}, to another host: ${foreign.length}`);
  assert.deepEqual(foreign, []);
  assert.deepEqual(state.pageErrors || [], [], 'no script error on any page');
});
