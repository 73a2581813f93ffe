// page-entities.js: lifecycles and profiles (lists and detail), sessions
// and visits.

import { api, seg } from './api.js';
import { href, navigate } from './router.js';
import { h, replace, loading, empty, errorBox, pill, time, link, mono, truncate, jsonView, dl, section, pageHeader, table, tableRow, stat, num } from './dom.js';
import { eventsTable, loadRange, rowClicks } from './page-events.js';

const dash = () => h('span', { class: 'muted' }, '—');

export async function lifecyclePage(ctx) {
  const { params, main, signal } = ctx;
  const lc = await api(`/v1/lifecycles/${seg(params.id)}`, { signal });
  ctx.title(`Lifecycle ${lc.id}`);
  const byId = new Map((lc.events || []).map((e) => [e.id, e]));
  const history = lc.history || [];
  const timeline = history.length
    ? h('ol', { class: 'timeline', testid: 'lifecycle-timeline', 'aria-label': 'Status history' },
      history.map((st, i) => {
        const e = byId.get(st.eventId);
        return h('li', { class: 'timeline-item' + (st.terminal ? ' is-terminal' : '') + (i === history.length - 1 ? ' is-last' : ''), testid: 'timeline-item' },
          h('span', { class: 'timeline-dot', 'aria-hidden': 'true' }),
          h('div', { class: 'timeline-body' },
            h('div', { class: 'timeline-head' }, pill(st.status), st.terminal ? h('span', { class: 'muted small' }, 'terminal') : null, time(st.occurredAt)),
            h('div', { class: 'small' }, link(href('events', st.eventId), ['Event ', mono(truncate(st.eventId, 40))]), h('span', { class: 'muted' }, ` · seq ${st.seq}`),
              e && e.agentId ? h('span', { class: 'muted' }, ` · by ${e.agentId}`) : null)));
      }))
    : h('div', { testid: 'lifecycle-timeline' }, empty('No status yet.', 'None of the events of this lifecycle had an eventStatus.'));
  replace(main,
    pageHeader(`${lc.category}/${lc.type}`, {
      crumbs: [['Lifecycles', '#/lifecycles'], [truncate(lc.id, 40)]],
      pill: pill(lc.status || 'no status', lc.terminal ? undefined : 'info'),
      sub: `Lifecycle ${lc.id}`,
    }),
    h('div', { class: 'related' },
      lc.entityId ? link(href('profiles', lc.entityId), ['Profile ', mono(lc.entityId)], { class: 'chip', testid: 'link-profile' }) : null,
      link(href('types', lc.category, lc.type), ['Type ', mono(`${lc.category}/${lc.type}`)], { class: 'chip' }),
      link(href('events', { type: lc.type, category: lc.category }), 'Events of this type', { class: 'chip' })),
    h('div', { class: 'stats' },
      stat('Status', pill(lc.status || '—', lc.terminal ? undefined : 'info'), lc.terminal ? 'ended' : 'open'),
      stat('Events', num(lc.eventCount)),
      stat('First', time(lc.firstOccurredAt)),
      stat('Last', time(lc.lastOccurredAt))),
    h('div', { class: 'grid-2' },
      section('Timeline', timeline),
      section('Merged data', lc.redacted ? empty('Redacted.', 'The entity\'s profile was erased.') : jsonView(lc.data || {}, { title: 'latest value of each field' }))),
    section('Events', (lc.events || []).length ? eventsTable([...lc.events].reverse(), 'Events of the lifecycle') : empty('No events.')));
}

