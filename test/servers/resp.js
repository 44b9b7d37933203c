'use strict';
// A scripted RESP server: stands in for Redis where a real redis-server
// cannot be made to misbehave on demand (replies of the wrong type, cut,
// garbage, refused connections, stalls).  Not a Redis: every command gets
// the reply its script names, `+OK` by default.
//
//   node resp.js [SCRIPT.json]
//
// SCRIPT: {"replies": {"NAME arg1": "<raw RESP>", "NAME": "<raw RESP>"}};
// the reply "CONNS" is the number of connections accepted so far, as an
// integer, and "KEYS_AS_VALUES" an array of the command's arguments (MGET
// answering each key's name as its value).  Listens on DC_RESP_PORT (default: any free port) for RESP and
// on DC_RESP_CONTROL_PORT (default: any) for the /_test/ endpoints of the
// other stand-ins (fault, log; see README.md), and prints
// "resp listening on 127.0.0.1:<port> control 127.0.0.1:<port>" once both
// are up.

const fs = require('node:fs');
const net = require('node:net');
const { startServer, sendJson, sleep, takeFault, appendLog } = require('./lib');

const script = process.argv[2] ? JSON.parse(fs.readFileSync(process.argv[2], 'utf8')) : {};
const replies = script.replies || {};
let conns = 0;

// One complete RESP array of bulk strings at the start of buf, or null.
function parse(buf) {
  let pos = 0;
  const line = () => {
    const end = buf.indexOf('\r\n', pos);
    if (end < 0) return null;
    const s = buf.toString('latin1', pos, end);
    pos = end + 2;
    return s;
  };
  const head = line();
  if (head === null) return null;
  if (head[0] !== '*') return { args: head.split(' '), used: pos }; // inline command
  const n = parseInt(head.slice(1), 10);
  const args = [];
  for (let i = 0; i < n; i++) {
    const len = line();
    if (len === null) return null;
    const l = parseInt(len.slice(1), 10);
    if (buf.length < pos + l + 2) return null;
    args.push(buf.toString('latin1', pos, pos + l));
    pos += l + 2;
  }
  return { args, used: pos };
}

function scriptedReply(args) {
  const name = args[0].toUpperCase();
  const reply = replies[`${name} ${args[1] || ''}`] ?? replies[name] ?? '+OK\r\n';
  if (reply === 'CONNS') return `:${conns}\r\n`;
  if (reply === 'KEYS_AS_VALUES') {
    const keys = args.slice(1);
    return `*${keys.length}\r\n` + keys.map((k) => `$${Buffer.byteLength(k, 'latin1')}\r\n${k}\r\n`).join('');
  }
  return reply;
}

// Streams `$<bytes>` of filler, honouring backpressure.
function sendOversize(sock, bytes) {
  sock.write(`$${bytes}\r\n`);
  const piece = Buffer.alloc(64 * 1024, 'x');
  let left = bytes;
  const pump = () => {
    while (left > 0 && !sock.destroyed) {
      const n = Math.min(left, piece.length);
      left -= n;
      if (!sock.write(n === piece.length ? piece : piece.subarray(0, n))) {
        sock.once('drain', pump);
        return;
      }
    }
    if (!sock.destroyed) sock.write('\r\n');
  };
  pump();
}

// Answers one command, or misbehaves as the active fault says.  `path` of a
// fault matches the command name (upper case).
async function answer(state, sock, args) {
  const name = args[0].toUpperCase();
  appendLog(state, { seq: 0, method: 'RESP', path: name, query: {}, headers: {}, body: args.slice(1) });
  const fault = takeFault(state, name);
  const reply = Buffer.from(scriptedReply(args), 'latin1');
  if (!fault) return sock.write(reply);
  switch (fault.mode) {
    case 'delay':
      await sleep(fault.ms);
      return sock.destroyed ? undefined : sock.write(reply);
    case 'hang':
      return new Promise((resolve) => sock.once('close', resolve));
    case 'drop':
      return sock.destroy();
    case 'reset':
      return sock.resetAndDestroy();
    case 'reply':
      return sock.write(Buffer.from(fault.reply, 'latin1'));
    case 'truncate':
      // the first half, then a clean close
      return sock.end(reply.subarray(0, Math.floor(reply.length / 2)));
    case 'midreset':
      // the first half, then a reset
      sock.write(reply.subarray(0, Math.floor(reply.length / 2)), () => sock.resetAndDestroy());
      return undefined;
    case 'stall':
      sock.write(reply.subarray(0, fault.bytes ?? Math.floor(reply.length / 2)));
      return new Promise((resolve) => sock.once('close', resolve));
    case 'oversize':
      return sendOversize(sock, fault.bytes || 64 * 1024 * 1024);
    case 'trickle':
      for (let i = 0; i < reply.length && !sock.destroyed; i++) {
        sock.write(reply.subarray(i, i + 1));
        await sleep(fault.ms || 1000);
      }
      return undefined;
    default:
      throw new Error(`fault mode ${fault.mode} has no meaning for RESP`);
  }
}

const noop = () => undefined;
const control = startServer({
  name: 'resp control',
  portEnv: 'DC_RESP_CONTROL_PORT',
  defaultPort: 0,
  maxBody: 1024 * 1024,
  handle: ({ res }) => sendJson(res, 404, { error: 'only /_test/ routes here' }),
  onError: (res, err) => sendJson(res, 500, { error: String(err.message) }),
  faultStatus: noop,
  faultMalformed: noop,
  faultModes: { reply: noop, midreset: noop },
  quiet: true,
});
const { state } = control;

const server = net.createServer((sock) => {
  conns += 1;
  sock.on('error', () => {});
  // reset: the connection is accepted, and reset when its first command
  // arrives (the client then always sees it as a failed call, never as a
  // failed connect, whatever the timing)
  const fault = state.fault;
  const reset = Boolean(fault && fault.mode === 'reset' && takeFault(state, ''));
  let buf = Buffer.alloc(0);
  let busy = Promise.resolve();
  sock.on('data', (data) => {
    if (reset) {
      sock.resetAndDestroy();
      return;
    }
    buf = Buffer.concat([buf, data]);
    for (let r; (r = parse(buf));) {
      buf = buf.subarray(r.used);
      const { args } = r;
      busy = busy.then(() => answer(state, sock, args)).catch((err) => {
        console.error(`resp: ${err.stack || err}`);
        sock.destroy();
      });
    }
  });
});

let announced = false;
const listening = () => {
  if (announced || !server.listening || !control.server.listening) return;
  announced = true;
  console.log(`resp listening on 127.0.0.1:${server.address().port} control 127.0.0.1:${control.server.address().port}`);
};
control.server.on('listening', listening);
server.listen(Number(process.env.DC_RESP_PORT || 0), '127.0.0.1', listening);
