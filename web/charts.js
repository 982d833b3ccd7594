// A small line chart in SVG, drawn from scratch on every update (a few hundred points at most):
// time along x over a fixed window ending now, values along y from 0 to the window's maximum.
const NS = 'http://www.w3.org/2000/svg';
const W = 300;
const H = 90;
const PAD = { left: 4, right: 4, top: 14, bottom: 4 };

function node(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * Draws `points` ([{ t: ms, v: number }], oldest first) into `svg`, over the last `windowMs`.
 * `format` turns a value into text (the latest value and the maximum are written on the chart,
 * and the latest goes into the chart's accessible name).
 */
export function lineChart(svg, points, { windowMs, format = String, label = '' }) {
  const now = points.length ? points[points.length - 1].t : Date.now();
  const shown = points.filter((p) => p.t >= now - windowMs);
  const max = Math.max(0, ...shown.map((p) => p.v));
  const top = max > 0 ? max * 1.1 : 1;
  const x = (t) => PAD.left + ((t - (now - windowMs)) / windowMs) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - (Math.max(0, v) / top) * (H - PAD.top - PAD.bottom);

  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('role', 'img');
  const latest = shown.length ? shown[shown.length - 1].v : undefined;
  svg.setAttribute('aria-label', `${label}: ${latest === undefined ? 'no data yet' : format(latest)}, at most ${format(max)} in the last ${Math.round(windowMs / 60000)} min`);
  svg.dataset.latest = latest === undefined ? '' : String(latest);
  svg.dataset.max = String(max);

  const children = [
    node('line', { x1: PAD.left, x2: W - PAD.right, y1: y(0), y2: y(0), class: 'axis' }),
    node('text', { x: PAD.left, y: 11, class: 'chart-label' }, `max ${format(max)}`),
    node('text', { x: W - PAD.right, y: 11, class: 'chart-label', 'text-anchor': 'end' }, latest === undefined ? '' : `now ${format(latest)}`),
  ];
  if (shown.length > 1) {
    const d = shown.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join('');
    const area = `${d}L${x(shown[shown.length - 1].t).toFixed(1)},${y(0)}L${x(shown[0].t).toFixed(1)},${y(0)}Z`;
    children.push(node('path', { d: area, class: 'area' }), node('path', { d, class: 'line' }));
  }
  svg.replaceChildren(...children);
}

/** 1536 → "1.5 KiB". */
export function bytes(n) {
  if (!Number.isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function seconds(n) {
  if (!Number.isFinite(n)) return '–';
  if (n < 10) return `${n.toFixed(1)} s`;
  if (n < 120) return `${Math.round(n)} s`;
  return `${Math.floor(n / 60)} min ${Math.round(n % 60)} s`;
}

export function perSecond(n) {
  return Number.isFinite(n) ? `${n < 10 ? n.toFixed(1) : Math.round(n)}/s` : '–';
}
