// The walcast demo chat. Everything goes through the public SDK served at /sdk.js (the same
// module as `walcast/sdk`) and the public HTTP API; this file is the whole application.
//
//   sign in      a dev token from POST /dev/token (only `walcast start` on the embedded
//                database gives them, to this machine), or a pasted token;
//   a channel    the latest page of history (conversations.history), then a subscription from
//                the last seq it held, so nothing falls between the two; older pages on demand
//                (before_seq); ChannelModel applies every frame (edits, deletes, reactions);
//   connection   the SDK reconnects and resumes from the last seq it delivered: the header shows
//                its state, the transport, the cursor, and how many times it reconnected;
//   transport    ?transport=websocket|sse|auto (default auto: a WebSocket, SSE when none opens),
//                handed to createClient as is.
//
// window.walcastFrames: every change frame the SDK delivered (all channels, in delivery order),
// for the browser tests to compare transports; the last FRAMES_KEPT only.
import { ChannelModel, createApi, createClient, gatewayUrl } from '/sdk.js';

const $ = (id) => document.getElementById(id);
const HISTORY_PAGE = 30;
const REACTIONS = ['👍', '❤️', '😂', '🎉'];
const CHANNEL_ID = /^C[0-9A-Z]{12}$/;
/** The server forwards one typing frame per user and channel every 2 s: send no more often. */
const TYPING_EVERY_MS = 2100;
const TRANSPORTS = ['auto', 'websocket', 'sse'];
const FRAMES_KEPT = 10_000;

/** The transport asked for in the URL; anything else is refused on the page rather than guessed. */
const transport = new URLSearchParams(location.search).get('transport') ?? 'auto';
const frames = (window.walcastFrames = []);

/** { user, token? }: a pasted token is kept for this tab only (sessionStorage). */
let session = null;
let devToken = null;
let client = null;
let api = null;
/** The open channel: { id, name, model, sub, olderExist, mine: Set<"seq name">, replyTo, editing, stop } */
let room = null;
let lastTypingSent = 0;
let typingTimer = null;

// ------------------------------------------------------------------ tokens and sign-in

class NoDevTokens extends Error {}

async function mintDevToken(user) {
  const res = await fetch('/dev/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user }) });
  const body = await res.json().catch(() => null);
  if (res.status === 404) throw new NoDevTokens('This server gives no dev tokens (only `walcast start` on its embedded database does). Paste a token: `walcast token <user>`.');
  if (!res.ok || !body?.ok) throw new Error(body?.message ?? `POST /dev/token: HTTP ${res.status}`);
  return { token: body.token, expiresAt: body.expires_at };
}

/** The SDK's token provider: called before each connection and when the server says the token expires soon. */
async function getToken() {
  if (session.token) return session.token;
  if (!devToken || devToken.expiresAt - Date.now() < 60_000) devToken = await mintDevToken(session.user);
  return devToken.token;
}

/** The `sub` of a JWT (not verified here: the server does that). */
function subjectOf(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload)).sub;
  } catch {
    return undefined;
  }
}

async function signIn(user, token) {
  $('sign-in-error').textContent = '';
  if (!TRANSPORTS.includes(transport)) throw new Error(`Unknown transport "${transport}" in the address: use ?transport=${TRANSPORTS.join('|')}.`);
  if (token) {
    const sub = subjectOf(token);
    if (!sub) throw new Error('That does not look like a token (a JWT with a `sub`).');
    if (user && user !== sub) throw new Error(`The token is for "${sub}", not "${user}".`);
    session = { user: sub, token };
  } else {
    if (!user) throw new Error('Enter a user name (or a token).');
    session = { user };
    devToken = await mintDevToken(user);
  }
  sessionStorage.setItem('walcast-demo', JSON.stringify(session));
  start();
}

function signOut() {
  closeRoom();
  client?.close();
  client = api = session = devToken = null;
  sessionStorage.removeItem('walcast-demo');
  delete $('messages').dataset.channel; // the next user's rendering starts afresh
  $('app').hidden = true;
  $('whoami').hidden = true;
  $('sign-in').hidden = false;
  setConnection('idle', 'signed out');
}

