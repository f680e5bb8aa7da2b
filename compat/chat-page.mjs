#!/usr/bin/env node
// Drives the real chat page (web/) in Debian's headless Chromium through playwright-core:
// two pages join one room, A sends a normal message and an HTML/XSS probe, B replies, and the
// script checks what each page shows. Waits only on DOM conditions. See README.md.
//
//   node compat/chat-page.mjs --url URL [--url2 URL2] [--server S] [--server2 S2]
//        [--room ROOM] [--transport websocket|polling] [--timeout MS] [--screenshot DIR]
//        [--chromium PATH]
//
// --url/--url2: where the page is loaded (the server serving web/ at /); B uses --url2 when
// given (e.g. a second worker). --server/--server2: optional Socket.IO origins passed to the
// page as ?server= (the page's cross-origin mode), for a page served by another host.
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const SCRIPT = 'chat-page.mjs';
const ROOM_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

function usage() {
  return `usage: node ${SCRIPT} --url URL [--url2 URL2] [--server S] [--server2 S2] [--room ROOM] ` +
    `[--transport websocket|polling] [--timeout MS] [--screenshot DIR] [--chromium PATH] [--forwarded-for IP_A,IP_B]`;
}

function parseArgs(argv) {
  const o = {
    url: null, url2: null, server: null, server2: null, room: null, transport: null,
    timeoutMs: 20000, screenshot: null, chromium: process.env.CHROMIUM || '/usr/bin/chromium',
    forwardedFor: null,
  };
  const keys = { '--url': 'url', '--url2': 'url2', '--server': 'server', '--server2': 'server2', '--room': 'room',
    '--transport': 'transport', '--timeout': 'timeoutMs', '--screenshot': 'screenshot', '--chromium': 'chromium',
    '--forwarded-for': 'forwardedFor' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const key = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    if (key === '-h' || key === '--help') throw new Error(usage());
    if (!(key in keys)) throw new Error(`unknown argument ${a}\n${usage()}`);
    let v;
    if (key !== a) v = a.slice(eq + 1);
    else if (i + 1 < argv.length) v = argv[++i];
    else throw new Error(`${key} needs a value`);
    o[keys[key]] = v;
  }
  if (!o.url) throw new Error(`--url is required\n${usage()}`);
  for (const k of ['url', 'url2', 'server', 'server2']) {
    if (o[k] === null) continue;
    o[k] = o[k].replace(/\/+$/, '');
    if (!/^https?:\/\/[^/?#]+$/.test(o[k])) throw new Error(`--${k} must be an origin like http://127.0.0.1:8080, got ${o[k]}`);
  }
  o.url2 = o.url2 || o.url;
  // Through nginx both pages come from 127.0.0.1; a trusted X-Forwarded-For per page lets
  // ip_hash put them on different workers.
  o.forwardedFor = o.forwardedFor === null ? [null, null] : o.forwardedFor.split(',');
  if (o.server && !o.server2) o.server2 = o.server;
  o.timeoutMs = Number(o.timeoutMs);
  if (!Number.isInteger(o.timeoutMs) || o.timeoutMs < 1) throw new Error('--timeout must be a positive integer (ms)');
  if (o.transport !== null && !['websocket', 'polling'].includes(o.transport)) throw new Error('--transport must be websocket or polling');
  if (o.room === null) o.room = `page-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  if (!ROOM_RE.test(o.room)) throw new Error('--room must be 1-64 chars of A-Z a-z 0-9 _ . : -');
  return o;
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`${SCRIPT}: ${e.message}\n`);
  process.exit(2);
}

const started = Date.now();
const deadline = started + opts.timeoutMs;
const remaining = () => Math.max(1, deadline - Date.now());
let phase = 'launch';
let browser = null;
const pageErrors = [];

async function fail(msg) {
  process.stderr.write(`${SCRIPT}: FAIL in phase "${phase}": ${msg}\n`);
  if (pageErrors.length) process.stderr.write(`${SCRIPT}: page errors: ${JSON.stringify(pageErrors)}\n`);
  if (browser) await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 2000))]);
  process.exit(1);
}

const overall = setTimeout(() => fail(`overall timeout of ${opts.timeoutMs} ms reached`), opts.timeoutMs);

const tag = Math.random().toString(36).slice(2, 6);
const nameA = `alice-${tag}`;
const nameB = `bob-${tag}`;
const MSG1 = `hello from ${nameA} — ünïcödé ✓ 👋 & "quotes"`;
const XSS = '<img src=x onerror="window.__xss=1">';
const MSG3 = `reply from ${nameB}: got it <b>not bold</b>`;

function pageUrl(base, server, name) {
  const q = new URLSearchParams({ room: opts.room, name });
  if (server) q.set('server', server);
  if (opts.transport) q.set('transport', opts.transport);
  return `${base}/?${q.toString()}`;
}

// Wait for a DOM condition evaluated in the page; `what` names it in the failure message.
async function waitFor(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: remaining() });
  } catch (e) {
    const state = await page.evaluate(() => ({
      state: document.body.dataset.state,
      status: document.getElementById('status-text') && document.getElementById('status-text').textContent,
      list: Array.from(document.querySelectorAll('#list > li')).map((li) => `${li.className}: ${li.textContent}`),
    })).catch(() => ({}));
    await fail(`waiting for ${what}: ${e.message.split('\n')[0]}; page: ${JSON.stringify(state)}`);
  }
}

const texts = (page, selector) => page.$$eval(selector, (els) => els.map((e) => e.textContent));

async function openPage(label, base, server, name, viewport, forwardedFor) {
  const extraHTTPHeaders = forwardedFor ? { 'X-Forwarded-For': forwardedFor } : {};
  const context = await browser.newContext({ viewport, extraHTTPHeaders });
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(`${label}: ${err.message}`));
  const url = pageUrl(base, server, name);
  const resp = await page.goto(url, { timeout: remaining(), waitUntil: 'load' });
  if (!resp || !resp.ok()) await fail(`${label}: GET ${url} answered ${resp ? resp.status() : 'nothing'}`);
  await waitFor(page, `${label}: form prefilled from ?room= and ?name=`,
    ([room, n]) => document.getElementById('room').value === room && document.getElementById('name').value === n &&
      !document.getElementById('join').disabled,
    [opts.room, name]);
  return { page, context, url, name, label };
}

async function shot(page, file) {
  if (!opts.screenshot) return;
  const out = path.join(opts.screenshot, file);
  await page.screenshot({ path: out });
  shots.push(out);
}
const shots = [];

async function join(p) {
  await p.page.click('#join');
  await waitFor(p.page, `${p.label}: body[data-state=joined]`, () => document.body.dataset.state === 'joined');
  await waitFor(p.page, `${p.label}: its own join notice`,
    (n) => !!document.querySelector(`#list .notice[data-event="join"][data-username="${CSS.escape(n)}"]`), p.name);
}

async function main() {
  if (opts.screenshot) mkdirSync(opts.screenshot, { recursive: true });
  try {
    readFileSync(opts.chromium);
  } catch (e) {
    await fail(`no Chromium at ${opts.chromium} (apt-get install -y chromium): ${e.code}`);
  }
  browser = await chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: remaining(),
  });

  phase = 'open pages';
  const A = await openPage('A', opts.url, opts.server, nameA, { width: 1280, height: 800 }, opts.forwardedFor[0]);
  const B = await openPage('B', opts.url2, opts.server2, nameB, { width: 390, height: 844 }, opts.forwardedFor[1]);
  await shot(A.page, 'login-1280.png');
  await shot(B.page, 'login-390.png');

  phase = 'join';
  await join(A);
  await join(B);
  await waitFor(A.page, 'A: join notice of B',
    (n) => !!document.querySelector(`#list .notice[data-event="join"][data-username="${CSS.escape(n)}"]`), nameB);
  const transportA = await A.page.evaluate(() => document.body.dataset.transport);
  const transportB = await B.page.evaluate(() => document.body.dataset.transport);
  if (opts.transport && (transportA !== opts.transport || transportB !== opts.transport)) {
    await fail(`asked for ${opts.transport}, pages use ${transportA} and ${transportB}`);
  }

  phase = 'A says';
  // First with Enter, then with the Send button. The page renders only the server's echo.
  await A.page.fill('#text', MSG1);
  await A.page.press('#text', 'Enter');
  await waitFor(A.page, 'A: its first message echoed on the right',
    (t) => Array.from(document.querySelectorAll('#list .msg.me .text')).some((e) => e.textContent === t), MSG1);
  const afterEnter = await A.page.$eval('#text', (e) => e.value);
  if (afterEnter !== '') await fail(`the input was not cleared after Enter: ${JSON.stringify(afterEnter)}`);
  await A.page.fill('#text', XSS);
  await A.page.click('#send');
  await waitFor(A.page, 'A: 2 own messages (.msg.me)', () => document.querySelectorAll('#list .msg.me').length >= 2);

  phase = 'B receives';
  await waitFor(B.page, "B: 2 of A's messages on the left (.msg.other)", () => document.querySelectorAll('#list .msg.other').length >= 2);
  const bOther = await texts(B.page, '#list .msg.other .text');
  const bOtherNames = await B.page.$$eval('#list .msg.other', (els) => els.map((e) => e.dataset.username));
  const aMe = await texts(A.page, '#list .msg.me .text');
  if (JSON.stringify(bOther) !== JSON.stringify([MSG1, XSS])) await fail(`B shows ${JSON.stringify(bOther)}, expected ${JSON.stringify([MSG1, XSS])}`);
  if (bOtherNames.some((n) => n !== nameA)) await fail(`B attributes A's messages to ${JSON.stringify(bOtherNames)}`);
  if (JSON.stringify(aMe) !== JSON.stringify([MSG1, XSS])) await fail(`A shows its own as ${JSON.stringify(aMe)}, expected ${JSON.stringify([MSG1, XSS])}`);
  const bNick = await texts(B.page, '#list .msg.other .nick');
  if (!bNick.includes(nameA)) await fail(`B does not show A's nickname next to its messages: ${JSON.stringify(bNick)}`);

  phase = 'B replies';
  await B.page.fill('#text', MSG3);
  await B.page.click('#send');
  await waitFor(B.page, 'B: its reply on the right',
    (t) => Array.from(document.querySelectorAll('#list .msg.me .text')).some((e) => e.textContent === t), MSG3);
  await waitFor(A.page, "A: B's reply on the left",
    (t) => Array.from(document.querySelectorAll('#list .msg.other .text')).some((e) => e.textContent === t), MSG3);

  phase = 'html check';
  const probe = () => ({
    imgs: document.querySelectorAll('img').length,
    bolds: document.querySelectorAll('#list b').length,
    xss: typeof window.__xss,
    me: Array.from(document.querySelectorAll('#list .msg.me .text')).map((e) => e.textContent),
    other: Array.from(document.querySelectorAll('#list .msg.other .text')).map((e) => e.textContent),
  });
  const pa = await A.page.evaluate(probe);
  const pb = await B.page.evaluate(probe);
  for (const [label, p] of [['A', pa], ['B', pb]]) {
    if (p.imgs !== 0) await fail(`${label}: an <img> element was created from message text`);
    if (p.bolds !== 0) await fail(`${label}: a <b> element was created from message text`);
    if (p.xss !== 'undefined') await fail(`${label}: window.__xss is ${p.xss}: the probe ran`);
  }
  if (JSON.stringify(pa.me) !== JSON.stringify([MSG1, XSS]) || JSON.stringify(pa.other) !== JSON.stringify([MSG3])) {
    await fail(`A's final view is wrong: ${JSON.stringify(pa)}`);
  }
  if (JSON.stringify(pb.me) !== JSON.stringify([MSG3]) || JSON.stringify(pb.other) !== JSON.stringify([MSG1, XSS])) {
    await fail(`B's final view is wrong: ${JSON.stringify(pb)}`);
  }
  // The .me/.other sides must really be on the right/left.
  const side = (page) => page.evaluate(() => {
    const list = document.getElementById('list').getBoundingClientRect();
    const mid = list.left + list.width / 2;
    const at = (sel) => Array.from(document.querySelectorAll(sel)).map((e) => {
      const r = e.getBoundingClientRect();
      return r.left + r.width / 2 > mid ? 'right' : 'left';
    });
    return { me: at('#list .msg.me .text'), other: at('#list .msg.other .text') };
  });
  for (const [label, page] of [['A', A.page], ['B', B.page]]) {
    const s = await side(page);
    if (s.me.some((x) => x !== 'right') || s.other.some((x) => x !== 'left')) {
      await fail(`${label}: own messages must sit right and others left, got ${JSON.stringify(s)}`);
    }
  }
  await shot(A.page, 'chat-1280.png');
  await shot(B.page, 'chat-390.png');

  phase = 'leave';
  // A presses Leave (a clean Socket.IO disconnect): B must see A leave. Closing a tab is not
  // used here: a long-polling client that just vanishes is only noticed at the heartbeat
  // timeout, which is longer than this script waits.
  await A.page.click('#leave');
  await waitFor(B.page, 'B: leave notice of A',
    (n) => !!document.querySelector(`#list .notice[data-event="quit"][data-username="${CSS.escape(n)}"]`), nameA);
  await shot(B.page, 'left-390.png');
  await A.context.close();
  const noticesB = await B.page.$$eval('#list .notice', (els) => els.map((e) => ({ event: e.dataset.event, username: e.dataset.username, text: e.textContent })));

  phase = 'report';
  if (pageErrors.length) await fail(`uncaught errors in the page: ${JSON.stringify(pageErrors)}`);
  const version = await browser.version();
  await B.context.close();
  await browser.close();
  browser = null;
  clearTimeout(overall);
  const result = {
    ok: true,
    script: SCRIPT,
    browser: `chromium ${version}`,
    url: opts.url,
    url2: opts.url2,
    server: opts.server,
    server2: opts.server2,
    room: opts.room,
    transport: { A: transportA, B: transportB },
    a_me: aMe.length,
    b_other: bOther.length,
    b_me: pb.me.length,
    a_other: pa.other.length,
    xss_executed: false,
    img_elements: 0,
    notices_b: noticesB.map((n) => n.event),
    screenshots: shots,
    duration_ms: Date.now() - started,
  };
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
}

main().catch((e) => fail(e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : String(e)));
