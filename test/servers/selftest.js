'use strict';
// Self-test for the stand-ins: starts each server on free ports and checks
// the behaviour the datacore tests rely on, above all that the S3 front
// accepts correct SigV4 signatures (awkward keys included) and refuses bad ones.
// Run with `npm test`; exits non-zero on any failure.

const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawn, execFileSync } = require('node:child_process');
const { SignatureV4 } = require('@smithy/signature-v4');
const { Hash } = require('@smithy/hash-node');

const ACCESS = 'selftest-access';
const SECRET = 'self/test+Secret=1';
const REGION = 'us-east-1';

let passed = 0;
let failed = 0;
const children = [];

function check(name, ok, detail = '') {
  if (ok) {
    passed += 1;
    console.log(`ok - ${name}`);
  } else {
    failed += 1;
    console.log(`not ok - ${name}${detail ? `: ${detail}` : ''}`);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

function request(port, method, pathAndQuery, headers = {}, body = undefined) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: pathAndQuery, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function startChild(script, env) {
  const child = spawn(process.execPath, [path.join(__dirname, script)], {
    env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('listening on')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  return child;
}

// ------------------------------------------------------------------ S3 front

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
const rfc3986 = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const s3Path = (bucket, key) => `/${bucket}/${key.split('/').map(rfc3986).join('/')}`;
const queryString = (query) => Object.entries(query).map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`).join('&');

function signer(secret = SECRET, access = ACCESS) {
  return new SignatureV4({
    credentials: { accessKeyId: access, secretAccessKey: secret },
    region: REGION,
    service: 's3',
    sha256: Hash.bind(null, 'sha256'),
    uriEscapePath: false,
  });
}

// Signs with the SDK signer exactly as an SDK client would and sends the request.
async function s3(port, method, reqPath, { query = {}, body, headers = {}, secret, access, payloadHash } = {}) {
  const buf = body === undefined ? Buffer.alloc(0) : Buffer.from(body);
  const toSign = {
    method,
    protocol: 'http:',
    hostname: '127.0.0.1',
    port,
    path: reqPath,
    query,
    headers: { host: `127.0.0.1:${port}`, 'x-amz-content-sha256': payloadHash || sha256(buf), ...headers },
  };
  const signedReq = await signer(secret, access).sign(toSign);
  const qs = queryString(query);
  return request(port, method, reqPath + (qs ? `?${qs}` : ''), signedReq.headers, buf.length ? buf : undefined);
}

async function presigned(port, method, reqPath, { expiresIn = 300, signingDate = new Date(), secret } = {}) {
  // As the SDK's S3 presigner does: the payload line is UNSIGNED-PAYLOAD and
  // the header that carries it is neither signed nor sent.
  const sha = 'x-amz-content-sha256';
  const req = await signer(secret).presign({
    method, protocol: 'http:', hostname: '127.0.0.1', port, path: reqPath, query: {},
    headers: { host: `127.0.0.1:${port}`, [sha]: 'UNSIGNED-PAYLOAD' },
  }, {
    expiresIn, signingDate, unsignableHeaders: new Set([sha]), unhoistableHeaders: new Set([sha]),
  });
  return request(port, method, `${reqPath}?${queryString(req.query)}`);
}

const xmlField = (body, name) => {
  const m = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(body.toString());
  return m ? m[1] : null;
};

async function testS3() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dc-s3-selftest-'));
  await startChild('s3front.js', {
    DC_S3_PORT: String(port), DC_S3RVER_PORT: String(await freePort()), DC_S3_DIR: dir,
    DC_S3_ACCESS_KEY: ACCESS, DC_S3_SECRET_KEY: SECRET, DC_S3_REGION: REGION,
  });
  try {
    let r = await s3(port, 'PUT', '/selftest');
    check('s3: create bucket', r.status === 200, `${r.status} ${r.body}`);

    r = await s3(port, 'PUT', '/selftest');
    check('s3: creating an owned bucket again -> 409 BucketAlreadyOwnedByYou', r.status === 409 && xmlField(r.body, 'Code') === 'BucketAlreadyOwnedByYou', `${r.status} ${r.body}`);

    const keys = ['plain.txt', 'with space/and more.txt', 'ünïcødé/файл.json', 'plus+sign.txt', 'per%cent%20.txt', 'tilde~name', 'odd !$&\'()*,;=:@.txt'];
    // empty and dot segments: sent with literal slashes, signed as sent, stored apart
    const slashKeys = ['dir/', 'a//b', '/x', 'x/', 'a/./b', 'a/../b', 'x', 'a/b', 'b'];
    for (const key of [...keys, ...slashKeys]) {
      const content = `content of ${key}`;
      r = await s3(port, 'PUT', s3Path('selftest', key), { body: content, headers: { 'content-type': 'text/plain' } });
      check(`s3: signed PUT accepted for key ${JSON.stringify(key)}`, r.status === 200, `${r.status} ${r.body}`);
    }
    for (const key of [...keys, ...slashKeys]) {
      r = await s3(port, 'GET', s3Path('selftest', key));
      check(`s3: signed GET returns key ${JSON.stringify(key)}`, r.status === 200 && r.body.toString() === `content of ${key}`, `${r.status} ${r.body}`);
    }
    // The server decodes the path before it signs: slashes sent as %2F are
    // signed as slashes, so a client that signed the encoded form is refused.
    const encodedSlashes = `/selftest/${rfc3986('a//b')}`;
    r = await s3(port, 'GET', encodedSlashes);
    check('s3: key signed with %2F for its slashes -> 403 SignatureDoesNotMatch', r.status === 403 && xmlField(r.body, 'Code') === 'SignatureDoesNotMatch', `${r.status} ${r.body}`);
    check('s3: the canonical request has the decoded slashes', (xmlField(r.body, 'CanonicalRequest') || '').includes('\n/selftest/a//b\n'), xmlField(r.body, 'CanonicalRequest'));
    r = await s3(port, 'GET', '/selftest', { query: { 'list-type': '2', prefix: 'a/' } });
    const aKeys = [...r.body.toString().matchAll(/<Key>([\s\S]*?)<\/Key>/g)].map((x) => x[1]).sort();
    check('s3: listing by prefix gives the keys as stored by the client', r.status === 200 && JSON.stringify(aKeys) === JSON.stringify(['a/../b', 'a/./b', 'a//b', 'a/b']), `${r.status} ${JSON.stringify(aKeys)}`);
    check('s3: listing echoes the prefix as sent', xmlField(r.body, 'Prefix') === 'a/', xmlField(r.body, 'Prefix'));
    r = await s3(port, 'GET', s3Path('selftest', 'a//missing'));
    check('s3: NoSuchKey names the key as sent', r.status === 404 && xmlField(r.body, 'Key') === 'a//missing', `${r.status} ${r.body}`);
    for (const key of slashKeys.slice(0, 6)) {
      r = await s3(port, 'DELETE', s3Path('selftest', key));
      check(`s3: DELETE key ${JSON.stringify(key)}`, r.status === 204, `${r.status} ${r.body}`);
    }
    r = await s3(port, 'GET', s3Path('selftest', 'a/b'));
    check('s3: deleting "a//b" and "a/./b" left "a/b" alone', r.status === 200 && r.body.toString() === 'content of a/b', `${r.status} ${r.body}`);
    for (const key of slashKeys.slice(6)) await s3(port, 'DELETE', s3Path('selftest', key));

    r = await s3(port, 'GET', s3Path('selftest', 'plain.txt'), { secret: 'wrong-secret' });
    check('s3: wrong secret -> 403 SignatureDoesNotMatch', r.status === 403 && xmlField(r.body, 'Code') === 'SignatureDoesNotMatch', `${r.status} ${r.body}`);
    check('s3: mismatch error shows the canonical request', Boolean(xmlField(r.body, 'CanonicalRequest')));
    r = await s3(port, 'PUT', s3Path('selftest', 'with space/x'), { body: 'x', secret: 'wrong-secret' });
    check('s3: wrong secret on awkward key -> 403', r.status === 403 && xmlField(r.body, 'Code') === 'SignatureDoesNotMatch');
    r = await s3(port, 'GET', s3Path('selftest', 'plain.txt'), { access: 'nobody' });
    check('s3: unknown access key -> 403 InvalidAccessKeyId', r.status === 403 && xmlField(r.body, 'Code') === 'InvalidAccessKeyId', `${r.status} ${r.body}`);
    r = await request(port, 'GET', s3Path('selftest', 'plain.txt'));
    check('s3: no auth -> 403 AccessDenied', r.status === 403 && xmlField(r.body, 'Code') === 'AccessDenied', `${r.status} ${r.body}`);
    r = await s3(port, 'PUT', s3Path('selftest', 'bad-hash'), { body: 'abc', payloadHash: sha256('abd') });
    check('s3: body not matching x-amz-content-sha256 -> 400', r.status === 400 && xmlField(r.body, 'Code') === 'XAmzContentSHA256Mismatch', `${r.status} ${r.body}`);
    r = await s3(port, 'PUT', s3Path('selftest', 'unsigned.bin'), { body: 'payload', payloadHash: 'UNSIGNED-PAYLOAD' });
    check('s3: UNSIGNED-PAYLOAD accepted', r.status === 200, `${r.status} ${r.body}`);

    // A signed request altered in transit (path changed after signing) must fail.
    const good = await signer().sign({
      method: 'GET', protocol: 'http:', hostname: '127.0.0.1', port, path: '/selftest/plain.txt', query: {},
      headers: { host: `127.0.0.1:${port}`, 'x-amz-content-sha256': sha256('') },
    });
    r = await request(port, 'GET', '/selftest/tilde~name', good.headers);
    check('s3: tampered path -> 403 SignatureDoesNotMatch', r.status === 403 && xmlField(r.body, 'Code') === 'SignatureDoesNotMatch');

    r = await presigned(port, 'GET', s3Path('selftest', 'with space/and more.txt'));
    check('s3: presigned GET accepted', r.status === 200 && r.body.toString() === 'content of with space/and more.txt', `${r.status} ${r.body}`);
    await s3(port, 'PUT', s3Path('selftest', 'p/../q//'), { body: 'dots' });
    r = await presigned(port, 'GET', s3Path('selftest', 'p/../q//'));
    check('s3: presigned GET of a key with dot and empty segments', r.status === 200 && r.body.toString() === 'dots', `${r.status} ${r.body}`);
    await s3(port, 'DELETE', s3Path('selftest', 'p/../q//'));
    r = await presigned(port, 'GET', s3Path('selftest', 'plain.txt'), { expiresIn: 60, signingDate: new Date(Date.now() - 3600 * 1000) });
    check('s3: expired presigned URL -> 403 Request has expired', r.status === 403 && xmlField(r.body, 'Message') === 'Request has expired', `${r.status} ${r.body}`);
    r = await presigned(port, 'GET', s3Path('selftest', 'plain.txt'), { secret: 'wrong' });
    check('s3: presigned with wrong secret -> 403 SignatureDoesNotMatch', r.status === 403 && xmlField(r.body, 'Code') === 'SignatureDoesNotMatch');

    // ListObjectsV2 paging through continuation tokens, query signed canonically.
    const listed = [];
    let token;
    let pages = 0;
    do {
      const query = { 'list-type': '2', 'max-keys': '3' };
      if (token) query['continuation-token'] = token;
      r = await s3(port, 'GET', '/selftest', { query });
      if (r.status !== 200) break;
      pages += 1;
      for (const m of r.body.toString().matchAll(/<Key>([\s\S]*?)<\/Key>/g)) listed.push(m[1]);
      token = xmlField(r.body, 'IsTruncated') === 'true' ? xmlField(r.body, 'NextContinuationToken') : null;
    } while (token && pages < 20);
    // the keys above and unsigned.bin
    check('s3: ListObjectsV2 pages through all keys', r.status === 200 && listed.length === keys.length + 1 && pages >= 3, `${r.status} pages=${pages} keys=${listed.length}`);
    r = await s3(port, 'GET', '/selftest', { query: { 'list-type': '2', prefix: 'with space/', delimiter: '/' } });
    check('s3: ListObjectsV2 with prefix containing a space', r.status === 200 && xmlField(r.body, 'KeyCount') === '1', `${r.status} ${r.body}`);

    await testMultipart(port);
    testCurl(port);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function multipartUpload(port, name, blankEtag) {
  const key = s3Path('selftest', name);
  let r = await s3(port, 'POST', key, { query: { uploads: '' } });
  const uploadId = xmlField(r.body, 'UploadId');
  check(`s3: CreateMultipartUpload ${JSON.stringify(name)}`, r.status === 200 && Boolean(uploadId) && xmlField(r.body, 'Key') === name, `${r.status} ${r.body}`);
  const parts = [crypto.randomBytes(5 * 1024 * 1024), crypto.randomBytes(1000)];
  const etags = [];
  for (let i = 0; i < parts.length; i += 1) {
    r = await s3(port, 'PUT', key, { query: { partNumber: String(i + 1), uploadId }, body: parts[i] });
    etags.push(r.headers.etag);
    check(`s3: UploadPart ${i + 1}`, r.status === 200 && Boolean(r.headers.etag), `${r.status} ${r.body}`);
  }
  if (blankEtag) {
    r = await request(port, 'POST', '/_test/fault', { 'content-type': 'application/json' }, JSON.stringify({ mode: 'blank_etag', times: 1 }));
    check('s3: fault blank_etag accepted', r.status === 200, `${r.status} ${r.body}`);
  }
  const xml = `<CompleteMultipartUpload>${etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
  r = await s3(port, 'POST', key, { query: { uploadId }, body: xml });
  // s3rver's ETag here is the MD5 of the whole object, not the AWS "<md5>-2" form (README).
  check(`s3: CompleteMultipartUpload ${JSON.stringify(name)}`, r.status === 200 && xmlField(r.body, 'Key') === name
    && (blankEtag ? xmlField(r.body, 'ETag') === '' : Boolean(xmlField(r.body, 'ETag'))), `${r.status} ${r.body}`);
  r = await s3(port, 'GET', key);
  check(`s3: multipart object ${JSON.stringify(name)} reads back whole`, r.status === 200 && r.body.equals(Buffer.concat(parts)), `${r.status} ${r.body.length}`);
  r = await s3(port, 'DELETE', key);
}

async function testMultipart(port) {
  await multipartUpload(port, 'multi part/big.bin', false);
  // a key with dot and empty segments, and the answer radosgw 16.2 may give
  await multipartUpload(port, 'mp/../x//big.bin', true);

  let r = await s3(port, 'POST', s3Path('selftest', 'aborted.bin'), { query: { uploads: '' } });
  const abortId = xmlField(r.body, 'UploadId');
  r = await s3(port, 'GET', '/selftest', { query: { uploads: '' } });
  check('s3: ListMultipartUploads shows the open upload', r.status === 200
    && xmlField(r.body, 'UploadId') === abortId && xmlField(r.body, 'Key') === 'aborted.bin', `${r.status} ${r.body}`);
  r = await s3(port, 'DELETE', s3Path('selftest', 'aborted.bin'), { query: { uploadId: abortId } });
  check('s3: AbortMultipartUpload -> 204', r.status === 204, `${r.status} ${r.body}`);
  r = await s3(port, 'GET', '/selftest', { query: { uploads: '' } });
  check('s3: ListMultipartUploads is empty after the abort', r.status === 200 && !r.body.includes('<Upload>'), `${r.status} ${r.body}`);
  r = await s3(port, 'PUT', s3Path('selftest', 'aborted.bin'), { query: { partNumber: '1', uploadId: abortId }, body: 'x' });
  check('s3: UploadPart after abort fails', r.status === 404, `${r.status} ${r.body}`);
  r = await s3(port, 'DELETE', s3Path('selftest', 'aborted.bin'), { query: { uploadId: abortId } });
  check('s3: second abort -> 404 NoSuchUpload', r.status === 404 && xmlField(r.body, 'Code') === 'NoSuchUpload', `${r.status} ${r.body}`);

  // An abort while parts are being written (a client aborting after one
  // part failed, the others in flight) removes the upload, never answers 500.
  const aborts = {};
  const partBody = Buffer.alloc(256 * 1024, 7);
  for (let round = 0; round < 10; round += 1) {
    const key = s3Path('selftest', `abort-in-flight-${round}.bin`);
    r = await s3(port, 'POST', key, { query: { uploads: '' } });
    const id = xmlField(r.body, 'UploadId');
    const inFlight = [];
    for (let i = 1; i <= 6; i += 1) {
      inFlight.push(s3(port, 'PUT', key, { query: { partNumber: String(i), uploadId: id }, body: partBody }).catch((e) => e));
    }
    await new Promise((resolve) => { setTimeout(resolve, round % 5); });
    r = await s3(port, 'DELETE', key, { query: { uploadId: id } });
    aborts[r.status] = (aborts[r.status] || 0) + 1;
    await Promise.all(inFlight);
    r = await s3(port, 'DELETE', key, { query: { uploadId: id } });
    aborts[`again ${r.status}`] = (aborts[`again ${r.status}`] || 0) + 1;
  }
  check('s3: AbortMultipartUpload with parts in flight -> 204, then the upload is gone (404)',
    aborts[204] === 10 && aborts['again 404'] === 10, JSON.stringify(aborts));
}

// A request signed by curl's own SigV4 code must pass too.
function testCurl(port) {
  let version;
  try {
    version = execFileSync('curl', ['--version']).toString();
  } catch {
    console.log('# curl not found, curl check skipped');
    return;
  }
  if (!/^curl (7\.(7[5-9]|8\d)|[89]\.)/.test(version)) {
    console.log('# curl without --aws-sigv4, curl check skipped');
    return;
  }
  const out = execFileSync('curl', [
    '-s', '-o', '/dev/null', '-w', '%{http_code}',
    '--aws-sigv4', `aws:amz:${REGION}:s3`, '--user', `${ACCESS}:${SECRET}`,
    '-H', `x-amz-content-sha256: ${sha256('')}`,
    `http://127.0.0.1:${port}/selftest/plain.txt`,
  ]).toString();
  check('s3: curl --aws-sigv4 signed GET accepted', out === '200', out);
  const bad = execFileSync('curl', [
    '-s', '-o', '/dev/null', '-w', '%{http_code}',
    '--aws-sigv4', `aws:amz:${REGION}:s3`, '--user', `${ACCESS}:not-the-secret`,
    '-H', `x-amz-content-sha256: ${sha256('')}`,
    `http://127.0.0.1:${port}/selftest/plain.txt`,
  ]).toString();
  check('s3: curl with wrong secret refused', bad === '403', bad);
}

// ------------------------------------------------------------------ Ollama

async function testOllama() {
  const port = await freePort();
  await startChild('ollama.js', { DC_OLLAMA_PORT: String(port), DC_OLLAMA_TOKEN: '' });
  const post = (p, obj) => request(port, 'POST', p, { 'content-type': 'application/json' }, JSON.stringify(obj));

  let r = await post('/api/generate', { model: 'llama3.2', prompt: 'hello there' });
  const lines = r.body.toString().trim().split('\n').map((l) => JSON.parse(l));
  check('ollama: generate streams NDJSON by default', r.headers['content-type'] === 'application/x-ndjson' && lines.length > 2 && lines.at(-1).done === true);
  check('ollama: streamed fragments concatenate to the answer', lines.map((l) => l.response).join('') === 'echo: hello there');
  r = await post('/api/generate', { model: 'llama3.2', prompt: 'hello there', stream: false });
  check('ollama: stream:false gives one object', JSON.parse(r.body).response === 'echo: hello there');
  r = await post('/api/generate', { model: 'missing', prompt: 'x' });
  check('ollama: unknown model -> 404 {"error"}', r.status === 404 && JSON.parse(r.body).error === "model 'missing' not found");
  r = await post('/api/embed', { model: 'nomic-embed-text', input: ['a b', 'a b', 'c'] });
  const emb = JSON.parse(r.body).embeddings;
  const norm = Math.sqrt(emb[0].reduce((s, x) => s + x * x, 0));
  check('ollama: embed dimension 16, unit length, deterministic', emb[0].length === 16 && Math.abs(norm - 1) < 1e-5 && JSON.stringify(emb[0]) === JSON.stringify(emb[1]));
  r = await post('/api/embed', { model: 'nomic-embed-text', input: '__nan__' });
  check('ollama: __nan__ gives a NaN literal', r.body.toString().includes('[NaN,'));

  await request(port, 'POST', '/_test/fault', {}, JSON.stringify({ mode: 'status', status: 500, path: '/api/embed' }));
  r = await request(port, 'GET', '/api/version');
  const other = r.status;
  r = await post('/api/embed', { model: 'all-minilm', input: 'x' });
  check('ollama: fault limited to a path prefix', other === 200 && r.status === 500);
  await request(port, 'DELETE', '/_test/fault');
  await request(port, 'POST', '/_test/fault', {}, JSON.stringify({ mode: 'status', status: 503, times: 1, retry_after: 2 }));
  r = await request(port, 'GET', '/api/version');
  check('ollama: status fault -> 503 with Retry-After', r.status === 503 && r.headers['retry-after'] === '2' && JSON.parse(r.body).error === 'injected 503');
  await request(port, 'POST', '/_test/fault', {}, JSON.stringify({ mode: 'truncate', times: 1 }));
  r = await request(port, 'POST', '/api/generate', {}, JSON.stringify({ model: 'llama3.2', prompt: 'x', stream: false })).catch((e) => ({ error: e }));
  check('ollama: truncate fault breaks the response', Boolean(r.error));
  await request(port, 'POST', '/_test/fault', {}, JSON.stringify({ mode: 'stall', bytes: 5, times: 1 }));
  r = await new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'GET', path: '/api/version' }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      // the rest never comes: give up after a while and report what arrived
      setTimeout(() => { req.destroy(); resolve({ status: res.statusCode, length: res.headers['content-length'], body: Buffer.concat(chunks) }); }, 300);
    });
    req.on('error', () => {});
    req.end();
  });
  check('ollama: stall fault sends the headers and 5 bytes, then nothing', r.status === 200 && Number(r.length) > 5 && r.body.length === 5);
  await request(port, 'POST', '/_test/fault', {}, JSON.stringify({ mode: 'reset', times: 1 }));
  r = await request(port, 'GET', '/api/version').catch((e) => ({ error: e }));
  check('ollama: reset fault resets the connection', r.error && r.error.code === 'ECONNRESET', String(r.error && r.error.code));
  await request(port, 'POST', '/_test/fault', {}, JSON.stringify({ mode: 'reset', after: 1, times: 1 }));
  const first = await request(port, 'GET', '/api/version').catch((e) => ({ error: e }));
  r = await request(port, 'GET', '/api/version').catch((e) => ({ error: e }));
  check('ollama: reset fault honours after', first.status === 200 && r.error && r.error.code === 'ECONNRESET');
  await request(port, 'POST', '/_test/fault', {}, JSON.stringify({ mode: 'short', times: 1 }));
  r = await request(port, 'GET', '/api/version');
  check('ollama: short fault sends half the document, framed', r.status === 200 && r.body.toString() === '{"version":"0.5.7"}'.slice(0, 9), r.body.toString());
  await request(port, 'POST', '/_test/fault', {}, JSON.stringify({ mode: 'content_type', times: 1 }));
  r = await request(port, 'GET', '/api/version');
  check('ollama: content_type fault sends an HTML page', r.status === 200 && r.headers['content-type'].startsWith('text/html') && r.body.toString().includes('Bad Gateway'));
  await request(port, 'POST', '/_test/fault', {}, JSON.stringify({ mode: 'trickle', ms: 5, times: 1 }));
  const t0 = Date.now();
  r = await request(port, 'GET', '/api/version');
  check('ollama: trickle fault sends the answer byte by byte', r.status === 200 && r.body.toString() === '{"version":"0.5.7"}' && Date.now() - t0 > 5 * 60, `${Date.now() - t0} ms`);
  r = await request(port, 'GET', '/_test/log');
  const log = r.body.toString().trim().split('\n').map((l) => JSON.parse(l));
  check('ollama: request log records method, path and JSON body', log[0].seq === 1 && log[0].path === '/api/generate' && log[0].body.prompt === 'hello there');
}

