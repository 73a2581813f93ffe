// api.js: the fetch wrapper. The API key lives in sessionStorage only and
// goes out as a Bearer token on every request. Failures become ApiError,
// carrying the RFC 9457 problem the server answered (detail, field errors).

const KEY = 'herald.apiKey';

export function getKey() {
  try { return sessionStorage.getItem(KEY) || ''; } catch { return ''; }
}

export function setKey(k) {
  try { sessionStorage.setItem(KEY, k); } catch { /* private mode: the session ends with the tab */ }
}

export function clearKey() {
  try { sessionStorage.removeItem(KEY); } catch { /* nothing kept */ }
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.problem = problem || { status, title: `HTTP ${status}`, detail: `The server answered ${status}.` };
  }
}

// A 401 anywhere sends the app back to sign-in (app.js listens).
function unauthorized(problem) {
  window.dispatchEvent(new CustomEvent('herald:unauthorized', { detail: problem }));
}

// query: an object; empty values are left out; arrays repeat the parameter.
export function buildURL(path, query) {
  const u = new URL(path, window.location.origin);
  if (query) {
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined || v === null || v === '') continue;
      if (Array.isArray(v)) v.forEach((x) => u.searchParams.append(k, String(x)));
      else u.searchParams.set(k, String(v));
    }
  }
  return u.pathname + u.search;
}

export function authHeaders(extra) {
  const h = { Accept: 'application/json', ...(extra || {}) };
  const k = getKey();
  if (k) h.Authorization = `Bearer ${k}`;
  return h;
}

async function readProblem(res) {
  const text = await res.text().catch(() => '');
  if (text) {
    try {
      const p = JSON.parse(text);
      if (p && typeof p === 'object') return p;
    } catch { /* not JSON */ }
  }
  return { status: res.status, title: res.statusText || `HTTP ${res.status}`, detail: text.trim() || `The server answered ${res.status} ${res.statusText}.` };
}

// api(path, {method, query, body, signal}) answers the parsed JSON body
// (null for an empty one) or throws ApiError.
export async function api(path, opts = {}) {
  const { method = 'GET', query, body, signal } = opts;
  const headers = authHeaders();
  const init = { method, headers, signal, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(buildURL(path, query), init);
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, { status: 0, title: 'Network error', detail: `Could not reach the server: ${err && err.message ? err.message : err}` });
  }
  if (!res.ok) {
    const problem = await readProblem(res);
    if (res.status === 401) unauthorized(problem);
    throw new ApiError(res.status, problem);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  if (!text) return null;
  try { return JSON.parse(text); } catch { return text; }
}

export function isAbort(err) {
  return err && err.name === 'AbortError';
}

// Path segment encoding for ids that may hold any character.
export const seg = (s) => encodeURIComponent(String(s));
