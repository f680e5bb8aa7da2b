#!/usr/bin/env node
'use strict';
// Serves web/ the way the Rust server will (/, /app.js, /style.css, /vendor/socket.io.min.js),
// for trying the page against another Socket.IO server such as peers/node-seed:
//   node compat/serve-web.cjs --port 8080 [--host 127.0.0.1]
//   open http://127.0.0.1:8080/?server=http://127.0.0.1:6001
// Needs `npm ci` in web/ for the socket.io client. Prints one line when listening.
const http = require('http');
const fs = require('fs');
const path = require('path');

const web = path.resolve(__dirname, '..', 'web');
const routes = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/style.css': ['style.css', 'text/css; charset=utf-8'],
  '/vendor/socket.io.min.js': ['node_modules/socket.io-client/dist/socket.io.min.js', 'text/javascript; charset=utf-8'],
};

let port = 8080;
let host = '127.0.0.1';
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--port') port = Number(argv[++i]);
  else if (argv[i] === '--host') host = argv[++i];
  else {
    console.error('usage: node serve-web.cjs [--port P] [--host ADDR]');
    process.exit(2);
  }
}

const server = http.createServer((req, res) => {
  const route = routes[new URL(req.url, 'http://x').pathname];
  if (!route || (req.method !== 'GET' && req.method !== 'HEAD')) {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
    return;
  }
  fs.readFile(path.join(web, route[0]), (err, data) => {
    if (err) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`cannot read web/${route[0]}: ${err.code}\n`);
      return;
    }
    res.writeHead(200, { 'content-type': route[1], 'cache-control': 'no-cache', 'content-length': data.length });
    res.end(req.method === 'HEAD' ? undefined : data);
  });
});
server.on('error', (err) => {
  console.error(`serve-web: ${err.message}`);
  process.exit(1);
});
server.listen(port, host, () => {
  console.log(`serving ${web} at http://${host}:${server.address().port}/`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