export async function profilePage(ctx) {
  const { params, main, signal } = ctx;
  const p = await api(`/v1/profiles/${seg(params.id)}`, { signal });
  ctx.title(`Profile ${p.id}`);
  const attrs = Object.entries(p.attributes || {}).sort(([a], [b]) => a.localeCompare(b));
  const counts = Object.entries(p.counts || {}).sort((a, b) => b[1] - a[1]);
  const recent = h('div', null, loading('Loading recent events…'));
  replace(main,
    pageHeader(p.id, { crumbs: [['Profiles', '#/profiles'], [truncate(p.id, 40)]], sub: 'What Herald knows of this entity.' }),
    h('div', { class: 'related' },
      link(href('events', { customer: p.id }), 'All events of this entity', { class: 'chip' }),
      link(href('sessions', { entity: p.id }), 'Sessions', { class: 'chip' }),
      link(href('visits', { entity: p.id }), 'Visits', { class: 'chip' })),
    h('div', { class: 'stats' },
      stat('Events', num(p.eventCount)),
      stat('First seen', time(p.firstSeenAt)),
      stat('Last seen', time(p.lastSeenAt)),
      stat('Attributes', num(attrs.length))),
    section('Attributes', attrs.length
      ? table([
        { label: 'Attribute', cell: ([k]) => mono(k) },
        { label: 'Value', cell: ([, a]) => h('code', { class: 'mono break' }, typeof a.value === 'string' ? a.value : JSON.stringify(a.value)) },
        { label: 'Set by', cell: ([, a]) => link(href('events', a.eventId), truncate(a.eventId, 30), { testid: 'attribute-event' }) },
        { label: 'Seq', class: 'num', cell: ([, a]) => String(a.seq) },
        { label: 'Occurred', cell: ([, a]) => time(a.occurredAt) },
      ], attrs, { caption: 'Attributes and the event that set each', rowHeader: true })
      : empty('No attributes.', 'Only events whose status persists write attributes.')),
    h('div', { class: 'grid-2' },
      section('Events by type', counts.length ? table([
        { label: 'Type', cell: ([k]) => { const [c, t] = k.split('/'); return link(href('events', { category: c, type: t, customer: p.id }), k); } },
        { label: 'Events', class: 'num', cell: ([, n]) => num(n) },
      ], counts, { caption: 'Event counts by type', rowHeader: true, compact: true }) : empty('No counts.')),
      section('Profile', jsonView(p, { title: 'application/json' }))),
    section('Recent events', recent));
  try {
    const evs = await loadRange('/v1/events', { entity: p.id }, Math.max(0, p.lastSeq - 5000), null, signal, 50);
    replace(recent, evs.length ? eventsTable(evs, 'Recent events of the entity') : empty('No recent events.'));
  } catch (err) {
    if (!signal.aborted) replace(recent, errorBox(err));
  }
}

// ---- sessions and visits ----

function journeyFilters(kind, query) {
  const entity = query.get('entity') || '';
  const state = query.get('state') || '';
  const form = h('form', { class: 'filters card', role: 'search', 'aria-label': `Filter ${kind}` },
    h('div', { class: 'field' }, h('label', { for: 'jf-entity' }, 'Entity'), h('input', { id: 'jf-entity', name: 'entity', type: 'search', value: entity, placeholder: 'cust-42', testid: 'filter-entity' })),
    h('div', { class: 'field' }, h('label', { for: 'jf-state' }, 'State'),
      h('select', { id: 'jf-state', name: 'state', testid: 'filter-state' }, [['', 'Any'], ['open', 'Open'], ['closed', 'Ended']].map(([v, t]) => h('option', { value: v, selected: v === state }, t)))),
    h('div', { class: 'field field-actions' },
      h('button', { type: 'submit', class: 'btn btn-primary', testid: 'filter-apply' }, 'Apply'),
      h('a', { class: 'btn btn-ghost', href: `#/${kind}` }, 'Clear')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = {};
    new FormData(form).forEach((v, k) => { if (String(v).trim()) q[k] = String(v).trim(); });
    navigate(href(kind, q));
  });
  return { form, query: { entity, state } };
}

function journeyState(j) {
  return j.endedAt ? pill('ended', 'neutral') : pill('open', 'info');
}

