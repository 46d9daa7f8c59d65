// api.js - the one place the console talks to the JSON API: how it authenticates, the
// error shape, and the signed-in agent. Every screen calls api.get/post/put/del.
//
// The way in is an agent's session: POST /api/auth/login (or the first-admin setup) sets the
// HttpOnly cookie, GET /api/auth/me answers the agent and the CSRF token, which goes in
// X-CSRF-Token on unsafe methods. The page never holds a password or a bearer token.

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
};

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** One API call; resolves to the JSON answer (null for an empty one), rejects with ApiError. */
export async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (state.csrf && UNSAFE.has(method)) {
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

/** Find out who we are (GET /api/auth/me): the agent, or null when nobody is signed in. */
export async function whoAmI() {
  try {
    const answer = await get('/api/auth/me');
    const agent = answer.agent || {};
    state.me = { id: agent.id, name: agent.name, email: agent.email, role: agent.role, via: answer.via };
    state.csrf = answer.csrf_token || null;
    return state.me;
  } catch (e) {
    if (e.status === 401) return null;
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

function signOutLocally() {
  state.me = null;
  state.csrf = null;
}

export async function logOut() {
  try {
    await post('/api/auth/logout');
  } finally {
    signOutLocally();
  }
}
