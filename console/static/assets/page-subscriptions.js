// page-subscriptions.js: webhook subscriptions, their deliveries (stats,
// charts, attempts, dead messages with retry) and secret rotation.

import { api, seg } from './api.js';
import { href } from './router.js';
import { h, replace, loading, empty, errorBox, pill, time, link, mono, truncate, jsonView, dl, section, pageHeader, table, stat, num, duration, toast, copyButton } from './dom.js';
import { lineChart, minuteBuckets } from './charts.js';

const dash = () => h('span', { class: 'muted' }, '—');

function filterSummary(f) {
  if (!f || !Object.keys(f).length) return h('span', { class: 'muted' }, 'every event');
  return mono(truncate(JSON.stringify(f), 60));
}

export async function subscriptionsPage(ctx) {
  ctx.title('Subscriptions');
  const { main, signal } = ctx;
  const box = h('div', null, loading());
  replace(main, pageHeader('Subscriptions', { sub: 'Webhooks: one signed POST per matching event, retried until it gets through.' }), h('section', { class: 'card' }, box));
  const { subscriptions = [] } = await api('/v1/subscriptions', { signal });
  if (!subscriptions.length) {
    replace(box, empty('No subscriptions.', 'Create one with POST /v1/subscriptions (see the README).'));
    return;
  }
  replace(box, table([
    { label: 'Name', cell: (s) => h('span', { class: 'ev-name' }, link(href('subscriptions', s.id), s.name || s.id, { class: 'strong' }), h('span', { class: 'muted small mono' }, s.id)) },
    { label: 'URL', cell: (s) => mono(truncate(s.url, 48), { title: s.url }) },
    { label: 'Filter', cell: (s) => filterSummary(s.filter) },
    { label: 'State', cell: (s) => [pill(s.state), s.failingSince ? h('div', { class: 'small bad' }, 'failing since ', time(s.failingSince)) : null] },
    { label: 'Cursor', class: 'num', cell: (s) => num(s.cursor) },
    { label: 'Created', cell: (s) => time(s.createdAt) },
  ], subscriptions, { caption: 'Subscriptions', rowAttrs: (s) => ({ testid: 'subscription-row', 'data-id': s.id }) }));
}

function rateBuckets(attempts) {
  const buckets = minuteBuckets(attempts, (a) => Date.parse(a.at), 60);
  const rate = buckets.map((b) => {
    const n = b.items.length;
    const ok = b.items.filter((a) => a.outcome === 'delivered').length;
    return { t: b.t, v: n ? (100 * ok) / n : null };
  });
  const lat = (f) => buckets.map((b) => {
    const xs = b.items.map((a) => a.latencyMicros / 1000);
    return { t: b.t, v: xs.length ? f(xs) : null };
  });
  return {
    rate,
    avg: lat((xs) => xs.reduce((a, c) => a + c, 0) / xs.length),
    max: lat((xs) => Math.max(...xs)),
  };
}

function attemptsTable(attempts) {
  return table([
    { label: 'At', cell: (a) => time(a.at) },
    { label: 'Event', cell: (a) => link(href('events', a.eventId), truncate(a.eventId, 24), { class: 'mono' }) },
    { label: '#', class: 'num', cell: (a) => String(a.number) },
    { label: 'Outcome', cell: (a) => pill(a.outcome) },
    { label: 'Status', class: 'num', cell: (a) => (a.statusCode ? h('span', { class: a.statusCode >= 400 ? 'bad' : '' }, String(a.statusCode)) : dash()) },
    { label: 'Latency', class: 'num', cell: (a) => duration(a.latencyMicros) },
    {
      label: 'Response',
      cell: (a) => {
        const text = a.error || a.response || '';
        if (!text) return dash();
        if (text.length <= 60) return mono(text, { class: 'mono excerpt' + (a.error ? ' bad' : '') });
        return h('details', { class: 'excerpt-details' }, h('summary', null, mono(truncate(text, 60))), h('pre', { class: 'excerpt' }, text));
      },
    },
  ], attempts, { caption: 'Delivery attempts, newest first', rowAttrs: (a) => ({ testid: 'attempt-row', 'data-id': String(a.id) }) });
}