async function journeyList(ctx, kind, title, columns) {
  ctx.title(title);
  const { main, signal } = ctx;
  const { form, query } = journeyFilters(kind, ctx.query);
  const box = h('div', null, loading());
  const foot = h('div', { class: 'list-foot' });
  replace(main, pageHeader(title, { sub: kind === 'sessions' ? 'Logged-in periods: from a login to a logout or a timeout.' : 'Periods of activity of an entity, ended by inactivity.' }), form, h('section', { class: 'card' }, box, foot));
  let rows = [];
  const load = async (next) => {
    const page = await api(`/v1/${kind}`, { query: { ...query, limit: 100, next }, signal });
    rows = rows.concat(page[kind] || []);
    replace(box, rows.length ? table(columns, rows, { caption: title, rowAttrs: (r) => ({ testid: `${kind.slice(0, -1)}-row`, 'data-id': r.id }) }) : empty(`No ${kind}.`));
    replace(foot);
    if (page.hasMore && page.next) {
      const b = h('button', { type: 'button', class: 'btn' }, 'Load more');
      b.addEventListener('click', () => { b.disabled = true; load(page.next).catch((err) => { if (!signal.aborted) replace(foot, errorBox(err)); }); });
      foot.append(b);
    }
  };
  await load();
}

const journeyColumns = (kind) => [
  { label: 'ID', cell: (s) => link(href(kind, s.id), truncate(s.id, 20), { class: 'mono' }) },
  { label: 'Entity', cell: (s) => (s.entityId ? link(href('profiles', s.entityId), s.entityId) : dash()) },
  { label: 'State', cell: journeyState },
  { label: 'Started', cell: (s) => time(s.startedAt) },
  { label: 'Last activity', cell: (s) => time(s.lastActivityAt) },
  { label: 'Ended', cell: (s) => (s.endedAt ? [time(s.endedAt), s.endReason ? h('span', { class: 'muted small' }, ` (${s.endReason})`) : null] : dash()) },
  { label: 'Events', class: 'num', cell: (s) => num(s.eventCount) },
];

export const sessionsPage = (ctx) => journeyList(ctx, 'sessions', 'Sessions', journeyColumns('sessions'));
export const visitsPage = (ctx) => journeyList(ctx, 'visits', 'Visits', journeyColumns('visits'));

async function journeyDetail(ctx, kind, label) {
  const { params, main, signal } = ctx;
  const j = await api(`/v1/${kind}/${seg(params.id)}`, { signal });
  ctx.title(`${label} ${j.id}`);
  const evBox = h('div', null, loading('Loading events…'));
  const first = kind === 'sessions' ? j.startSeq : j.firstSeq;
  replace(main,
    pageHeader(`${label} ${truncate(j.id, 24)}`, { crumbs: [[`${label}s`, `#/${kind}`], [truncate(j.id, 40)]], pill: journeyState(j) }),
    h('div', { class: 'related' },
      j.entityId ? link(href('profiles', j.entityId), ['Profile ', mono(j.entityId)], { class: 'chip', testid: 'link-profile' }) : null,
      j.startEventId ? link(href('events', j.startEventId), ['Start event ', mono(truncate(j.startEventId, 30))], { class: 'chip' }) : null),
    h('div', { class: 'stats' },
      stat('Events', num(j.eventCount)),
      stat('Started', time(j.startedAt)),
      stat('Last activity', time(j.lastActivityAt)),
      stat(j.endedAt ? 'Ended' : 'Expires', time(j.endedAt || j.expiresAt), j.endReason)),
    h('div', { class: 'grid-2' },
      section('Details', dl([
        ['ID', mono(j.id)],
        ['Entity', j.entityId ? link(href('profiles', j.entityId), j.entityId) : undefined],
        ['First seq', first !== undefined ? String(first) : undefined],
        ['Last seq', j.lastSeq !== undefined ? String(j.lastSeq) : undefined],
        ['End reason', j.endReason],
      ])),
      section('JSON', jsonView(j))),
    section('Events', evBox));
  try {
    const q = kind === 'sessions' ? { sessionId: j.id } : { entity: j.entityId };
    let evs = await loadRange('/v1/events', q, Math.max(0, (first || 1) - 1), j.lastSeq || null, signal, 500);
    if (kind === 'visits') evs = evs.filter((e) => e.origin !== 'system');
    replace(evBox, evs.length ? eventsTable(evs, `Events of the ${label.toLowerCase()}`) : empty('No events.'));
  } catch (err) {
    if (!signal.aborted) replace(evBox, errorBox(err));
  }
}

