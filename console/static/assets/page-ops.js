// page-ops.js: workflows and their runs, work jobs (exports and alerts)
// and event types.

import { api, seg } from './api.js';
import { href, navigate } from './router.js';
import { h, replace, loading, empty, errorBox, pill, time, link, mono, truncate, jsonView, dl, section, pageHeader, table, stat, num, toast } from './dom.js';

const dash = () => h('span', { class: 'muted' }, '—');

function filterSummary(f) {
  if (!f || !Object.keys(f).length) return h('span', { class: 'muted' }, 'every event');
  return mono(truncate(JSON.stringify(f), 60), { title: JSON.stringify(f) });
}

function actionButton(label, testid, fn, errBox) {
  const b = h('button', { type: 'button', class: 'btn', testid }, label);
  b.addEventListener('click', async () => {
    b.disabled = true;
    replace(errBox);
    try { await fn(); } catch (err) { if (err.name !== 'AbortError') replace(errBox, errorBox(err)); } finally { b.disabled = false; }
  });
  return b;
}

// ---- workflows ----

export async function workflowsPage(ctx) {
  ctx.title('Workflows');
  const { main, signal } = ctx;
  const box = h('div', null, loading());
  replace(main, pageHeader('Workflows', { sub: 'Steps that run for each matching event, or for a status of a type.' }), h('section', { class: 'card' }, box));
  const { workflows = [] } = await api('/v1/workflows', { signal });
  replace(box, workflows.length ? table([
    { label: 'Name', cell: (w) => h('span', { class: 'ev-name' }, link(href('workflows', w.name), w.name, { class: 'strong' }), w.description ? h('span', { class: 'muted small' }, truncate(w.description, 60)) : null) },
    { label: 'State', cell: (w) => pill(w.state) },
    { label: 'Steps', cell: (w) => h('span', { class: 'steps-inline' }, (w.steps || []).map((s) => pill(s.kind, 'neutral'))) },
    { label: 'Filter', cell: (w) => filterSummary(w.filter) },
    { label: 'Cursor', class: 'num', cell: (w) => num(w.cursor) },
    { label: 'Updated', cell: (w) => time(w.updatedAt) },
  ], workflows, { caption: 'Workflows', rowAttrs: (w) => ({ testid: 'workflow-row', 'data-id': w.name }) }) : empty('No workflows.', 'Create one with POST /v1/workflows.'));
}

function runSteps(run) {
  return table([
    { label: 'Step', cell: (s) => h('span', null, h('strong', null, s.name), ' ', h('span', { class: 'muted small' }, s.kind)) },
    { label: 'State', cell: (s) => pill(s.state) },
    { label: 'Failed attempts', class: 'num', cell: (s) => String(s.attempts) },
    { label: 'Started', cell: (s) => time(s.startedAt) },
    { label: 'Finished', cell: (s) => time(s.finishedAt) },
    { label: 'Output / error', cell: (s) => (s.error ? mono(truncate(s.error, 80), { class: 'mono bad', title: s.error }) : s.output !== undefined ? mono(truncate(JSON.stringify(s.output), 80), { title: JSON.stringify(s.output) }) : dash()) },
  ], run.steps || [], { caption: `Steps of run ${run.id}`, compact: true });
}