function start() {
  api = createApi({ baseUrl: location.origin, token: getToken });
  client = createClient({ url: gatewayUrl(location.origin), token: getToken, transport });
  client.onState((state) => {
    if (state !== 'open') room?.model.present.clear(); // presence is re-sent in full on resubscribe
    if (state === 'open' && client.reconnects > 0 && room) {
      $('resumed').textContent = `resumed after seq ${room.sub.lastSeq ?? 0} (last close ${client.lastCloseCode ?? '?'})`;
    }
    setConnection(state);
    renderRoom();
  });
  setConnection(client.state);
  $('me').textContent = session.user;
  $('whoami').hidden = false;
  $('sign-in').hidden = true;
  $('app').hidden = false;
  renderChannels();
  const wanted = location.hash.slice(1);
  if (CHANNEL_ID.test(wanted)) void enter(wanted);
  else {
    const first = channels()[0];
    if (first) void openRoom(first.id);
  }
}

function setConnection(state, label = state) {
  const badge = $('conn-state');
  badge.dataset.state = state;
  badge.textContent = label;
  // `auto` may move to SSE after a failed WebSocket: say which is in use, and what was asked.
  $('transport').textContent = client ? (transport === 'auto' ? `${client.transport} (auto)` : client.transport) : transport;
  $('reconnects').textContent = String(client?.reconnects ?? 0);
  $('cursor').textContent = room?.sub.lastSeq ?? '–';
}

// ------------------------------------------------------------------ channels

const channelsKey = () => `walcast-demo:channels:${session.user}`;

/** The channels this user created or joined here, remembered in this browser ([{ id, name }]). */
function channels() {
  try {
    return JSON.parse(localStorage.getItem(channelsKey()) ?? '[]');
  } catch {
    return [];
  }
}

function remember(channel) {
  const list = channels().filter((c) => c.id !== channel.id);
  list.push({ id: channel.id, name: channel.name });
  localStorage.setItem(channelsKey(), JSON.stringify(list));
  renderChannels();
}

function renderChannels() {
  const ul = $('channels');
  ul.replaceChildren(
    ...channels().map((c) => {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = `# ${c.name}`;
      b.dataset.channel = c.id;
      if (room?.id === c.id) b.setAttribute('aria-current', 'true');
      b.addEventListener('click', () => void openRoom(c.id));
      li.append(b);
      return li;
    }),
  );
}

/** Opens a channel from a link (#C...): joins it first unless this browser already knows it. */
async function enter(id) {
  if (!channels().some((c) => c.id === id)) {
    try {
      remember(await api.join(id));
    } catch (e) {
      return showError('sidebar-error', e);
    }
  }
  await openRoom(id);
}

// ------------------------------------------------------------------ the open channel

function closeRoom() {
  if (!room) return;
  room.stop();
  room = null;
}

