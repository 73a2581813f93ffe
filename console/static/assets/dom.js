// dom.js: building elements without innerHTML, and the shared pieces of
// every page: states (loading, empty, error), pills, times, JSON viewer,
// tables, description lists.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'testid') el.setAttribute('data-testid', v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

// ---- states ----

export function loading(text = 'Loading…') {
  return h('div', { class: 'state state-loading', testid: 'loading', role: 'status', 'aria-live': 'polite' },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

export function empty(text = 'Nothing here yet.', hint) {
  return h('div', { class: 'state state-empty', testid: 'empty' }, h('p', { class: 'state-title' }, text), hint ? h('p', { class: 'muted' }, hint) : null);
}

// errorBox shows a problem's detail and its field pointers.
export function errorBox(err, retry) {
  const p = (err && err.problem) || { title: 'Error', detail: err && err.message ? err.message : String(err) };
  const box = h('div', { class: 'state state-error', testid: 'error', role: 'alert' },
    h('p', { class: 'state-title' }, p.title || 'Error', p.status ? ` (${p.status})` : ''),
    h('p', { class: 'error-detail' }, p.detail || ''));
  if (Array.isArray(p.errors) && p.errors.length) {
    box.append(h('ul', { class: 'field-errors' }, p.errors.map((e) =>
      h('li', null, h('code', null, e.pointer === '' ? '(body)' : e.pointer), ' ', e.detail))));
  }
  if (retry) box.append(h('button', { type: 'button', class: 'btn btn-small', onclick: retry }, 'Try again'));
  return box;
}

// ---- formatting ----

const STATE_CLASS = {
  active: 'ok', delivered: 'ok', succeeded: 'ok', completed: 'ok', approved: 'ok', verified: 'ok', open: 'info', api: 'neutral', system: 'neutral',
  paused: 'warn', waiting: 'warn', pending: 'warn', retrying: 'warn', running: 'info', attempted: 'info', failed: 'bad', final: 'bad', dead: 'bad',
  disabled: 'bad', denied: 'bad', broken: 'bad', cancelled: 'neutral', closed: 'neutral', ended: 'neutral',
};

export function pill(text, kind) {
  if (text === undefined || text === null || text === '') return h('span', { class: 'muted' }, '—');
  const k = kind || STATE_CLASS[String(text).toLowerCase()] || 'neutral';
  return h('span', { class: `pill pill-${k}` }, String(text));
}

export function relTime(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const d = Math.round((t - now) / 1000);
  const a = Math.abs(d);
  let s;
  if (a < 5) return 'just now';
  if (a < 60) s = `${a}s`;
  else if (a < 3600) s = `${Math.round(a / 60)}m`;
  else if (a < 86400) s = `${Math.round(a / 3600)}h`;
  else if (a < 86400 * 30) s = `${Math.round(a / 86400)}d`;
  else return new Date(t).toLocaleDateString();
  return d < 0 ? `${s} ago` : `in ${s}`;
}

export function absTime(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return String(iso);
  return new Date(t).toLocaleString(undefined, { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' }) + ` (${iso})`;
}

// time shows a relative time, the absolute one on hover; app.js refreshes
// every <time data-rel> now and then.
export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: iso, title: absTime(iso), 'data-rel': '' }, relTime(iso));
}

export function refreshTimes(root = document) {
  const now = Date.now();
  root.querySelectorAll('time[data-rel]').forEach((t) => { t.textContent = relTime(t.getAttribute('datetime'), now); });
}

export function duration(micros) {
  if (micros === undefined || micros === null) return '—';
  if (micros < 1000) return `${micros} µs`;
  if (micros < 1e6) return `${(micros / 1000).toFixed(micros < 1e4 ? 1 : 0)} ms`;
  return `${(micros / 1e6).toFixed(2)} s`;
}

export function num(n) {
  if (n === undefined || n === null) return '—';
  return Number(n).toLocaleString();
}

export function link(hash, text, attrs) {
  return h('a', { href: hash, ...(attrs || {}) }, text);
}

export function mono(text, attrs) {
  return h('code', { class: 'mono', ...(attrs || {}) }, text);
}

export function truncate(s, n = 80) {
  s = String(s ?? '');
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

// ---- copy ----

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = h('textarea', { class: 'offscreen', 'aria-hidden': 'true' });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    ta.remove();
    return ok;
  }
}

export function copyButton(getText, label = 'Copy') {
  const b = h('button', { type: 'button', class: 'btn btn-small btn-ghost' }, label);
  b.addEventListener('click', async () => {
    const ok = await copyText(typeof getText === 'function' ? getText() : getText);
    b.textContent = ok ? 'Copied' : 'Copy failed';
    setTimeout(() => { b.textContent = label; }, 1500);
  });
  return b;
}

