// stream.js: the live events. EventSource cannot send an Authorization
// header, so this reads GET /v1/events/stream with fetch and a
// ReadableStream, parses Server-Sent Events, and reconnects with
// Last-Event-ID. When streaming does not work (no ReadableStream, a proxy
// that buffers, repeated failures) it falls back to polling
// GET /v1/events?afterSeq=… every 2 s.

import { api, authHeaders, buildURL, ApiError } from './api.js';

const POLL_MS = 2000;

// openStream(query, handlers) starts following the events matching query
// (the filters of GET /v1/events). handlers:
//   onStart(seq): once, with the seq the live part starts after (the
//     account's newest when afterSeq is not given);
//   onEvents(events): new events, in seq order;
//   onMode(mode): 'connecting' | 'live' | 'polling' | 'stopped' | 'error';
//   onError(err).
// It answers {stop()}; an AbortSignal in handlers.signal stops it too.
export function openStream(query, handlers) {
  const st = { stopped: false, lastSeq: handlers.afterSeq ?? null, started: false, failures: 0, ctrl: null, timer: 0 };
  const mode = (m) => handlers.onMode && handlers.onMode(m);

  const stop = () => {
    st.stopped = true;
    if (st.ctrl) st.ctrl.abort();
    clearTimeout(st.timer);
    mode('stopped');
  };
  if (handlers.signal) {
    if (handlers.signal.aborted) { st.stopped = true; return { stop }; }
    handlers.signal.addEventListener('abort', stop, { once: true });
  }

  const start = (seq) => {
    if (st.lastSeq === null || seq > st.lastSeq) st.lastSeq = seq;
    if (!st.started) {
      st.started = true;
      if (handlers.onStart) handlers.onStart(seq);
    }
  };

  const deliver = (events) => {
    const fresh = events.filter((e) => st.lastSeq === null || e.seq > st.lastSeq);
    if (!fresh.length) return;
    st.lastSeq = fresh[fresh.length - 1].seq;
    handlers.onEvents && handlers.onEvents(fresh);
  };

  async function streamOnce() {
    st.ctrl = new AbortController();
    const headers = authHeaders({ Accept: 'text/event-stream' });
    const q = { ...query };
    if (st.lastSeq !== null) {
      headers['Last-Event-ID'] = String(st.lastSeq);
    }
    const res = await fetch(buildURL('/v1/events/stream', q), { headers, signal: st.ctrl.signal, cache: 'no-store' });
    if (!res.ok) {
      let problem;
      try { problem = await res.json(); } catch { problem = null; }
      if (res.status === 401) window.dispatchEvent(new CustomEvent('herald:unauthorized', { detail: problem }));
      throw new ApiError(res.status, problem);
    }
    if (!res.body || !res.body.getReader) throw new Error('no ReadableStream');
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    let ev = { id: null, data: [] };
    let batch = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.search(/\r\n|\r|\n/)) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + (buf[i] === '\r' && buf[i + 1] === '\n' ? 2 : 1));
        if (line === '') {
          // Dispatch.
          if (ev.data.length) {
            try {
              const e = JSON.parse(ev.data.join('\n'));
              batch.push(e);
            } catch { /* not an event body */ }
          } else if (ev.id !== null && !st.started) {
            start(Number(ev.id));
            st.failures = 0;
            mode('live');
          }
          ev = { id: null, data: [] };
          continue;
        }
        if (line.startsWith(':')) continue;
        const c = line.indexOf(':');
        const field = c >= 0 ? line.slice(0, c) : line;
        let val = c >= 0 ? line.slice(c + 1) : '';
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'id') ev.id = val;
        else if (field === 'data') ev.data.push(val);
      }
      if (batch.length) {
        if (!st.started) start(batch[0].seq - 1);
        deliver(batch);
        batch = [];
        st.failures = 0;
      }
    }
  }

  async function poll() {
    if (st.stopped) return;
    try {
      if (st.lastSeq === null) start(await headSeq(handlers.signal));
      let more = true;
      let pages = 0;
      while (more && !st.stopped && pages++ < 10) {
        const page = await api('/v1/events', { query: { ...query, afterSeq: st.lastSeq, limit: 1000 }, signal: handlers.signal });
        deliver(page.events || []);
        more = page.hasMore;
      }
      mode('polling');
    } catch (err) {
      if (st.stopped || (err && err.name === 'AbortError')) return;
      mode('error');
      handlers.onError && handlers.onError(err);
      if (err instanceof ApiError && (err.status === 401 || err.status === 400 || err.status === 403)) return;
    }
    st.timer = setTimeout(poll, POLL_MS);
  }

  async function run() {
    if (typeof ReadableStream === 'undefined' || handlers.poll) return poll();
    mode('connecting');
    while (!st.stopped) {
      try {
        await streamOnce();
        if (st.stopped) return;
        // The server ended the stream (shutdown): reconnect soon.
        st.failures++;
      } catch (err) {
        if (st.stopped || (err && err.name === 'AbortError')) return;
        if (err instanceof ApiError && err.status >= 400 && err.status < 500) {
          mode('error');
          handlers.onError && handlers.onError(err);
          return;
        }
        st.failures++;
      }
      if (st.failures >= 3) return poll();
      mode('connecting');
      await new Promise((r) => { st.timer = setTimeout(r, 1000 * st.failures); });
    }
  }

  run();
  return { stop };
}

// headSeq finds the account's newest seq without the stream: seqs have no
// gaps, so a page of one after x is empty exactly when x >= newest. An
// exponential probe, then a bisection: about 2·log2(newest) small reads.
export async function headSeq(signal) {
  const has = async (x) => {
    const p = await api('/v1/events', { query: { afterSeq: x, limit: 1 }, signal });
    return (p.events || []).length > 0;
  };
  if (!(await has(0))) return 0;
  let lo = 0; // has(lo) true
  let hi = 1;
  while (await has(hi)) { lo = hi; hi *= 2; }
  // has(lo) true, has(hi) false: newest in (lo, hi].
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (await has(mid)) lo = mid; else hi = mid;
  }
  return hi;
}

// loadRange reads the events matching query with lo < seq <= hi, newest
// first, from path (/v1/events or /v1/audit), at most max of them.
export async function loadRange(path, query, lo, hi, signal, max = 1000) {
  const out = [];
  let next;
  for (let pages = 0; pages < 20; pages++) {
    const q = { ...query, limit: 1000 };
    if (next) q.next = next; else q.afterSeq = lo;
    const page = await api(path, { query: q, signal });
    const evs = page.events || [];
    let past = false;
    for (const e of evs) {
      if (hi !== null && e.seq > hi) { past = true; break; }
      out.push(e);
    }
    if (past || !page.hasMore || !page.next) break;
    next = page.next;
  }
  out.reverse();
  return out.slice(0, max);
}

// loadNewest reads up to want events before (and including) hi, newest
// first, widening the seq window while matches are sparse. It answers
// {events, floor}: floor is the seq the next older load ends at.
export async function loadNewest(path, query, hi, signal, want = 200, maxWindows = 6) {
  let span = 1000;
  let top = hi;
  const events = [];
  for (let w = 0; top > 0 && events.length < want && w < maxWindows; w++) {
    const lo = Math.max(0, top - span);
    const got = await loadRange(path, query, lo, top, signal, 1000);
    events.push(...got);
    top = lo;
    if (events.length >= want) break;
    span = Math.min(span * 4, 64000);
  }
  return { events, floor: top };
}
