// beyondtrust.js - BeyondTrust setup (admin): appliance and OAuth client with Test
// Configuration, the general options, templates with a live preview, the event URL to
// paste; the teams table (Get Teams, display name, enabled, default); agents' BeyondTrust names.

import * as api from './api.js';
import { h, fill, field, input, textarea, select, checkbox, form, table, copyBlock, status } from './dom.js';

const SAMPLE_LINK = 'https://support.example.com/?ak=8f2c1d';
const SAMPLE_CODE = '1234567';

/** A template with $REMOTEINVITE, $LINKTOREMOTE and $REMOTESESSIONCODE filled with samples. */
function render(template, remoteInvite) {
  return template
    .replaceAll('$REMOTEINVITE', remoteInvite ?? '')
    .replaceAll('$LINKTOREMOTE', SAMPLE_LINK)
    .replaceAll('$REMOTESESSIONCODE', SAMPLE_CODE);
}

export async function setup() {
  const [cfg, eventUrl, users] = await Promise.all([
    api.get('/api/config/beyondtrust'), api.get('/api/config/beyondtrust/event-url'), api.get('/api/users?limit=1000'),
  ]);
  const t = cfg.templates || {};
  const testOut = h('p', { class: 'test-result', role: 'status', id: 'bt-test-result' });
  const saved = status();
  const preview = h('div', { class: 'preview', 'aria-live': 'polite' });
  const templates = {
    remote_invite: textarea({ name: 'templates.remote_invite', rows: 3 }, t.remote_invite),
    email_subject: input({ name: 'templates.email_subject', value: t.email_subject || '' }),
    email_body: textarea({ name: 'templates.email_body', rows: 5 }, t.email_body),
    chat_html: textarea({ name: 'templates.chat_html', rows: 3 }, t.chat_html),
  };
  function drawPreview() {
    const invite = render(templates.remote_invite.value);
    fill(preview,
      h('h3', {}, 'Preview (sample link and code)'),
      h('p', {}, h('strong', {}, '$REMOTEINVITE: '), invite),
      h('p', {}, h('strong', {}, 'E-mail subject: '), render(templates.email_subject.value, invite)),
      h('pre', { class: 'copy-text' }, render(templates.email_body.value, invite)),
      h('p', {}, h('strong', {}, 'Chat HTML (as text): '), render(templates.chat_html.value, invite)));
  }
  Object.values(templates).forEach((el) => el.addEventListener('input', drawPreview));
  drawPreview();

  const f = form({ 'aria-label': 'BeyondTrust settings' }, [
    h('fieldset', {}, h('legend', {}, 'Appliance and API account'),
      field('Site URL', 'base_url', input({ type: 'url', name: 'base_url', value: cfg.base_url || '', placeholder: 'https://support.example.com' })),
      field('OAuth client id', 'client_id', input({ name: 'client_id', value: cfg.client_id || '', autocomplete: 'off' })),
      field('OAuth client secret', 'client_secret', input({ type: 'password', name: 'client_secret', autocomplete: 'off', placeholder: cfg.client_secret?.set ? 'set (leave blank to keep)' : 'not set' })),
      field('Default user (sessions with no user)', 'default_user_id', select('default_user_id', [['', 'None'], ...users.items.map((u) => [u.id, `${u.name} <${u.email}>`])], cfg.default_user_id)),
      field('Invite e-mails come from', 'email_from', input({ type: 'email', name: 'email_from', value: cfg.email_from || '' }))),
    h('fieldset', {}, h('legend', {}, 'General options'),
      field('Allow invites for other agents and teams', 'allow_invites_for_others', checkbox('allow_invites_for_others', cfg.allow_invites_for_others)),
      field('Disable quick invites', 'disable_quick_invites', checkbox('disable_quick_invites', cfg.disable_quick_invites)),
      field('Fall back to the default team when the agent is not logged in', 'fallback_to_default_team', checkbox('fallback_to_default_team', cfg.fallback_to_default_team)),
      field('Only process sessions generated here', 'only_generated_here', checkbox('only_generated_here', cfg.only_generated_here))),
    h('fieldset', {}, h('legend', {}, 'Templates ($REMOTEINVITE, $LINKTOREMOTE, $REMOTESESSIONCODE)'),
      field('$REMOTEINVITE text', 'templates.remote_invite', templates.remote_invite),
      field('Invite e-mail subject', 'templates.email_subject', templates.email_subject),
      field('Invite e-mail body', 'templates.email_body', templates.email_body),
      field('Live-chat HTML', 'templates.chat_html', templates.chat_html),
      preview),
    h('div', { class: 'row' },
      h('button', { type: 'submit', value: 'save' }, 'Save settings'),
      h('button', { type: 'submit', value: 'test', class: 'secondary' }, 'Test Configuration')),
    saved, testOut,
  ], async (el, submitter) => {
    const v = el.elements;
    const body = {
      base_url: v.base_url.value || null, client_id: v.client_id.value || null,
      default_user_id: v.default_user_id.value ? Number(v.default_user_id.value) : null,
      email_from: v.email_from.value || null,
      allow_invites_for_others: v.allow_invites_for_others.checked, disable_quick_invites: v.disable_quick_invites.checked,
      fallback_to_default_team: v.fallback_to_default_team.checked, only_generated_here: v.only_generated_here.checked,
      templates: Object.fromEntries(Object.entries(templates).map(([k, e]) => [k, e.value])),
    };
    if (v.client_secret.value) body.client_secret = v.client_secret.value;
    await api.put('/api/config/beyondtrust', body);
    v.client_secret.value = '';
    saved.textContent = `Saved at ${new Date().toLocaleTimeString()}.`;
    if (submitter && submitter.value === 'test') {
      testOut.textContent = 'Testing…';
      const r = await api.post('/api/config/beyondtrust/test');
      testOut.className = `test-result ${r.ok ? 'ok' : 'failed'}`;
      testOut.textContent = `${r.ok ? '✓' : '✗'} ${r.message}`;
    }
  });
  return h('section', {}, h('h1', {}, 'BeyondTrust setup'),
    h('section', { class: 'panel', 'aria-labelledby': 'bt-set-h' }, h('h2', { id: 'bt-set-h' }, 'Settings'), f),
    h('section', { class: 'panel', 'aria-labelledby': 'bt-ev-h' }, h('h2', { id: 'bt-ev-h' }, 'Outbound events'),
      h('p', {}, 'In /login: Management → Outbound Events → HTTP Recipients, add this URL and send "Support Session End".'),
      copyBlock('Outbound event URL', eventUrl.url, 'event_url')));
}