async function openRoom(id) {
  closeRoom();
  const name = channels().find((c) => c.id === id)?.name ?? id;
  const model = new ChannelModel(id);
  const r = { id, name, model, sub: null, olderExist: false, mine: new Set(), replyTo: null, editing: null, stop: () => {} };
  room = r;
  if (location.hash !== `#${id}`) history.replaceState(null, '', `#${id}`);
  $('no-room').hidden = true;
  $('room-body').hidden = false;
  $('room-title').textContent = `# ${name}`;
  $('room-id').textContent = id;
  $('messages').replaceChildren();
  $('room-error').textContent = '';
  renderChannels();

  let first;
  try {
    first = await api.history(id, { beforeSeq: Number.MAX_SAFE_INTEGER, limit: HISTORY_PAGE });
  } catch (e) {
    return showError('room-error', e);
  }
  if (room !== r) return;
  model.load(first.messages);
  r.olderExist = first.has_more;
  // From the last seq the page held: every later change arrives, none is missed or repeated.
  r.sub = client.subscribe(id, {
    since: model.lastSeq,
    presence: true,
    onChange: (f) => {
      if ((f.type === 'reaction_added' || f.type === 'reaction_removed') && f.user === session.user) {
        if (f.type === 'reaction_added') r.mine.add(`${f.target_seq} ${f.name}`);
        else r.mine.delete(`${f.target_seq} ${f.name}`);
      }
      frames.push(f);
      if (frames.length > FRAMES_KEPT) frames.splice(0, frames.length - FRAMES_KEPT);
      model.apply(f);
      $('cursor').textContent = r.sub?.lastSeq ?? '–';
    },
    onTyping: (user) => model.typingBy(user),
    onPresence: ({ user, present }) => model.presence(user, present),
    onPresenceCount: (count) => model.presenceCount(count),
    onEnd: (reason) => {
      if (room === r && reason !== 'replaced') showError('room-error', new Error(`subscription ended: ${reason ?? 'unsubscribed'}`));
    },
  });
  r.sub.ready.then(() => room === r && ($('cursor').textContent = r.sub.lastSeq ?? '–'), () => {});
  const stopUpdates = model.onUpdate(() => room === r && renderRoom());
  // Typing indicators expire on their own: look again while someone types.
  const typingTimer = setInterval(() => room === r && renderTyping(), 500);
  r.stop = () => {
    stopUpdates();
    clearInterval(typingTimer);
    r.sub?.unsubscribe();
  };
  renderRoom({ toBottom: true });
}

async function loadOlder() {
  const r = room;
  if (!r?.olderExist || r.loadingOlder) return;
  r.loadingOlder = true;
  try {
    const oldest = r.model.messages[0]?.seq ?? Number.MAX_SAFE_INTEGER;
    const page = await api.history(r.id, { beforeSeq: oldest, limit: HISTORY_PAGE });
    if (room !== r) return;
    r.olderExist = page.has_more;
    const scroller = $('scroller');
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    r.model.load(page.messages); // renders
    scroller.scrollTop = scroller.scrollHeight - fromBottom; // keep what was on screen in place
  } catch (e) {
    showError('room-error', e);
  } finally {
    r.loadingOlder = false;
    renderRoom();
  }
}

// ------------------------------------------------------------------ rendering

const elements = new Map(); // seq -> <li>, for the open room

function renderRoom({ toBottom = false } = {}) {
  if (!room) return;
  const scroller = $('scroller');
  const atBottom = toBottom || scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  const ol = $('messages');
  if (ol.dataset.channel !== room.id) {
    elements.clear();
    ol.replaceChildren();
    ol.dataset.channel = room.id;
  }
  const messages = room.model.messages;
  const bySeq = new Map(messages.map((m) => [m.seq, m]));
  messages.forEach((m, i) => {
    let li = elements.get(m.seq);
    const parent = m.reply_to === null ? undefined : bySeq.get(m.reply_to);
    const mine = [...room.mine].filter((k) => k.startsWith(`${m.seq} `)).join();
    const key = `${m.changed_seq}|${parent?.changed_seq}|${room.editing === m.seq}|${mine}`;
    if (!li) {
      li = document.createElement('li');
      elements.set(m.seq, li);
    }
    if (li.dataset.key !== key) {
      li.dataset.key = key;
      fillMessage(li, m, parent);
    }
    if (ol.children[i] !== li) ol.insertBefore(li, ol.children[i] ?? null);
  });
  $('older').hidden = !room.olderExist;
  $('older').disabled = !!room.loadingOlder;
  const present = [...room.model.present].sort();
  $('presence').textContent = room.model.presentCount !== undefined && present.length === 0 ? `${room.model.presentCount} people` : present.join(', ') || '–';
  $('cursor').textContent = room.sub?.lastSeq ?? '–';
  renderTyping();
  if (atBottom) scroller.scrollTop = scroller.scrollHeight;
}