// ------------------------------------------------------------------ Qdrant

async function testQdrant() {
  const port = await freePort();
  await startChild('qdrant.js', { DC_QDRANT_PORT: String(port), DC_QDRANT_API_KEY: '' });
  const call = async (method, p, obj) => {
    const r = await request(port, method, p, { 'content-type': 'application/json' }, obj === undefined ? undefined : JSON.stringify(obj));
    return { status: r.status, json: JSON.parse(r.body) };
  };
  const dim = 384;
  const total = 100000;
  let r = await call('PUT', '/collections/big', { vectors: { size: dim, distance: 'Cosine' } });
  check('qdrant: create collection', r.status === 200 && r.json.result === true);
  const started = Date.now();
  const rnd = (seed) => {
    let s = seed;
    return () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return s / 2147483648 - 0.5;
    };
  };
  const next = rnd(7);
  // A pool of vector texts keeps the client's share of the time small.
  const pool = Array.from({ length: 997 }, () => `[${Array.from({ length: dim }, () => next().toFixed(4)).join(',')}]`);
  for (let base = 0; base < total; base += 2000) {
    const points = [];
    for (let i = base; i < base + 2000; i += 1) {
      points.push(`{"id":${i},"vector":${pool[i % pool.length]},"payload":{"n":${i},"even":${i % 2 === 0}}}`);
    }
    const res = await request(port, 'PUT', '/collections/big/points?wait=true', { 'content-type': 'application/json' }, `{"points":[${points.join(',')}]}`);
    r = { status: res.status, json: JSON.parse(res.body) };
    if (r.status !== 200) break;
  }
  check(`qdrant: upsert ${total} x ${dim} points`, r.status === 200, JSON.stringify(r.json));
  console.log(`# upsert took ${Date.now() - started} ms`);
  r = await call('POST', '/collections/big/points/count', {});
  check('qdrant: count 100000', r.json.result.count === total);

  // points/batch: checked as a whole, applied in order, one result per operation
  r = await call('POST', '/collections/big/points/batch?wait=true', { operations: [
    { overwrite_payload: { points: [1], payload: { a: 1 } } },
    { set_payload: { points: [1, 2], payload: { b: 2 } } },
    { delete: { points: [3] } },
  ] });
  check('qdrant: points/batch answers one result per operation', r.status === 200 && Array.isArray(r.json.result) &&
    r.json.result.length === 3 && r.json.result.every((u) => u.status === 'completed'), JSON.stringify(r.json));
  r = await call('POST', '/collections/big/points', { ids: [1, 2, 3] });
  check('qdrant: points/batch applies its operations in order',
    JSON.stringify(r.json.result.map((p) => p.payload)) === JSON.stringify([{ a: 1, b: 2 }, { n: 2, even: true, b: 2 }]),
    JSON.stringify(r.json.result));
  r = await call('POST', '/collections/big/points/batch?wait=true', { operations: [
    { delete: { points: [4] } },
    { update_vectors: { points: [{ id: 5, vector: [1, 2] }] } },
  ] });
  r = { status: r.status, json: r.json, after: (await call('POST', '/collections/big/points', { ids: [4] })).json.result };
  check('qdrant: a bad operation fails the whole batch before any applies', r.status === 400 && r.after.length === 1,
    JSON.stringify(r));
  await call('PUT', '/collections/big/points?wait=true', { points: [
    { id: 1, vector: JSON.parse(pool[1]), payload: { n: 1, even: false } },
    { id: 3, vector: JSON.parse(pool[3]), payload: { n: 3, even: false } },
  ] });

  let t = Date.now();
  let offset;
  let seen = 0;
  do {
    r = await call('POST', '/collections/big/points/scroll', { limit: 1000, offset, with_payload: false });
    seen += r.json.result.points.length;
    offset = r.json.result.next_page_offset;
  } while (offset !== null && offset !== undefined);
  check('qdrant: scroll visits every point once', seen === total);
  console.log(`# full scroll took ${Date.now() - t} ms`);

  t = Date.now();
  const query = Array.from({ length: dim }, () => next());
  r = await call('POST', '/collections/big/points/search', { vector: query, limit: 5, filter: { must: [{ key: 'even', match: { value: true } }] } });
  const searchMs = Date.now() - t;
  check('qdrant: filtered search over 100k points', r.status === 200 && r.json.result.length === 5 && r.json.result.every((p) => p.id % 2 === 0));
  check('qdrant: search scores descending', r.json.result.every((p, i, a) => i === 0 || a[i - 1].score >= p.score));
  console.log(`# search took ${searchMs} ms`);
  r = await call('PUT', '/collections/big/points?wait=true', { points: [{ id: 1, vector: [1, 2, 3] }] });
  check('qdrant: wrong dimension -> 400', r.status === 400 && r.json.status.error === `Wrong input: Vector dimension error: expected dim: ${dim}, got 3`);
  r = await call('PUT', '/collections/big/points?wait=true', { points: [{ id: '42', vector: query }] });
  check('qdrant: numeric string id -> 400', r.status === 400);
  r = await call('GET', '/collections/none');
  check('qdrant: missing collection -> 404', r.status === 404 && r.json.status.error === 'Not found: Collection `none` doesn\'t exist!');
  r = await call('PUT', '/collections/big/points', { points: [{ id: 'AB0E5C00-0000-4000-8000-000000000001', vector: query }] });
  check('qdrant: write without wait is acknowledged', r.json.result.status === 'acknowledged');
  r = await call('POST', '/collections/big/points', { ids: ['ab0e5c00-0000-4000-8000-000000000001'] });
  const before = r.json.result.length;
  await new Promise((resolve) => setTimeout(resolve, 120));
  r = await call('POST', '/collections/big/points', { ids: ['ab0e5c00-0000-4000-8000-000000000001'] });
  check('qdrant: async write becomes visible later', before === 0 && r.json.result.length === 1);
}

async function main() {
  try {
    await testS3();
    await testOllama();
    await testQdrant();
  } catch (err) {
    failed += 1;
    console.log(`not ok - unexpected error: ${err.stack || err}`);
  } finally {
    for (const child of children) child.kill('SIGTERM');
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

main();