export const sessionPage = (ctx) => journeyDetail(ctx, 'sessions', 'Session');
export const visitPage = (ctx) => journeyDetail(ctx, 'visits', 'Visit');

// ---- lifecycle and profile lists ----

// A filter of a list page: its name in the hash query (and the input's
// name), its label, and how its value goes to the API (param, or
// toApi(value) answering an object of parameters).
function listFilterForm(kind, what, filters, query) {
  const fields = filters.map((f) => {
    const id = `filter-${f.name}`;
    const value = query.get(f.name) || '';
    const control = f.options
      ? h('select', { id, name: f.name, testid: id }, f.options.map(([v, t]) => h('option', { value: v, selected: v === value }, t)))
      : h('input', { id, name: f.name, type: f.type || 'search', value, placeholder: f.placeholder, testid: id, autocomplete: 'off', spellcheck: 'false'});
    return h('div', { class: 'field' }, h('label', { for: id }, f.label), control);
  });
  const form = h('form', { class: 'filters card', role: 'search', 'aria-label': `Filter ${what}` },
    fields,
    h('div', { class: 'field field-actions' },
      h('button', { type: 'submit', class: 'btn btn-primary', testid: 'filter-apply' }, 'Apply'),
      h('a', { class: 'btn btn-ghost', href: `#/${kind}` }, 'Clear')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = {};
    new FormData(form).forEach((v, k) => { v = String(v).trim(); if (v) q[k] = v; });
    navigate(href(kind, q));
  });
  return form;
}

// localToISO turns a datetime-local value into RFC 3339 (UTC).
function localToISO(v) {
  const t = new Date(v);
  return Number.isNaN(t.getTime()) ? v : t.toISOString();
}

// pagedList shows a list page: header, filters kept in the hash query, a
// table of the API's pages with "Load more" while it has more.
async function pagedList(ctx, o) {
  ctx.title(o.title);
  const { main, signal, query } = ctx;
  const apiQuery = {};
  let filtered = false;
  o.filters.forEach((f) => {
    const v = (query.get(f.name) || '').trim();
    if (!v) return;
    filtered = true;
    if (f.toApi) Object.assign(apiQuery, f.toApi(v));
    else apiQuery[f.param || f.name] = v;
  });
  const box = h('div', null, loading(`Loading ${o.kind}…`));
  const foot = h('div', { class: 'list-foot' });
  const countLine = h('p', { class: 'muted small', 'aria-live': 'polite' });
  const titleId = `${o.kind}-list-title`;
  replace(main,
    pageHeader(o.title, { sub: o.sub }),
    listFilterForm(o.kind, o.kind, o.filters, query),
    h('section', { class: 'card', 'aria-labelledby': titleId },
      h('div', { class: 'card-head' }, h('h2', { id: titleId, class: 'card-title' }, o.title), countLine),
      box, foot));
  let rows = [];
  let tbody = null;
  const rowAttrs = (r) => ({ testid: o.rowTestid, 'data-id': r.id, class: 'row-link' });
  const load = async (next) => {
    const page = await api(`/v1/${o.kind}`, { query: { ...apiQuery, limit: 100, next }, signal });
    const got = page[o.kind] || [];
    rows = rows.concat(got);
    countLine.textContent = `${rows.length.toLocaleString()} shown${page.hasMore ? ', more to load' : ''}`;
    if (!rows.length) {
      replace(box, empty(filtered ? `No ${o.kind} match these filters.` : `No ${o.kind} yet.`, o.emptyHint));
    } else if (tbody && next) {
      tbody.append(...got.map((r) => tableRow(o.columns, r, { rowAttrs })));
    } else {
      const wrap = table(o.columns, rows, { caption: o.caption, rowAttrs });
      tbody = wrap.querySelector('tbody');
      rowClicks(tbody, (id) => href(o.kind, id));
      replace(box, wrap);
    }
    replace(foot);
    if (page.hasMore && page.next) {
      const b = h('button', { type: 'button', class: 'btn', testid: 'load-more' }, 'Load more');
      b.addEventListener('click', () => {
        b.disabled = true;
        b.textContent = 'Loading…';
        load(page.next).catch((err) => { if (!signal.aborted) replace(foot, errorBox(err)); });
      });
      foot.append(b);
    }
  };
  try {
    await load();
  } catch (err) {
    if (signal.aborted) return;
    if (err && err.status === 401) throw err;
    countLine.textContent = '';
    replace(box, errorBox(err, () => navigate(window.location.hash)));
  }
}