// ---- JSON viewer: syntax highlighted with spans, never innerHTML ----

function jsonNodes(v, indent, out) {
  const pad = '  '.repeat(indent);
  if (v === null) out.push(h('span', { class: 'j-null' }, 'null'));
  else if (Array.isArray(v)) {
    if (!v.length) { out.push('[]'); return; }
    out.push('[\n');
    v.forEach((x, i) => {
      out.push(pad + '  ');
      jsonNodes(x, indent + 1, out);
      out.push(i < v.length - 1 ? ',\n' : '\n');
    });
    out.push(pad + ']');
  } else if (typeof v === 'object') {
    const keys = Object.keys(v);
    if (!keys.length) { out.push('{}'); return; }
    out.push('{\n');
    keys.forEach((k, i) => {
      out.push(pad + '  ', h('span', { class: 'j-key' }, JSON.stringify(k)), ': ');
      jsonNodes(v[k], indent + 1, out);
      out.push(i < keys.length - 1 ? ',\n' : '\n');
    });
    out.push(pad + '}');
  } else if (typeof v === 'string') out.push(h('span', { class: 'j-str' }, JSON.stringify(v)));
  else if (typeof v === 'number') out.push(h('span', { class: 'j-num' }, String(v)));
  else if (typeof v === 'boolean') out.push(h('span', { class: 'j-bool' }, String(v)));
  else out.push(String(v));
}

export function jsonView(value, opts = {}) {
  const out = [];
  jsonNodes(value, 0, out);
  const pre = h('pre', { class: 'json', tabindex: '0', 'aria-label': opts.label || 'JSON', testid: opts.testid }, out);
  const text = JSON.stringify(value, null, 2);
  return h('div', { class: 'json-wrap' },
    h('div', { class: 'json-bar' }, h('span', { class: 'muted small' }, opts.title || 'JSON'), copyButton(text)),
    pre);
}

// ---- tables ----

// table(columns, rows, {rowAttrs}) where a column is {label, cell(row), class}.
export function table(columns, rows, opts = {}) {
  const thead = h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.label))));
  const tbody = h('tbody', null, rows.map((r) => tableRow(columns, r, opts)));
  const t = h('table', { class: 'table' + (opts.compact ? ' table-compact' : '') }, opts.caption ? h('caption', { class: 'sr-only' }, opts.caption) : null, thead, tbody);
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': opts.caption || 'Table' }, t);
}

export function tableRow(columns, r, opts = {}) {
  const attrs = opts.rowAttrs ? opts.rowAttrs(r) : null;
  return h('tr', attrs, columns.map((c, i) => {
    const v = c.cell(r);
    return i === 0 && opts.rowHeader ? h('th', { scope: 'row', class: c.class }, v) : h('td', { class: c.class, 'data-label': c.label }, v);
  }));
}

// dl([[term, value], ...]) skips rows whose value is undefined.
export function dl(rows) {
  return h('dl', { class: 'props' }, rows.filter((r) => r && r[1] !== undefined && r[1] !== null && r[1] !== '').map(([k, v]) =>
    h('div', { class: 'prop' }, h('dt', null, k), h('dd', null, v))));
}

export function section(title, ...children) {
  const id = 'sec-' + title.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id, class: 'card-title' }, title), children);
}

export function pageHeader(title, opts = {}) {
  return h('header', { class: 'page-header' },
    h('div', { class: 'page-titles' },
      opts.crumbs ? h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, opts.crumbs.map((c, i) => [i ? h('span', { class: 'crumb-sep', 'aria-hidden': 'true' }, '/') : null, c[1] ? link(c[1], c[0]) : h('span', null, c[0])])) : null,
      h('h1', { class: 'page-title' }, title, opts.pill ? [' ', opts.pill] : null),
      opts.sub ? h('p', { class: 'page-sub muted' }, opts.sub) : null),
    opts.actions ? h('div', { class: 'page-actions' }, opts.actions) : null);
}

export function stat(label, value, hint) {
  return h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value' }, value), hint ? h('div', { class: 'stat-hint muted' }, hint) : null);
}

let toastHost;
export function toast(text, kind = 'ok') {
  if (!toastHost) {
    toastHost = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(toastHost);
  }
  const t = h('div', { class: `toast toast-${kind}` }, text);
  toastHost.append(t);
  setTimeout(() => t.remove(), 4000);
}
