// app.js - the console's shell: hash routes (/console#/tickets/12), the navigation that
// follows the agent's role, polling that stops when the screen changes, error pages.

import * as api from './api.js';
import { h, fill } from './dom.js';
import * as signin from './signin.js';
import * as tickets from './tickets.js';
import * as chats from './chats.js';
import * as datto from './datto.js';
import * as beyondtrust from './beyondtrust.js';
import * as operations from './operations.js';
import * as noise from './noise.js';

const ROUTES = [
  ['/signin', signin.screen, { open: true }],
  ['/setup', signin.setup, { open: true }],
  ['/tickets', tickets.list],
  ['/tickets/new', tickets.create],
  ['/tickets/:id', tickets.page],
  ['/tickets/:id/link-session', tickets.linkSession],
  ['/chats', chats.list],
  ['/chats/:id', chats.page],
  ['/datto', datto.setup, { admin: true }],
  ['/datto/sites', datto.sites, { admin: true }],
  ['/noise', noise.rules, { admin: true }],
  ['/noise/windows', noise.windows, { admin: true }],
  ['/beyondtrust', beyondtrust.setup, { admin: true }],
  ['/beyondtrust/teams', beyondtrust.teams, { admin: true }],
  ['/beyondtrust/agents', beyondtrust.agents, { admin: true }],
  ['/operations/requests', operations.requests, { admin: true }],
  ['/operations/requests/:id', operations.request, { admin: true }],
  ['/operations/dead-letters', operations.deadLetters, { admin: true }],
  ['/operations/health', operations.health, { admin: true }],
  ['/operations/audit', operations.audit, { admin: true }],
];

const NAV = [
  ['Daily work', [['/tickets', 'Tickets'], ['/tickets/new', 'New ticket'], ['/chats', 'Live chats']]],
  ['Datto RMM', [['/datto', 'Datto setup'], ['/datto/sites', 'Sites']], true],
  ['Alert noise', [['/noise', 'Rules and settings'], ['/noise/windows', 'Maintenance windows']], true],
  ['BeyondTrust', [['/beyondtrust', 'BeyondTrust setup'], ['/beyondtrust/teams', 'Teams'], ['/beyondtrust/agents', 'Agents']], true],
  ['Operations', [['/operations/requests', 'Request log'], ['/operations/dead-letters', 'Dead letters'], ['/operations/health', 'Health'], ['/operations/audit', 'Audit log']], true],
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
let timers = [];
let generation = 0;

function match(path) {
  for (const [pattern, screen, opts] of ROUTES) {
    const names = [];
    const re = new RegExp(`^${pattern.replace(/:(\w+)/g, (_, n) => { names.push(n); return '([^/]+)'; })}$`);
    const m = re.exec(path);
    if (m) return { screen, opts: opts || {}, params: Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(m[i + 1])])) };
  }
  return null;
}

export function go(path) {
  if (location.hash === `#${path}`) render();
  else location.hash = path;
}

function renderNav() {
  const me = api.me();
  if (!me) {
    fill(nav);
    fill(who);
    return;
  }
  const current = location.hash.slice(1);
  fill(nav, NAV.filter(([, , admin]) => !admin || api.isAdmin()).map(([title, links]) =>
    h('div', { class: 'nav-group' }, h('h2', {}, title),
      h('ul', {}, links.map(([path, text]) => h('li', {}, h('a', { href: `#${path}`, 'aria-current': current === path ? 'page' : undefined }, text)))))));
  fill(who,
    h('span', {}, `${me.name} (${me.role})`),
    h('button', { type: 'button', class: 'secondary', onclick: async () => { await api.logOut().catch(() => {}); go('/signin'); } }, 'Sign out'));
}

/** The page shown when a screen could not load: the API's own words and status. */
function errorPage(err) {
  const titles = { 401: 'Sign-in needed', 403: 'Not allowed', 404: 'Not found' };
  const title = titles[err.status] || 'Could not load this page';
  return h('section', { class: 'error-page' },
    h('h1', { tabindex: '-1' }, `${title}${err.status ? ` (${err.status})` : ''}`),
    h('p', { class: 'form-error', role: 'alert' }, err.message || String(err)),
    h('p', {}, h('a', { href: '#/tickets' }, 'Back to the tickets')));
}

async function render() {
  generation += 1;
  const mine = generation;
  timers.forEach(clearInterval);
  timers = [];
  const path = location.hash.slice(1) || '/tickets';
  const route = match(path);
  if (!api.me() && !(route && route.opts.open)) {
    try {
      await api.whoAmI();
    } catch (e) {
      if (mine === generation) fill(main, errorPage(e));
      return;
    }
    if (!api.me()) {
      sessionStorage.setItem('deskbridge.console.after', path);
      go('/signin');
      return;
    }
  }
  renderNav();
  const ctx = {
    params: route ? route.params : {},
    go,
    every(ms, fn) {
      const t = setInterval(() => { if (mine === generation && !document.hidden) fn(); }, ms);
      timers.push(t);
    },
    current: () => mine === generation,
    afterSignIn() {
      const next = sessionStorage.getItem('deskbridge.console.after') || '/tickets';
      sessionStorage.removeItem('deskbridge.console.after');
      go(next === '/signin' ? '/tickets' : next);
    },
  };
  let view;
  if (!route) {
    view = errorPage({ status: 404, message: `The console has no page at #${path}.` });
  } else {
    try {
      view = await route.screen(ctx);
    } catch (e) {
      view = errorPage(e);
    }
  }
  if (mine !== generation) return;
  fill(main, view);
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    document.title = `${heading.textContent} · deskbridge`;
    if (!ctx.keepFocus) heading.focus({ preventScroll: true });
  }
}

// `deskbridge serve` prints /console/setup#token=...: keep the token for the setup form.
const setupToken = /^#token=([^&]+)/.exec(location.hash);
if (setupToken) {
  sessionStorage.setItem('deskbridge.console.setup-token', decodeURIComponent(setupToken[1]));
  history.replaceState(null, '', `${location.pathname}#/setup`);
}
window.addEventListener('hashchange', render);
render();
