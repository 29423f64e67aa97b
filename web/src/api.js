// The one door to the server: /api/v1 (docs/api.md). The session token
// from POST /login lives in sessionStorage (gone with the tab) and goes
// out as a bearer token; an error answer becomes an ApiError carrying the
// API's own title and detail, which pages show as they are.

const BASE = '/api/v1';
const KEY = 'portcullis.token';

export class ApiError extends Error {
  constructor(status, code, title, detail) {
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
    this.code = code;
    this.title = title;
    this.detail = detail;
  }
}

let onUnauthorized = () => {};

export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(t) {
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
}

async function request(method, path, body, { raw = false } = {}) {
  const headers = {};
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const init = { method, headers, credentials: 'omit' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(BASE + path, init);
  } catch (e) {
    throw new ApiError(0, 'network', 'The server cannot be reached', String(e.message || e));
  }
  if (res.ok && raw === 'bytes') return res.arrayBuffer();
  if (res.ok && raw) return res.text();
  if (res.status === 204) return null;
  let doc = null;
  try {
    doc = await res.json();
  } catch {
    throw new ApiError(res.status, 'bad_answer', `HTTP ${res.status}`,
      'the server did not answer with JSON');
  }
  if (!res.ok) {
    const e = (doc && doc.errors && doc.errors[0]) || {};
    const err = new ApiError(res.status, e.code || 'error', e.title || `HTTP ${res.status}`,
      e.detail || '');
    if (res.status === 401 && path !== '/login' && t) onUnauthorized(err);
    throw err;
  }
  return doc;
}

export const api = {
  get: (path) => request('GET', path),
  post: (path, body = {}) => request('POST', path, body),
  patch: (path, body) => request('PATCH', path, body),
  del: (path) => request('DELETE', path),
  text: (path) => request('GET', path, undefined, { raw: true }),
  bytes: (path) => request('GET', path, undefined, { raw: 'bytes' }),
};

// GET of a server-sent event stream (text/event-stream; docs/api.md,
// "Watching a job"): onEvent(name, data) for each event, its data parsed
// as JSON. fetch() and the body's reader, since EventSource cannot send
// the token. Resolves when the server closes the stream; rejects with an
// ApiError when it cannot be opened (e.opened false) or breaks (true).
// `signal` (an AbortController's) closes it.
export async function events(path, onEvent, signal) {
  const headers = { Accept: 'text/event-stream' };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const broken = (opened, e) => Object.assign(
    new ApiError(0, 'network', 'The server cannot be reached', String(e.message || e)), { opened });
  let res;
  try {
    res = await fetch(BASE + path, { headers, credentials: 'omit', signal });
  } catch (e) {
    throw broken(false, e);
  }
  if (!res.ok || !res.body) {
    let e = {};
    try {
      const doc = await res.json();
      e = (doc && doc.errors && doc.errors[0]) || {};
    } catch {
      // not JSON: the status says enough
    }
    const err = Object.assign(new ApiError(res.status, e.code || 'error', e.title || `HTTP ${res.status}`,
      e.detail || ''), { opened: false });
    if (res.status === 401 && t) onUnauthorized(err);
    throw err;
  }
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  let name = 'message';
  let data = [];
  for (;;) {
    let got;
    try {
      got = await reader.read();
    } catch (e) {
      throw broken(true, e);
    }
    if (got.done) return;
    buf += dec.decode(got.value, { stream: true });
    let at = 0;
    for (let nl = buf.indexOf('\n', at); nl >= 0; nl = buf.indexOf('\n', at)) {
      let line = buf.slice(at, nl);
      at = nl + 1;
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') { // the end of an event
        if (data.length) onEvent(name, JSON.parse(data.join('\n')));
        name = 'message';
        data = [];
      } else if (!line.startsWith(':')) { // ": keepalive" is a comment
        const c = line.indexOf(':');
        const field = c < 0 ? line : line.slice(0, c);
        let v = c < 0 ? '' : line.slice(c + 1);
        if (v.startsWith(' ')) v = v.slice(1);
        if (field === 'event') name = v;
        else if (field === 'data') data.push(v);
      }
    }
    buf = buf.slice(at);
  }
}

// GET of a list route with its query (page[limit], sort, filter[x]).
export async function list(path, { limit = 1000, offset = 0, sort, filter = {} } = {}) {
  const q = new URLSearchParams();
  q.set('page[limit]', String(limit));
  if (offset) q.set('page[offset]', String(offset));
  if (sort) q.set('sort', sort);
  for (const [k, v] of Object.entries(filter)) {
    if (v !== undefined && v !== null && v !== '') q.set(`filter[${k}]`, v);
  }
  return request('GET', `${path}?${q.toString()}`);
}

export function enc(s) {
  return encodeURIComponent(s);
}
