// signin.js - signing in: e-mail + password, and the first admin's setup with the one-time
// token `deskbridge serve` printed.

import * as api from './api.js';
import { h, field, input, form } from './dom.js';

export async function screen(ctx) {
  return passwordSignIn(ctx);
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
    field('Setup token', 'setup_token', input({ autocomplete: 'off', required: true, value: sessionStorage.getItem('deskbridge.console.setup-token') || '' }),
      'deskbridge serve printed it on its first start (the link it printed fills it in).'),
    h('button', { type: 'submit' }, 'Create admin and sign in'),
  ], async (el) => {
    const v = (n) => el.elements[n].value;
    await api.createFirstAdmin({ name: v('name'), email: v('email'), password: v('password'), setup_token: v('setup_token') });
    sessionStorage.removeItem('deskbridge.console.setup-token');
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
