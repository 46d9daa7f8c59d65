// operations.js - operations (admin): the request log with filters and each stored raw
// request, dead letters with Replay, queue depths and vendor health, the audit log.

import * as api from './api.js';
import { h, fill, field, input, select, form, table, when, link, status, showError } from './dom.js';

const SOURCES = [['', 'Any'], ['datto-webhook', 'Datto webhook'], ['datto-mail', 'Datto e-mail'], ['beyondtrust-event', 'BeyondTrust event']];
const OUTCOMES = [['', 'Any'], ['created', 'created'], ['duplicate', 'duplicate'], ['resolved', 'resolved'], ['test_accepted', 'test accepted'],
  ['recorded', 'recorded'], ['ignored', 'ignored'], ['rejected', 'rejected'], ['unauthorized', 'unauthorized']];

// The entries last listed, by id: a row opens its entry from here (the request log has
// no per-entry route; an entry not listed yet is looked up in the newest 1000).
const listed = new Map();

async function entry(id) {
  if (!listed.has(id)) {
    const page = await api.get('/api/request-log?limit=1000');
    page.items.forEach((e) => listed.set(String(e.id), e));
  }
  const e = listed.get(id);
  if (!e) throw new api.ApiError(404, 'NOT_FOUND', `request-log entry ${id} not found (entries are kept 30 days)`);
  return e;
}

export async function requests(ctx) {
  const out = h('div', { 'aria-live': 'polite' });
  const filters = form({ role: 'search', 'aria-label': 'Filter the request log', class: 'filters' }, [
    field('Source', 'source', select('source', SOURCES)),
    field('Outcome', 'outcome', select('outcome', OUTCOMES)),
    field('From', 'from', input({ type: 'datetime-local', name: 'from' })),
    field('Until', 'until', input({ type: 'datetime-local', name: 'until' })),
    field('Alert uid or lsid', 'id', input({ type: 'search', name: 'id' })),
    h('button', { type: 'submit' }, 'Filter'),
  ], async () => refresh());
  async function refresh() {
    const v = filters.elements;
    try {
      const page = await api.get(`/api/request-log${api.query({ source: v.source.value, outcome: v.outcome.value, limit: 500 })}`);
      const from = v.from.value ? new Date(v.from.value) : null;
      const until = v.until.value ? new Date(v.until.value) : null;
      page.items.forEach((e) => listed.set(String(e.id), e));
      const id = v.id.value.trim().toLowerCase();
      const rows = page.items.filter((e) => (!from || new Date(e.at) >= from) && (!until || new Date(e.at) <= until)
        && (!id || [e.alert_uid, e.lsid].some((x) => x && x.toLowerCase().includes(id))));
      fill(out, table('Intake requests, newest first', [
        ['When', (e) => link(`/operations/requests/${e.id}`, when(e.at))],
        ['Source', (e) => e.source], ['Status', (e) => String(e.status)], ['Outcome', (e) => e.outcome],
        ['Reason', (e) => e.reason || ''], ['Alert / lsid', (e) => e.alert_uid || e.lsid || ''],
      ], rows, 'no request matches.'));
    } catch (e) {
      showError(out, e);
    }
  }
  await refresh();
  ctx.every(10000, refresh);
  return h('section', {}, h('h1', {}, 'Request log'), filters, out);
}

export async function request(ctx) {
  const e = await entry(ctx.params.id);
  let raw = e.raw_body ?? '';
  try {
    raw = JSON.stringify(JSON.parse(raw), null, 2);
  } catch {
    // not JSON: show as stored
  }
  return h('section', {}, h('h1', {}, `Request ${e.id}`), h('p', {}, link('/operations/requests', 'Back to the request log')),
    h('dl', { class: 'facts' },
      h('dt', {}, 'When'), h('dd', {}, when(e.at)), h('dt', {}, 'Source'), h('dd', {}, e.source),
      h('dt', {}, 'Status'), h('dd', {}, String(e.status)), h('dt', {}, 'Outcome'), h('dd', {}, e.outcome),
      e.reason && [h('dt', {}, 'Reason'), h('dd', {}, e.reason)],
      e.alert_uid && [h('dt', {}, 'Alert'), h('dd', {}, e.alert_uid)], e.lsid && [h('dt', {}, 'lsid'), h('dd', {}, e.lsid)]),
    h('h2', {}, 'Stored raw request'),
    raw ? h('pre', { class: 'copy-text', tabindex: '0' }, raw) : h('p', { class: 'empty' }, 'The body was not kept (kept only when the request was refused).'));
}

export async function deadLetters(ctx) {
  const out = h('div', {});
  const result = status();
  async function load() {
    const list = await api.get('/api/dead-letters');
    fill(out, table('Dead letters', [
      ['Queue', (d) => d.queue], ['Message', (d) => h('code', {}, d.id)], ['Receives', (d) => String(d.receive_count)],
      ['Body', (d) => h('pre', { class: 'copy-text small' }, d.body)],
      ['Error', (d) => d.error || 'not recorded (the queue moved it after its receives)'],
      ['', (d) => h('button', { type: 'button', onclick: async (ev) => {
        try {
          await api.post(`/api/dead-letters/${encodeURIComponent(d.id)}/replay`);
          result.textContent = `Replayed ${d.id} onto ${d.queue}.`;
          await load();
        } catch (e) {
          showError(ev.target.closest('td'), e);
        }
      } }, `Replay ${d.queue} message`)],
    ], list.items, 'none: every message was handled.'));
  }
  await load();
  ctx.every(10000, () => load().catch(() => {}));
  return h('section', {}, h('h1', {}, 'Dead letters'), result, out);
}

export async function health(ctx) {
  const out = h('div', {});
  async function load() {
    const hl = await api.get('/api/operations/health');
    const vendor = (name, v) => [h('h3', {}, name), h('dl', { class: 'facts' },
      h('dt', {}, 'Last success'), h('dd', {}, v.last_success ? `${when(v.last_success.at)} · ${v.last_success.call}` : 'none yet'),
      h('dt', {}, 'Last failure'), h('dd', {}, v.last_failure ? `${when(v.last_failure.at)} · ${v.last_failure.call}: ${v.last_failure.message}` : 'none'))];
    fill(out,
      table('Queue depths', [['Queue', (q) => q.queue], ['Waiting', (q) => String(q.waiting)], ['In flight', (q) => String(q.in_flight)], ['Dead letters', (q) => String(q.dead_letters)]], hl.queues),
      h('section', { 'aria-labelledby': 'vh-h' }, h('h2', { id: 'vh-h' }, 'Vendor health'),
        vendor('Datto RMM', hl.datto), vendor('BeyondTrust', hl.beyondtrust),
        h('p', { id: 'datto-budget' }, `Datto requests this minute: ${hl.datto_budget.used} of ${hl.datto_budget.limit} (the account-wide limit; every integration shares it).`)));
  }
  await load();
  ctx.every(5000, () => load().catch(() => {}));
  return h('section', {}, h('h1', {}, 'Health'), out);
}

export async function audit() {
  const list = await api.get('/api/audit-log?limit=200');
  return h('section', {}, h('h1', {}, 'Audit log'), table('Audit log, newest first', [
    ['When', (e) => when(e.at)],
    ['Who', (e) => (e.actor ? `${e.actor.kind}${e.actor.agent_id ? ` (agent ${e.actor.agent_id})` : ''}` : '')],
    ['Action', (e) => e.action], ['Target', (e) => e.target || ''],
    ['Fields', (e) => (e.fields ? [].concat(e.fields).join(', ') : '')],
  ], list.items));
}
