// The walcast ops page: polls /ops/state.json once a second and draws what it says. Read-only.
// On the public port the data needs the admin token (asked for once, kept in this tab's
// sessionStorage, sent as `Authorization: Bearer`); on the ops listener it needs nothing.
// Counters arrive as totals; rates are their differences between two polls.
import { bytes, lineChart, perSecond, seconds } from './charts.js';

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
const WINDOW_MS = 5 * 60_000;
const TOKEN_KEY = 'walcast-ops-token';

const series = { lagBytes: [], lagSeconds: [], retained: [], connections: [], posts: [], deliveries: [] };
let previous = null;
let timer = null;

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function poll() {
  const t = token();
  let res;
  try {
    res = await fetch('/ops/state.json', { headers: t ? { authorization: `Bearer ${t}` } : {}, cache: 'no-store' });
  } catch {
    return setPoll('unreachable', 'reconnecting');
  }
  if (res.status === 401) {
    const body = await res.json().catch(() => null);
    if (t) {
      sessionStorage.removeItem(TOKEN_KEY);
      $('auth-error').textContent = body?.message ?? 'wrong admin token';
    }
    stop();
    $('auth').hidden = false;
    $('dash').hidden = true;
    $('forget').hidden = true;
    setPoll('token needed', 'idle');
    $('admin-token').focus();
    return;
  }
  if (!res.ok) return setPoll(`HTTP ${res.status}`, 'reconnecting');
  const state = await res.json();
  $('auth').hidden = true;
  $('dash').hidden = false;
  $('forget').hidden = !t;
  setPoll('live', 'open');
  render(state);
}

function setPoll(text, state) {
  const badge = $('poll-state');
  badge.textContent = text;
  badge.dataset.state = state;
}

function push(list, t, v) {
  if (!Number.isFinite(v)) return;
  list.push({ t, v });
  while (list.length && list[0].t < t - WINDOW_MS) list.shift();
}

/** Writes a number (data-value, for machines) and its text (for people). */
function fact(id, value, text = String(value)) {
  const e = $(id);
  e.dataset.value = value === null || value === undefined ? '' : String(value);
  e.textContent = text;
}

