// page-entities.js: lifecycles, profiles, sessions and visits.

import { api, seg } from './api.js';
import { href, navigate } from './router.js';
import { h, replace, loading, empty, errorBox, pill, time, link, mono, truncate, jsonView, dl, section, pageHeader, table, stat, num } from './dom.js';
import { eventsTable, loadRange } from './page-events.js';

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
      crumbs: [['Events', '#/events'], ['Lifecycle'], [truncate(lc.id, 40)]],
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
    pageHeader(p.id, { crumbs: [['Events', '#/events'], ['Profile'], [truncate(p.id, 40)]], sub: 'What Herald knows of this entity.' }),
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