export async function teams(ctx) {
  const out = h('div', {});
  const result = status();
  async function load() {
    const list = await api.get('/api/teams?limit=1000');
    fill(out, table('Teams', [
      ['BeyondTrust team', (t) => `${t.name}${t.bt_team_id ? ` (id ${t.bt_team_id})` : ' (manual)'}`],
      ['Display name, enabled, default', (t) => {
        const f = form({ 'aria-label': `Team ${t.name}`, class: 'inline-form' }, [
          field('Display name', 'display_name', input({ name: 'display_name', value: t.display_name || '' })),
          field('Enabled', 'enabled', checkbox('enabled', t.enabled)),
          field('Default', 'is_default', checkbox('is_default', t.is_default)),
          h('button', { type: 'submit', class: 'secondary' }, 'Save'),
        ], async (el) => {
          await api.put(`/api/teams/${t.id}`, { display_name: el.elements.display_name.value, enabled: el.elements.enabled.checked, is_default: el.elements.is_default.checked });
          result.textContent = `Saved team ${t.name}.`;
          await load();
        });
        return f;
      }],
    ], list.items, 'none yet: press Get Teams.'));
  }
  await load();
  const getTeams = form({ 'aria-label': 'Get Teams', class: 'inline-form' }, [h('button', { type: 'submit' }, 'Get Teams'), result], async () => {
    const r = await api.post('/api/teams/import');
    result.textContent = `Imported: ${r.created} new, ${r.updated} updated.`;
    await load();
  });
  const cfg = await api.get('/api/config/beyondtrust');
  return h('section', {}, h('h1', {}, 'BeyondTrust teams'), getTeams, out,
    h('p', {}, `Falling back to the default team when an agent is not logged in: ${cfg.fallback_to_default_team ? 'on' : 'off'} (change it in `, h('a', { href: '#/beyondtrust' }, 'BeyondTrust setup'), ').'));
}

export async function agents() {
  const out = h('div', {});
  const result = status();
  async function load() {
    const list = await api.get('/api/agents?limit=1000');
    fill(out, table('Agents', [
      ['Agent', (a) => `${a.name} <${a.email}>`],
      ['BeyondTrust', (a) => form({ 'aria-label': `BeyondTrust for ${a.name}`, class: 'inline-form' }, [
        field('BeyondTrust enabled', 'bt_enabled', checkbox('bt_enabled', a.bt_enabled)),
        field('BeyondTrust name', 'bt_name', input({ name: 'bt_name', value: a.bt_name || '' })),
        h('button', { type: 'submit', class: 'secondary' }, 'Save'),
      ], async (el) => {
        const name = el.elements.bt_name.value.trim();
        await api.put(`/api/agents/${a.id}`, { bt_enabled: el.elements.bt_enabled.checked, bt_name: name || null });
        result.textContent = `Saved ${a.name}.`;
      })],
    ], list.items));
  }
  await load();
  const add = form({ 'aria-label': 'Add an agent', class: 'inline-form' }, [
    field('Name', 'name', input({ name: 'name' })),
    field('E-mail', 'email', input({ type: 'email', name: 'email' })),
    field('BeyondTrust name', 'bt_name', input({ name: 'bt_name' })),
    h('button', { type: 'submit' }, 'Add agent'),
  ], async (el) => {
    const v = el.elements;
    await api.post('/api/agents', { name: v.name.value, email: v.email.value, bt_enabled: !!v.bt_name.value, bt_name: v.bt_name.value || null });
    el.reset();
    await load();
  });
  return h('section', {}, h('h1', {}, 'Agents and BeyondTrust'), result, out,
    h('section', { class: 'panel', 'aria-labelledby': 'add-agent-h' }, h('h2', { id: 'add-agent-h' }, 'Add an agent'), add));
}
