// charts.js: tiny SVG charts, no library. Colours come from classes in
// app.css (series-0 … series-7), so they follow the theme and the CSP.

const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// The chart is drawn at the pixel width of its box when known, so that
// text keeps its size; CSS scales it when the box changes.
let W = 640;
const H = 220;
const M = { top: 12, right: 14, bottom: 36, left: 50 };

// niceMax rounds v up so that the four grid steps are round numbers
// (whole ones when integer).
function niceMax(v, integer) {
  if (v <= 0) return integer ? 4 : 1;
  const raw = v / 4;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of integer ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10]) {
    const step = m * p;
    if (step >= raw && (!integer || Number.isInteger(step))) return step * 4;
  }
  return Math.ceil(raw) * 4;
}

function setWidth(width) {
  W = Math.max(320, Math.min(1600, Math.round(width || 640)));
}

function hhmm(t) {
  const d = new Date(t);
  return d.getHours().toString().padStart(2, '0') + ':' + d.getMinutes().toString().padStart(2, '0');
}

function frame(title, desc, yMax, yFmt, xTicks, yLabel, xLabel) {
  const iw = W - M.left - M.right;
  const ih = H - M.top - M.bottom;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title, preserveAspectRatio: 'xMidYMid meet' },
    s('title', null, title), s('desc', null, desc));
  const g = s('g', { class: 'axes' });
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    const y = M.top + ih - (ih * i) / 4;
    g.append(s('line', { x1: M.left, x2: M.left + iw, y1: y, y2: y, class: i ? 'grid' : 'axis' }));
    g.append(s('text', { x: M.left - 6, y: y + 4, 'text-anchor': 'end', class: 'tick' }, yFmt(v)));
  }
  for (const [x, label] of xTicks) {
    g.append(s('line', { x1: x, x2: x, y1: M.top + ih, y2: M.top + ih + 4, class: 'axis' }));
    g.append(s('text', { x, y: M.top + ih + 16, 'text-anchor': 'middle', class: 'tick' }, label));
  }
  if (yLabel) g.append(s('text', { x: 12, y: M.top + ih / 2, 'text-anchor': 'middle', class: 'axis-label', transform: `rotate(-90 12 ${M.top + ih / 2})` }, yLabel));
  if (xLabel) g.append(s('text', { x: M.left + iw / 2, y: H - 2, 'text-anchor': 'middle', class: 'axis-label' }, xLabel));
  svg.append(g);
  return { svg, iw, ih };
}

function xTicksFor(t0, step, n, xOf) {
  const every = Math.max(1, Math.ceil(n / 8));
  const ticks = [];
  for (let i = 0; i < n; i += every) ticks.push([xOf(i), hhmm(t0 + i * step)]);
  return ticks;
}

// minuteBuckets(items, timeOf, minutes) groups items into the last
// `minutes` whole minutes ending now (or at the newest item when older).
// With fit, the window shrinks to the span of the items (at least 10
// minutes) so that a young log does not draw as one bar at the edge.
export function minuteBuckets(items, timeOf, minutes = 30, now = Date.now(), fit = true) {
  let end = now;
  const times = items.map(timeOf).filter((t) => !Number.isNaN(t));
  if (times.length) {
    let newest = -Infinity;
    let oldest = Infinity;
    for (const t of times) { if (t > newest) newest = t; if (t < oldest) oldest = t; }
    if (newest < now - minutes * 60000) end = newest;
    if (fit) minutes = Math.max(10, Math.min(minutes, Math.ceil((end - oldest) / 60000) + 2));
  } else if (fit) minutes = Math.min(minutes, 10);
  const last = Math.floor(end / 60000) * 60000;
  const t0 = last - (minutes - 1) * 60000;
  const buckets = Array.from({ length: minutes }, (_, i) => ({ t: t0 + i * 60000, items: [] }));
  items.forEach((it) => {
    const t = timeOf(it);
    const i = Math.floor((t - t0) / 60000);
    if (i >= 0 && i < minutes) buckets[i].items.push(it);
  });
  return buckets;
}