export async function workflowPage(ctx) {
  const { params, main, signal, query } = ctx;
  const base = `/v1/workflows/${seg(params.name)}`;
  let wf = await api(base, { signal });
  ctx.title(`Workflow ${wf.name}`);
  const headBox = h('div');
  const errBox = h('div');
  const runsBox = h('div', null, loading('Loading runs…'));
  const foot = h('div', { class: 'list-foot' });
  const state = query.get('state') || '';
  const renderHead = () => {
    const toggle = actionButton(wf.state === 'active' ? 'Pause' : 'Resume', wf.state === 'active' ? 'pause' : 'resume', async () => {
      wf = await api(`${base}/${wf.state === 'active' ? 'pause' : 'resume'}`, { method: 'POST', signal });
      toast(`Workflow ${wf.state}.`);
      renderHead();
    }, errBox);
    replace(headBox, pageHeader(wf.name, { crumbs: [['Workflows', '#/workflows'], [wf.name]], pill: pill(wf.state), sub: wf.description, actions: [toggle] }), errBox);
  };
  renderHead();
  const stateSel = h('select', { id: 'run-state', name: 'state', testid: 'filter-state' }, [['', 'Any'], ['pending', 'Pending'], ['running', 'Running'], ['completed', 'Completed'], ['failed', 'Failed']].map(([v, t]) => h('option', { value: v, selected: v === state }, t)));
  stateSel.addEventListener('change', () => navigate(href('workflows', wf.name, { state: stateSel.value })));
  replace(main,
    headBox,
    h('div', { class: 'grid-2' },
      section('Steps', table([
        { label: '#', class: 'num', cell: (s) => String(wf.steps.indexOf(s) + 1) },
        { label: 'Name', cell: (s) => h('strong', null, s.name || '') },
        { label: 'Kind', cell: (s) => pill(s.kind, 'neutral') },
        { label: 'Target', cell: (s) => (s.url ? mono(truncate(s.url, 50), { title: s.url }) : s.to ? mono(truncate([].concat(s.to).join(', '), 50)) : s.attributes ? mono(truncate(JSON.stringify(s.attributes), 50)) : dash()) },
      ], wf.steps || [], { caption: 'Steps', compact: true })),
      section('Definition', dl([
        ['Filter', filterSummary(wf.filter)],
        ['Max depth', String(wf.maxDepth ?? '')],
        ['Cursor', num(wf.cursor)],
        ['Created', time(wf.createdAt)],
        ['Updated', time(wf.updatedAt)],
      ]), jsonView(wf))),
    h('section', { class: 'card', 'aria-labelledby': 'runs-title' },
      h('div', { class: 'card-head' }, h('h2', { id: 'runs-title', class: 'card-title' }, 'Runs'),
        h('div', { class: 'inline-fields' }, h('label', { for: 'run-state' }, 'State'), stateSel)),
      runsBox, foot));
  let runs = [];
  const load = async (before) => {
    const page = await api(`${base}/runs`, { query: { limit: 50, state, before }, signal });
    runs = runs.concat(page.runs || []);
    replace(runsBox, runs.length ? h('div', { class: 'runs' }, runs.map((r) => h('details', { class: 'run', testid: 'run-row', 'data-id': r.id },
      h('summary', null,
        pill(r.state), ' ',
        h('span', { class: 'mono small' }, truncate(r.id, 18)), ' ',
        h('span', { class: 'muted small' }, `${r.trigger} · depth ${r.depth} · step ${r.step}/${(r.steps || []).length || (wf.steps || []).length} · `), time(r.createdAt),
        r.error ? h('span', { class: 'small bad' }, ' · ', truncate(r.error, 60)) : null),
      h('div', { class: 'run-body' },
        h('p', { class: 'small' }, 'Triggered by ', link(href('events', r.eventId), r.eventId, { class: 'mono' }), ` (seq ${r.seq})`, r.finishedAt ? [' · finished ', time(r.finishedAt)] : null, r.nextAt ? [' · next ', time(r.nextAt)] : null),
        (r.steps || []).length ? runSteps(r) : empty('No step performed yet.'))))) : empty('No runs.', state ? 'No run is in this state.' : 'Runs appear when a matching event is stored.'));
    replace(foot);
    if (page.hasMore && page.next) {
      const b = h('button', { type: 'button', class: 'btn' }, 'Load older runs');
      b.addEventListener('click', () => { b.disabled = true; load(page.next).catch((err) => { if (!signal.aborted) replace(foot, errorBox(err)); }); });
      foot.append(b);
    }
  };
  try { await load(); } catch (err) { if (!signal.aborted) replace(runsBox, errorBox(err)); }
}

// ---- work: exports and alerts ----

