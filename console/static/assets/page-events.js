// page-events.js: the live events list (#/events) and one event
// (#/events/<id>).

import { api, seg } from './api.js';
import { href, navigate } from './router.js';
import { h, replace, append, loading, empty, errorBox, pill, time, link, mono, truncate, jsonView, dl, section, pageHeader, tableRow } from './dom.js';
import { openStream, loadNewest, loadRange } from './stream.js';
import { stackedBars, minuteBuckets } from './charts.js';

// The filters of the page, by their name in the hash query, and the API
// parameter each one sets.
const FILTERS = [
  { name: 'category', param: 'category', label: 'Category', placeholder: 'authentication' },
  { name: 'type', param: 'type', label: 'Type', placeholder: 'userLoggedIn' },
  { name: 'status', param: 'eventStatus', label: 'Status', placeholder: 'succeeded' },
  { name: 'customer', param: 'entity', label: 'Customer / entity', placeholder: 'cust-42' },
];

export function entityOf(e) {
  if (e.coreCustomerId) return e.coreCustomerId;
  if (e.agentType === 'customer' && e.agentId) return e.agentId;
  return '';
}

// subjectLink links a system event's subject (category = subject type,
// primaryId = subject id) to its page, when the console has one.
export function subjectLink(e) {
  const id = e.primaryId;
  if (!id) return null;
  switch (e.category) {
    case 'entity': return link(href('profiles', id), id);
    case 'session': return link(href('sessions', id), id);
    case 'visit': return link(href('visits', id), id);
    case 'subscription': return link(href('subscriptions', id), id);
    case 'workflow': return link(href('workflows', id), id);
    case 'work': return link(href('work', id), id);
    case 'eventtype': {
      const [c, t] = id.split('/');
      return t ? link(href('types', c, t), id) : mono(id);
    }
    default: return mono(id);
  }
}

export const eventColumns = [
  { label: 'Seq', class: 'num', cell: (e) => String(e.seq) },
  { label: 'Occurred', cell: (e) => time(e.occurredAt) },
  { label: 'Event', cell: (e) => h('span', { class: 'ev-name' }, link(href('events', e.id), e.type, { class: 'strong' }), h('span', { class: 'muted small' }, e.category)) },
  { label: 'Status', cell: (e) => pill(e.eventStatus) },
  { label: 'Entity', cell: (e) => { const x = entityOf(e); return x ? link(href('profiles', x), truncate(x, 28)) : (e.origin === 'system' ? subjectLink(e) : h('span', { class: 'muted' }, '—')); } },
  { label: 'Lifecycle', cell: (e) => (e.eventLifecycleId ? link(href('lifecycles', e.eventLifecycleId), truncate(e.eventLifecycleId, 24)) : h('span', { class: 'muted' }, '—')) },
  { label: 'Origin', cell: (e) => pill(e.origin) },
];

export function eventRowAttrs(e) {
  return { testid: 'event-row', 'data-id': e.id, class: 'row-link' };
}

// Rows act as links: a click anywhere but on a control opens the event.
export function rowClicks(tbody, hashOf) {
  tbody.addEventListener('click', (e) => {
    if (e.target.closest('a, button, input, select, summary')) return;
    const tr = e.target.closest('tr[data-id]');
    if (tr && window.getSelection().toString() === '') navigate(hashOf(tr.getAttribute('data-id')));
  });
}

export function eventsTable(events, caption) {
  const t = h('table', { class: 'table' },
    h('caption', { class: 'sr-only' }, caption),
    h('thead', null, h('tr', null, eventColumns.map((c) => h('th', { scope: 'col', class: c.class }, c.label)))),
    h('tbody', null, events.map((e) => tableRow(eventColumns, e, { rowAttrs: eventRowAttrs }))));
  rowClicks(t.tBodies[0], (id) => href('events', id));
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption }, t);
}

function typeKey(e) { return `${e.category}/${e.type}`; }

export function eventsPerMinuteChart(events, width, testid = 'chart-events-per-minute') {
  const buckets = minuteBuckets(events, (e) => Date.parse(e.receivedAt || e.occurredAt), 60);
  const totals = new Map();
  events.forEach((e) => totals.set(typeKey(e), (totals.get(typeKey(e)) || 0) + 1));
  const top = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, 7).map(([k]) => k);
  const series = totals.size > top.length ? [...top, 'other'] : top;
  const rows = buckets.map((b) => {
    const counts = {};
    b.items.forEach((e) => {
      const k = top.includes(typeKey(e)) ? typeKey(e) : 'other';
      counts[k] = (counts[k] || 0) + 1;
    });
    return { t: b.t, counts };
  });
  return stackedBars({ buckets: rows, series, title: 'Events per minute by type', yLabel: 'events', xLabel: 'minute received', testid, width });
}