function renderTyping() {
  const typing = room.model.typing.filter((u) => u !== session.user);
  $('typing').textContent = typing.length ? `${typing.join(', ')} ${typing.length > 1 ? 'are' : 'is'} typing…` : '';
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-') || k.startsWith('aria-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  e.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return e;
}

function fillMessage(li, m, parent) {
  const mine = m.user === session.user;
  const deleted = m.deleted_at !== null;
  li.className = `msg${mine ? ' mine' : ''}${deleted ? ' deleted' : ''}`;
  li.dataset.seq = String(m.seq);
  const time = new Date(m.created_at);
  const meta = el(
    'div',
    { class: 'meta' },
    el('span', { class: 'seq', title: 'seq: its place in the channel' }, `#${m.seq}`),
    ' ',
    el('b', { class: 'author' }, m.user),
    ' ',
    el('time', { dateTime: m.created_at }, time.toLocaleTimeString()),
    m.edited_at && !deleted ? el('span', { class: 'edited muted' }, ' (edited)') : null,
  );
  const reply = m.reply_to !== null
    ? el('div', { class: 'reply-ref muted' }, `↪ #${m.reply_to}${parent ? ` ${parent.user}: ${parent.deleted_at ? '(deleted)' : parent.text.slice(0, 60)}` : ''}`)
    : null;
  let body;
  if (deleted) body = el('p', { class: 'text tombstone muted' }, 'message deleted');
  else if (room.editing === m.seq) {
    const input = el('input', { class: 'edit-text', value: m.text, 'aria-label': `Edit message ${m.seq}` });
    body = el('form', { class: 'edit inline', 'data-seq': m.seq }, input, el('button', { type: 'submit' }, 'Save'), el('button', { type: 'button', 'data-action': 'cancel-edit', 'data-seq': m.seq }, 'Cancel'));
    queueMicrotask(() => input.focus());
  } else body = el('p', { class: 'text' }, m.text);
  const reactions = el(
    'div',
    { class: 'reactions' },
    ...Object.entries(m.reactions).map(([name, n]) =>
      el('button', { type: 'button', class: 'reaction', 'data-action': 'react', 'data-seq': m.seq, 'data-name': name, 'aria-pressed': String(room.mine.has(`${m.seq} ${name}`)), 'aria-label': `${name} ${n}` }, `${name} ${n}`),
    ),
  );
  const actions = deleted
    ? null
    : el(
        'div',
        { class: 'actions' },
        el('button', { type: 'button', 'data-action': 'reply', 'data-seq': m.seq }, 'Reply'),
        ...REACTIONS.map((name) => el('button', { type: 'button', 'data-action': 'react', 'data-seq': m.seq, 'data-name': name, 'aria-label': `React ${name}` }, name)),
        mine ? el('button', { type: 'button', 'data-action': 'edit', 'data-seq': m.seq }, 'Edit') : null,
        mine ? el('button', { type: 'button', 'data-action': 'delete', 'data-seq': m.seq }, 'Delete') : null,
      );
  li.replaceChildren(meta, reply ?? '', body, reactions, actions ?? '');
}

function showError(where, e) {
  $(where).textContent = e?.code ? `${e.code}: ${e.message}` : String(e?.message ?? e);
}

// ------------------------------------------------------------------ actions

async function act(where, f) {
  $(where).textContent = '';
  try {
    await f();
  } catch (e) {
    showError(where, e);
  }
}

$('sign-in-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const user = $('user').value.trim();
  const token = $('token').value.trim();
  signIn(user, token).catch((e) => {
    session = null;
    $('sign-in-error').textContent = e.message;
    if (e instanceof NoDevTokens) $('token').focus();
  });
});

$('sign-out').addEventListener('click', signOut);

$('create-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  void act('sidebar-error', async () => {
    const channel = await api.createChannel($('new-channel').value.trim(), { isPrivate: $('new-private').checked });
    $('new-channel').value = '';
    remember(channel);
    await openRoom(channel.id);
  });
});

