// datto.js - Datto RMM setup (admin): API settings with Test Connection, the webhook
// texts to paste with copy buttons, state rotation, the e-mail subject, Sync now with the
// run's summary, the last runs; and the Datto sites beside the desk's with the mapping.

import * as api from './api.js';
import { h, fill, field, input, select, form, table, when, copyBlock, status, showError } from './dom.js';

const RUN_FIELDS = [
  ['sites_created', 'sites created'], ['sites_updated', 'sites updated'], ['tickets_created', 'tickets created'],
  ['tickets_closed', 'tickets closed'], ['still_open_on_check', 'still open on check'], ['closes_requeued', 'closes re-sent'],
  ['requests_used', 'Datto requests'],
];

function runSummary(r) {
  const counts = RUN_FIELDS.map(([k, label]) => `${r[k] ?? 0} ${label}`).join(', ');
  const extra = [r.reason && `reason: ${r.reason}`, r.errors && r.errors.length && `errors: ${r.errors.join('; ')}`].filter(Boolean).join(' · ');
  return `Run ${r.run_id}: ${r.state}${r.state === 'done' || r.state === 'failed' ? ` (${counts})` : ''}${extra ? ` · ${extra}` : ''}`;
}

/** Queue a sync run and follow it until it has finished; `out` shows each state. */
async function syncNow(out, ctx, after) {
  const { run_id: id } = await api.post('/api/sync/datto');
  out.textContent = `Run ${id} queued.`;
  for (let i = 0; i < 120 && ctx.current(); i += 1) {
    const r = await api.get(`/api/sync/datto/runs/${id}`);
    out.textContent = runSummary(r);
    if (!['queued', 'running'].includes(r.state)) break;
    await new Promise((res) => { setTimeout(res, 1000); });
  }
  if (after) await after();
}

export async function setup(ctx) {
  const [cfg, types, cs, hook, runs] = await Promise.all([
    api.get('/api/config/datto'), api.get('/api/ticket-types?limit=1000'), api.get('/api/customers?limit=1000'),
    api.get('/api/config/datto/webhook'), api.get('/api/sync/datto/runs?limit=10'),
  ]);
  const testOut = h('p', { class: 'test-result', role: 'status', id: 'datto-test-result' });
  const saved = status();
  const settings = form({ 'aria-label': 'Datto RMM API settings' }, [
    field('API URL', 'api_url', input({ type: 'url', name: 'api_url', value: cfg.api_url || '', placeholder: 'https://pinotage-api.centrastage.net' })),
    field('API key', 'api_key', input({ name: 'api_key', value: cfg.api_key || '', autocomplete: 'off' })),
    field('API secret', 'api_secret', input({ type: 'password', name: 'api_secret', autocomplete: 'off', placeholder: cfg.api_secret?.set ? 'set (leave blank to keep)' : 'not set' })),
    field('Alert method', 'alert_method', select('alert_method', [['webhook', 'Webhook'], ['email', 'E-mail'], ['both', 'Both']], cfg.alert_method)),
    field('From address (alert e-mails)', 'from_address', input({ type: 'email', name: 'from_address', value: cfg.from_address || '' })),
    field('Default ticket type', 'default_ticket_type_id', select('default_ticket_type_id', [['', 'The desk default'], ...types.items.map((t) => [t.id, t.name])], cfg.default_ticket_type_id)),
    field('Import mode', 'import_mode', select('import_mode', [['customer_per_site', 'A customer per Datto site'], ['single_customer', 'All sites under one customer']], cfg.import_mode)),
    field('Import customer (single-customer mode)', 'import_customer_id', select('import_customer_id', [['', 'None'], ...cs.items.map((c) => [c.id, c.name])], cfg.import_customer_id)),
    field('Sync interval (minutes)', 'sync_interval_minutes', input({ type: 'number', name: 'sync_interval_minutes', min: 1, value: cfg.sync_interval_minutes ?? 5 })),
    h('div', { class: 'row' },
      h('button', { type: 'submit', value: 'save' }, 'Save settings'),
      h('button', { type: 'submit', value: 'test', class: 'secondary' }, 'Test Connection')),
    saved, testOut,
  ], async (el, submitter) => {
    const v = el.elements;
    const num = (x) => (x.value === '' ? null : Number(x.value));
    const body = {
      api_url: v.api_url.value || null, api_key: v.api_key.value || null, alert_method: v.alert_method.value,
      from_address: v.from_address.value || null, default_ticket_type_id: num(v.default_ticket_type_id),
      import_mode: v.import_mode.value, import_customer_id: num(v.import_customer_id),
      sync_interval_minutes: Number(v.sync_interval_minutes.value), priority_map: cfg.priority_map,
    };
    if (v.api_secret.value) body.api_secret = v.api_secret.value;
    await api.put('/api/config/datto', body);
    v.api_secret.value = '';
    v.api_secret.placeholder = 'set (leave blank to keep)';
    saved.textContent = `Saved at ${new Date().toLocaleTimeString()}.`;
    if (submitter && submitter.value === 'test') {
      testOut.textContent = 'Testing…';
      const t = await api.post('/api/config/datto/test');
      testOut.className = `test-result ${t.ok ? 'ok' : 'failed'}`;
      testOut.textContent = `${t.ok ? '✓' : '✗'} ${t.message}${t.account ? ` (account ${t.account})` : ''}`;
    }
  });

  const webhook = h('div', {});
  const graceOut = status();
  function drawWebhook(w) {
    fill(webhook,
      copyBlock('Webhook URL', w.url, 'url'),
      copyBlock('Content type', w.content_type, 'content_type'),
      copyBlock('Raised payload', JSON.stringify(w.raised_payload, null, 2), 'raised_payload'),
      copyBlock('Resolved payload', JSON.stringify(w.resolved_payload, null, 2), 'resolved_payload'),
      copyBlock('Additional values example', JSON.stringify(w.additional_values_example, null, 2), 'additional_values_example'),
      w.email_subject && copyBlock('E-mail subject', w.email_subject, 'email_subject'));
    graceOut.textContent = w.previous_valid_until && new Date(w.previous_valid_until) > new Date()
      ? `The previous state still works until ${when(w.previous_valid_until)} (grace period).`
      : 'No previous state is in its grace period.';
  }
  drawWebhook(hook);
  const rotate = form({ 'aria-label': 'Rotate the webhook state', class: 'inline-form' }, [
    h('button', { type: 'submit', class: 'secondary' }, 'Rotate state'), graceOut,
  ], async () => {
    const r = await api.post('/api/config/datto/webhook/rotate-state');
    drawWebhook(await api.get('/api/config/datto/webhook'));
    graceOut.textContent = r.previous_valid_until
      ? `Rotated. Paste the new payloads into Datto: the previous state still works until ${when(r.previous_valid_until)}.`
      : 'Rotated.';
  });

  const runsOut = h('div', {});
  const drawRuns = (items) => fill(runsOut, table('Last sync runs', [
    ['Run', (r) => String(r.run_id)], ['Trigger', (r) => r.trigger], ['State', (r) => r.state],
    ['Queued', (r) => when(r.queued_at)], ['Finished', (r) => when(r.finished_at)], ['Summary', (r) => runSummary(r)],
  ], items));
  drawRuns(runs.items);
  const syncOut = h('p', { role: 'status', id: 'sync-result' });
  const sync = form({ 'aria-label': 'Sync now', class: 'inline-form' }, [h('button', { type: 'submit' }, 'Sync now'), syncOut],
    async () => syncNow(syncOut, ctx, async () => drawRuns((await api.get('/api/sync/datto/runs?limit=10')).items)));

  return h('section', {}, h('h1', {}, 'Datto RMM setup'),
    h('section', { class: 'panel', 'aria-labelledby': 'api-h' }, h('h2', { id: 'api-h' }, 'API and alert intake'), settings),
    h('section', { class: 'panel', 'aria-labelledby': 'hook-h' }, h('h2', { id: 'hook-h' }, 'Webhook configuration to paste into Datto'),
      h('p', {}, 'In Datto: Setup → Global Settings → Webhooks (or a monitor\'s response), then paste each text below.'), webhook, rotate),
    h('section', { class: 'panel', 'aria-labelledby': 'sync-h' }, h('h2', { id: 'sync-h' }, 'Sync'), sync, runsOut));
}

