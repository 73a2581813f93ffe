// page-audit.js: the audit log (system events) and the hash chain's state.

import { api } from './api.js';
import { href, navigate } from './router.js';
import { h, replace, loading, empty, errorBox, pill, time, link, mono, truncate, section, pageHeader, table, num } from './dom.js';
import { subjectLink, rowClicks } from './page-events.js';
import { loadNewest, headSeq } from './stream.js';

const FIELDS = [
  { name: 'subjectType', label: 'Subject type', placeholder: 'session' },
  { name: 'verb', label: 'Verb', placeholder: 'created' },
  { name: 'subjectId', label: 'Subject id', placeholder: '' },
  { name: 'agentId', label: 'Agent', placeholder: 'key_… or system' },
];

function chainState(rep) {
  if (rep.verified) {
    return h('div', { class: 'chain chain-ok', testid: 'audit-state', role: 'status' },
      h('span', { class: 'chain-icon', 'aria-hidden': 'true' }, '✓'),
      h('div', null,
        h('p', { class: 'chain-title' }, 'Chain verified'),
        h('p', { class: 'muted small' }, `${num(rep.checked)} system events checked, up to seq ${rep.lastSeq}. Head `, mono(truncate(rep.head || '', 20)))));
  }
  const b = rep.break || {};
  return h('div', { class: 'chain chain-bad', testid: 'audit-state', role: 'alert' },
    h('span', { class: 'chain-icon', 'aria-hidden': 'true' }, '!'),
    h('div', null,
      h('p', { class: 'chain-title' }, `Chain broken at seq ${b.seq}`),
      h('p', { class: 'small' }, b.reason || ''),
      b.id ? h('p', { class: 'small' }, 'Event ', link(href('events', b.id), b.id)) : null,
      b.storedHash ? h('p', { class: 'small muted' }, 'Stored ', mono(b.storedHash)) : null,
      b.computedHash ? h('p', { class: 'small muted' }, 'Computed ', mono(b.computedHash)) : null));
}

export async function auditPage(ctx) {
  ctx.title('Audit');
  const { main, signal, query } = ctx;
  const q = {};
  FIELDS.forEach((f) => { const v = (query.get(f.name) || '').trim(); if (v) q[f.name] = v; });
  const stateBox = h('div', null, loading('Verifying the chain…'));
  const listBox = h('div', null, loading('Loading system events…'));
  const foot = h('div', { class: 'list-foot' });
  const form = h('form', { class: 'filters card', role: 'search', 'aria-label': 'Filter the audit log' },
    FIELDS.map((f) => h('div', { class: 'field' },
      h('label', { for: `audit-${f.name}` }, f.label),
      h('input', { id: `audit-${f.name}`, name: f.name, type: 'search', value: q[f.name] || '', placeholder: f.placeholder, testid: `filter-${f.name}`, autocomplete: 'off' }))),
    h('div', { class: 'field field-actions' },
      h('button', { type: 'submit', class: 'btn btn-primary', testid: 'filter-apply' }, 'Apply'),
      h('a', { class: 'btn btn-ghost', href: '#/audit' }, 'Clear')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const nq = {};
    new FormData(form).forEach((v, k) => { if (String(v).trim()) nq[k] = String(v).trim(); });
    navigate(href('audit', nq));
  });
  const recheck = h('button', { type: 'button', class: 'btn btn-small' }, 'Verify again');
  replace(main,
    pageHeader('Audit log', { sub: 'What Herald did, and who asked: the system events, chained by hash.', actions: [recheck] }),
    section('Chain', stateBox),
    form,
    h('section', { class: 'card', 'aria-labelledby': 'audit-list' }, h('h2', { id: 'audit-list', class: 'card-title' }, 'System events'), listBox, foot));

  const verify = async () => {
    replace(stateBox, loading('Verifying the chain…'));
    const rep = await api('/v1/audit/verify', { signal });
    replace(stateBox, chainState(rep));
    return rep;
  };
  recheck.addEventListener('click', () => verify().catch((err) => { if (!signal.aborted) replace(stateBox, errorBox(err)); }));

  let rep;
  try { rep = await verify(); } catch (err) { if (signal.aborted) return; replace(stateBox, errorBox(err)); }

  const columns = [
    { label: 'Seq', class: 'num', cell: (e) => String(e.seq) },
    { label: 'Occurred', cell: (e) => time(e.occurredAt) },
    { label: 'Subject', cell: (e) => h('span', null, pill(e.category, 'neutral'), ' ', subjectLink(e) || '') },
    { label: 'Verb', cell: (e) => h('strong', null, link(href('events', e.id), e.type)) },
    { label: 'Agent', cell: (e) => mono(truncate(e.agentId || '', 24)) },
    { label: 'Notes', cell: (e) => h('span', { class: 'small' }, truncate((e.data && (e.data.notes || e.data.reason)) || '', 90)) },
  ];
  let rows = [];
  let floor = 0;
  const render = () => {
    if (!rows.length) { replace(listBox, empty('No system events match.')); return; }
    const t = table(columns, rows, { caption: 'System events, newest first', rowAttrs: (e) => ({ testid: 'audit-row', 'data-id': e.id, class: 'row-link' }) });
    rowClicks(t.querySelector('tbody'), (id) => href('events', id));
    replace(listBox, t);
  };
  const loadMore = async (hi) => {
    const got = await loadNewest('/v1/audit', q, hi, signal, 200);
    rows = rows.concat(got.events);
    floor = got.floor;
    render();
    replace(foot);
    if (floor > 0) {
      const b = h('button', { type: 'button', class: 'btn' }, 'Load older');
      b.addEventListener('click', () => { b.disabled = true; loadMore(floor).catch((err) => { if (!signal.aborted) replace(foot, errorBox(err)); }); });
      foot.append(b);
    }
  };
  try {
    // The newest seq: the chain's when verify answered, else found by probing.
    const hi = (rep && rep.lastSeq) || await headSeq(signal);
    await loadMore(hi);
  } catch (err) {
    if (!signal.aborted) replace(listBox, errorBox(err));
  }
}
