// noise.js - alert noise control (admin): the settings (relating, recurrence, flapping, what a
// window's end does), the ordered routing rules with a preview of what a sample alert would
// make, and the maintenance windows.

import * as api from './api.js';
import { h, fill, field, input, select, checkbox, textarea, form, table, status, showError } from './dom.js';

const PRIORITIES = ['Critical', 'High', 'Moderate', 'Low', 'Information', 'Unknown'];
const TICKET_PRIORITIES = [['', 'The mapped priority'], ['critical', 'Critical'], ['high', 'High'], ['medium', 'Medium'], ['low', 'Low']];
const DAYS = [['Mon', 'Monday'], ['Tue', 'Tuesday'], ['Wed', 'Wednesday'], ['Thu', 'Thursday'], ['Fri', 'Friday'], ['Sat', 'Saturday'], ['Sun', 'Sunday']];

/** "a, b , c" -> ['a', 'b', 'c']. */
const list = (text) => text.split(',').map((s) => s.trim()).filter(Boolean);
const num = (v) => (v === '' ? null : Number(v));

/** "key = value" lines -> an object; a line without "=" is refused naming the field. */
function customFields(text) {
  const out = {};
  for (const line of text.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const i = line.indexOf('=');
    if (i < 1) throw new api.ApiError(400, 'VALIDATION', `then.route.custom_fields: write each field as name = value (not "${line}")`);
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

function describeWhen(w) {
  const parts = [];
  if (w.customer_ids?.length) parts.push(`customer ${w.customer_ids.join(' or ')}`);
  if (w.site_ids?.length) parts.push(`site ${w.site_ids.join(' or ')}`);
  if (w.datto_site_uids?.length) parts.push(`Datto site ${w.datto_site_uids.join(' or ')}`);
  if (w.priorities?.length) parts.push(`priority ${w.priorities.join(' or ')}`);
  if (w.monitor_types?.length) parts.push(`monitor ${w.monitor_types.join(' or ')}`);
  if (w.device_names?.length) parts.push(`device ${w.device_names.join(' or ')}`);
  if (w.message?.contains !== undefined) parts.push(`message contains "${w.message.contains}"`);
  if (w.message?.regex !== undefined) parts.push(`message matches /${w.message.regex}/`);
  return parts.length ? parts.join(' and ') : 'every alert';
}

function describeThen(t, names) {
  if (t === 'suppress') return 'suppress (no ticket)';
  const r = t.route || {};
  const parts = [];
  if (r.ticket_type_id) parts.push(`type ${names.types.get(r.ticket_type_id) || r.ticket_type_id}`);
  if (r.team_id) parts.push(`team ${names.teams.get(r.team_id) || r.team_id}`);
  if (r.priority) parts.push(`priority ${r.priority}`);
  const cf = Object.entries(r.custom_fields || {});
  if (cf.length) parts.push(cf.map(([k, v]) => `${k} = ${v}`).join(', '));
  return `route: ${parts.join(', ')}`;
}

function settingsForm(s) {
  const saved = status();
  return form({ 'aria-label': 'Noise settings' }, [
    field('Relate alerts of one device within (minutes)', 'related_window_minutes', input({ type: 'number', min: 0, name: 'related_window_minutes', value: s.related_window_minutes }), '0 turns relating off.'),
    field('Recurring within (minutes after the close)', 'recurring_window_minutes', input({ type: 'number', min: 0, name: 'recurring_window_minutes', value: s.recurring_window_minutes }), '0 turns recurrence off.'),
    field('A recurring alert', 'recurring_mode', select('recurring_mode', [['reopen', 'reopens its ticket'], ['child', 'opens a child ticket']], s.recurring_mode)),
    field('Flapping: raises of one monitor', 'flapping.cycles', input({ type: 'number', min: 0, name: 'flapping.cycles', value: s.flapping.cycles }), '0 turns flapping detection off.'),
    field('Flapping: within (minutes)', 'flapping.window_minutes', input({ type: 'number', min: 1, name: 'flapping.window_minutes', value: s.flapping.window_minutes })),
    field('Flapping: quiet for (minutes) before it ends', 'flapping.quiet_minutes', input({ type: 'number', min: 1, name: 'flapping.quiet_minutes', value: s.flapping.quiet_minutes })),
    field('An alert still open when its maintenance window ends', 'maintenance_end', select('maintenance_end', [['open_ticket', 'opens a ticket then'], ['nothing', 'stays without a ticket']], s.maintenance_end)),
    h('button', { type: 'submit' }, 'Save settings'), saved,
  ], async (el) => {
    const v = el.elements;
    await api.put('/api/noise/settings', {
      related_window_minutes: num(v.related_window_minutes.value),
      recurring_window_minutes: num(v.recurring_window_minutes.value),
      recurring_mode: v.recurring_mode.value,
      flapping: { cycles: num(v['flapping.cycles'].value), window_minutes: num(v['flapping.window_minutes'].value), quiet_minutes: num(v['flapping.quiet_minutes'].value) },
      maintenance_end: v.maintenance_end.value,
    });
    saved.textContent = `Saved at ${new Date().toLocaleTimeString()}.`;
  });
}

/** The rule editor: a new rule, or the rule `editing` when set; `done()` redraws the list. */
function ruleForm(lookups, done) {
  let editing = null;
  const heading = h('h3', { id: 'rule-form-h' }, 'New rule');
  const v = {};
  const el = form({ 'aria-labelledby': 'rule-form-h', id: 'rule-form' }, [
    heading,
    field('Name', 'name', v.name = input({ name: 'name', maxlength: 100 })),
    h('fieldset', {}, h('legend', {}, 'When (every criterion given must match; leave a criterion empty to match all)'),
      field('Customer', 'when.customer_ids', v.customer = select('when.customer_ids', [['', 'Any customer'], ...lookups.customers.map((c) => [c.id, c.name])])),
      h('fieldset', { class: 'checks' }, h('legend', {}, 'Datto priority'),
        PRIORITIES.map((p) => field(p, `when.priorities.${p}`, checkbox(`priority-${p}`, false)))),
      h('p', { class: 'field-error', dataset: { errorFor: 'when.priorities' }, role: 'alert' }),
      field('Monitor types', 'when.monitor_types', v.monitors = input({ name: 'when.monitor_types', placeholder: 'srvc_status, Disk usage' }), 'Comma-separated: a context class, its readable kind, or an alert_type.'),
      field('Device names', 'when.device_names', v.devices = input({ name: 'when.device_names', placeholder: '*-DC*, *-SQL?' }), 'Comma-separated globs on the hostname: * any run, ? one character.'),
      field('Message contains', 'when.message', v.message = input({ name: 'when.message' }))),
    h('fieldset', {}, h('legend', {}, 'Then'),
      field('Action', 'then', v.action = select('then', [['route', 'Route the ticket'], ['suppress', 'Suppress: open no ticket']], 'route')),
      field('Ticket type', 'then.route.ticket_type_id', v.type = select('then.route.ticket_type_id', [['', 'The configured type'], ...lookups.types.map((t) => [t.id, t.name])])),
      field('Team', 'then.route.team_id', v.team = select('then.route.team_id', [['', 'No team'], ...lookups.teams.map((t) => [t.id, t.name])])),
      field('Priority', 'then.route.priority', v.priority = select('then.route.priority', TICKET_PRIORITIES)),
      field('Custom fields', 'then.route.custom_fields', v.custom = textarea({ name: 'then.route.custom_fields', rows: 2, placeholder: 'category = Servers' }), 'One per line: name = value.')),
    field('Position (1 = tried first; empty = last)', 'position', v.position = input({ type: 'number', min: 1, name: 'position' })),
    h('div', { class: 'row' },
      v.submit = h('button', { type: 'submit' }, 'Add rule'),
      h('button', { type: 'button', class: 'secondary', onclick: () => load(null) }, 'Clear')),
  ], async (f) => {
    const checked = PRIORITIES.filter((p) => f.elements[`priority-${p}`].checked);
    const when = {};
    if (v.customer.value) when.customer_ids = [Number(v.customer.value)];
    if (checked.length) when.priorities = checked;
    if (list(v.monitors.value).length) when.monitor_types = list(v.monitors.value);
    if (list(v.devices.value).length) when.device_names = list(v.devices.value);
    if (v.message.value.trim()) when.message = { contains: v.message.value.trim() };
    let then = 'suppress';
    if (v.action.value === 'route') {
      const route = { custom_fields: customFields(v.custom.value) };
      if (v.type.value) route.ticket_type_id = Number(v.type.value);
      if (v.team.value) route.team_id = Number(v.team.value);
      if (v.priority.value) route.priority = v.priority.value;
      then = { route };
    }
    const body = { name: v.name.value.trim(), when, then };
    if (v.position.value) body.position = Number(v.position.value);
    if (editing) await api.put(`/api/noise/rules/${editing.id}`, body);
    else await api.post('/api/noise/rules', body);
    const was = editing ? `Saved rule '${body.name}'.` : `Added rule '${body.name}'.`;
    load(null);
    await done(was);
  });
  function load(rule) {
    editing = rule;
    el.reset();
    heading.textContent = rule ? `Edit rule ${rule.id}` : 'New rule';
    v.submit.textContent = rule ? 'Save rule' : 'Add rule';
    if (!rule) return;
    const w = rule.when || {};
    v.name.value = rule.name;
    v.customer.value = w.customer_ids?.length ? String(w.customer_ids[0]) : '';
    for (const p of PRIORITIES) el.elements[`priority-${p}`].checked = (w.priorities || []).includes(p);
    v.monitors.value = (w.monitor_types || []).join(', ');
    v.devices.value = (w.device_names || []).join(', ');
    v.message.value = w.message?.contains ?? '';
    v.action.value = rule.then === 'suppress' ? 'suppress' : 'route';
    const r = rule.then === 'suppress' ? {} : rule.then.route || {};
    v.type.value = r.ticket_type_id ? String(r.ticket_type_id) : '';
    v.team.value = r.team_id ? String(r.team_id) : '';
    v.priority.value = r.priority || '';
    v.custom.value = Object.entries(r.custom_fields || {}).map(([k, x]) => `${k} = ${x}`).join('\n');
    v.name.focus();
  }
  return { el, load };
}

function previewForm(names) {
  const out = h('div', { id: 'preview-result', 'aria-live': 'polite' });
  const el = form({ 'aria-label': 'Preview a sample alert', id: 'preview-form' }, [
    field('Device hostname', 'alert.device_hostname', input({ name: 'alert.device_hostname', placeholder: 'ACME-DC01' })),
    field('Datto priority', 'alert.priority', select('alert.priority', [['', 'None'], ...PRIORITIES.filter((p) => p !== 'Unknown').map((p) => [p, p])])),
    field('Message', 'alert.message', input({ name: 'alert.message', placeholder: 'Disk C: 95% full' })),
    field('Datto site uid', 'alert.site_uid', input({ name: 'alert.site_uid' })),
    field('Or the uid of an alert received', 'alert_uid', input({ name: 'alert_uid' }), 'Previews that alert as it was stored; the fields above are then ignored.'),
    h('button', { type: 'submit' }, 'Preview'),
  ], async (f) => {
    const v = f.elements;
    const uid = v.alert_uid.value.trim();
    let body;
    if (uid) body = { alert_uid: uid };
    else {
      const alert = {};
      for (const k of ['device_hostname', 'priority', 'message', 'site_uid']) if (v[`alert.${k}`].value.trim()) alert[k] = v[`alert.${k}`].value.trim();
      body = { alert };
    }
    const p = await api.post('/api/noise/preview', body);
    const d = p.decision;
    const matched = d.result === 'suppress' ? `Rule ${d.rule.position} '${d.rule.name}' suppresses it: no ticket.`
      : d.result === 'route' ? `Rule ${d.rule.position} '${d.rule.name}' routes it.`
        : 'No rule matches: the alert gets the default ticket.';
    const t = p.ticket;
    fill(out, h('p', { class: 'test-result ok' }, matched),
      t && h('dl', { class: 'facts' },
        h('dt', {}, 'Summary'), h('dd', {}, t.summary),
        h('dt', {}, 'Ticket type'), h('dd', {}, t.ticket_type_id ? names.types.get(t.ticket_type_id) || String(t.ticket_type_id) : 'none'),
        h('dt', {}, 'Team'), h('dd', {}, t.team_id ? names.teams.get(t.team_id) || String(t.team_id) : 'none'),
        h('dt', {}, 'Priority'), h('dd', {}, t.priority),
        h('dt', {}, 'Custom fields'), h('dd', {}, Object.entries(t.custom_fields || {}).map(([k, x]) => `${k} = ${typeof x === 'string' ? x : JSON.stringify(x)}`).join(', ') || 'none')),
      h('p', {}, `Timeline line: ${p.line.sentence}`));
  });
  return h('div', {}, el, out);
}

export async function rules() {
  const [settings, customers, types, teams] = await Promise.all([
    api.get('/api/noise/settings'), api.get('/api/customers?limit=1000'), api.get('/api/ticket-types?limit=1000'), api.get('/api/teams?limit=1000'),
  ]);
  const lookups = { customers: customers.items, types: types.items, teams: teams.items };
  const names = { types: new Map(types.items.map((t) => [t.id, t.name])), teams: new Map(teams.items.map((t) => [t.id, t.name])) };
  const listOut = h('div', { id: 'rule-list' });
  const said = status();
  const editor = ruleForm(lookups, async (text) => { await draw(); said.textContent = text; });
  async function draw() {
    const r = await api.get('/api/noise/rules');
    fill(listOut, table('Routing rules, in the order they are tried (the first match decides)', [
      ['#', (x) => String(r.items.indexOf(x) + 1)],
      ['Name', (x) => x.name],
      ['When', (x) => describeWhen(x.when || {})],
      ['Then', (x) => describeThen(x.then, names)],
      ['', (x) => h('span', { class: 'row' },
        h('button', { type: 'button', class: 'secondary', 'aria-label': `Edit rule ${x.name}`, onclick: () => editor.load(x) }, 'Edit'),
        h('button', { type: 'button', class: 'secondary', 'aria-label': `Delete rule ${x.name}`, onclick: async () => {
          try {
            await api.del(`/api/noise/rules/${x.id}`);
            await draw();
            said.textContent = `Deleted rule '${x.name}'.`;
          } catch (e) {
            showError(listOut, e);
          }
        } }, 'Delete'))],
    ], r.items, 'none yet: every alert gets the default ticket.'));
  }
  await draw();
  return h('section', {}, h('h1', {}, 'Alert noise control'),
    h('section', { class: 'panel', 'aria-labelledby': 'settings-h' }, h('h2', { id: 'settings-h' }, 'Relating, recurrence and flapping'), settingsForm(settings)),
    h('section', { class: 'panel', 'aria-labelledby': 'rules-h' }, h('h2', { id: 'rules-h' }, 'Routing rules'), said, listOut, editor.el),
    h('section', { class: 'panel', 'aria-labelledby': 'preview-h' }, h('h2', { id: 'preview-h' }, 'Preview'),
      h('p', {}, 'What a sample alert would make under the saved rules; nothing is stored.'), previewForm(names)));
}

function describeScope(s, customers) {
  if (s.customer_id !== undefined) return `customer ${customers.get(s.customer_id) || s.customer_id}`;
  if (s.site_id !== undefined) return `site ${s.site_id}`;
  return `device ${s.device}`;
}

function describeSchedule(s) {
  if (s.one_off) return `${s.one_off.starts_at.replace('T', ' ')} to ${s.one_off.ends_at.replace('T', ' ')} (${s.one_off.time_zone || 'UTC'})`;
  const w = s.weekly;
  return `every ${w.days.join(', ')} at ${w.start_time.slice(0, 5)} for ${w.duration_minutes} min (${w.time_zone})`;
}

export async function windows() {
  const [customers, sites] = await Promise.all([api.get('/api/customers?limit=1000'), api.get('/api/sites?limit=1000')]);
  const customerName = new Map(customers.items.map((c) => [c.id, c.name]));
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  const listOut = h('div', { id: 'window-list' });
  const said = status();
  async function draw() {
    const r = await api.get('/api/noise/windows');
    fill(listOut, table('Maintenance windows', [
      ['Name', (w) => w.name], ['For', (w) => describeScope(w.scope, customerName)], ['When', (w) => describeSchedule(w.schedule)],
      ['', (w) => h('button', { type: 'button', class: 'secondary', 'aria-label': `Delete window ${w.name}`, onclick: async () => {
        try {
          await api.del(`/api/noise/windows/${w.id}`);
          await draw();
          said.textContent = `Deleted window '${w.name}'.`;
        } catch (e) {
          showError(listOut, e);
        }
      } }, 'Delete')],
    ], r.items, 'none: every alert is decided as it arrives.'));
  }
  const v = {};
  const add = form({ 'aria-labelledby': 'window-form-h', id: 'window-form' }, [
    h('h2', { id: 'window-form-h' }, 'New window'),
    field('Name', 'name', v.name = input({ name: 'name', maxlength: 100 })),
    field('Applies to', 'scope', v.scopeKind = select('scope', [['customer_id', 'A customer'], ['site_id', 'A site'], ['device', 'A device']], 'customer_id')),
    field('Customer', 'scope.customer_id', v.customer = select('scope.customer_id', customers.items.map((c) => [c.id, c.name]))),
    field('Site', 'scope.site_id', v.site = select('scope.site_id', sites.items.map((s) => [s.id, `${customerName.get(s.customer_id) || s.customer_id} — ${s.name}`]))),
    field('Device (Datto uid or hostname)', 'scope.device', v.device = input({ name: 'scope.device' })),
    field('Schedule', 'schedule', v.kind = select('schedule', [['one_off', 'Once'], ['weekly', 'Every week']], 'one_off')),
    field('Starts', 'schedule.one_off.starts_at', v.starts = input({ type: 'datetime-local', name: 'schedule.one_off.starts_at' })),
    field('Ends', 'schedule.one_off.ends_at', v.ends = input({ type: 'datetime-local', name: 'schedule.one_off.ends_at' })),
    h('fieldset', { class: 'checks' }, h('legend', {}, 'Days (every week)'), DAYS.map(([d, label]) => field(label, `schedule.weekly.days.${d}`, checkbox(`day-${d}`, false)))),
    h('p', { class: 'field-error', dataset: { errorFor: 'schedule.weekly.days' }, role: 'alert' }),
    field('Start time (every week)', 'schedule.weekly.start_time', v.start = input({ type: 'time', name: 'schedule.weekly.start_time' })),
    field('Duration in minutes (every week)', 'schedule.weekly.duration_minutes', v.duration = input({ type: 'number', min: 1, name: 'schedule.weekly.duration_minutes' })),
    field('Time zone (IANA)', 'schedule.time_zone', v.zone = input({ name: 'schedule.time_zone', value: zone })),
    h('button', { type: 'submit' }, 'Add window'),
  ], async (f) => {
    const scope = v.scopeKind.value === 'device' ? { device: v.device.value.trim() }
      : { [v.scopeKind.value]: Number(v.scopeKind.value === 'site_id' ? v.site.value : v.customer.value) };
    // The browser's inputs give minutes; the API's times carry seconds.
    const seconds = (t) => (/T\d\d:\d\d$|^\d\d:\d\d$/.test(t) ? `${t}:00` : t);
    const schedule = v.kind.value === 'one_off'
      ? { one_off: { starts_at: seconds(v.starts.value), ends_at: seconds(v.ends.value), time_zone: v.zone.value.trim() } }
      : { weekly: { days: DAYS.map(([d]) => d).filter((d) => f.elements[`day-${d}`].checked), start_time: seconds(v.start.value), duration_minutes: num(v.duration.value), time_zone: v.zone.value.trim() } };
    const w = await api.post('/api/noise/windows', { name: v.name.value.trim(), scope, schedule });
    f.reset();
    v.zone.value = zone;
    await draw();
    said.textContent = `Added window '${w.name}'.`;
  });
  await draw();
  return h('section', {}, h('h1', {}, 'Maintenance windows'),
    h('p', {}, 'Alerts inside a window are recorded and shown on their timeline but open no ticket; the noise settings say what an alert still open at the end does.'),
    said, listOut, h('section', { class: 'panel' }, add));
}