export async function subscriptionPage(ctx) {
  const { params, main, signal } = ctx;
  const id = params.id;
  const base = `/v1/subscriptions/${seg(id)}`;
  let sub = await api(base, { signal });
  ctx.title(`Subscription ${sub.name || sub.id}`);

  const statsBox = h('div', { class: 'stats' }, loading('Loading stats…'));
  const rateBox = h('div', { class: 'chart-box' }, loading('Loading…'));
  const latBox = h('div', { class: 'chart-box' }, loading('Loading…'));
  const deadBox = h('div', null, loading('Loading dead messages…'));
  const pendingBox = h('div', null, loading());
  const attemptsBox = h('div', null, loading('Loading attempts…'));
  const secretBox = h('div');
  const headerBox = h('div');
  const actionsErr = h('div');

  const renderHeader = () => {
    const pause = h('button', { type: 'button', class: 'btn', testid: sub.state === 'active' ? 'pause' : 'resume' }, sub.state === 'active' ? 'Pause' : 'Resume');
    pause.addEventListener('click', async () => {
      pause.disabled = true;
      replace(actionsErr);
      try {
        sub = await api(`${base}/${sub.state === 'active' ? 'pause' : 'resume'}`, { method: 'POST', signal });
        toast(`Subscription ${sub.state}.`);
        renderHeader();
      } catch (err) { if (!signal.aborted) replace(actionsErr, errorBox(err)); pause.disabled = false; }
    });
    const rotate = h('button', { type: 'button', class: 'btn', testid: 'rotate-secret', 'aria-expanded': 'false', 'aria-controls': 'rotate-panel' }, 'Rotate secret');
    rotate.addEventListener('click', () => {
      const open = rotate.getAttribute('aria-expanded') !== 'true';
      rotate.setAttribute('aria-expanded', String(open));
      replace(secretBox, open ? rotatePanel() : null);
      if (open) secretBox.querySelector('select')?.focus();
    });
    replace(headerBox,
      pageHeader(sub.name || sub.id, {
        crumbs: [['Subscriptions', '#/subscriptions'], [sub.id]],
        pill: pill(sub.state),
        sub: sub.url,
        actions: [pause, rotate],
      }),
      sub.stateReason ? h('p', { class: 'notice' }, sub.stateReason) : null,
      actionsErr);
  };

  const rotatePanel = () => {
    const sel = h('select', { id: 'rotate-overlap', name: 'overlap' }, [['0s', 'stop at once'], ['1h', '1 hour'], ['24h', '24 hours'], ['168h', '7 days']].map(([v, t]) => h('option', { value: v, selected: v === '24h' }, t)));
    const go = h('button', { type: 'submit', class: 'btn btn-danger', testid: 'rotate-confirm' }, 'Rotate now');
    const out = h('div');
    const form = h('form', { class: 'panel', id: 'rotate-panel' },
      h('p', null, 'A new signing secret starts signing at once. The old one keeps signing beside it for:'),
      h('div', { class: 'inline-fields' }, h('label', { for: 'rotate-overlap' }, 'Overlap'), sel, go),
      out);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      go.disabled = true;
      try {
        const res = await api(`${base}/secret/rotate`, { method: 'POST', query: { overlap: sel.value }, signal });
        const secrets = res.secrets || [];
        const cur = secrets.find((s) => !s.expiresAt) || secrets[0];
        replace(out,
          h('p', { class: 'ok' }, 'Rotated. Give your receiver the new secret:'),
          cur ? h('div', { class: 'secret' }, mono(cur.secret, { testid: 'new-secret', class: 'mono break' }), copyButton(cur.secret)) : null,
          table([
            { label: 'Secret', cell: (s) => mono(`${s.secret.slice(0, 12)}…`) },
            { label: 'Created', cell: (s) => time(s.createdAt) },
            { label: 'Signs until', cell: (s) => (s.expiresAt ? time(s.expiresAt) : pill('current', 'ok')) },
          ], secrets, { caption: 'Signing secrets', compact: true }));
        toast('Secret rotated.');
      } catch (err) {
        if (!signal.aborted) replace(out, errorBox(err));
      } finally { go.disabled = false; }
    });
    return form;
  };

  renderHeader();
  replace(main,
    headerBox,
    secretBox,
    statsBox,
    h('div', { class: 'grid-2' },
      section('Success rate', rateBox),
      section('Latency', latBox)),
    h('section', { class: 'card', 'aria-labelledby': 'dead-title' },
      h('div', { class: 'card-head' }, h('h2', { id: 'dead-title', class: 'card-title' }, 'Dead messages'), h('div', { id: 'dead-actions' })),
      deadBox),
    section('Pending messages', pendingBox),
    section('Attempts', attemptsBox),
    h('div', { class: 'grid-2' },
      section('Configuration', dl([
        ['ID', mono(sub.id)],
        ['URL', mono(sub.url, { class: 'mono break' })],
        ['Filter', filterSummary(sub.filter)],
        ['Ordered', sub.ordered ? 'yes' : 'no'],
        ['Max in flight', sub.maxInFlight !== undefined ? String(sub.maxInFlight) : undefined],
        ['Rate limit', sub.rateLimit ? `${sub.rateLimit}/s` : undefined],
        ['Timeout', sub.timeout],
        ['Retry schedule', (sub.retrySchedule || []).join(', ')],
        ['Disable after', sub.disableAfter],
        ['Created', time(sub.createdAt)],
        ['Updated', time(sub.updatedAt)],
      ])),
      section('JSON', jsonView(sub))));

  const loadStats = async () => {
    const s = await api(`${base}/stats`, { signal });
    replace(statsBox,
      stat('Success rate (24 h)', s.attempts ? `${(100 * s.successRate).toFixed(1)}%` : '—', `${num(s.delivered)} of ${num(s.attempts)} attempts${s.attemptsCapped ? '+' : ''}`),
      stat('Latency p50', duration(s.latencyP50Micros), `p99 ${duration(s.latencyP99Micros)}`),
      stat('Backlog', num(s.backlog), `${num(s.pendingMessages)} pending · ${num(s.unsentEvents)}${s.unsentCapped ? '+' : ''} unsent`),
      stat('Dead', h('span', { class: s.deadMessages ? 'bad' : '' }, num(s.deadMessages)), s.oldestPending ? ['oldest pending ', time(s.oldestPending)] : null),
      stat('Cursor', num(s.cursor), s.failingSince ? ['failing since ', time(s.failingSince)] : null));
  };

  const loadAttempts = async () => {
    const page = await api(`${base}/attempts`, { query: { limit: 1000 }, signal });
    const attempts = page.attempts || [];
    const b = rateBuckets(attempts);
    replace(rateBox, lineChart({ series: [{ name: 'delivered %', points: b.rate }], title: 'Delivery success rate per minute', yLabel: '% delivered', yMax: 100, yFmt: (v) => `${Math.round(v)}%`, testid: 'chart-success-rate', width: rateBox.clientWidth }));
    replace(latBox, lineChart({ series: [{ name: 'average', points: b.avg }, { name: 'max', points: b.max }], title: 'Delivery latency per minute', yLabel: 'ms', yFmt: (v) => (v < 10 ? v.toFixed(1) : String(Math.round(v))), testid: 'chart-latency', width: latBox.clientWidth }));
    const shown = attempts.slice(0, 200);
    replace(attemptsBox, shown.length
      ? [attemptsTable(shown), attempts.length > shown.length ? h('p', { class: 'muted small' }, `The newest ${shown.length} of ${attempts.length} loaded attempts.`) : null]
      : empty('No attempts yet.', 'Attempts appear once a matching event is sent.'));
  };

  const loadMessages = async () => {
    const [dead, all] = await Promise.all([
      api(`${base}/messages`, { query: { state: 'dead', limit: 1000 }, signal }),
      api(`${base}/messages`, { query: { limit: 200 }, signal }),
    ]);
    const deadMsgs = dead.messages || [];
    const pending = (all.messages || []).filter((m) => m.state !== 'dead');
    const actions = document.getElementById('dead-actions');
    if (actions) {
      replace(actions);
      if (deadMsgs.length) {
        const all = h('button', { type: 'button', class: 'btn btn-small', testid: 'retry-all' }, `Retry all ${deadMsgs.length}`);
        all.addEventListener('click', () => retry(all, null));
        actions.append(all);
      }
    }
    replace(deadBox, deadMsgs.length ? table([
      { label: 'Event', cell: (m) => link(href('events', m.eventId), truncate(m.eventId, 28), { class: 'mono' }) },
      { label: 'Seq', class: 'num', cell: (m) => String(m.seq) },
      { label: 'Attempts', class: 'num', cell: (m) => String(m.attempts) },
      { label: 'Last status', class: 'num', cell: (m) => (m.lastStatus ? String(m.lastStatus) : dash()) },
      { label: 'Last error', cell: (m) => (m.lastError ? mono(truncate(m.lastError, 60), { title: m.lastError }) : dash()) },
      { label: 'Dead since', cell: (m) => time(m.updatedAt) },
      {
        label: 'Action',
        cell: (m) => {
          const b = h('button', { type: 'button', class: 'btn btn-small', testid: `retry-${m.eventId}`, 'aria-label': `Retry event ${m.eventId}` }, 'Retry');
          b.addEventListener('click', () => retry(b, [m.eventId]));
          return b;
        },
      },
    ], deadMsgs, { caption: 'Dead messages', rowAttrs: (m) => ({ testid: 'dead-row', 'data-id': m.eventId }) }) : empty('No dead messages.', 'Events that used up their retries, or got a final answer, wait here.'));
    replace(pendingBox, pending.length ? table([
      { label: 'Event', cell: (m) => link(href('events', m.eventId), truncate(m.eventId, 28), { class: 'mono' }) },
      { label: 'State', cell: (m) => pill(m.state) },
      { label: 'Attempts', class: 'num', cell: (m) => String(m.attempts) },
      { label: 'Next attempt', cell: (m) => time(m.nextAttemptAt) },
      { label: 'Last status', class: 'num', cell: (m) => (m.lastStatus ? String(m.lastStatus) : dash()) },
      { label: 'Last error', cell: (m) => (m.lastError ? mono(truncate(m.lastError, 60), { title: m.lastError }) : dash()) },
    ], pending, { caption: 'Pending messages', rowAttrs: (m) => ({ testid: 'message-row', 'data-id': m.eventId }) }) : empty('Nothing pending.'));
  };

  const retry = async (btn, ids) => {
    btn.disabled = true;
    btn.textContent = 'Retrying…';
    try {
      const res = await api(`${base}/retry`, { method: 'POST', body: ids ? { eventIds: ids } : {}, signal });
      toast(`${res.retried} message${res.retried === 1 ? '' : 's'} sent for retry.`);
      const row = btn.closest('tr');
      if (row) row.classList.add('row-done');
      btn.textContent = 'Retried';
      setTimeout(() => { if (!signal.aborted) refresh(); }, 1500);
    } catch (err) {
      if (signal.aborted) return;
      btn.disabled = false;
      btn.textContent = 'Retry';
      toast(err.message, 'bad');
    }
  };

  const guard = (p, box) => p.catch((err) => { if (!signal.aborted) replace(box, errorBox(err)); });
  const refresh = () => Promise.all([
    guard(loadStats(), statsBox),
    guard(loadAttempts(), attemptsBox),
    guard(loadMessages(), deadBox),
  ]);
  await refresh();
  // Keep the figures fresh while the page is open.
  // Messages are left alone: replacing their rows under a pointer or the
  // keyboard focus would be rude; a retry reloads them.
  const timer = setInterval(() => {
    if (document.hidden) return;
    guard(loadStats(), statsBox);
    guard(loadAttempts(), attemptsBox);
  }, 10000);
  signal.addEventListener('abort', () => clearInterval(timer));
}
