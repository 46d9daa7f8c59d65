// tickets.js - daily work on tickets: the self-refreshing list with filters, the ticket
// page (notes, close/reopen, alert panel, BeyondTrust invite, jump URL), linking a parked
// remote session, and the new-ticket form.

import * as api from './api.js';
import { h, fill, field, input, textarea, select, checkbox, form, table, when, link, status, showError, clearErrors } from './dom.js';

const REFRESH_MS = 5000;

async function customers() {
  return (await api.get('/api/customers?limit=1000')).items;
}

export async function list(ctx) {
  const cs = await customers();
  const names = new Map(cs.map((c) => [c.id, c.name]));
  const filters = h('form', { class: 'filters', 'aria-label': 'Filter tickets', role: 'search' },
    field('Status', 'status', select('status', [['', 'Any'], ['open', 'Open'], ['closed', 'Closed']], 'open')),
    field('Customer', 'customer_id', select('customer_id', [['', 'Any'], ...cs.map((c) => [c.id, c.name])])),
    field('Alert-born only', 'alert_born', checkbox('alert_born', false)),
    field('Text', 'q', input({ type: 'search', name: 'q', placeholder: 'summary, asset, alert uid' })));
  const results = h('div', { 'aria-live': 'polite', id: 'ticket-results' });
  const refreshed = status();
  filters.addEventListener('submit', (e) => e.preventDefault());

  async function refresh() {
    const f = filters.elements;
    try {
      const page = await api.get(`/api/tickets${api.query({ status: f.status.value, customer_id: f.customer_id.value, limit: 200 })}`);
      const q = f.q.value.trim().toLowerCase();
      const rows = page.items.filter((t) => (!f.alert_born.checked || t.alert_uid)
        && (!q || [t.summary, t.asset, t.alert_uid, String(t.id)].some((s) => s && String(s).toLowerCase().includes(q))));
      fill(results, table('Tickets', [
        ['#', (t) => link(`/tickets/${t.id}`, `#${t.id}`)],
        ['Summary', (t) => link(`/tickets/${t.id}`, t.summary)],
        ['Status', (t) => h('span', { class: `badge ${t.status}` }, t.status)],
        ['Customer', (t) => names.get(t.customer_id) || `customer ${t.customer_id}`],
        ['Priority', (t) => t.priority],
        ['Alert', (t) => (t.alert_uid ? 'yes' : '')],
        ['Created', (t) => when(t.created_at)],
      ], rows, 'no ticket matches.'));
      refreshed.textContent = `Updated ${new Date().toLocaleTimeString()} (refreshes every 5 s).`;
    } catch (e) {
      showError(results, e);
    }
  }
  filters.addEventListener('input', refresh);
  filters.addEventListener('change', refresh);
  await refresh();
  ctx.every(REFRESH_MS, refresh);
  return h('section', {}, h('div', { class: 'row spread' }, h('h1', {}, 'Tickets'), link('/tickets/new', 'New ticket', { class: 'button' })),
    filters, refreshed, results);
}

function actionsList(t) {
  if (!t.actions || !t.actions.length) return h('p', { class: 'empty' }, 'No actions yet.');
  return h('ol', { class: 'actions' }, t.actions.map((a) => h('li', { class: `action kind-${a.kind}` },
    h('p', { class: 'meta' }, `${when(a.at)} · ${a.kind}${a.agent_id ? ` · agent ${a.agent_id}` : ''}`),
    h('p', { class: 'note' }, a.note))));
}

