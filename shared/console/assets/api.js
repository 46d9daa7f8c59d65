// api.js - the one place the console talks to the JSON API: how it authenticates, the
// error shape, and the signed-in agent. Every screen calls api.get/post/put/del.
//
// Two ways in: an agent's session (POST /api/auth/login sets the cookie; GET /api/auth/me
// answers the agent and the CSRF token, sent in X-CSRF-Token on unsafe methods), or the
// service token (Authorization: Bearer, X-Agent-Id naming the agent to act as) where the
// server has no sign-in yet. The token is kept in sessionStorage: it ends with the tab.

const STORE = 'deskbridge.console.auth';

/** An error answer of the API: `{error, message}`, the field the message names, the status. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
    const m = /^([A-Za-z_][\w.[\]-]*): /.exec(message || '');
    this.field = m ? m[1] : null;
  }
}

const state = {
  me: null, // {id, name, email, role}
  csrf: null,
  token: null,
  agentId: null,
};

function load() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE) || 'null');
    if (saved && saved.token) {
      state.token = saved.token;
      state.agentId = saved.agentId ?? null;
    }
  } catch {
    sessionStorage.removeItem(STORE);
  }
}
load();

function save() {
  if (state.token) sessionStorage.setItem(STORE, JSON.stringify({ token: state.token, agentId: state.agentId }));
  else sessionStorage.removeItem(STORE);
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** One API call; resolves to the JSON answer (null for an empty one), rejects with ApiError. */
export async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (state.token) {
    headers.Authorization = `Bearer ${state.token}`;
    if (state.agentId) headers['X-Agent-Id'] = String(state.agentId);
  } else if (state.csrf && UNSAFE.has(method)) {
    headers['X-CSRF-Token'] = state.csrf;
  }
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch (e) {
    throw new ApiError(0, 'NETWORK', `The server could not be reached (${e.message}).`);
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!resp.ok) {
    const code = data && data.error ? data.error : `HTTP_${resp.status}`;
    const message = data && data.message ? data.message : `${method} ${path} answered ${resp.status}`;
    throw new ApiError(resp.status, code, message);
  }
  return data;
}

export const get = (path) => call('GET', path);
export const post = (path, body = {}) => call('POST', path, body);
export const put = (path, body) => call('PUT', path, body);
export const del = (path) => call('DELETE', path);

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** The signed-in agent, or null. */
export const me = () => state.me;
export const isAdmin = () => state.me && state.me.role === 'admin';

/**
 * Find out who we are: the session's agent (GET /api/auth/me), or the agent the service
 * token acts as. Resolves to the agent or null when nobody is signed in.
 */
export async function whoAmI() {
  if (state.token) {
    try {
      const agent = state.agentId ? await get(`/api/agents/${state.agentId}`) : null;
      await get('/api/customers?limit=1'); // proves the token
      state.me = { id: agent?.id ?? null, name: agent?.name ?? 'Service token', email: agent?.email ?? '', role: 'admin', via: 'token' };
      return state.me;
    } catch (e) {
      if (e.status === 401) signOutLocally();
      throw e;
    }
  }
  try {
    const answer = await get('/api/auth/me');
    const agent = answer.agent || answer;
    state.me = { id: agent.id, name: agent.name, email: agent.email, role: agent.role, via: 'session' };
    state.csrf = answer.csrf_token || answer.csrf || null;
    return state.me;
  } catch (e) {
    if (e.status === 401 || e.status === 404) return null;
    throw e;
  }
}

/** Whether the server has agent sign-in (the accounts routes): GET /api/auth/me answers 401 then. */
export async function signInOptions() {
  try {
    await get('/api/auth/me');
    return { sessions: true };
  } catch (e) {
    if (e.status === 404 && e.message === 'no such route') return { sessions: false };
    if (e.status === 401) return { sessions: true };
    throw e;
  }
}

export async function logIn(email, password) {
  await post('/api/auth/login', { email, password });
  return whoAmI();
}

/** The first admin, made with the one-time setup token `deskbridge serve` printed; signed in. */
export async function createFirstAdmin(body) {
  await post('/api/auth/setup', body);
  return whoAmI();
}

export async function useToken(token, agentId) {
  state.token = token.trim();
  state.agentId = agentId ? Number(agentId) : null;
  save();
  return whoAmI();
}

function signOutLocally() {
  state.token = null;
  state.agentId = null;
  state.me = null;
  state.csrf = null;
  save();
}

export async function logOut() {
  const viaSession = state.me && state.me.via === 'session';
  try {
    if (viaSession) await post('/api/auth/logout');
  } finally {
    signOutLocally();
  }
}
