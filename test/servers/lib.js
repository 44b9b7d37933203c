'use strict';
// Shared plumbing for the stand-in servers: listening, body reading, the
// in-memory request log and the fault switches under /_test/.

const http = require('node:http');
const crypto = require('node:crypto');
const { Writable } = require('node:stream');

const LOG_CAP = 10000;
const FAULT_MODES = new Set([
  'delay', 'hang', 'status', 'drop', 'truncate', 'stall', 'oversize', 'malformed',
  'reset', 'short', 'content_type', 'trickle',
]);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function envPort(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${name}=${raw} is not a port number`);
  }
  return port;
}

class BodyTooLarge extends Error {
  constructor(limit, seen) {
    super(`request body larger than ${limit} bytes`);
    this.limit = limit;
    this.seen = seen;
  }
}

// Reads the whole request body. Over the limit the rest is drained (so the
// client can still read our error answer) and BodyTooLarge is thrown.
function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > limit) over = true;
      if (!over) chunks.push(chunk);
    });
    req.on('end', () => (over ? reject(new BodyTooLarge(limit, size)) : resolve(Buffer.concat(chunks, size))));
    req.on('error', reject);
  });
}

// Query string into an object; a repeated name becomes an array. '+' means a
// space, as every form decoder (and S3/MinIO) reads it.
function parseQuery(raw) {
  const query = {};
  if (!raw) return query;
  for (const part of raw.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = safeDecode(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? '' : safeDecode(part.slice(eq + 1));
    if (Object.prototype.hasOwnProperty.call(query, name)) {
      query[name] = [].concat(query[name], value);
    } else {
      query[name] = value;
    }
  }
  return query;
}

function safeDecode(text) {
  const spaced = text.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced;
  }
}

function splitUrl(url) {
  const q = url.indexOf('?');
  return q < 0 ? { rawPath: url, rawQuery: '' } : { rawPath: url.slice(0, q), rawQuery: url.slice(q + 1) };
}

function sha256Hex(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

// The log stores what a test needs to check what the client sent: headers
// verbatim (credentials included), the parsed JSON body or its size and hash.
function describeBody(body, sizeOnly) {
  if (sizeOnly) return { bytes: body.length };
  if (body.length > 0) {
    try {
      return JSON.parse(body.toString('utf8'));
    } catch {
      // not JSON: fall through to size and hash
    }
  }
  return { bytes: body.length, sha256: sha256Hex(body) };
}

function sendJson(res, status, value, headers = {}) {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function sendText(res, status, text, headers = {}) {
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

// Stands in for a ServerResponse so the truncate fault can learn the full
// normal answer before sending only half of it.
class CaptureResponse extends Writable {
  constructor() {
    super();
    this.statusCode = 200;
    this.headers = {};
    this.headersSent = false;
    this.chunks = [];
  }

  setHeader(name, value) { this.headers[name.toLowerCase()] = value; }
  getHeader(name) { return this.headers[name.toLowerCase()]; }
  hasHeader(name) { return name.toLowerCase() in this.headers; }
  removeHeader(name) { delete this.headers[name.toLowerCase()]; }
  flushHeaders() { this.headersSent = true; }

  writeHead(status, reason, headers) {
    if (typeof reason === 'object') headers = reason;
    this.statusCode = status;
    for (const [name, value] of Object.entries(headers || {})) this.setHeader(name, value);
    this.headersSent = true;
    return this;
  }

  _write(chunk, encoding, callback) {
    this.headersSent = true;
    this.chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, encoding));
    callback();
  }

  body() { return Buffer.concat(this.chunks); }
}

// Writes `total` filler bytes inside prefix/suffix, honouring backpressure so
// a 64 MiB answer never sits in memory at once.
function streamOversize(res, total, prefix, suffix) {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.write(prefix);
  const piece = Buffer.alloc(64 * 1024, 'x');
  let left = Math.max(0, total - prefix.length - suffix.length);
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, piece.length);
      left -= n;
      if (!res.write(n === piece.length ? piece : piece.subarray(0, n))) {
        res.once('drain', pump);
        return;
      }
    }
    res.end(suffix);
  };
  res.on('close', () => { left = 0; });
  pump();
}

function validateFault(spec, extraModes = {}) {
  if (!spec || typeof spec !== 'object' || Array.isArray(spec)) return 'body must be a JSON object';
  if (!FAULT_MODES.has(spec.mode) && !Object.hasOwn(extraModes, spec.mode)) {
    return `unknown fault mode ${JSON.stringify(spec.mode)}; known: ${[...FAULT_MODES, ...Object.keys(extraModes)].join(', ')}`;
  }
  if (spec.times !== undefined && !(Number.isInteger(spec.times) && spec.times > 0)) return 'times must be a positive integer';
  if (spec.after !== undefined && !(Number.isInteger(spec.after) && spec.after >= 0)) return 'after must be a non-negative integer';
  if (spec.path !== undefined && typeof spec.path !== 'string') return 'path must be a string';
  if (spec.mode === 'delay' && !(Number.isFinite(spec.ms) && spec.ms >= 0)) return 'delay needs ms >= 0';
  if (spec.mode === 'status' && !(Number.isInteger(spec.status) && spec.status >= 100 && spec.status <= 599)) return 'status needs an HTTP status';
  if (spec.mode === 'stall' && spec.bytes !== undefined && !(Number.isInteger(spec.bytes) && spec.bytes >= 0)) return 'bytes must be a non-negative integer';
  if (spec.mode === 'trickle' && spec.ms !== undefined && !(Number.isFinite(spec.ms) && spec.ms > 0)) return 'trickle needs ms > 0';
  if (spec.mode === 'content_type' && spec.type !== undefined && typeof spec.type !== 'string') return 'type must be a string';
  if (spec.mode === 'oversize' && spec.bytes !== undefined && !(Number.isInteger(spec.bytes) && spec.bytes > 0)) return 'bytes must be a positive integer';
  return null;
}

/*
 * Starts one stand-in server.
 *
 * opts.name          name printed in the start line
 * opts.portEnv/defaultPort
 * opts.handle(ctx)   async; ctx = {req, res, method, path, rawPath, rawQuery, query, body}
 * opts.maxBody       request body limit in bytes
 * opts.onTooLarge(res, err)    answer for an over-limit body
 * opts.logSizeOnly   log body as {bytes} and add the response status (s3front)
 * opts.faultStatus(res, spec)  answer for the status fault
 * opts.faultMalformed(res)     answer for the malformed fault
 * opts.onError(res, err)       answer for an unexpected exception
 * opts.faultModes    server-specific fault modes: {mode: (ctx, fault) => ...}
 * opts.testRoutes    extra /_test/ routes: {"METHOD /_test/x": (ctx) => ...}
 * opts.quiet         print no start line (the caller prints its own)
 */
function startServer(opts) {
  const state = { log: [], seq: 0, fault: null };

  const server = http.createServer((req, res) => {
    dispatch(opts, state, req, res).catch((err) => {
      if (!res.headersSent && !res.destroyed) {
        opts.onError(res, err);
      } else {
        res.destroy();
      }
      if (!(err instanceof BodyTooLarge)) console.error(`${opts.name}: ${err.stack || err}`);
    });
  });
  // Slow uploads and deliberately hung answers must not be cut by Node's own timers.
  server.requestTimeout = 0;
  server.headersTimeout = 60000;
  server.keepAliveTimeout = 5000;

  const port = envPort(opts.portEnv, opts.defaultPort);
  server.listen(port, '127.0.0.1', () => {
    if (!opts.quiet) console.log(`${opts.name} listening on 127.0.0.1:${server.address().port}`);
  });
  // Hung and keep-alive sockets would hold a graceful close forever; state is
  // in memory (or in s3rver's directory), so a plain exit loses nothing.
  const stop = () => {
    server.closeAllConnections();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return { server, state };
}

async function dispatch(opts, state, req, res) {
  const { rawPath, rawQuery } = splitUrl(req.url);
  const path = safePathDecode(rawPath);
  if (rawPath.startsWith('/_test/')) return testRoute(opts, state, req, res, rawPath, rawQuery);

  const entry = {
    seq: 0,
    method: req.method,
    path,
    query: parseQuery(rawQuery),
    headers: { ...req.headers },
    body: null,
  };
  // reset: the connection is accepted and then refused before anything is
  // read or answered (TCP RST), as a server that is shutting down does
  let early;
  if (state.fault && state.fault.mode === 'reset') {
    early = { fault: takeFault(state, path) };
    if (early.fault) {
      appendLog(state, entry);
      req.socket.resetAndDestroy();
      return undefined;
    }
  }
  let body;
  try {
    body = await readBody(req, opts.maxBody);
  } catch (err) {
    if (err instanceof BodyTooLarge) {
      entry.body = { bytes: err.seen };
      appendLog(state, entry);
      if (opts.logSizeOnly) res.on('finish', () => { entry.status = res.statusCode; });
    }
    throw err;
  }
  entry.body = describeBody(body, opts.logSizeOnly);
  if (opts.logSizeOnly) {
    entry.status = null;
    res.on('finish', () => { entry.status = res.statusCode; });
  }
  appendLog(state, entry);

  const ctx = { req, res, method: req.method, path, rawPath, rawQuery, query: entry.query, body };
  // a reset fault has been looked at (and counted) already
  const fault = early ? null : takeFault(state, path);
  if (!fault) return opts.handle(ctx);
  return applyFault(opts, fault, ctx);
}

function safePathDecode(rawPath) {
  try {
    return decodeURIComponent(rawPath);
  } catch {
    return rawPath;
  }
}

function appendLog(state, entry) {
  state.seq += 1;
  entry.seq = state.seq;
  state.log.push(entry);
  if (state.log.length > LOG_CAP) state.log.splice(0, state.log.length - LOG_CAP);
}

// Returns the active fault if it applies to this path, counting down `times`.
function takeFault(state, path) {
  const fault = state.fault;
  if (!fault) return null;
  if (fault.path !== undefined && !path.startsWith(fault.path)) return null;
  // `after`: let that many matching requests through first, so a test can
  // aim at the Nth request of a sequence without racing a timer
  if (fault.skip > 0) {
    fault.skip -= 1;
    return null;
  }
  if (fault.times !== undefined) {
    fault.left -= 1;
    if (fault.left <= 0) state.fault = null;
  }
  return fault;
}

async function applyFault(opts, fault, ctx) {
  const { res, req } = ctx;
  switch (fault.mode) {
    case 'delay':
      await sleep(fault.ms);
      if (res.destroyed) return undefined;
      return opts.handle(ctx);
    case 'hang':
      // Keep the socket open and answer nothing; the client decides when to give up.
      return new Promise((resolve) => req.socket.once('close', resolve));
    case 'drop':
      req.socket.destroy();
      return undefined;
    case 'status':
      return opts.faultStatus(res, fault);
    case 'malformed':
      return opts.faultMalformed(res);
    case 'oversize':
      return streamOversize(res, fault.bytes || 64 * 1024 * 1024, '{"response":"', '","done":true}');
    case 'truncate':
      return truncateAnswer(opts, ctx, false);
    case 'stall':
      return truncateAnswer(opts, ctx, true, fault.bytes);
    case 'short':
      return shortAnswer(opts, ctx);
    case 'content_type':
      return retypedAnswer(opts, ctx, fault);
    case 'trickle':
      return trickleAnswer(opts, ctx, fault.ms || 1000);
    default:
      if (opts.faultModes && Object.hasOwn(opts.faultModes, fault.mode)) return opts.faultModes[fault.mode](ctx, fault);
      throw new Error(`unhandled fault ${fault.mode}`);
  }
}

// truncate: the headers and the first half of the normal answer, then the
// socket is destroyed. stall: the headers and the first `bytes` (default
// half), then nothing more while the socket stays open (a server hung
// mid-answer).
async function truncateAnswer(opts, ctx, stall, bytes) {
  const capture = new CaptureResponse();
  const finished = new Promise((resolve) => capture.on('finish', resolve));
  await opts.handle({ ...ctx, res: capture });
  await finished;
  const full = capture.body();
  const headers = { ...capture.headers };
  delete headers['transfer-encoding'];
  // An empty normal answer still gets a promise of bytes that never come.
  headers['content-length'] = String(Math.max(full.length, 16));
  const res = ctx.res;
  res.writeHead(capture.statusCode, headers);
  const sent = bytes === undefined ? Math.floor(full.length / 2) : Math.min(bytes, full.length);
  res.write(full.subarray(0, sent), () => {
    if (!stall) setTimeout(() => res.destroy(), 20);
  });
  if (stall) await new Promise((resolve) => ctx.req.socket.once('close', resolve));
}

// The normal answer, produced into a buffer.
async function captureAnswer(opts, ctx) {
  const capture = new CaptureResponse();
  const finished = new Promise((resolve) => capture.on('finish', resolve));
  await opts.handle({ ...ctx, res: capture });
  await finished;
  const headers = { ...capture.headers };
  delete headers['transfer-encoding'];
  delete headers['content-length'];
  return { status: capture.statusCode, headers, body: capture.body() };
}

// short: the first half of the normal answer as a complete HTTP message
// (Content-Length matches), as a server that wrote a cut document.
async function shortAnswer(opts, ctx) {
  const { status, headers, body } = await captureAnswer(opts, ctx);
  const half = body.subarray(0, Math.floor(body.length / 2));
  ctx.res.writeHead(status, { ...headers, 'content-length': String(half.length) });
  ctx.res.end(half);
}

// content_type: 200 with `type` (default text/html) and `body` (default an
// HTML error page, as a proxy or captive portal in the way sends).
async function retypedAnswer(opts, ctx, fault) {
  const type = fault.type || 'text/html; charset=utf-8';
  const body = fault.body !== undefined ? String(fault.body)
    : '<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>\n';
  ctx.res.writeHead(fault.status || 200, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  ctx.res.end(body);
}

// trickle: the whole normal answer, status line and headers included, one
// byte every `ms` (default 1000) on the raw socket, then the socket closes.
async function trickleAnswer(opts, ctx, ms) {
  const { status, headers, body } = await captureAnswer(opts, ctx);
  const head = [`HTTP/1.1 ${status} ${http.STATUS_CODES[status] || 'Status'}`];
  for (const [name, value] of Object.entries(headers)) head.push(`${name}: ${value}`);
  head.push(`content-length: ${body.length}`, 'connection: close', '', '');
  const raw = Buffer.concat([Buffer.from(head.join('\r\n'), 'latin1'), body]);
  const socket = ctx.req.socket;
  for (let i = 0; i < raw.length && !socket.destroyed; i++) {
    socket.write(raw.subarray(i, i + 1));
    await sleep(ms);
  }
  socket.destroy();
}

async function testRoute(opts, state, req, res, rawPath, rawQuery) {
  const key = `${req.method} ${rawPath}`;
  let body = Buffer.alloc(0);
  if (req.method === 'POST' || req.method === 'PUT') body = await readBody(req, 1024 * 1024);
  else req.resume();

  switch (key) {
    case 'GET /_test/health':
      return sendText(res, 200, 'ok');
    case 'GET /_test/log': {
      const text = state.log.map((e) => JSON.stringify(e)).join('\n');
      res.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
      return res.end(text ? `${text}\n` : '');
    }
    case 'DELETE /_test/log':
      state.log = [];
      state.seq = 0;
      return sendJson(res, 200, { cleared: true });
    case 'GET /_test/fault':
      return sendJson(res, 200, { fault: state.fault });
    case 'DELETE /_test/fault':
      state.fault = null;
      return sendJson(res, 200, { cleared: true });
    case 'POST /_test/fault': {
      let spec;
      try {
        spec = JSON.parse(body.toString('utf8'));
      } catch (err) {
        return sendJson(res, 400, { error: `invalid JSON: ${err.message}` });
      }
      const problem = validateFault(spec, opts.faultModes);
      if (problem) return sendJson(res, 400, { error: problem });
      state.fault = { ...spec, left: spec.times, skip: spec.after || 0 };
      return sendJson(res, 200, { fault: state.fault });
    }
    default: {
      const extra = opts.testRoutes && opts.testRoutes[key];
      if (extra) return extra({ req, res, body, query: parseQuery(rawQuery) });
      return sendJson(res, 404, { error: `no test route ${key}` });
    }
  }
}

module.exports = {
  BodyTooLarge,
  appendLog,
  envPort,
  parseQuery,
  safeDecode,
  sendJson,
  sendText,
  sha256Hex,
  sleep,
  splitUrl,
  startServer,
  streamOversize,
  takeFault,
};
