'use strict';
// The original design's cluster.js, ported: the master forks one fork_server.js per port
// (base port, base port + 1, ...) and counts members from the workers' messages.
// Benchmark baseline only; see README.md.
//
//   node cluster.js [--workers N] [--base-port P] [--redis URL] [--host ADDR]
//   env: WORKERS, BASE_PORT, REDIS_URL, HOST (flags win)

const { fork } = require('child_process');
const os = require('os');
const path = require('path');

function usage(msg) {
  if (msg) console.error('cluster.js: ' + msg);
  console.error('usage: node cluster.js [--workers N] [--base-port P] [--redis redis://HOST:PORT] [--host ADDR]');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    workers: process.env.WORKERS ? Number(process.env.WORKERS) : os.cpus().length,
    basePort: process.env.BASE_PORT ? Number(process.env.BASE_PORT) : 6001,
    redis: process.env.REDIS_URL || 'redis://127.0.0.1:6379',
    host: process.env.HOST || '',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const key = eq > 0 ? a.slice(0, eq) : a;
    const val = () => (eq > 0 ? a.slice(eq + 1) : argv[++i]);
    switch (key) {
      case '--workers': opts.workers = Number(val()); break;
      case '--base-port': opts.basePort = Number(val()); break;
      case '--redis': opts.redis = val(); break;
      case '--host': opts.host = val(); break;
      case '-h': case '--help': usage(); break;
      default: usage('unknown argument ' + a);
    }
  }
  if (!Number.isInteger(opts.workers) || opts.workers < 1) usage('--workers must be a positive integer');
  if (!Number.isInteger(opts.basePort) || opts.basePort < 1 || opts.basePort + opts.workers - 1 > 65535) {
    usage('--base-port must leave room for every worker below 65536');
  }
  if (!/^rediss?:\/\//.test(opts.redis || '')) usage('--redis must be a redis:// URL');
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const workerArr = [];
let connectNum = 0;
let listening = 0;
let stopping = false;

// The original logged the count on every connect/disconnect; that floods the console in a
// benchmark, so the count is printed at most every 5 s, and only when it changed.
let lastPrinted = 0;
setInterval(() => {
  if (connectNum !== lastPrinted) {
    lastPrinted = connectNum;
    console.log('socket server connectnum:' + connectNum);
  }
}, 5000).unref();

for (let i = 0; i < opts.workers; i++) {
  const port = opts.basePort + i;
  const env = Object.assign({}, process.env, { REDIS_URL: opts.redis, HOST: opts.host });
  const worker = fork(path.join(__dirname, 'fork_server.js'), [String(port)], { env });
  workerArr.push(worker);
  worker.on('message', (msg) => {
    if (!msg || !msg.cmd) return;
    if (msg.cmd === 'client connect') connectNum++;
    if (msg.cmd === 'client disconnect') connectNum--;
    if (msg.cmd === 'listening') {
      listening++;
      if (listening === opts.workers) {
        console.log('node-seed ready: ' + opts.workers + ' workers on ports ' + opts.basePort + '-' +
          (opts.basePort + opts.workers - 1) + ', redis ' + opts.redis);
      }
    }
  });
  worker.on('exit', (code, signal) => {
    if (stopping) return;
    console.error('worker on port ' + port + ' exited (' + (signal || code) + '); stopping the cluster');
    shutdown(1);
  });
}

function shutdown(code) {
  if (stopping) return;
  stopping = true;
  for (const w of workerArr) {
    if (w.exitCode === null && w.signalCode === null) w.kill('SIGTERM');
  }
  setTimeout(() => process.exit(code), 200).unref();
  let left = workerArr.filter((w) => w.exitCode === null && w.signalCode === null).length;
  if (left === 0) process.exit(code);
  for (const w of workerArr) w.once('exit', () => { if (--left <= 0) process.exit(code); });
}

process.on('SIGINT', () => shutdown(0));
process.on('SIGTERM', () => shutdown(0));