async function alertPanel(uid) {
  let a;
  try {
    a = await api.get(`/api/alerts/${encodeURIComponent(uid)}`);
  } catch (e) {
    return h('section', { class: 'panel', 'aria-labelledby': 'alert-h' }, h('h2', { id: 'alert-h' }, 'Datto alert'), h('p', { class: 'form-error', role: 'alert' }, e.message));
  }
  const propagation = a.resolve_propagated ? 'Datto was told: resolved there'
    : a.propagation_pending ? 'Close queued for Datto (pending)' : (a.ticket_open ? 'Ticket open: nothing to tell Datto yet' : 'Not propagated');
  return h('section', { class: 'panel', id: 'alert-panel', 'aria-labelledby': 'alert-h' },
    h('h2', { id: 'alert-h' }, 'Datto alert'),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Alert uid'), h('dd', {}, a.alert_uid),
      h('dt', {}, 'State in Datto'), h('dd', {}, a.state),
      h('dt', {}, 'Sources'), h('dd', {}, (a.sources || []).join(', ')),
      h('dt', {}, 'Propagation'), h('dd', {}, propagation),
      h('dt', {}, 'Enriched'), h('dd', {}, a.enriched ? 'yes' : 'not yet')),
    table('Timeline of decisions', [
      ['When', (e) => when(e.at)], ['Source', (e) => e.source], ['Event', (e) => e.event], ['Decision', (e) => e.decision],
    ], a.timeline || []));
}

/** "Send BeyondTrust invite": target picker of enabled agents and teams, e-mail, result. */
async function inviteForm(path, withEmail) {
  const [agents, teams] = await Promise.all([api.get('/api/agents?limit=1000'), api.get('/api/teams?limit=1000')]);
  const targets = [['', 'Default team'],
    ...agents.items.filter((a) => a.bt_enabled).map((a) => [`agent:${a.id}`, `Agent: ${a.name}`]),
    ...teams.items.filter((t) => t.enabled).map((t) => [`team:${t.id}`, `Team: ${t.display_name || t.name}`])];
  const result = h('p', { class: 'invite-result', role: 'status', id: 'invite-result' });
  const f = form({ 'aria-label': 'Send BeyondTrust invite', class: 'inline-form' }, [
    field('Invite into', 'target', select('target', targets)),
    withEmail && field('E-mail to (blank: the ticket\'s user)', 'email', input({ type: 'email', name: 'email' })),
    h('button', { type: 'submit' }, 'Send BeyondTrust invite'),
    result,
  ], async (el) => {
    fill(result);
    result.className = 'invite-result';
    const body = { target: el.elements.target.value || undefined };
    if (withEmail) {
      body.email = el.elements.email.value || undefined;
      body.via = 'action';
    }
    try {
      const inv = await api.post(path, body);
      result.className = 'invite-result ok';
      fill(result, h('span', { class: 'mark', 'aria-hidden': 'true' }, '✓'),
        ` Invite sent${inv.email_to ? ` to ${inv.email_to}` : ''}: code ${inv.short_key || '(none: no default team)'} `,
        inv.key_url ? h('a', { href: inv.key_url, rel: 'noreferrer' }, 'session link') : '');
    } catch (e) {
      result.className = e.code === 'TECHUNAVAILABLE' ? 'invite-result unavailable' : 'invite-result failed';
      fill(result, h('span', { class: 'mark', 'aria-hidden': 'true' }, '✗'),
        e.code === 'TECHUNAVAILABLE' ? ' TECHUNAVAILABLE: ' : ' Invite failed: ', e.message);
    }
  });
  return f;
}

