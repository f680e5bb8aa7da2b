'use strict';
// Shared room check for sio4-chat.mjs and sio2-chat.cjs. Each script supplies an adapter
// around its socket.io client; this module runs the protocol check and prints ONE JSON line.
//
// Adapter: { name, engineIO, connect(url, { roomid, transport, headers }) -> Client }
// Client:  { onConnect(fn), onRejected(fn(message)), onTransportError(fn(message)),
//            onServerError(fn(payload)), onMessage(fn(payload)), onDisconnect(fn(reason)),
//            emit(event, data),
//            transportName(), close() }

const ROOM_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
const TRANSPORTS = ['websocket', 'polling', 'upgrade'];

class CheckError extends Error {}

function parseArgs(script, argv) {
  const opts = {
    urls: [],
    room: null,
    transport: 'websocket',
    members: 3,
    messages: 10,
    timeoutMs: 20000,
    intervalMs: 5,
    settleMs: 200,
    roomidCheck: true,
    errorCheck: false,
    forwardedFor: false,
  };
  const usage = () =>
    `usage: node ${script} --url URL [--url URL2 ...] --room ROOM ` +
    `[--transport websocket|polling|upgrade] [--members N] [--messages M] [--timeout MS] ` +
    `[--interval-ms MS] [--settle-ms MS] [--skip-roomid-check] [--check-errors] [--forwarded-for]`;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const key = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const val = () => {
      if (eq > 0 && key !== a) return a.slice(eq + 1);
      if (i + 1 >= argv.length) throw new CheckError(`${key} needs a value\n${usage()}`);
      return argv[++i];
    };
    const int = (name, min) => {
      const v = Number(val());
      if (!Number.isInteger(v) || v < min) throw new CheckError(`${name} must be an integer >= ${min}`);
      return v;
    };
    switch (key) {
      case '--url':
        for (const u of val().split(',')) if (u) opts.urls.push(u.replace(/\/+$/, ''));
        break;
      case '--room': opts.room = val(); break;
      case '--transport': opts.transport = val(); break;
      case '--members': opts.members = int('--members', 1); break;
      case '--messages': opts.messages = int('--messages', 0); break;
      case '--timeout': opts.timeoutMs = int('--timeout', 1); break;
      case '--interval-ms': opts.intervalMs = int('--interval-ms', 0); break;
      case '--settle-ms': opts.settleMs = int('--settle-ms', 0); break;
      case '--skip-roomid-check': opts.roomidCheck = false; break;
      case '--check-errors': opts.errorCheck = true; break;
      case '--forwarded-for': opts.forwardedFor = true; break;
      case '-h': case '--help': throw new CheckError(usage());
      default: throw new CheckError(`unknown argument ${a}\n${usage()}`);
    }
  }
  if (opts.urls.length === 0) throw new CheckError(`--url is required\n${usage()}`);
  for (const u of opts.urls) {
    if (!/^https?:\/\/[^/]+$/.test(u)) throw new CheckError(`--url must be an origin like http://127.0.0.1:8080, got ${u}`);
  }
  if (opts.room === null) opts.room = `compat-${Date.now().toString(36)}-${rand(4)}`;
  if (!ROOM_RE.test(opts.room)) throw new CheckError(`--room must be 1-64 chars of A-Z a-z 0-9 _ . : -`);
  if (!TRANSPORTS.includes(opts.transport)) throw new CheckError(`--transport must be one of ${TRANSPORTS.join('|')}`);
  return opts;
}

function rand(n) {
  let s = '';
  while (s.length < n) s += Math.random().toString(36).slice(2);
  return s.slice(0, n);
}