// stackedBars: buckets [{t, counts:{series:n}}], series names in order.
export function stackedBars({ buckets, series, title, yLabel = 'events', xLabel = 'minute', testid, width }) {
  setWidth(width);
  const max = niceMax(Math.max(1, ...buckets.map((b) => Object.values(b.counts).reduce((a, c) => a + c, 0))), true);
  const n = buckets.length;
  const iwGuess = W - M.left - M.right;
  const bw = iwGuess / n;
  const xOf = (i) => M.left + i * bw + bw / 2;
  const { svg, ih } = frame(title, `Stacked bars of ${yLabel} per ${xLabel}, by series.`, max, (v) => String(v), n ? xTicksFor(buckets[0].t, 60000, n, xOf) : [], yLabel, xLabel);
  const g = s('g', { class: 'bars' });
  buckets.forEach((b, i) => {
    let y = M.top + ih;
    series.forEach((name, si) => {
      const c = b.counts[name] || 0;
      if (!c) return;
      const hgt = (ih * c) / max;
      y -= hgt;
      g.append(s('rect', { x: M.left + i * bw + 1, y, width: Math.max(1, bw - 2), height: hgt, class: `series-${si % 8}` },
        s('title', null, `${hhmm(b.t)} · ${name}: ${c}`)));
    });
  });
  svg.append(g);
  return wrap(svg, series, testid);
}

// lineChart: series [{name, points:[{t, v}]}] (v null = no data); yMax
// fixed (e.g. 100 for percentages) or computed.
export function lineChart({ series, title, yLabel, xLabel = 'minute', yMax, yFmt = (v) => String(Math.round(v)), step = 60000, testid, width }) {
  setWidth(width);
  const all = series.flatMap((x) => x.points);
  const n = series.length ? series[0].points.length : 0;
  const max = yMax || niceMax(Math.max(1, ...all.map((p) => p.v || 0)));
  const iwGuess = W - M.left - M.right;
  const xOf = (i) => M.left + (n > 1 ? (iwGuess * i) / (n - 1) : iwGuess / 2);
  const { svg, ih } = frame(title, `Line chart of ${yLabel} per ${xLabel}.`, max, yFmt, n ? xTicksFor(series[0].points[0].t, step, n, xOf) : [], yLabel, xLabel);
  const yOf = (v) => M.top + ih - (ih * Math.min(v, max)) / max;
  series.forEach((ser, si) => {
    const g = s('g', { class: `line series-${si % 8}` });
    let d = '';
    let pen = false;
    ser.points.forEach((p, i) => {
      if (p.v === null || p.v === undefined) { pen = false; return; }
      d += `${pen ? 'L' : 'M'}${xOf(i).toFixed(1)},${yOf(p.v).toFixed(1)}`;
      pen = true;
      g.append(s('circle', { cx: xOf(i), cy: yOf(p.v), r: 2.5 }, s('title', null, `${hhmm(p.t)} · ${ser.name}: ${yFmt(p.v)}`)));
    });
    if (d) g.prepend(s('path', { d, fill: 'none' }));
    svg.append(g);
  });
  return wrap(svg, series.map((x) => x.name), testid);
}

function wrap(svg, names, testid) {
  const fig = document.createElement('figure');
  fig.className = 'chart-wrap';
  if (testid) fig.setAttribute('data-testid', testid);
  fig.append(svg);
  if (names.length) {
    const ul = document.createElement('ul');
    ul.className = 'legend';
    names.forEach((name, i) => {
      const li = document.createElement('li');
      const sw = document.createElement('span');
      sw.className = `swatch series-${i % 8}`;
      sw.setAttribute('aria-hidden', 'true');
      li.append(sw, document.createTextNode(name));
      ul.append(li);
    });
    fig.append(ul);
  }
  return fig;
}
