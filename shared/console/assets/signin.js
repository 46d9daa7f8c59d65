// signin.js - signing in: the first admin's setup, e-mail + password, or (on a server
// without agent sign-in) the service token and the agent to act as.

import * as api from './api.js';
import { h, field, input, form } from './dom.js';

export async function screen(ctx) {
  const opts = await api.signInOptions();
  if (opts.sessions) return passwordSignIn(ctx);
  return tokenSignIn(ctx);
}

/** First start: the first admin, with the setup token the server printed. */
export async function setup(ctx) {
  return firstAdmin(ctx);
}

function page(title, intro, body) {
  return h('section', { class: 'signin' }, h('h1', {}, title), h('p', {}, intro), body);
}

function firstAdmin(ctx) {
  const f = form({ 'aria-label': 'Create the first admin' }, [
    field('Name', 'name', input({ autocomplete: 'name', required: true })),
    field('E-mail', 'email', input({ type: 'email', autocomplete: 'username', required: true })),
    field('Password', 'password', input({ type: 'password', autocomplete: 'new-password', required: true }), 'At least 12 characters.'),
    field('Setup token', 'setup_token', input({ autocomplete: 'off', required: true }), 'deskbridge serve printed it on its first start.'),
    h('button', { type: 'submit' }, 'Create admin and sign in'),
  ], async (el) => {
    const v = (n) => el.elements[n].value;
    await api.createFirstAdmin({ name: v('name'), email: v('email'), password: v('password'), setup_token: v('setup_token') });
    ctx.afterSignIn();
  });
  return page('Set up deskbridge', 'No agent exists yet. The first one you create here is an admin.', f);
}

function passwordSignIn(ctx) {
  const f = form({ 'aria-label': 'Sign in' }, [
    field('E-mail', 'email', input({ type: 'email', autocomplete: 'username', required: true })),
    field('Password', 'password', input({ type: 'password', autocomplete: 'current-password', required: true })),
    h('button', { type: 'submit' }, 'Sign in'),
  ], async (el) => {
    await api.logIn(el.elements.email.value, el.elements.password.value);
    ctx.afterSignIn();
  });
  return page('Sign in', 'Sign in with your agent account.', [f,
    h('p', {}, 'First start, no admin yet? ', h('a', { href: '#/setup' }, 'Create the first admin'), '.')]);
}

function tokenSignIn(ctx) {
  const f = form({ 'aria-label': 'Sign in with the API token' }, [
    field('API token', 'token', input({ type: 'password', autocomplete: 'off', required: true }),
      'deskbridge serve prints it on first start and keeps it in <data dir>/api-token.'),
    field('Act as agent (id)', 'X-Agent-Id', input({ inputmode: 'numeric' }), 'Optional: the agent your notes, closes and invites are made as.'),
    h('button', { type: 'submit' }, 'Sign in'),
  ], async (el) => {
    const token = el.elements.token.value;
    if (!token.trim()) throw new api.ApiError(400, 'VALIDATION', 'token: enter the API token');
    await api.useToken(token, el.elements['X-Agent-Id'].value);
    ctx.afterSignIn();
  });
  return page('Sign in', 'This server signs in with its service API token.', f);
}
