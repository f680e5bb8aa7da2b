'use strict';
// A small Socket.IO chat that is NOT roomstorm's, for loadgen's protocol-profile tests: it
// speaks none of the original design's protocol, so only a profile can drive it.
//
//   node server.js [--port 0] [--path /chat-io/] [--namespace /chat] [--token T]
//                  [--echo all|others] [--shape object|text|array|args] [--join event|query]
//
// - Socket.IO at --path (default /chat-io/), namespace --namespace (default /chat); the main
//   namespace does not exist, so a client on the wrong one is refused.
// - Connect: the CONNECT auth object must hold { token: --token } (default s3cret), else the
//   connection is refused with "unauthorized".
// - Join (--join event, the default): `enter { room, nick }` with a callback; answered
//   cb({ ok: true, room }) after joining, cb({ error: "..." }) without a room or nick. Then
//   `presence { room, count }` goes to the room. (--join query: the room and nick come from the
//   connect query `room` and `nick`, joined at connect, no event.)
// - Say: `post { body }` with a callback cb({ ok: true, id }), or cb({ error: "not in a room" }).
//   It goes to the room as `posted` (--echo all: the sender included, io.to(room); --echo
//   others: socket.to(room), the sender left out), shaped by --shape:
//     object  { from, message: { body, at } }
//     text    "<nick>: <body>"              (a plain string with text around the body)
//     array   { items: [ { seq, body } ] }
//     args    posted(nick, body)             (the body is the second argument)
// - Typing: `typing` (any argument) goes to the others in the room as `typing { nick }`.
// - GET /stats: {"connections","joins","posts","typing","refused"} as JSON.
// - Prints "profile-chat ready on PORT" once listening.

const http = require('http');
const { Server } = require('socket.io');

function flag(name, fallback) {
  const at = process.argv.indexOf('--' + name);
  return at > 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const port = parseInt(flag('port', '0'), 10);
const path = flag('path', '/chat-io/');
const namespace = flag('namespace', '/chat');
const token = flag('token', 's3cret');
const echo = flag('echo', 'others');
const shape = flag('shape', 'object');
const joinBy = flag('join', 'event');
for (const [name, value, allowed] of [
  ['echo', echo, ['all', 'others']],
  ['shape', shape, ['object', 'text', 'array', 'args']],
  ['join', joinBy, ['event', 'query']],
]) {
  if (!allowed.includes(value)) {
    console.error(`--${name} ${value}: allowed ${allowed.join(', ')}`);
    process.exit(2);
  }
}

const stats = { connections: 0, joins: 0, posts: 0, typing: 0, refused: 0 };
const server = http.createServer((req, res) => {
  if (req.url === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(stats));
    return;
  }
  res.writeHead(404);
  res.end();
});
const io = new Server(server, { path, maxHttpBufferSize: 1e6 });
const chat = io.of(namespace);

chat.use((socket, next) => {
  const auth = socket.handshake.auth || {};
  if (auth.token !== token) {
    stats.refused += 1;
    next(new Error('unauthorized'));
    return;
  }
  next();
});

function payload(nick, body, seq) {
  switch (shape) {
    case 'text':
      return [`${nick}: ${body}`];
    case 'array':
      return [{ items: [{ seq, body }] }];
    case 'args':
      return [nick, body];
    default:
      return [{ from: nick, message: { body, at: Date.now() } }];
  }
}

function enter(socket, room, nick) {
  socket.join(room);
  socket.data.room = room;
  socket.data.nick = nick;
  stats.joins += 1;
  chat.to(room).emit('presence', { room, count: chat.adapter.rooms.get(room)?.size || 0 });
}

chat.on('connection', (socket) => {
  stats.connections += 1;
  let seq = 0;
  if (joinBy === 'query') {
    const { room, nick } = socket.handshake.query;
    if (typeof room === 'string' && typeof nick === 'string') enter(socket, room, nick);
  }
  socket.on('enter', (data, cb) => {
    const reply = typeof cb === 'function' ? cb : () => {};
    if (!data || typeof data.room !== 'string' || typeof data.nick !== 'string') {
      reply({ error: 'enter needs { room, nick }' });
      return;
    }
    enter(socket, data.room, data.nick);
    reply({ ok: true, room: data.room });
  });
  socket.on('typing', () => {
    const room = socket.data.room;
    if (!room) return;
    stats.typing += 1;
    socket.to(room).emit('typing', { nick: socket.data.nick });
  });
  socket.on('post', (data, cb) => {
    const reply = typeof cb === 'function' ? cb : () => {};
    const room = socket.data.room;
    if (!room || !data || typeof data.body !== 'string') {
      reply({ error: 'not in a room' });
      return;
    }
    stats.posts += 1;
    seq += 1;
    const args = payload(socket.data.nick, data.body, seq);
    if (echo === 'all') chat.to(room).emit('posted', ...args);
    else socket.to(room).emit('posted', ...args);
    reply({ ok: true, id: seq });
  });
});

server.listen(port, '127.0.0.1', () => {
  console.log(`profile-chat ready on ${server.address().port}`);
});