const lifecycleFilters = [
  { name: 'category', label: 'Category', placeholder: 'authentication' },
  { name: 'type', label: 'Type', placeholder: 'login' },
  { name: 'status', label: 'Status', placeholder: 'succeeded' },
  { name: 'terminal', label: 'Terminal', options: [['', 'Any'], ['yes', 'Yes (ended)'], ['no', 'No (open)']], toApi: (v) => (v === 'yes' ? { terminal: 'true' } : v === 'no' ? { terminal: 'false' } : {}) },
  { name: 'entity', label: 'Entity', placeholder: 'cust-42' },
];

const lifecycleColumns = [
  { label: 'Lifecycle', cell: (l) => link(href('lifecycles', l.id), truncate(l.id, 32), { class: 'mono' }) },
  { label: 'Type', cell: (l) => h('span', { class: 'ev-name' }, h('span', { class: 'strong' }, l.type), h('span', { class: 'muted small' }, l.category)) },
  { label: 'Status', cell: (l) => pill(l.status || 'no status', l.terminal ? undefined : 'info') },
  { label: 'Terminal', cell: (l) => (l.terminal ? 'yes' : h('span', { class: 'muted' }, 'no')) },
  { label: 'Entity', cell: (l) => (l.entityId ? link(href('profiles', l.entityId), truncate(l.entityId, 28)) : dash()) },
  { label: 'Events', class: 'num', cell: (l) => num(l.eventCount) },
  { label: 'Began', cell: (l) => time(l.firstOccurredAt) },
  { label: 'Updated', cell: (l) => time(l.updatedAt) },
];

export const lifecyclesPage = (ctx) => pagedList(ctx, {
  kind: 'lifecycles',
  title: 'Lifecycles',
  sub: 'Events that share an eventLifecycleId, with their current status. Oldest first.',
  caption: 'Lifecycles, oldest first',
  rowTestid: 'lifecycle-row',
  filters: lifecycleFilters,
  columns: lifecycleColumns,
  emptyHint: 'A lifecycle starts with the first event that has an eventLifecycleId.',
});

const profileFilters = [
  { name: 'attribute', label: 'Attribute', placeholder: 'email' },
  { name: 'value', label: 'Value', placeholder: 'alice@example.com' },
  { name: 'seenAfter', label: 'Last seen from', type: 'datetime-local', toApi: (v) => ({ seenAfter: localToISO(v) }) },
  { name: 'seenBefore', label: 'Last seen before', type: 'datetime-local', toApi: (v) => ({ seenBefore: localToISO(v) }) },
];

function attributeNames(p) {
  const names = Object.keys(p.attributes || {}).sort();
  if (!names.length) return dash();
  const shown = names.slice(0, 4);
  return h('span', { class: 'attr-names' }, shown.map((n) => mono(n)), names.length > shown.length ? h('span', { class: 'muted small' }, `+${names.length - shown.length} more`) : null);
}

const profileColumns = [
  { label: 'Entity', cell: (p) => link(href('profiles', p.id), truncate(p.id, 36), { class: 'mono' }) },
  { label: 'Events', class: 'num', cell: (p) => num(p.eventCount) },
  { label: 'First seen', cell: (p) => time(p.firstSeenAt) },
  { label: 'Last seen', cell: (p) => time(p.lastSeenAt) },
  { label: 'Attributes', cell: attributeNames },
];

export const profilesPage = (ctx) => pagedList(ctx, {
  kind: 'profiles',
  title: 'Profiles',
  sub: 'What Herald knows of each entity. Oldest first.',
  caption: 'Profiles, oldest first',
  rowTestid: 'profile-row',
  filters: profileFilters,
  columns: profileColumns,
  emptyHint: 'A profile starts with the first event about an entity (coreCustomerId, or a customer agent).',
});
