#!/usr/bin/env node
'use strict';
// N socket.io-client 2.x (Engine.IO 3, installed as the npm alias "sio2") members join one
// room, say M numbered messages each, and check delivery. Same arguments and output as
// sio4-chat.mjs; see README.md.
const path = require('path');
const io = require('sio2');
const { run, describeError } = require('./lib/chatcheck.cjs');

const version = require(path.join(__dirname, 'node_modules', 'sio2', 'package.json')).version;

const adapter = {
  name: `socket.io-client@${version}`,
  short: 'v2',
  engineIO: 3,
  connect(url, { roomid, transport, headers }) {
    const socket = io(url, {
      path: '/socket.io',
      query: roomid === null ? {} : { roomid },
      transports: transport === 'upgrade' ? ['polling', 'websocket'] : [transport],
      upgrade: transport === 'upgrade',
      forceNew: true,
      extraHeaders: headers,
      reconnection: false,
      timeout: 10000,
    });
    let connected = false;
    let rejected = () => {};
    let serverError = () => {};
    socket.on('connect', () => { connected = true; });
    // Socket.IO 2 reports both a refused namespace connect (ERROR packet) and an `error`
    // event sent by the server as the same `error` event: before connect it is a refusal.
    socket.on('error', (data) => {
      if (!connected) {
        const msg = typeof data === 'string' ? data : data && typeof data.message === 'string' ? data.message : data;
        rejected(msg);
      } else {
        serverError(data);
      }
    });
    return {
      onConnect: (fn) => socket.on('connect', fn),
      onRejected: (fn) => { rejected = fn; },
      onTransportError: (fn) => {
        socket.on('connect_error', (err) => fn(describeError(err)));
        socket.on('connect_timeout', () => fn('connect timeout'));
      },
      onServerError: (fn) => { serverError = fn; },
      onMessage: (fn) => socket.on('message', fn),
      onDisconnect: (fn) => socket.on('disconnect', (reason) => { if (reason !== 'io client disconnect') fn(reason); }),
      emit: (ev, data) => socket.emit(ev, data),
      transportName: () => (socket.io.engine && socket.io.engine.transport ? socket.io.engine.transport.name : 'none'),
      close: () => socket.close(),
    };
  },
};

run(adapter, 'sio2-chat.cjs', process.argv.slice(2));
