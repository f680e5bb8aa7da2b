#!/usr/bin/env node
// N official socket.io-client v4 (Engine.IO 4) members join one room, say M numbered messages
// each, and check delivery. See README.md for arguments; prints ONE JSON line on success.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { io } from 'socket.io-client';

const require = createRequire(import.meta.url);
const { run, describeError } = require('./lib/chatcheck.cjs');
const version = JSON.parse(readFileSync(new URL('./node_modules/socket.io-client/package.json', import.meta.url))).version;

const TRANSPORT_ERRORS = new Set(['xhr poll error', 'xhr post error', 'websocket error', 'timeout']);

const adapter = {
  name: `socket.io-client@${version}`,
  short: 'v4',
  engineIO: 4,
  connect(url, { roomid, transport, headers }) {
    const socket = io(url, {
      path: '/socket.io/',
      query: roomid === null ? {} : { roomid },
      transports: transport === 'upgrade' ? ['polling', 'websocket'] : [transport],
      upgrade: transport === 'upgrade',
      forceNew: true,
      extraHeaders: headers,
      reconnection: false,
      timeout: 10000,
    });
    let connectErr = () => {};
    let rejected = () => {};
    socket.on('connect_error', (err) => {
      // A refusal by the server (CONNECT_ERROR packet) leaves the socket inactive; a
      // transport failure is typed TransportError by engine.io-client.
      if (err && err.type !== 'TransportError' && !TRANSPORT_ERRORS.has(err.message) && !socket.active) {
        rejected(err.message);
      } else {
        connectErr(describeError(err));
      }
    });
    return {
      onConnect: (fn) => socket.on('connect', fn),
      onRejected: (fn) => { rejected = fn; },
      onTransportError: (fn) => { connectErr = fn; },
      onServerError: (fn) => socket.on('error', fn),
      onMessage: (fn) => socket.on('message', fn),
      onDisconnect: (fn) => socket.on('disconnect', (reason) => { if (reason !== 'io client disconnect') fn(reason); }),
      emit: (ev, data) => socket.emit(ev, data),
      transportName: () => (socket.io.engine && socket.io.engine.transport ? socket.io.engine.transport.name : 'none'),
      close: () => socket.close(),
    };
  },
};

run(adapter, 'sio4-chat.mjs', process.argv.slice(2));