function render(s) {
  const now = s.now;
  $('role').textContent = s.role;
  // A gateway instance with workers answers as one: its supervisor's pid, then each worker's.
  $('pid').textContent = s.workers ? `${s.pid}; workers ${s.workers.map((w) => w.pid ?? '?').join(', ')}` : String(s.pid);
  $('uptime').textContent = seconds(s.uptime_s);
  $('bus').textContent = `${s.bus.kind}${s.bus.up ? '' : ' (down)'}`;

  $('checks').replaceChildren(
    ...Object.entries(s.checks).map(([name, ok]) => {
      const li = document.createElement('li');
      li.className = ok ? 'ok' : 'bad';
      li.textContent = `${name}: ${ok ? 'ok' : 'failing'}`;
      return li;
    }),
  );

  if (s.relay) {
    fact('relay-state', s.relay.state);
    fact('relay-lsn', s.relay.confirmed_lsn, s.relay.confirmed_lsn ?? '– (the relay runs in its own thread)');
    fact('relay-heartbeat', s.relay.heartbeat_lag_s, seconds(s.relay.heartbeat_lag_s));
  } else {
    fact('relay-state', null, 'no relay in this process (see "streamed by a relay" below)');
    fact('relay-lsn', null, '–');
    fact('relay-heartbeat', null, '–');
  }

  const slot = s.slot;
  if ('error' in slot) {
    fact('slot-active', null, `cannot read the slot: ${slot.error}`);
  } else {
    $('slot-name').textContent = slot.slot_name;
    if (!slot.exists) fact('slot-active', 'missing', 'the slot does not exist (the relay creates it)');
    else fact('slot-active', slot.active ? 'yes' : 'no', slot.active ? `yes${slot.active_by ? ` (${slot.active_by})` : ''}` : `no${slot.inactive_since ? `, since ${new Date(slot.inactive_since).toLocaleTimeString()}` : ''}`);
    fact('slot-wal-status', slot.wal_status ?? '', slot.wal_status ?? '–');
    fact('slot-lag-bytes', slot.lag_bytes, bytes(slot.lag_bytes));
    fact('slot-lag-seconds', slot.lag_seconds, seconds(slot.lag_seconds));
    fact('slot-retained', slot.retained_wal_bytes, bytes(slot.retained_wal_bytes));
    fact('slot-safe', slot.safe_wal_size, slot.safe_wal_size === null ? 'unlimited (max_slot_wal_keep_size -1)' : bytes(slot.safe_wal_size));
    push(series.lagBytes, now, slot.lag_bytes);
    push(series.lagSeconds, now, slot.lag_seconds);
    push(series.retained, now, slot.retained_wal_bytes);
  }

  if (s.gateway) {
    fact('gw-connections', s.gateway.connections, `${s.gateway.connections} of ${s.gateway.max_connections}`);
    fact('gw-subscriptions', s.gateway.subscriptions);
    fact('gw-channels', s.gateway.channels);
    push(series.connections, now, s.gateway.connections);
  } else {
    for (const id of ['gw-connections', 'gw-subscriptions', 'gw-channels']) fact(id, null, 'no gateway in this process');
  }

  if (previous && previous.pid !== s.pid) {
    // Several processes behind one address (a load balancer over replicas), or a restart.
    $('pid-note').hidden = false;
    $('pid-note').textContent = `Answers came from another process (pid ${previous.pid}, then ${s.pid}): the process restarted, or several processes answer at this address; rates restart.`;
  }
  const c = s.counters;
  // An instance's counters are sums over its workers: when the workers that answered change (one
  // replaced, or too slow this time), the difference is not a rate.
  const sameWorkers = JSON.stringify(previous?.workers?.map((w) => w.pid)) === JSON.stringify(s.workers?.map((w) => w.pid));
  const dt = previous ? (now - previous.now) / 1000 : 0;
  const posts = previous ? (c.messages_stored - previous.counters.messages_stored) / dt : -1;
  const deliveries = previous ? (c.frames_delivered - previous.counters.frames_delivered) / dt : -1;
  if (previous && dt > 0 && s.pid === previous.pid && sameWorkers && posts >= 0 && deliveries >= 0) {
    fact('rate-posts', posts, perSecond(posts));
    fact('rate-deliveries', deliveries, perSecond(deliveries));
    push(series.posts, now, posts);
    push(series.deliveries, now, deliveries);
  }
  previous = s;
  fact('http-requests', c.http_requests);
  fact('http-errors', c.http_server_errors, `${c.http_client_errors} / ${c.http_server_errors}`);
  fact('rate-limited', c.rate_limited);
  fact('upgrades-refused', c.upgrades_refused);

  const charts = [
    ['chart-lag-bytes', series.lagBytes, bytes, 'slot lag'],
    ['chart-lag-seconds', series.lagSeconds, seconds, 'slot lag in seconds'],
    ['chart-retained', series.retained, bytes, 'retained WAL'],
    ['chart-connections', series.connections, String, 'connections'],
    ['chart-posts', series.posts, perSecond, 'posts per second'],
    ['chart-deliveries', series.deliveries, perSecond, 'deliveries per second'],
  ];
  for (const [id, points, format, label] of charts) lineChart($(id), points, { windowMs: WINDOW_MS, format, label });

  $('problems-total').textContent = String(s.problems.total);
  $('problems').replaceChildren(
    ...s.problems.recent
      .slice()
      .reverse()
      .map((p) => {
        const tr = document.createElement('tr');
        tr.className = p.level;
        const cells = [new Date(p.t).toLocaleTimeString(), p.level, p.msg, Object.entries(p.fields).map(([k, v]) => `${k}=${v}`).join(' ')];
        for (const text of cells) {
          const td = document.createElement('td');
          td.textContent = text;
          tr.append(td);
        }
        return tr;
      }),
  );
}

function startPolling() {
  stop();
  const tick = async () => {
    await poll();
    if (timer !== null) timer = setTimeout(tick, POLL_MS);
  };
  timer = setTimeout(tick, 0);
}

function stop() {
  if (timer !== null) clearTimeout(timer);
  timer = null;
}

$('auth-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('admin-token').value.trim());
  $('admin-token').value = '';
  $('auth-error').textContent = '';
  startPolling();
});

$('forget').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
});

startPolling();