function workWhat(w) {
  if (w.kind === 'export' && w.export) {
    const e = w.export;
    const d = e.destination || {};
    return `${e.mode}${e.cron ? ` (${e.cron})` : e.every ? ` every ${e.every}` : ''} → ${d.type || '?'}${d.format ? ` ${d.format}` : ''}`;
  }
  if (w.kind === 'alert' && w.alert) {
    const a = w.alert;
    const t = a.target || {};
    return `${a.threshold && a.threshold > 1 ? `${a.threshold} in ${a.window}` : 'every event'} → ${t.kind || t.type || 'target'}`;
  }
  return '';
}

export async function workListPage(ctx) {
  ctx.title('Exports & alerts');
  const { main, signal, query } = ctx;
  const kind = query.get('kind') || '';
  const box = h('div', null, loading());
  const tabs = h('nav', { class: 'tabs', 'aria-label': 'Kind' }, [['', 'All'], ['export', 'Exports'], ['alert', 'Alerts']].map(([v, t]) =>
    link(href('work', { kind: v }), t, { class: 'tab', 'aria-current': v === kind ? 'page' : null })));
  replace(main, pageHeader('Exports & alerts', { sub: 'Jobs that read the log: exports copy events out, alerts send a message when events match.' }), tabs, h('section', { class: 'card' }, box));
  const { work = [] } = await api('/v1/work', { query: { kind }, signal });
  replace(box, work.length ? table([
    { label: 'Name', cell: (w) => h('span', { class: 'ev-name' }, link(href('work', w.id), w.name || w.id, { class: 'strong' }), h('span', { class: 'muted small mono' }, w.id)) },
    { label: 'Kind', cell: (w) => pill(w.kind, 'neutral') },
    { label: 'What', cell: (w) => h('span', { class: 'small' }, workWhat(w)) },
    { label: 'State', cell: (w) => [pill(w.state), w.runtime && w.runtime.syncing ? h('span', { class: 'muted small' }, ' syncing') : null] },
    { label: 'Events', class: 'num', cell: (w) => num(w.runtime && w.runtime.events) },
    { label: 'Failures', class: 'num', cell: (w) => num(w.runtime && w.runtime.failures) },
    { label: 'Last', cell: (w) => (w.runtime && w.runtime.lastCycle ? [pill(w.runtime.lastCycle.state), ' ', time(w.runtime.lastCycle.finishedAt)] : dash()) },
    { label: 'Next run', cell: (w) => time(w.nextRunAt || (w.runtime && w.runtime.nextRunAt)) },
  ], work, { caption: 'Jobs', rowAttrs: (w) => ({ testid: 'work-row', 'data-id': w.id }) }) : empty('No jobs.', 'Create one with POST /v1/exports or POST /v1/alerts.'));
}