export async function eventsPage(ctx) {
  ctx.title('Events');
  const { query, main, signal } = ctx;
  const filters = {};
  const apiQuery = {};
  FILTERS.forEach((f) => { const v = (query.get(f.name) || '').trim(); if (v) { filters[f.name] = v; apiQuery[f.param] = v; } });
  const origin = query.get('origin') || '';
  if (origin === 'api' || origin === 'system') { filters.origin = origin; apiQuery.origin = origin; }

  const modePill = h('span', { class: 'pill pill-neutral', 'aria-live': 'polite' }, 'connecting');
  let paused = false;
  const pauseBtn = h('button', { type: 'button', class: 'btn btn-small', 'aria-pressed': 'false' }, 'Pause');
  const form = filterForm(filters);
  const chartBox = h('div', { class: 'chart-box' }, loading('Loading chart…'));
  const listBox = h('div', null, loading('Loading events…'));
  const countLine = h('p', { class: 'muted small', 'aria-live': 'polite' });
  const more = h('div', { class: 'list-foot' });

  replace(main,
    pageHeader('Events', { pill: modePill, sub: 'Newest first. New events appear as they are stored.', actions: [pauseBtn] }),
    form,
    section('Events per minute', chartBox),
    h('section', { class: 'card', 'aria-labelledby': 'events-list-title' },
      h('div', { class: 'card-head' }, h('h2', { id: 'events-list-title', class: 'card-title' }, 'Events'), countLine),
      listBox, more));

  let events = []; // newest first
  const ids = new Set();
  let pending = []; // live events that came before the first load
  let loaded = false;
  let floor = 0;
  let tbody = null;
  let chartTimer = 0;

  const setMode = (m) => {
    const label = paused ? 'paused' : m;
    modePill.textContent = label === 'live' ? '● live' : label;
    modePill.className = 'pill ' + ({ live: 'pill-ok', polling: 'pill-info', error: 'pill-bad', paused: 'pill-warn' }[label] || 'pill-neutral');
  };
  let lastMode = 'connecting';

  const drawChart = () => { replace(chartBox, eventsPerMinuteChart(events.slice(0, 1000), chartBox.clientWidth)); };
  const scheduleChart = () => {
    if (chartTimer) return;
    chartTimer = setTimeout(() => { chartTimer = 0; if (!signal.aborted) drawChart(); }, 1500);
  };
  const updateCount = () => { countLine.textContent = `${events.length.toLocaleString()} event${events.length === 1 ? '' : 's'} shown`; };

  const renderList = () => {
    updateCount();
    if (!events.length) {
      replace(listBox, empty(Object.keys(filters).length ? 'No events match these filters.' : 'No events yet.', 'New events will appear here as they are stored.'));
      tbody = null;
      return;
    }
    const wrap = eventsTable(events, 'Events, newest first');
    tbody = wrap.querySelector('tbody');
    replace(listBox, wrap);
  };

  const addLive = (fresh) => {
    const add = fresh.filter((e) => !ids.has(e.id));
    if (!add.length) return;
    add.forEach((e) => ids.add(e.id));
    add.reverse();
    events = add.concat(events);
    if (!tbody) { renderList(); } else {
      const rows = add.map((e) => tableRow(eventColumns, e, { rowAttrs: (x) => ({ ...eventRowAttrs(x), class: 'row-link row-new' }) }));
      tbody.prepend(...rows);
      updateCount();
    }
    scheduleChart();
  };

  const renderMore = () => {
    replace(more);
    if (floor > 0) {
      const b = h('button', { type: 'button', class: 'btn' }, 'Load older events');
      b.addEventListener('click', async () => {
        b.disabled = true;
        b.textContent = 'Loading…';
        try {
          const got = await loadNewest('/v1/events', apiQuery, floor, signal, 200);
          floor = got.floor;
          const add = got.events.filter((e) => !ids.has(e.id));
          add.forEach((e) => ids.add(e.id));
          events = events.concat(add);
          if (tbody) tbody.append(...add.map((e) => tableRow(eventColumns, e, { rowAttrs: eventRowAttrs })));
          else renderList();
          updateCount();
          renderMore();
        } catch (err) {
          if (!signal.aborted) replace(more, errorBox(err));
        }
      });
      more.append(b);
    }
  };

  const stream = openStream(apiQuery, {
    signal,
    onMode: (m) => { lastMode = m; setMode(m); },
    onError: (err) => { if (!loaded) replace(listBox, errorBox(err, () => navigate(window.location.hash))); },
    onStart: async (seq) => {
      try {
        const got = await loadNewest('/v1/events', apiQuery, seq, signal, 1000);
        floor = got.floor;
        events = got.events;
        events.forEach((e) => ids.add(e.id));
        loaded = true;
        renderList();
        drawChart();
        renderMore();
        if (pending.length) { addLive(pending); pending = []; }
      } catch (err) {
        if (!signal.aborted) { replace(listBox, errorBox(err)); replace(chartBox); }
      }
    },
    onEvents: (fresh) => {
      if (paused) { pending.push(...fresh); return; }
      if (!loaded) { pending.push(...fresh); return; }
      addLive(fresh);
    },
  });
  pauseBtn.addEventListener('click', () => {
    paused = !paused;
    pauseBtn.textContent = paused ? 'Resume' : 'Pause';
    pauseBtn.setAttribute('aria-pressed', String(paused));
    if (!paused && loaded && pending.length) { addLive(pending); pending = []; }
    setMode(lastMode);
  });
  signal.addEventListener('abort', () => { clearTimeout(chartTimer); stream.stop(); });
}

