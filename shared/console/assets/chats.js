// chats.js - live chats: the open chats, one chat's messages (refreshing), posting a
// message, the BeyondTrust invite button with its tick, cross or TECHUNAVAILABLE.

import * as api from './api.js';
import { h, fill, field, input, form, table, when, link, showError } from './dom.js';
import { inviteForm } from './tickets.js';

export async function list(ctx) {
  const results = h('div', { 'aria-live': 'polite' });
  async function refresh() {
    try {
      const page = await api.get('/api/chats?open=true&limit=200');
      fill(results, table('Open chats', [
        ['#', (c) => link(`/chats/${c.id}`, `#${c.id}`)],
        ['User', (c) => link(`/chats/${c.id}`, c.user_name)],
        ['Ticket', (c) => (c.ticket_id ? link(`/tickets/${c.ticket_id}`, `#${c.ticket_id}`) : '')],
        ['Messages', (c) => String((c.messages || []).length)],
        ['Last message', (c) => when((c.messages || []).at(-1)?.at)],
      ], page.items, 'no chat is open.'));
    } catch (e) {
      showError(results, e);
    }
  }
  await refresh();
  ctx.every(5000, refresh);
  return h('section', {}, h('h1', {}, 'Live chats'), results);
}

export async function page(ctx) {
  const id = ctx.params.id;
  const chat = await api.get(`/api/chats/${encodeURIComponent(id)}`);
  const messages = h('ol', { class: 'messages', 'aria-live': 'polite' });
  const info = h('p', {});
  function draw(c) {
    fill(info, `${c.status === 'open' ? 'Open' : 'Ended'} chat with ${c.user_name}`,
      c.ticket_id ? [' · linked to ', link(`/tickets/${c.ticket_id}`, `ticket #${c.ticket_id}`)] : '');
    fill(messages, (c.messages || []).map((m) => h('li', {}, h('p', { class: 'meta' }, `${when(m.at)} · ${m.from}`), h('p', { class: 'note' }, m.text))));
  }
  draw(chat);
  async function reload() {
    draw(await api.get(`/api/chats/${encodeURIComponent(id)}`));
  }
  const post = form({ 'aria-label': 'Send a message', class: 'inline-form' }, [
    field('Message', 'text', input({ name: 'text' })),
    h('button', { type: 'submit' }, 'Send'),
  ], async (el) => {
    await api.post(`/api/chats/${id}/messages`, { from: api.me()?.name || 'agent', text: el.elements.text.value });
    el.reset();
    await reload();
  });
  const invite = await inviteForm(`/api/chats/${id}/remote-invites`, false);
  ctx.every(5000, () => reload().catch(() => {}));
  return h('section', {}, h('h1', {}, `Chat #${chat.id}: ${chat.user_name}`), info,
    h('section', { class: 'panel', 'aria-labelledby': 'msg-h' }, h('h2', { id: 'msg-h' }, 'Messages'), messages, post),
    h('section', { class: 'panel', 'aria-labelledby': 'inv-h' }, h('h2', { id: 'inv-h' }, 'Remote support'), invite));
}