export async function sites(ctx) {
  // Datto's list first: a caller who may not read it gets the API's answer as the page.
  const first = await api.get('/api/datto/sites');
  const [cs, deskSites] = await Promise.all([api.get('/api/customers?limit=1000'), api.get('/api/sites?limit=1000')]);
  const customerName = new Map(cs.items.map((c) => [c.id, c.name]));
  const siteOptions = [['', 'Not mapped'], ...deskSites.items.map((s) => [`${s.customer_id}:${s.id}`, `${customerName.get(s.customer_id) || s.customer_id} — ${s.name}`])];
  const out = h('div', {});
  let pending = first;
  async function load() {
    let datto;
    try {
      datto = pending || await api.get('/api/datto/sites');
      pending = null;
    } catch (e) {
      fill(out, h('p', { class: 'form-error', role: 'alert' }, `${e.message} (${e.code})`));
      return;
    }
    fill(out, table('Datto sites and their desk sites', [
      ['Datto site', (s) => s.name],
      ['Datto uid', (s) => h('code', {}, s.uid)],
      ['Desk site', (s) => {
        const current = s.mapping ? `${s.mapping.customer_id}:${s.mapping.site_id}` : '';
        const sel = select('site', siteOptions, current);
        sel.setAttribute('aria-label', `Desk site for ${s.name}`);
        const err = h('span', { class: 'field-error', role: 'alert' });
        const save = h('button', { type: 'button', class: 'secondary', onclick: async () => {
          err.textContent = '';
          try {
            if (!sel.value) await api.del(`/api/site-mappings/${encodeURIComponent(s.uid)}`);
            else {
              const [customer_id, site_id] = sel.value.split(':').map(Number);
              await api.put(`/api/site-mappings/${encodeURIComponent(s.uid)}`, { customer_id, site_id });
            }
            err.textContent = 'Saved.';
          } catch (e) {
            err.textContent = e.message;
          }
        } }, sel.value ? 'Map' : 'Map / unmap');
        return h('span', { class: 'row' }, sel, save, err);
      }],
    ], datto.items, 'Datto lists no site.'));
  }
  await load();
  const syncOut = h('p', { role: 'status' });
  const importForm = form({ 'aria-label': 'Import sites', class: 'inline-form' }, [
    h('button', { type: 'submit' }, 'Import sites (Sync now)'), syncOut,
  ], async () => syncNow(syncOut, ctx, load));
  return h('section', {}, h('h1', {}, 'Datto sites'),
    h('p', {}, 'Every Datto site beside the desk site its alerts go to. Import creates customers and sites for unmapped Datto sites (per the import mode).'),
    importForm, out);
}

export { showError };