export async function workPage(ctx) {
  const { params, main, signal } = ctx;
  const base = `/v1/work/${seg(params.id)}`;
  let w = await api(base, { signal });
  ctx.title(`${w.kind} ${w.name || w.id}`);
  const headBox = h('div');
  const errBox = h('div');
  const histBox = h('div', null, loading('Loading history…'));
  const rtBox = h('div');
  const foot = h('div', { class: 'list-foot' });
  const renderRuntime = () => {
    const r = w.runtime || {};
    replace(rtBox,
      h('div', { class: 'stats' },
        stat('State', pill(w.state), w.stateReason),
        stat('Events', num(r.events), `${num(r.units)} units · ${num(r.cycles)} cycles`),
        w.kind === 'alert' ? stat('Firings', num(r.firings), `${num(r.suppressed)} suppressed`) : stat('Cursor', num(r.cursor), r.syncing ? 'syncing' : null),
        stat('Failures', h('span', { class: r.failures ? 'bad' : '' }, num(r.failures))),
        stat('Next run', time(w.nextRunAt || r.nextRunAt), r.startedAt ? ['started ', time(r.startedAt)] : null)),
      r.pending ? h('p', { class: 'notice' }, `Cycle ${r.pending.number} under way: seq ${r.pending.afterSeq}–${r.pending.upTo}, done up to ${r.pending.done}.`, r.pending.lastError ? ` Last error: ${r.pending.lastError}` : '') : null,
      r.firing ? h('p', { class: 'notice' }, `Firing ${r.firing.number} not sent yet (${r.firing.attempts || 0} attempts).`, r.firing.lastError ? ` Last error: ${r.firing.lastError}` : '') : null);
  };
  const renderHead = () => {
    const toggle = actionButton(w.state === 'paused' ? 'Resume' : 'Pause', w.state === 'paused' ? 'resume' : 'pause', async () => {
      w = await api(`${base}/${w.state === 'paused' ? 'resume' : 'pause'}`, { method: 'POST', signal });
      toast(`Job ${w.state}.`);
      renderHead();
      renderRuntime();
    }, errBox);
    const run = actionButton('Run now', 'run-now', async () => {
      w = await api(`${base}/run`, { method: 'POST', signal });
      toast('A cycle was asked for.');
      renderRuntime();
      setTimeout(() => { if (!signal.aborted) loadHist(); }, 1500);
    }, errBox);
    replace(headBox, pageHeader(w.name || w.id, { crumbs: [['Exports & alerts', '#/work'], [w.id]], pill: pill(w.state), sub: `${w.kind} · ${workWhat(w)}`, actions: w.kind === 'export' ? [run, toggle] : [toggle] }), errBox);
  };
  renderHead();
  renderRuntime();
  replace(main, headBox, rtBox,
    h('section', { class: 'card', 'aria-labelledby': 'hist-title' }, h('h2', { id: 'hist-title', class: 'card-title' }, w.kind === 'alert' ? 'Firings' : 'Cycles'), histBox, foot),
    h('div', { class: 'grid-2' },
      section('Configuration', dl([
        ['ID', mono(w.id)],
        ['Filter', filterSummary(w.filter)],
        ['Created', time(w.createdAt)],
        ['Updated', time(w.updatedAt)],
        ['Asked to run', w.runNowAt ? time(w.runNowAt) : undefined],
      ]), jsonView(w.export || w.alert || {}, { title: w.kind })),
      section('JSON', jsonView(w))));
  let recs = [];
  const cols = [
    { label: '#', class: 'num', cell: (r) => String(r.number) },
    { label: 'State', cell: (r) => pill(r.state) },
    { label: 'Started', cell: (r) => time(r.startedAt) },
    { label: 'Took', class: 'num', cell: (r) => { const d = Date.parse(r.finishedAt) - Date.parse(r.startedAt); return Number.isNaN(d) ? '—' : d < 1000 ? `${d} ms` : `${(d / 1000).toFixed(1)} s`; } },
    { label: 'Events', class: 'num', cell: (r) => num(r.events) },
    { label: 'Units', class: 'num', cell: (r) => num(r.units) },
    { label: 'Seqs', cell: (r) => (r.upTo !== undefined ? `${r.afterSeq ?? 0}–${r.upTo}` : dash()) },
    { label: 'Error / detail', cell: (r) => (r.error ? mono(truncate(r.error, 80), { class: 'mono bad', title: r.error }) : r.detail !== undefined ? mono(truncate(JSON.stringify(r.detail), 80), { title: JSON.stringify(r.detail) }) : dash()) },
  ];
  const loadHist = async (before) => {
    const page = await api(`${base}/history`, { query: { limit: 50, before }, signal });
    recs = before ? recs.concat(page.records || []) : (page.records || []);
    replace(histBox, recs.length ? table(cols, recs, { caption: 'History', rowAttrs: (r) => ({ testid: 'history-row', 'data-id': String(r.id) }) }) : empty('No history yet.', w.kind === 'alert' ? 'Firings appear when the alert goes off.' : 'Cycles appear once the export runs.'));
    replace(foot);
    if (page.hasMore && page.next) {
      const b = h('button', { type: 'button', class: 'btn' }, 'Load older');
      b.addEventListener('click', () => { b.disabled = true; loadHist(page.next).catch((err) => { if (!signal.aborted) replace(foot, errorBox(err)); }); });
      foot.append(b);
    }
  };
  try { await loadHist(); } catch (err) { if (!signal.aborted) replace(histBox, errorBox(err)); }
}