$('join-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  void act('sidebar-error', async () => {
    const channel = await api.join($('join-id').value.trim());
    $('join-id').value = '';
    remember(channel);
    await openRoom(channel.id);
  });
});

$('invite-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const users = $('invite-users').value.split(/[\s,]+/).filter(Boolean);
  if (!room || users.length === 0) return;
  void act('room-error', async () => {
    await api.invite(room.id, users);
    $('invite-users').value = '';
  });
});

$('compose').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = $('text').value;
  if (!room || !text.trim()) return;
  const r = room;
  const replyTo = r.replyTo ?? undefined;
  // Cleared at once, so the next message can be typed while this one is being stored.
  $('text').value = '';
  setReply(null);
  void act('room-error', async () => {
    try {
      // A client_msg_id makes a retry safe: the server stores the message once.
      await api.postMessage(r.id, text, { clientMsgId: crypto.randomUUID(), replyTo });
    } catch (e) {
      if (!$('text').value) $('text').value = text; // give the text back to retry
      throw e;
    }
    // Not rendered here: the message appears when its frame arrives, i.e. once it is stored.
  });
});

/** Tells the others this user is typing: now, or (keystrokes coming faster) once the interval is over. */
function typing() {
  if (!room || typingTimer || !$('text').value) return;
  const wait = lastTypingSent + TYPING_EVERY_MS - Date.now();
  if (wait > 0) {
    typingTimer = setTimeout(() => {
      typingTimer = null;
      typing();
    }, wait);
    return;
  }
  if (client.typing(room.id)) lastTypingSent = Date.now();
}
$('text').addEventListener('input', typing);

$('cancel-reply').addEventListener('click', () => setReply(null));

function setReply(seq) {
  if (!room) return;
  room.replyTo = seq;
  $('replying').hidden = seq === null;
  $('replying-to').textContent = seq === null ? '' : `#${seq}`;
  if (seq !== null) $('text').focus();
}

$('older').addEventListener('click', () => void loadOlder());
$('scroller').addEventListener('scroll', () => {
  if ($('scroller').scrollTop < 20) void loadOlder();
});

$('messages').addEventListener('click', (ev) => {
  const b = ev.target.closest('button[data-action]');
  if (!b || !room) return;
  const seq = Number(b.dataset.seq);
  const r = room;
  switch (b.dataset.action) {
    case 'reply':
      return setReply(seq);
    case 'edit':
      r.editing = seq;
      return renderRoom();
    case 'cancel-edit':
      r.editing = null;
      return renderRoom();
    case 'delete':
      return void act('room-error', () => api.delete(r.id, seq));
    case 'react': {
      const key = `${seq} ${b.dataset.name}`;
      return void act('room-error', async () => {
        // Reactions are counts; which are this user's is known from their frames and from here.
        if (r.mine.has(key)) {
          await api.unreact(r.id, seq, b.dataset.name);
          r.mine.delete(key);
        } else {
          await api.react(r.id, seq, b.dataset.name);
          r.mine.add(key);
        }
        if (room === r) renderRoom();
      });
    }
  }
});

$('messages').addEventListener('submit', (ev) => {
  const form = ev.target.closest('form.edit');
  if (!form || !room) return;
  ev.preventDefault();
  const r = room;
  const seq = Number(form.dataset.seq);
  const text = form.querySelector('input').value;
  void act('room-error', async () => {
    await api.update(r.id, seq, text);
    r.editing = null;
    renderRoom();
  });
});

window.addEventListener('hashchange', () => {
  const id = location.hash.slice(1);
  if (session && CHANNEL_ID.test(id) && id !== room?.id) void enter(id);
});

$('transport').textContent = transport;

// A reload in the same tab stays signed in.
try {
  const saved = JSON.parse(sessionStorage.getItem('walcast-demo') ?? 'null');
  if (saved?.user && TRANSPORTS.includes(transport)) {
    session = saved;
    start();
  }
} catch {
  sessionStorage.removeItem('walcast-demo');
}