export async function page(ctx) {
  const id = ctx.params.id;
  const t = await api.get(`/api/tickets/${encodeURIComponent(id)}`);
  const region = h('div', {});
  const header = h('div', {});
  const actions = h('section', { 'aria-labelledby': 'actions-h' });

  async function reload() {
    const fresh = await api.get(`/api/tickets/${encodeURIComponent(id)}`);
    drawHeader(fresh);
    fill(actions, h('h2', { id: 'actions-h' }, 'Actions'), actionsList(fresh));
  }
  function drawHeader(tk) {
    const closeForm = form({ 'aria-label': tk.status === 'open' ? 'Close ticket' : 'Reopen ticket', class: 'inline-form' }, [
      field(tk.status === 'open' ? 'Closing note' : 'Reopening note', 'note', input({ name: 'note' })),
      h('button', { type: 'submit' }, tk.status === 'open' ? 'Close ticket' : 'Reopen ticket'),
    ], async (el) => {
      const note = el.elements.note.value;
      await api.post(`/api/tickets/${id}/${tk.status === 'open' ? 'close' : 'reopen'}`, note ? { note } : {});
      await reload();
    });
    fill(header,
      h('h1', {}, `#${tk.id} ${tk.summary}`),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Status'), h('dd', {}, h('span', { class: `badge ${tk.status}`, id: 'ticket-status' }, tk.status)),
        h('dt', {}, 'Priority'), h('dd', {}, tk.priority),
        h('dt', {}, 'Customer'), h('dd', {}, String(tk.customer_id)),
        h('dt', {}, 'Created'), h('dd', {}, when(tk.created_at)),
        tk.closed_at && [h('dt', {}, 'Closed'), h('dd', {}, when(tk.closed_at))],
        tk.asset && [h('dt', {}, 'Asset'), h('dd', {}, tk.asset, ' ', jumpButton(tk.asset))],
        noiseFacts(tk.noise || {})),
      tk.details && h('p', { class: 'details' }, tk.details),
      closeForm);
  }
  drawHeader(t);
  fill(actions, h('h2', { id: 'actions-h' }, 'Actions'), actionsList(t));

  const note = form({ 'aria-label': 'Add note' }, [
    field('Note', 'note', textarea({ name: 'note', rows: 3 })),
    h('button', { type: 'submit' }, 'Add note'),
  ], async (el) => {
    await api.post(`/api/tickets/${id}/actions`, { note: el.elements.note.value });
    el.reset();
    await reload();
  });
  const invite = await inviteForm(`/api/tickets/${id}/remote-invites`, true);
  fill(region,
    header,
    h('section', { class: 'panel', 'aria-labelledby': 'remote-h' }, h('h2', { id: 'remote-h' }, 'Remote support'), invite,
      h('p', {}, link(`/tickets/${id}/link-session`, 'Link remote session'))),
    t.alert_uid ? await alertPanel(t.alert_uid) : null,
    h('section', { class: 'panel', 'aria-labelledby': 'note-h' }, h('h2', { id: 'note-h' }, 'Add a note'), note),
    actions);
  ctx.every(REFRESH_MS, () => reload().catch(() => {}));
  return h('section', {}, region);
}

/** What noise control did to an alert ticket: its alerts, recurrences, parent, flapping. */
function noiseFacts(n) {
  return [
    n.flapping && [h('dt', {}, 'Noise'), h('dd', {}, h('span', { class: 'badge flapping', id: 'ticket-flapping' }, 'flapping'), ' held: no reopen or close until the monitor is quiet')],
    (n.alert_uids || []).length > 1 && [h('dt', {}, 'Alerts on this ticket'), h('dd', { id: 'ticket-alerts' }, n.alert_uids.join(', '))],
    n.recurrences > 0 && [h('dt', {}, 'Recurred'), h('dd', {}, `${n.recurrences} time${n.recurrences === 1 ? '' : 's'}`)],
    n.parent_id && [h('dt', {}, 'Recurred from'), h('dd', {}, link(`/tickets/${n.parent_id}`, `#${n.parent_id}`))],
  ];
}

/** Asset "Open in BeyondTrust": fetch the jump URL, then offer it as a link. */
function jumpButton(asset) {
  const out = h('span', { role: 'status' });
  const b = h('button', { type: 'button', class: 'secondary', onclick: async () => {
    fill(out);
    try {
      const { url } = await api.get(`/api/assets/${encodeURIComponent(asset)}/beyondtrust-jump-url`);
      fill(out, ' ', h('a', { href: url, rel: 'noreferrer' }, 'Open in BeyondTrust'));
    } catch (e) {
      fill(out, h('span', { class: 'form-error' }, ` ${e.message}`));
    }
  } }, 'Open in BeyondTrust');
  return h('span', {}, b, out);
}

