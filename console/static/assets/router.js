// router.js: hash routes such as #/events/<id>?type=x. Patterns name their
// parameters with a colon: '/events/:id'. A parameter takes one segment,
// decoded; the last one may be '*rest' to take the rest of the path.

export function parseHash(hash = window.location.hash) {
  let h = hash.replace(/^#/, '');
  if (!h.startsWith('/')) h = '/' + h;
  const q = h.indexOf('?');
  const path = q >= 0 ? h.slice(0, q) : h;
  const query = new URLSearchParams(q >= 0 ? h.slice(q + 1) : '');
  const parts = path.split('/').filter(Boolean).map((p) => {
    try { return decodeURIComponent(p); } catch { return p; }
  });
  return { path, parts, query };
}

export function match(pattern, parts) {
  const pp = pattern.split('/').filter(Boolean);
  const params = {};
  for (let i = 0; i < pp.length; i++) {
    const p = pp[i];
    if (p.startsWith('*')) {
      params[p.slice(1)] = parts.slice(i).join('/');
      return parts.length > i ? params : null;
    }
    if (i >= parts.length) return null;
    if (p.startsWith(':')) params[p.slice(1)] = parts[i];
    else if (p !== parts[i]) return null;
  }
  return pp.length === parts.length ? params : null;
}

// href builds a hash link: href('events', id) -> '#/events/<id encoded>';
// a trailing object becomes the query, empty values left out.
export function href(...args) {
  let query = null;
  if (args.length && typeof args[args.length - 1] === 'object' && args[args.length - 1] !== null) query = args.pop();
  let s = '#/' + args.map((a) => encodeURIComponent(String(a))).join('/');
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    const qs = q.toString();
    if (qs) s += '?' + qs;
  }
  return s;
}

export function navigate(hash) {
  if (window.location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else window.location.hash = hash;
}