// ---- event types ----

export async function typesPage(ctx) {
  ctx.title('Event types');
  const { main, signal } = ctx;
  const box = h('div', null, loading());
  replace(main, pageHeader('Event types', { sub: 'The catalog: what each event means, its data schema and its statuses.' }), h('section', { class: 'card' }, box));
  const { eventTypes = [] } = await api('/v1/event-types', { signal });
  eventTypes.sort((a, b) => `${a.category}/${a.type}`.localeCompare(`${b.category}/${b.type}`));
  replace(box, eventTypes.length ? table([
    { label: 'Type', cell: (t) => h('span', { class: 'ev-name' }, link(href('types', t.category, t.type), t.type, { class: 'strong' }), h('span', { class: 'muted small' }, t.category)) },
    { label: 'Description', cell: (t) => h('span', { class: 'small' }, truncate(t.description || '', 90)) },
    { label: 'Statuses', cell: (t) => h('span', { class: 'steps-inline' }, (t.statuses || []).map((s) => pill(s.name, (t.terminalStatuses || []).includes(s.name) ? 'neutral' : 'info'))) },
    { label: 'Lifecycle id', cell: (t) => (t.lifecycleIdPointer ? mono(t.lifecycleIdPointer) : dash()) },
    { label: 'Origin', cell: (t) => (t.builtIn ? pill('built-in', 'neutral') : pill('account', 'info')) },
  ], eventTypes, { caption: 'Event types', rowAttrs: (t) => ({ testid: 'type-row', 'data-id': `${t.category}/${t.type}` }) }) : empty('No event types.'));
}

export async function typePage(ctx) {
  const { params, main, signal } = ctx;
  const t = await api(`/v1/event-types/${seg(params.category)}/${seg(params.type)}`, { signal });
  ctx.title(`${t.category}/${t.type}`);
  const terminal = new Set(t.terminalStatuses || []);
  replace(main,
    pageHeader(t.type, { crumbs: [['Event types', '#/types'], [t.category], [t.type]], pill: t.builtIn ? pill('built-in', 'neutral') : null, sub: t.description }),
    h('div', { class: 'related' }, link(href('events', { category: t.category, type: t.type }), 'Events of this type', { class: 'chip' })),
    h('div', { class: 'grid-2' },
      section('Statuses', (t.statuses || []).length ? table([
        { label: 'Status', cell: (s) => pill(s.name, terminal.has(s.name) ? 'neutral' : 'info') },
        { label: 'Description', cell: (s) => h('span', { class: 'small' }, s.description) },
        { label: 'Terminal', cell: (s) => (terminal.has(s.name) ? 'yes' : 'no') },
        { label: 'Persists', cell: (s) => (s.persist ? 'yes' : 'no') },
        { label: 'Workflows', cell: (s) => ((s.workflows || []).length ? s.workflows.map((w) => [link(href('workflows', w), w), ' ']) : dash()) },
      ], t.statuses, { caption: 'Statuses', compact: true, rowHeader: true }) : empty('No statuses.', 'Events of this type carry no eventStatus.')),
      section('Definition', dl([
        ['Category', mono(t.category)],
        ['Type', mono(t.type)],
        ['Lifecycle id from', t.lifecycleIdPointer ? mono(t.lifecycleIdPointer) : undefined],
        ['Profile fields', (t.profileFields || []).length ? t.profileFields.map((f) => [mono(f), ' ']) : undefined],
        ['Persists', t.persist !== undefined ? (t.persist ? 'yes' : 'no') : undefined],
        ['Transitions', t.transitions && Object.keys(t.transitions).length ? jsonView(t.transitions, { title: 'allowed transitions' }) : undefined],
        ['Created', time(t.createdAt)],
        ['Updated', time(t.updatedAt)],
      ]))),
    section('Data schema', t.schema ? jsonView(t.schema, { title: 'JSON Schema', testid: 'type-schema' }) : empty('No schema.', 'Any data is accepted.')));
}