export async function linkSession(ctx) {
  const id = ctx.params.id;
  const t = await api.get(`/api/tickets/${encodeURIComponent(id)}`);
  const agents = (await api.get('/api/agents?limit=1000')).items;
  const agentName = new Map(agents.map((a) => [a.id, a.name]));
  const results = h('div', { 'aria-live': 'polite' });
  const search = form({ role: 'search', 'aria-label': 'Search parked sessions', class: 'filters' }, [
    field('Name', 'q', input({ type: 'search', name: 'q' })),
    field('Technician', 'technician', select('technician', [['', 'Any'], ...agents.map((a) => [a.id, a.name])])),
    field('Ended on', 'date', input({ type: 'date', name: 'date' })),
    h('button', { type: 'submit' }, 'Search'),
  ], async (el) => {
    const f = el.elements;
    const page = await api.get(`/api/remote-sessions${api.query({ linked: 'false', q: f.q.value, limit: 200 })}`);
    const rows = page.items.filter((s) => (!f.technician.value || String(s.technician_agent_id) === f.technician.value)
      && (!f.date.value || (s.ended_at || '').startsWith(f.date.value)));
    fill(results, table('Parked sessions', [
      ['Name', (s) => s.name],
      ['Technician', (s) => agentName.get(s.technician_agent_id) || ''],
      ['Started', (s) => when(s.started_at)],
      ['Ended', (s) => when(s.ended_at)],
      ['', (s) => h('button', { type: 'button', onclick: async (ev) => {
        try {
          await api.post(`/api/tickets/${id}/remote-sessions`, { session_id: s.id });
          ctx.go(`/tickets/${id}`);
        } catch (e) {
          showError(ev.target.closest('td'), e);
        }
      } }, `Link "${s.name}"`)],
    ], rows, 'no parked session matches.'));
  });
  queueMicrotask(() => search.requestSubmit());
  return h('section', {}, h('h1', {}, `Link a remote session to #${t.id}`), h('p', {}, link(`/tickets/${id}`, `Back to #${t.id} ${t.summary}`)), search, results);
}

export async function create(ctx) {
  const cs = await customers();
  const types = (await api.get('/api/ticket-types?limit=1000')).items;
  const f = form({ 'aria-label': 'New ticket' }, [
    field('Summary', 'summary', input({ name: 'summary' })),
    field('Customer', 'customer_id', select('customer_id', [['', 'Choose a customer'], ...cs.map((c) => [c.id, c.name])])),
    field('Ticket type', 'ticket_type_id', select('ticket_type_id', [['', 'The default type'], ...types.map((t) => [t.id, t.name])])),
    field('Details', 'details', textarea({ name: 'details', rows: 4 })),
    field('Asset', 'asset', input({ name: 'asset' })),
    field('Send a BeyondTrust invite to the user', 'send_remote_invite', checkbox('send_remote_invite', false)),
    h('button', { type: 'submit' }, 'Create ticket'),
  ], async (el) => {
    const v = el.elements;
    const body = { summary: v.summary.value };
    if (!v.customer_id.value) throw new api.ApiError(400, 'VALIDATION', 'customer_id: choose a customer');
    body.customer_id = Number(v.customer_id.value);
    if (v.ticket_type_id.value) body.ticket_type_id = Number(v.ticket_type_id.value);
    if (v.details.value) body.details = v.details.value;
    if (v.asset.value) body.asset = v.asset.value;
    if (v.send_remote_invite.checked) body.send_remote_invite = true;
    const t = await api.post('/api/tickets', body);
    ctx.go(`/tickets/${t.id}`);
  });
  return h('section', {}, h('h1', {}, 'New ticket'), f);
}

export { inviteForm, clearErrors };