function filterForm(filters) {
  const inputs = FILTERS.map((f) => h('div', { class: 'field' },
    h('label', { for: `filter-${f.name}` }, f.label),
    h('input', { id: `filter-${f.name}`, name: f.name, type: 'search', value: filters[f.name] || '', placeholder: f.placeholder, testid: `filter-${f.name}`, autocomplete: 'off', spellcheck: 'false' })));
  const originSel = h('select', { id: 'filter-origin', name: 'origin', testid: 'filter-origin' },
    [['', 'Any'], ['api', 'API (clients)'], ['system', 'System (Herald)']].map(([v, t]) => h('option', { value: v, selected: (filters.origin || '') === v }, t)));
  const form = h('form', { class: 'filters card', role: 'search', 'aria-label': 'Filter events' },
    inputs,
    h('div', { class: 'field' }, h('label', { for: 'filter-origin' }, 'Origin'), originSel),
    h('div', { class: 'field field-actions' },
      h('button', { type: 'submit', class: 'btn btn-primary', testid: 'filter-apply' }, 'Apply'),
      h('a', { class: 'btn btn-ghost', href: '#/events' }, 'Clear')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = {};
    new FormData(form).forEach((v, k) => { v = String(v).trim(); if (v) q[k] = v; });
    navigate(href('events', q));
  });
  return form;
}

export async function eventPage(ctx) {
  const { params, main, signal } = ctx;
  const e = await api(`/v1/events/${seg(params.id)}`, { signal });
  ctx.title(`${e.type} ${e.id}`);
  const entity = entityOf(e);
  const links = h('div', { class: 'related' },
    e.eventLifecycleId ? link(href('lifecycles', e.eventLifecycleId), ['Lifecycle ', mono(truncate(e.eventLifecycleId, 40))], { class: 'chip', testid: 'link-lifecycle' }) : null,
    entity ? link(href('profiles', entity), ['Profile ', mono(truncate(entity, 40))], { class: 'chip', testid: 'link-profile' }) : null,
    e.sessionId ? link(href('sessions', e.sessionId), ['Session ', mono(truncate(e.sessionId, 40))], { class: 'chip', testid: 'link-session' }) : null,
    link(href('types', e.category, e.type), ['Type ', mono(`${e.category}/${e.type}`)], { class: 'chip' }),
    link(href('events', { type: e.type, category: e.category }), 'Similar events', { class: 'chip' }));
  const props = dl([
    ['ID', mono(e.id)],
    ['Seq', String(e.seq)],
    ['Category / type', `${e.category} / ${e.type}`],
    ['Status', e.eventStatus ? pill(e.eventStatus) : undefined],
    ['Occurred', time(e.occurredAt)],
    ['Received', time(e.receivedAt)],
    ['Agent', e.agentId ? [mono(e.agentId), e.agentType ? h('span', { class: 'muted' }, ` (${e.agentType})`) : null] : undefined],
    ['Customer', e.coreCustomerId ? link(href('profiles', e.coreCustomerId), e.coreCustomerId) : undefined],
    ['Customer serial', e.customerSerialId],
    ['Primary id', e.primaryId ? (e.origin === 'system' ? subjectLink(e) : mono(e.primaryId)) : undefined],
    ['Secondary id', e.secondaryId ? mono(e.secondaryId) : undefined],
    ['Host', e.host],
    ['Lifecycle', e.eventLifecycleId ? link(href('lifecycles', e.eventLifecycleId), e.eventLifecycleId) : undefined],
    ['Session', e.sessionId ? link(href('sessions', e.sessionId), e.sessionId) : undefined],
    ['Origin', pill(e.origin)],
    ['Flags', e.flags && e.flags.length ? e.flags.map((f) => pill(f, 'warn')) : undefined],
    ['Redacted', e.redacted ? pill('redacted', 'warn') : undefined],
    ['Hash', e.hash ? mono(e.hash, { class: 'mono break' }) : undefined],
  ]);
  replace(main,
    pageHeader(e.type, { crumbs: [['Events', '#/events'], [e.category], [truncate(e.id, 32)]], pill: e.eventStatus ? pill(e.eventStatus) : null, sub: `${e.category} · seq ${e.seq}` }),
    links,
    h('div', { class: 'grid-2' },
      section('Details', props),
      section('Stored event', jsonView(e, { testid: 'event-json', title: 'application/json', label: 'The event as stored' }))));
}

// Re-exported for other pages that list events.
export { loadRange, loadNewest, append };