// engine.io-client errors carry their cause in `description` (an Error, an event, a status).
function describeError(err) {
  if (!err) return String(err);
  let msg = err.message || String(err);
  const d = err.description;
  if (d !== undefined && d !== null) {
    const inner = typeof d === 'object' ? (d.message || (d.error && d.error.message) || d.code || d.type) : d;
    if (inner !== undefined) msg += ` (${inner})`;
  }
  return msg;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The text a member sends for sequence number seq: the sender and the sequence, plus
// characters that must survive JSON/UTF-8 framing untouched.
function textFor(username, seq) {
  return `${username} #${seq} héllo ✓ "q" <b>&amp;</b>`;
}
const TEXT_RE = /^(\S+) #(\d+) /;

async function run(adapter, script, argv) {
  const started = Date.now();
  let phase = 'arguments';
  let opts;
  const clients = [];
  let waiters = []; // { check: () => bool, resolve }

  const fail = (msg) => {
    process.stderr.write(`${script}: FAIL in phase "${phase}": ${msg}\n`);
    for (const c of clients) { try { c.close(); } catch (_) { /* ignore */ } }
    process.exit(1);
  };
  const poke = () => {
    const still = [];
    for (const w of waiters) (w.check() ? w.resolve() : still.push(w));
    waiters = still;
  };
  const until = (check) => new Promise((resolve) => {
    if (check()) resolve();
    else waiters.push({ check, resolve });
  });

  try {
    opts = parseArgs(script, argv);
  } catch (e) {
    process.stderr.write(`${script}: ${e.message}\n`);
    process.exit(2);
  }

  const members = [];
  const timer = setTimeout(() => {
    const detail = members.map((m) => `${m.username}: joins=${m.joinsSeen.size} says=${m.saysReceived} quits=${m.quitsSeen.size}`).join('; ');
    fail(`overall timeout of ${opts.timeoutMs} ms reached${detail ? ` (${detail})` : ''}`);
  }, opts.timeoutMs);

  // --forwarded-for: member i claims its own /24 (198.18.i.1, 198.19.… past 256), so a proxy
  // that trusts X-Forwarded-For and hashes client addresses (nginx ip_hash) spreads the members.
  const forwardedFor = (i) => `198.${18 + (i >> 8)}.${i & 255}.1`;
  const connectOne = (url, roomid, i = 0) => adapter.connect(url, {
    roomid,
    transport: opts.transport,
    headers: opts.forwardedFor ? { 'X-Forwarded-For': forwardedFor(i) } : {},
  });

  // 1. The server must refuse a connect without roomid, and one with an invalid roomid,
  //    with a connect error that carries a message.
  const roomidCheck = {};
  const expectRejected = (label, roomid) => new Promise((resolve) => {
    const c = connectOne(opts.urls[0], roomid);
    clients.push(c);
    c.onConnect(() => fail(`server accepted a connection with ${label}`));
    c.onTransportError((m) => fail(`transport error instead of a connect error for ${label}: ${m}`));
    c.onRejected((message) => {
      if (typeof message !== 'string' || message.trim() === '') {
        fail(`connect error for ${label} has no message: ${JSON.stringify(message)}`);
      }
      c.close();
      resolve(message);
    });
  });
  if (opts.roomidCheck) {
    phase = 'roomid-check';
    roomidCheck.missing = await expectRejected('no roomid', null);
    roomidCheck.invalid = await expectRejected('an invalid roomid', 'bad room!');
  }

  // 1b. (--check-errors) Rejected input gets an `error` event {code, message} on that socket.
  const errorCheck = {};
  if (opts.errorCheck) {
    phase = 'error-check';
    const probe = connectOne(opts.urls[0], opts.room);
    clients.push(probe);
    const queue = [];
    let wake = null;
    probe.onTransportError((m) => fail(`probe: transport error: ${m}`));
    probe.onRejected((m) => fail(`probe refused: ${m}`));
    probe.onDisconnect((r) => fail(`probe was disconnected: ${r}`));
    probe.onMessage((msg) => {
      if (msg && msg.event === 'broadcast_say') fail(`a say that should be rejected was broadcast: ${JSON.stringify(msg)}`);
    });
    probe.onServerError((p) => { queue.push(p); if (wake) wake(); });
    await new Promise((resolve) => probe.onConnect(resolve));
    const expectError = async (label, code, event, data) => {
      probe.emit(event, data);
      while (queue.length === 0) await new Promise((r) => { wake = r; });
      wake = null;
      const p = queue.shift();
      if (!p || p.code !== code || typeof p.message !== 'string' || p.message === '') {
        fail(`${label}: expected error {code:"${code}", message} but got ${JSON.stringify(p)}`);
      }
      errorCheck[label] = p.code;
    };
    await expectError('say_before_join', 'not_joined', 'say', { text: 'too early' });
    await expectError('empty_username', 'invalid_username', 'join', { username: '   ' });
    await expectError('long_username', 'invalid_username', 'join', { username: 'x'.repeat(33) });
    probe.close();
  }

  // 2. Connect every member (spread over the given URLs), then join one at a time so the
  //    expected join notices are exact: member i must see the joins of members i..N-1.
  phase = 'connect';
  const tag = rand(4);
  const byName = new Map();
  for (let i = 0; i < opts.members; i++) {
    const username = `${adapter.short}-${tag}-${i}`;
    const m = {
      i, username, url: opts.urls[i % opts.urls.length],
      connected: false, joinsSeen: new Set(), earlyJoins: new Set(), lastSeq: new Map(), saysReceived: 0, quitsSeen: new Set(),
    };
    members.push(m);
    byName.set(username, m);
  }
  const onMessage = (m, msg) => {
    if (!msg || typeof msg !== 'object' || typeof msg.event !== 'string' || !msg.data || typeof msg.data !== 'object') {
      fail(`${m.username} got a malformed message event: ${JSON.stringify(msg)}`);
    }
    const { event, data } = msg;
    // The protocol's shapes exactly: join/broadcast_quit {username}, broadcast_say {username, text}.
    const want = event === 'broadcast_say' ? 'text,username' : 'username';
    if (Object.keys(msg).sort().join(',') !== 'data,event' || Object.keys(data).sort().join(',') !== want) {
      fail(`${m.username} got a message whose fields differ from the protocol's: ${JSON.stringify(msg)}`);
    }
    const from = data.username;
    if (!byName.has(from)) fail(`${m.username} got a ${event} from a member not in this test (room leak?): ${JSON.stringify(msg)}`);
    const sender = byName.get(from);
    if (event === 'join') {
      // Members joining after m must be announced to m. Whether a member that is connected
      // but has not joined yet also gets notices is up to the server, so the join of an
      // earlier member may arrive too (it is counted as joins_extra); twice is always wrong.
      if (m.joinsSeen.has(from) || m.earlyJoins.has(from)) fail(`${m.username} got the join of ${from} twice`);
      if (sender.i < m.i) {
        m.earlyJoins.add(from);
        return;
      }
      m.joinsSeen.add(from);
    } else if (event === 'broadcast_say') {
      const match = TEXT_RE.exec(typeof data.text === 'string' ? data.text : '');
      if (!match || match[1] !== from) fail(`${m.username} got a say whose text does not name its sender: ${JSON.stringify(msg)}`);
      const seq = Number(match[2]);
      if (data.text !== textFor(from, seq)) fail(`${m.username} got an altered text: ${JSON.stringify(data.text)}, sent ${JSON.stringify(textFor(from, seq))}`);
      const last = m.lastSeq.get(from) || 0;
      if (seq <= last) fail(`${m.username} got ${from} #${seq} again (duplicate; last was #${last})`);
      if (seq !== last + 1) fail(`${m.username} got ${from} #${seq} after #${last} (lost or out of order)`);
      if (seq > opts.messages) fail(`${m.username} got ${from} #${seq}, more than the ${opts.messages} sent`);
      m.lastSeq.set(from, seq);
      m.saysReceived++;
    } else if (event === 'broadcast_quit') {
      if (m.quitsSeen.has(from)) fail(`${m.username} got the quit of ${from} twice`);
      if (!sender.left) fail(`${m.username} got a quit for ${from}, who is still connected`);
      m.quitsSeen.add(from);
    } else {
      fail(`${m.username} got an unknown message event ${JSON.stringify(event)}`);
    }
    poke();
  };
  await Promise.all(members.map((m) => new Promise((resolve) => {
    const c = connectOne(m.url, opts.room, m.i);
    m.client = c;
    clients.push(c);
    c.onConnect(() => {
      if (m.connected) fail(`${m.username} connected twice`);
      m.connected = true;
      resolve();
    });
    c.onRejected((msg) => fail(`${m.username} at ${m.url} refused: ${msg}`));
    c.onTransportError((msg) => fail(`${m.username} at ${m.url}: transport error: ${msg}`));
    c.onServerError((p) => fail(`${m.username} got an error event: ${JSON.stringify(p)}`));
    c.onMessage((msg) => onMessage(m, msg));
    c.onDisconnect((reason) => { if (!m.left) fail(`${m.username} was disconnected: ${reason}`); });
  })));

  phase = 'join';
  for (const m of members) {
    m.client.emit('join', { username: m.username });
    await until(() => m.joinsSeen.has(m.username));
  }
  await until(() => members.every((m) => m.joinsSeen.size === opts.members - m.i));

  // 3. Everyone says M numbered messages; everyone must get every member's messages exactly
  //    once, in each sender's order, including its own.
  phase = 'say';
  await Promise.all(members.map(async (m) => {
    for (let seq = 1; seq <= opts.messages; seq++) {
      m.client.emit('say', { text: textFor(m.username, seq) });
      if (opts.intervalMs > 0 && seq < opts.messages) await sleep(opts.intervalMs);
    }
  }));
  const perMember = opts.members * opts.messages;
  await until(() => members.every((m) => m.saysReceived === perMember));
  // Quiet period: a duplicate delivered late would fail in onMessage.
  if (opts.settleMs > 0) await sleep(opts.settleMs);

  // 4. The first member leaves; every other member gets its quit notice.
  phase = 'quit';
  let quitsReceived = 0;
  if (opts.members > 1) {
    const leaver = members[0];
    leaver.left = true;
    leaver.client.close();
    await until(() => members.slice(1).every((m) => m.quitsSeen.has(leaver.username)));
    quitsReceived = members.slice(1).length;
  }

  phase = 'report';
  const transportsUsed = {};
  for (const m of members.slice(opts.members > 1 ? 1 : 0)) {
    const t = m.client.transportName();
    transportsUsed[t] = (transportsUsed[t] || 0) + 1;
  }
  if (opts.transport !== 'upgrade' && Object.keys(transportsUsed).some((t) => t !== opts.transport)) {
    fail(`asked for ${opts.transport} but clients used ${JSON.stringify(transportsUsed)}`);
  }
  const result = {
    ok: true,
    script,
    client: adapter.name,
    engine_io: adapter.engineIO,
    urls: opts.urls,
    room: opts.room,
    transport: opts.transport,
    transports_used: transportsUsed,
    members: opts.members,
    messages_per_member: opts.messages,
    says_sent: opts.members * opts.messages,
    says_received: members.reduce((a, m) => a + m.saysReceived, 0),
    joins_received: members.reduce((a, m) => a + m.joinsSeen.size, 0),
    joins_expected: (opts.members * (opts.members + 1)) / 2,
    joins_extra: members.reduce((a, m) => a + m.earlyJoins.size, 0),
    quits_received: quitsReceived,
    roomid_check: opts.roomidCheck ? roomidCheck : 'skipped',
    error_check: opts.errorCheck ? errorCheck : 'skipped',
    duration_ms: Date.now() - started,
  };
  clearTimeout(timer);
  for (const c of clients) { try { c.close(); } catch (_) { /* ignore */ } }
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
}

module.exports = { run, parseArgs, textFor, describeError, ROOM_RE };
