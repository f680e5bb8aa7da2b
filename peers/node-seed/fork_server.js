'use strict';
// The original design's fork_server.js, ported to socket.io 4 and node-redis 4.
// One Socket.IO server per port; a Redis channel per room (channel name = roomid), subscribed
// on the first join in this worker; join/say/quit are published as {"event":..,"data":..}
// JSON and every subscription message is emitted to the room as a `message` event.
//
// Kept on purpose (benchmark baseline): no validation of roomid, username or text, no rate
// limit, channels are never unsubscribed, the join payload is republished as sent.
// Changed: Redis URL and port from args/env, CORS open, EIO3 clients accepted, no
// per-message logging, a `say` before `join` is ignored (the original threw inside the
// handler, which kills a socket.io 4 worker), and a worker's publishes to a room wait until
// its SUBSCRIBE for that room is confirmed (the original raced: the first joiner in a worker
// could miss its own join notice).
//
//   node fork_server.js PORT     (env REDIS_URL, HOST; normally started by cluster.js)

const http = require('http');
const { Server } = require('socket.io');
const { createClient } = require('redis');

const port = parseInt(process.argv[2], 10);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error('usage: node fork_server.js PORT');
  process.exit(2);
}
const redisUrl = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const host = process.env.HOST || undefined;

const io = new Server({
  allowEIO3: true, // socket.io-client 1.x/2.x (Engine.IO 3), as the original served
  cors: { origin: true, credentials: true },
});

const pub = createClient({ url: redisUrl });
const sub = pub.duplicate();
let lastRedisError = 0;
for (const [name, client] of [['pub', pub], ['sub', sub]]) {
  client.on('error', (err) => {
    const now = Date.now();
    if (now - lastRedisError > 5000) {
      lastRedisError = now;
      console.error('worker pid: ' + process.pid + ' redis ' + name + ' error: ' + err.message);
    }
  });
}

let num = 0;
const roomSet = {};
const subscribed = {}; // roomid -> promise of the SUBSCRIBE

function send(msg) {
  if (process.send && process.connected) process.send(msg);
}

function publish(channel, payload) {
  const body = JSON.stringify(payload);
  // Promise callbacks run in registration order, so one socket's publishes keep their order.
  Promise.resolve(subscribed[channel])
    .then(() => pub.publish(String(channel), body))
    .catch((err) => {
      console.error('worker pid: ' + process.pid + ' publish failed: ' + err.message);
    });
}

function onChannelMessage(message, channel) {
  let parsed;
  try {
    parsed = JSON.parse(message);
  } catch (err) {
    return;
  }
  io.to(channel).emit('message', parsed);
}

io.on('connection', (socket) => {
  // client URL: http://127.0.0.1:6001?roomid=k12_webcourse_room_1
  const roomid = socket.handshake.query.roomid;

  socket.on('join', (data) => {
    socket.join(roomid);
    if (!roomSet[roomid]) {
      roomSet[roomid] = {};
      subscribed[roomid] = sub.subscribe(String(roomid), onChannelMessage).catch((err) => {
        console.error('worker pid: ' + process.pid + ' subscribe failed: ' + err.message);
      });
    }
    roomSet[roomid][socket.id] = {};
    reportConnect();
    roomSet[roomid][socket.id].username = data && data.username;
    publish(roomid, { event: 'join', data: data });
  });

  socket.on('say', (data) => {
    const member = roomSet[roomid] && roomSet[roomid][socket.id];
    if (!member) return;
    publish(roomid, {
      event: 'broadcast_say',
      data: { username: member.username, text: data && data.text },
    });
  });

  socket.on('disconnect', () => {
    const member = roomSet[roomid] && roomSet[roomid][socket.id];
    if (member) {
      num--;
      send({ cmd: 'client disconnect' });
      if (member.username) {
        publish(roomid, { event: 'broadcast_quit', data: { username: member.username } });
      }
      delete roomSet[roomid][socket.id];
    }
  });
});

// Report a member to the master process.
function reportConnect() {
  num++;
  send({ cmd: 'client connect' });
}

async function main() {
  // node-redis retries forever; a worker that cannot reach Redis at start says so and exits.
  const startTimer = setTimeout(() => {
    console.error('worker pid: ' + process.pid + ' cannot reach redis at ' + redisUrl + ' within 10 s');
    process.exit(1);
  }, 10000);
  await Promise.all([pub.connect(), sub.connect()]);
  clearTimeout(startTimer);
  // The original called io.listen(port); an explicit http server also takes a bind address.
  const httpServer = http.createServer();
  io.attach(httpServer);
  httpServer.once('error', (err) => {
    console.error('worker pid: ' + process.pid + ' cannot listen on ' + port + ': ' + err.message);
    process.exit(1);
  });
  httpServer.listen(port, host, () => {
    console.log('worker pid: ' + process.pid + ' listen port:' + port);
    send({ cmd: 'listening', port });
  });
}

main().catch((err) => {
  console.error('worker pid: ' + process.pid + ' failed to start: ' + err.message);
  process.exit(1);
});

// Die with the master (cluster.js): the IPC channel closes when it goes away.
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
