// app.js: the shell. Sign-in, the hash router's dispatch, the nav (a side
// bar that collapses to a menu on phones) and the page lifecycle: each
// page gets an AbortSignal that ends its fetches, streams and timers when
// the route changes.

import { api, getKey, setKey, clearKey } from './api.js';
import { parseHash, match } from './router.js';
import { h, replace, errorBox, refreshTimes, loading } from './dom.js';
import * as ev from './page-events.js';
import * as ent from './page-entities.js';
import * as audit from './page-audit.js';
import * as subs from './page-subscriptions.js';
import * as ops from './page-ops.js';

const routes = [
  ['/events', ev.eventsPage, 'events'],
  ['/events/:id', ev.eventPage, 'events'],
  ['/lifecycles', ent.lifecyclesPage, 'lifecycles'],
  ['/lifecycles/:id', ent.lifecyclePage, 'lifecycles'],
  ['/profiles', ent.profilesPage, 'profiles'],
  ['/profiles/:id', ent.profilePage, 'profiles'],
  ['/sessions', ent.sessionsPage, 'sessions'],
  ['/sessions/:id', ent.sessionPage, 'sessions'],
  ['/visits', ent.visitsPage, 'visits'],
  ['/visits/:id', ent.visitPage, 'visits'],
  ['/audit', audit.auditPage, 'audit'],
  ['/subscriptions', subs.subscriptionsPage, 'subscriptions'],
  ['/subscriptions/:id', subs.subscriptionPage, 'subscriptions'],
  ['/workflows', ops.workflowsPage, 'workflows'],
  ['/workflows/:name', ops.workflowPage, 'workflows'],
  ['/work', ops.workListPage, 'work'],
  ['/work/:id', ops.workPage, 'work'],
  ['/types', ops.typesPage, 'types'],
  ['/types/:category/:type', ops.typePage, 'types'],
];

const main = () => document.getElementById('main');
let current = null; // AbortController of the page shown
let signinMessage = '';
let lastPath = '';

function setNav(page) {
  document.querySelectorAll('#nav a[data-page]').forEach((a) => {
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  });
}

function closeMenu() {
  document.body.classList.remove('menu-open');
  document.getElementById('menu-toggle').setAttribute('aria-expanded', 'false');
}

function showSignin() {
  if (current) current.abort();
  current = null;
  document.body.classList.add('signed-out');
  document.title = 'Sign in · Herald';
  const input = h('input', { id: 'signin-key', name: 'key', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, testid: 'signin-key', 'aria-describedby': 'signin-help' });
  const err = h('div', { class: 'signin-error' });
  if (signinMessage) err.append(h('div', { class: 'state state-error', testid: 'error', role: 'alert' }, h('p', { class: 'error-detail' }, signinMessage)));
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block', testid: 'signin-submit' }, 'Sign in');
  const form = h('form', { class: 'signin-form', testid: 'signin', novalidate: true },
    h('div', { class: 'signin-brand' },
      h('h1', null, 'Herald console'),
      h('p', { class: 'muted' }, 'Sign in with an API key of your account.')),
    err,
    h('div', { class: 'field' },
      h('label', { for: 'signin-key' }, 'API key'),
      input,
      h('p', { id: 'signin-help', class: 'help muted' }, 'Kept in this tab only (sessionStorage), sent as a Bearer token. A key with the read scope shows everything; retrying, rotating and pausing need admin.')),
    submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    replace(err);
    if (!key) {
      err.append(h('div', { class: 'state state-error', testid: 'error', role: 'alert' }, h('p', { class: 'error-detail' }, 'Enter an API key.')));
      input.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Checking…';
    setKey(key);
    try {
      await api('/v1/event-types');
      signinMessage = '';
      document.body.classList.remove('signed-out');
      const target = parseHash().parts.length ? window.location.hash : '#/events';
      if (window.location.hash === target) route(); else window.location.hash = target;
    } catch (x) {
      clearKey();
      replace(err, errorBox(x));
      submit.disabled = false;
      submit.textContent = 'Sign in';
      input.focus();
    }
  });
  replace(main(), h('div', { class: 'signin' }, form));
  input.focus();
}

function route() {
  if (!getKey()) { showSignin(); return; }
  document.body.classList.remove('signed-out');
  closeMenu();
  const { parts, query, path } = parseHash();
  if (!parts.length) { window.location.replace('#/events'); return; }
  let found = null;
  for (const [pattern, fn, page] of routes) {
    const params = match(pattern, parts);
    if (params) { found = { fn, page, params }; break; }
  }
  if (current) current.abort();
  current = new AbortController();
  const el = main();
  const samePage = path === lastPath;
  lastPath = path;
  if (!found) {
    setNav('');
    replace(el, errorBox({ problem: { title: 'Not found', detail: `There is no page at ${path}.` } }));
    return;
  }
  setNav(found.page);
  replace(el, loading());
  const ctx = {
    params: found.params, query, main: el, signal: current.signal,
    title: (t) => { document.title = `${t} · Herald`; },
  };
  Promise.resolve(found.fn(ctx)).catch((err) => {
    if (err && err.name === 'AbortError') return;
    if (ctx.signal.aborted) return;
    replace(el, errorBox(err, () => route()));
  });
  if (!samePage) {
    window.scrollTo(0, 0);
    el.focus({ preventScroll: true });
  }
}

function init() {
  document.getElementById('menu-toggle').addEventListener('click', () => {
    const open = !document.body.classList.contains('menu-open');
    document.body.classList.toggle('menu-open', open);
    document.getElementById('menu-toggle').setAttribute('aria-expanded', String(open));
    if (open) document.querySelector('#nav a')?.focus();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && document.body.classList.contains('menu-open')) {
      closeMenu();
      document.getElementById('menu-toggle').focus();
    }
  });
  document.getElementById('skip-link').addEventListener('click', (e) => {
    e.preventDefault();
    main().focus();
  });
  document.getElementById('signout').addEventListener('click', () => {
    clearKey();
    signinMessage = 'Signed out.';
    showSignin();
  });
  window.addEventListener('herald:unauthorized', (e) => {
    clearKey();
    const p = e.detail || {};
    signinMessage = p.detail || 'Your key was refused. Sign in again.';
    showSignin();
  });
  window.addEventListener('hashchange', route);
  setInterval(() => refreshTimes(), 15000);
  route();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
