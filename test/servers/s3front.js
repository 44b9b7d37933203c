'use strict';
// S3 front: checks every request's AWS SigV4 signature (header or presigned
// query) with the AWS SDK's own signer, then forwards it unchanged to an
// in-process s3rver. s3rver alone accepts any V4 signature, so without this
// front a signing bug in the client would go unnoticed.

const http = require('node:http');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { SignatureV4, getCanonicalHeaders } = require('@smithy/signature-v4');
const { Hash } = require('@smithy/hash-node');

// s3rver's ListObjectsV2 continuation tokens use single DES, which OpenSSL 3
// only offers in its legacy provider, so every paged listing failed with 500.
// Triple DES with three equal keys is the same cipher and is still available.
function patchSingleDes() {
  const wrap = (original) => (algorithm, key, iv, options) => {
    if (String(algorithm).toLowerCase() === 'des' || String(algorithm).toLowerCase() === 'des-cbc') {
      const k = Buffer.from(key);
      return original('des-ede3-cbc', Buffer.concat([k, k, k]), iv, options);
    }
    return original(algorithm, key, iv, options);
  };
  crypto.createCipheriv = wrap(crypto.createCipheriv.bind(crypto));
  crypto.createDecipheriv = wrap(crypto.createDecipheriv.bind(crypto));
}
patchSingleDes();

const S3rver = require('s3rver');
const AWSAccount = require('s3rver/lib/models/account');
const {
  envPort, parseQuery, safeDecode, sendJson, sha256Hex, sleep, startServer,
} = require('./lib');

const ACCESS_KEY = process.env.DC_S3_ACCESS_KEY || 'dcaccess';
const SECRET_KEY = process.env.DC_S3_SECRET_KEY || 'dcsecret/Key+1';
const REGION = process.env.DC_S3_REGION || 'us-east-1';
const DATA_DIR = process.env.DC_S3_DIR || path.join(os.tmpdir(), 'datacore-s3');
const S3RVER_PORT = envPort('DC_S3RVER_PORT', 59001);
const MAX_BODY = Number(process.env.DC_S3_MAX_BODY_MB || 256) * 1024 * 1024;
const BUCKETS = (process.env.DC_S3_BUCKETS || '').split(',').map((s) => s.trim()).filter(Boolean);
// MinIO reads a missing x-amz-content-sha256 as the empty-body hash; AWS rejects it.
const MINIO_COMPAT = process.env.DC_S3_MINIO_COMPAT === '1';

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const MAX_SKEW_MS = 15 * 60 * 1000;
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

const SECRETS = new Map([[ACCESS_KEY, SECRET_KEY]]);

class S3Error extends Error {
  constructor(status, code, message, extra = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.extra = extra;
  }
}

function xmlEscape(text) {
  return String(text).replace(/[<>&'"]/g, (c) => ({
    '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;',
  }[c]));
}

// S3 error document; HEAD answers carry the status only.
function sendS3Error(res, method, resource, err, headers = {}) {
  const requestId = crypto.randomBytes(8).toString('hex').toUpperCase();
  if (method === 'HEAD') {
    res.writeHead(err.status, { 'x-amz-request-id': requestId, 'Content-Length': 0, ...headers });
    return res.end();
  }
  const extra = Object.entries(err.extra)
    .map(([k, v]) => `<${k}>${xmlEscape(v)}</${k}>`).join('');
  const body = '<?xml version="1.0" encoding="UTF-8"?>\n'
    + `<Error><Code>${err.code}</Code><Message>${xmlEscape(err.message)}</Message>${extra}`
    + `<Resource>${xmlEscape(resource)}</Resource><RequestId>${requestId}</RequestId></Error>`;
  res.writeHead(err.status, {
    'Content-Type': 'application/xml',
    'Content-Length': Buffer.byteLength(body),
    'x-amz-request-id': requestId,
    ...headers,
  });
  // a Buffer, not a string: Node would send the headers in the body's
  // encoding (UTF-8) instead of one byte per character
  return res.end(Buffer.from(body));
}

// Percent-decoding of a request path into bytes, as S3 servers do before
// anything else: '%2F' becomes a slash like any other, '+' stays a plus. A
// '%' not followed by two hex digits is kept as it is.
function decodePath(rawPath) {
  const out = [];
  for (let i = 0; i < rawPath.length; i += 1) {
    if (rawPath[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(rawPath.slice(i + 1, i + 3))) {
      out.push(parseInt(rawPath.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      out.push(...Buffer.from(rawPath[i], 'utf8'));
    }
  }
  return Buffer.from(out);
}

// The AWS URI encoding of bytes: all but A-Za-z0-9-_.~ (and '/' when kept)
// as %XX with upper-case hex.
function s3Encode(bytes, keepSlash = false) {
  let out = '';
  for (const b of Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-_.~]/.test(c) || (keepSlash && c === '/') ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

// S3 canonical URI as MinIO (EncodePath over the decoded URL path) and Ceph's
// radosgw compute it: decode the whole path once, then encode each segment
// with slashes kept. Nothing is normalised: empty and dot segments stay, so
// a client must send the path it signed, slashes literal; a key whose
// slashes went as %2F is signed by the server with real slashes.
function canonicalPath(rawPath) {
  return s3Encode(decodePath(rawPath), true) || '/';
}

// Values of a header as sent, repeated headers joined with ',' as SigV4 wants.
function headerValue(req, name) {
  const values = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i].toLowerCase() === name) values.push(req.rawHeaders[i + 1]);
  }
  return values.length ? values.join(',') : undefined;
}

function parseAmzDate(text) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text || '');
  if (!m) return null;
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
}

function parseCredential(text, malformed) {
  const parts = String(text || '').split('/');
  if (parts.length !== 5) throw malformed(`the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`);
  const [accessKeyId, date, region, service, terminator] = parts;
  if (terminator !== 'aws4_request') throw malformed(`the Credential is mal-formed; incorrect terminal "${terminator}". This endpoint uses "aws4_request".`);
  if (service !== 's3') throw malformed(`the Credential is mal-formed; incorrect service "${service}". This endpoint belongs to "s3".`);
  if (region !== REGION) throw malformed(`the region '${region}' is wrong; expecting '${REGION}'`, { Region: REGION });
  return { accessKeyId, date, region };
}

function headerMalformed(msg, extra) {
  return new S3Error(400, 'AuthorizationHeaderMalformed', `The authorization header is malformed; ${msg}`, extra);
}

function queryMalformed(msg, extra) {
  return new S3Error(400, 'AuthorizationQueryParametersError', `Error parsing the X-Amz-Credential parameter; ${msg}`, extra);
}

function parseAuthorization(value) {
  const rest = value.slice('AWS4-HMAC-SHA256'.length).trim();
  const fields = {};
  for (const part of rest.split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  for (const name of ['Credential', 'SignedHeaders', 'Signature']) {
    if (!fields[name]) throw headerMalformed(`missing ${name}.`);
  }
  return fields;
}

function requireKnownKey(accessKeyId) {
  if (!SECRETS.has(accessKeyId)) {
    throw new S3Error(403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.', { AWSAccessKeyId: accessKeyId });
  }
}

// Collects what the signature covers from the request, whichever way it was signed.
function authParams(req, query) {
  const authorization = req.headers.authorization;
  const presigned = query['X-Amz-Algorithm'] !== undefined;
  if (authorization && presigned) {
    throw new S3Error(400, 'InvalidArgument', 'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified');
  }
  if (authorization) {
    if (!authorization.startsWith('AWS4-HMAC-SHA256 ')) {
      throw new S3Error(400, 'InvalidArgument', 'Unsupported Authorization Type; only AWS4-HMAC-SHA256 is accepted here', { ArgumentName: 'Authorization' });
    }
    const fields = parseAuthorization(authorization);
    const cred = parseCredential(fields.Credential, headerMalformed);
    requireKnownKey(cred.accessKeyId);
    const amzDate = req.headers['x-amz-date'];
    const when = parseAmzDate(amzDate);
    if (!when) throw new S3Error(403, 'AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
    if (cred.date !== amzDate.slice(0, 8)) throw headerMalformed(`Invalid credential date "${cred.date}". This date is not the same as X-Amz-Date: "${amzDate.slice(0, 8)}".`);
    if (Math.abs(Date.now() - when.getTime()) > MAX_SKEW_MS) {
      throw new S3Error(403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.', {
        RequestTime: amzDate, ServerTime: new Date().toISOString(), MaxAllowedSkewMilliseconds: MAX_SKEW_MS,
      });
    }
    let payloadHash = req.headers['x-amz-content-sha256'];
    if (payloadHash === undefined) {
      if (!MINIO_COMPAT) throw new S3Error(400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
      payloadHash = EMPTY_SHA256;
    }
    return {
      ...cred, amzDate, payloadHash, signature: fields.Signature, signedHeaders: fields.SignedHeaders.split(';'), presigned: false,
    };
  }
  if (presigned) {
    if (query['X-Amz-Algorithm'] !== 'AWS4-HMAC-SHA256') {
      throw new S3Error(400, 'AuthorizationQueryParametersError', 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"');
    }
    for (const name of ['X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-SignedHeaders', 'X-Amz-Expires']) {
      if (typeof query[name] !== 'string') {
        throw new S3Error(400, 'AuthorizationQueryParametersError', 'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.');
      }
    }
    const cred = parseCredential(query['X-Amz-Credential'], queryMalformed);
    requireKnownKey(cred.accessKeyId);
    const amzDate = query['X-Amz-Date'];
    const when = parseAmzDate(amzDate);
    if (!when) throw new S3Error(400, 'AuthorizationQueryParametersError', 'X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd\'T\'HHmmss\'Z\'"');
    if (cred.date !== amzDate.slice(0, 8)) throw queryMalformed(`Invalid credential date "${cred.date}". This date is not the same as X-Amz-Date: "${amzDate.slice(0, 8)}".`);
    const expires = Number(query['X-Amz-Expires']);
    if (!Number.isInteger(expires) || expires < 0) throw new S3Error(400, 'AuthorizationQueryParametersError', 'X-Amz-Expires should be a number');
    if (expires > MAX_PRESIGN_SECONDS) throw new S3Error(400, 'AuthorizationQueryParametersError', 'X-Amz-Expires must be less than a week (in seconds) that is 604800');
    if (when.getTime() - Date.now() > MAX_SKEW_MS) throw new S3Error(403, 'AccessDenied', 'Request is not valid yet');
    if (Date.now() > when.getTime() + expires * 1000) {
      throw new S3Error(403, 'AccessDenied', 'Request has expired', {
        'X-Amz-Expires': expires, Expires: new Date(when.getTime() + expires * 1000).toISOString(), ServerTime: new Date().toISOString(),
      });
    }
    return {
      ...cred,
      amzDate,
      payloadHash: req.headers['x-amz-content-sha256'] || 'UNSIGNED-PAYLOAD',
      signature: query['X-Amz-Signature'],
      signedHeaders: query['X-Amz-SignedHeaders'].split(';'),
      presigned: true,
    };
  }
  throw new S3Error(403, 'AccessDenied', 'Access Denied.');
}

const signers = new Map();
function signerFor(accessKeyId) {
  if (!signers.has(accessKeyId)) {
    signers.set(accessKeyId, new SignatureV4({
      credentials: { accessKeyId, secretAccessKey: SECRETS.get(accessKeyId) },
      region: REGION,
      service: 's3',
      sha256: Hash.bind(null, 'sha256'),
      uriEscapePath: false,
    }));
  }
  return signers.get(accessKeyId);
}

/*
 * Verifies the request's signature; throws S3Error when it must be refused.
 * The canonical request is rebuilt from what arrived (method, path, query,
 * the headers the client listed) and signed with the known secret.
 */
async function verify(req, rawPath, query, body) {
  const auth = authParams(req, query);
  const signed = auth.signedHeaders.map((h) => h.toLowerCase());
  if (!signed.includes('host')) throw headerMalformed('the SignedHeaders must include host.');
  if (!auth.presigned) {
    const unsigned = Object.keys(req.headers).filter((h) => h.startsWith('x-amz-') && !signed.includes(h));
    if (unsigned.length) {
      throw new S3Error(403, 'AccessDenied', 'There were headers present in the request which were not signed', { HeadersNotSigned: unsigned.join(', ') });
    }
  }
  if (auth.payloadHash !== 'UNSIGNED-PAYLOAD' && !/^[0-9a-f]{64}$/.test(auth.payloadHash)) {
    throw new S3Error(400, 'InvalidArgument', 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a valid sha256 value.', { ArgumentName: 'x-amz-content-sha256', ArgumentValue: auth.payloadHash });
  }

  const headers = {};
  for (const name of signed) {
    const value = headerValue(req, name);
    if (value !== undefined) headers[name] = value;
  }
  const canonicalHeaders = getCanonicalHeaders({ headers }, undefined, new Set(signed));
  const signedQuery = { ...query };
  const request = { method: req.method, path: canonicalPath(rawPath), query: signedQuery, headers };
  const signer = signerFor(auth.accessKeyId);
  const scope = `${auth.date}/${auth.region}/s3/aws4_request`;
  const canonicalRequest = signer.createCanonicalRequest(request, canonicalHeaders, auth.payloadHash);
  const expected = await signer.getSignature(
    auth.amzDate,
    scope,
    signer.getSigningKey({ accessKeyId: auth.accessKeyId, secretAccessKey: SECRETS.get(auth.accessKeyId) }, auth.region, auth.date, 's3'),
    canonicalRequest,
  );
  const missing = signed.filter((h) => !(h in canonicalHeaders));
  const given = Buffer.from(String(auth.signature));
  const want = Buffer.from(expected);
  if (missing.length || given.length !== want.length || !crypto.timingSafeEqual(given, want)) {
    const stringToSign = await signer.createStringToSign(auth.amzDate, scope, canonicalRequest, 'AWS4-HMAC-SHA256');
    throw new S3Error(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', {
      AWSAccessKeyId: auth.accessKeyId,
      StringToSign: stringToSign,
      SignatureProvided: auth.signature,
      CanonicalRequest: canonicalRequest,
      ...(missing.length ? { MissingSignedHeaders: missing.join(';') } : {}),
    });
  }
  if (auth.payloadHash !== 'UNSIGNED-PAYLOAD') {
    const actual = sha256Hex(body);
    if (actual !== auth.payloadHash) {
      throw new S3Error(400, 'XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.", {
        ClientComputedContentSHA256: auth.payloadHash, S3ComputedContentSHA256: actual,
      });
    }
  }
}

// Connection-level headers belong to this hop; everything else goes through as sent.
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'expect', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer']);

// s3rver keeps an object in a file named after its key's segments
// (path.join(bucket, ...segments)), so keys with an empty or a dot segment
// ("a//b", "/x", "x/", "a/./b", "a/../b") would collapse onto other keys or
// leave the bucket directory, and its router answers 404 for an empty
// segment. The front therefore stores every key with a mark in front of each
// segment: no stored segment is empty, "." or "..", the mapping is undone by
// dropping the first character of each segment, and it keeps prefixes and
// key order, so listings by prefix work unchanged.
const SEGMENT_MARK = '_';

function storeKey(key) {
  return SEGMENT_MARK + key.split('/').join(`/${SEGMENT_MARK}`);
}

// Inverse of storeKey; also right for a stored prefix that ends in '/'.
function clientKey(stored) {
  return stored.split('/').map((seg) => (seg.startsWith(SEGMENT_MARK) ? seg.slice(1) : seg)).join('/');
}

// Listing parameters that hold keys or key prefixes.
const KEY_PARAMS = new Set(['prefix', 'start-after', 'marker']);

// Where a request goes in s3rver: the object path with the key mapped, the
// key parameters of a listing mapped, everything else as sent.
function upstreamTarget(ctx) {
  const decoded = decodePath(ctx.rawPath).toString('utf8');
  const m = /^\/([^/]+)\/([\s\S]+)$/.exec(decoded);
  const isObject = Boolean(m);
  const p = isObject ? `/${s3Encode(m[1])}/${s3Encode(storeKey(m[2]), true)}` : ctx.rawPath;
  let q = ctx.rawQuery;
  if (!isObject && q) {
    q = q.split('&').map((pair) => {
      const eq = pair.indexOf('=');
      const name = safeDecode(eq < 0 ? pair : pair.slice(0, eq));
      const value = eq < 0 ? '' : safeDecode(pair.slice(eq + 1));
      return KEY_PARAMS.has(name) && value !== '' ? `${s3Encode(name)}=${s3Encode(storeKey(value))}` : pair;
    }).join('&');
  }
  return { path: p + (q ? `?${q}` : ''), isObject, bucket: isObject ? m[1] : decoded.split('/')[1] };
}

// XML answers name keys: in listings, multipart results and errors. They are
// turned back into the client's keys; the fault blank_etag empties the ETag
// of a CompleteMultipartUpload result (as Ceph's radosgw 16.2 may send it).
function rewriteXml(ctx, target, status, text) {
  let out = text.replace(/<(Key|Prefix|StartAfter|Marker|NextMarker)>([^<]*)<\/\1>/g,
    (all, tag, value) => `<${tag}>${clientKey(value)}</${tag}>`);
  out = out.replace(/<Location>[^<]*<\/Location>/g,
    () => `<Location>${xmlEscape(`http://${ctx.req.headers.host}${ctx.rawPath}`)}</Location>`);
  out = out.replace(/<Resource>([^<]*)<\/Resource>/g, (all, value) => {
    const m = /^(\/[^/]+\/)([\s\S]+)$/.exec(value);
    return `<Resource>${m ? m[1] + clientKey(m[2]) : value}</Resource>`;
  });
  // One account owns every bucket here: S3 and MinIO call that BucketAlreadyOwnedByYou.
  if (ctx.method === 'PUT' && !target.isObject && status === 409) {
    out = out.replace('<Code>BucketAlreadyExists</Code>', '<Code>BucketAlreadyOwnedByYou</Code>')
      .replace(/<Message>The requested bucket already exists\.?<\/Message>/,
        '<Message>Your previous request to create the named bucket succeeded and you already own it.</Message>');
  }
  if (ctx.blankEtag && /<CompleteMultipartUploadResult[\s>]/.test(out)) {
    out = out.replace(/<ETag>[^<]*<\/ETag>/, '<ETag></ETag>');
  }
  return out;
}

// Does the answer to this request carry keys in XML? Object bodies never
// count, whatever their content type.
function answerNamesKeys(ctx, target, status) {
  if (status >= 300) return ctx.method !== 'HEAD';
  if (target.isObject) return ctx.method === 'POST';
  return ctx.method === 'GET';
}

function forward(ctx) {
  const { req, res, body } = ctx;
  const target = upstreamTarget(ctx);
  const headers = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (!HOP_HEADERS.has(req.rawHeaders[i].toLowerCase())) headers.push(req.rawHeaders[i], req.rawHeaders[i + 1]);
  }
  if (req.headers['content-length'] === undefined && body.length > 0) headers.push('Content-Length', String(body.length));
  return new Promise((resolve) => {
    const upstream = http.request({
      host: '127.0.0.1', port: S3RVER_PORT, method: req.method, path: target.path, headers,
    }, (up) => {
      const failed = () => {
        res.destroy();
        resolve();
      };
      up.on('error', failed);
      if (!answerNamesKeys(ctx, target, up.statusCode)) {
        res.writeHead(up.statusCode, up.headers);
        up.pipe(res);
        up.on('end', resolve);
        return;
      }
      const chunks = [];
      up.on('data', (c) => chunks.push(c));
      up.on('end', () => {
        const text = rewriteXml(ctx, target, up.statusCode, Buffer.concat(chunks).toString('utf8'));
        const outHeaders = { ...up.headers, 'content-length': String(Buffer.byteLength(text)) };
        delete outHeaders['transfer-encoding'];
        res.writeHead(up.statusCode, outHeaders);
        res.end(text);
        resolve();
      });
    });
    upstream.on('error', (err) => {
      if (!res.headersSent) sendS3Error(res, req.method, ctx.path, new S3Error(500, 'InternalError', `s3rver unreachable: ${err.message}`));
      else res.destroy();
      resolve();
    });
    if (ctx.upstreamDone) {
      // A request of a multipart upload runs to its end in s3rver even when
      // the client leaves (its body is already sent): an abort waits for it.
      upstream.on('close', ctx.upstreamDone);
      upstream.on('response', (up) => res.on('close', () => setImmediate(() => up.resume())));
    } else {
      res.on('close', () => upstream.destroy());
    }
    upstream.end(body);
  });
}

// Directory of a multipart upload in s3rver's store, or null when there is none.
function uploadDir(ctx, store) {
  const bucket = ctx.path.split('/')[1];
  const uploadId = ctx.query.uploadId;
  if (typeof uploadId !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(uploadId) || uploadId.startsWith('.')) return null;
  const dir = path.join(store.getResourcePath(bucket, undefined, 'uploads'), uploadId);
  return fs.existsSync(path.join(dir, 'key')) ? dir : null;
}

function noSuchUpload(ctx) {
  return sendS3Error(ctx.res, ctx.method, ctx.path, new S3Error(404, 'NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', { UploadId: String(ctx.query.uploadId) }));
}

// Requests of each multipart upload that s3rver is serving, and the uploads
// being aborted.  s3rver writes a part into the upload's directory; removing
// that directory under it made the abort fail (ENOTEMPTY, answered 500) and
// could leave s3rver opening a part file in a directory that is gone.
const uploadsBusy = new Map();
const uploadsAborting = new Set();

// Forward a request of an existing upload, counted until s3rver is done with it.
function forwardUploadRequest(ctx) {
  const id = ctx.query.uploadId;
  uploadsBusy.set(id, (uploadsBusy.get(id) || 0) + 1);
  let done = false;
  const upstreamDone = () => {
    if (done) return;
    done = true;
    const n = uploadsBusy.get(id) - 1;
    if (n > 0) uploadsBusy.set(id, n);
    else uploadsBusy.delete(id);
  };
  return forward({ ...ctx, upstreamDone });
}

// s3rver has no AbortMultipartUpload (it answers 405), so the front does it:
// refuse further parts, let the parts s3rver is writing finish (for at most
// 2 s; a client bounds its abort too), then remove the upload's part
// directory from s3rver's store.  Parts still on their way fail with
// NoSuchUpload, as S3 may fail them.
async function abortUpload(ctx, store) {
  const id = ctx.query.uploadId;
  const dir = uploadDir(ctx, store);
  if (!dir || uploadsAborting.has(id)) return noSuchUpload(ctx);
  uploadsAborting.add(id);
  try {
    for (let waited = 0; uploadsBusy.has(id) && waited < 2000; waited += 10) await sleep(10);
    await fs.promises.rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 });
  } catch (err) {
    // a part still being written after the wait: S3 answers such a race
    // with a retryable 500
    if (err.code !== 'ENOTEMPTY') throw err;
    return sendS3Error(ctx.res, ctx.method, ctx.path, new S3Error(500, 'InternalError', 'We encountered an internal error. Please try again.'));
  } finally {
    uploadsAborting.delete(id);
  }
  ctx.res.writeHead(204, { 'x-amz-request-id': crypto.randomBytes(8).toString('hex').toUpperCase() });
  return ctx.res.end();
}

// s3rver has no ListMultipartUploads either (it would answer a listing of
// the objects): the uploads in progress of a bucket, from its store, in
// S3's format (one page; Initiated is when the upload's directory was made).
async function listUploads(ctx, store) {
  const bucket = ctx.path.split('/')[1];
  const root = store.getResourcePath(bucket, undefined, 'uploads');
  const uploads = [];
  let names = [];
  try {
    names = await fs.promises.readdir(root);
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  for (const id of names.sort()) {
    const dir = path.join(root, id);
    let key;
    try {
      key = await fs.promises.readFile(path.join(dir, 'key'), 'utf8');
    } catch (err) {
      if (err.code === 'ENOENT') continue;
      throw err;
    }
    const { birthtime } = await fs.promises.stat(dir);
    uploads.push(`<Upload><Key>${xmlEscape(clientKey(key))}</Key><UploadId>${xmlEscape(id)}</UploadId>`
      + `<Initiated>${birthtime.toISOString()}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`);
  }
  const body = '<?xml version="1.0" encoding="UTF-8"?>\n'
    + '<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    + `<Bucket>${xmlEscape(bucket)}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>`
    + `<MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>${uploads.join('')}`
    + '</ListMultipartUploadsResult>';
  ctx.res.writeHead(200, {
    'Content-Type': 'application/xml',
    'Content-Length': Buffer.byteLength(body),
    'x-amz-request-id': crypto.randomBytes(8).toString('hex').toUpperCase(),
  });
  return ctx.res.end(body);
}

let s3store = null;

async function handle(ctx) {
  const { req, res } = ctx;
  try {
    // Real S3 needs a length for uploads; a chunked PUT is a client bug worth seeing.
    if (req.method === 'PUT' && (req.headers['transfer-encoding'] || '').includes('chunked')) {
      throw new S3Error(411, 'MissingContentLength', 'You must provide the Content-Length HTTP header.');
    }
    await verify(req, ctx.rawPath, parseQuery(ctx.rawQuery), ctx.body);
  } catch (err) {
    if (!(err instanceof S3Error)) throw err;
    return sendS3Error(res, req.method, ctx.path, err);
  }
  if (req.method === 'GET' && ctx.query.uploads !== undefined && /^\/[^/]+\/?$/.test(ctx.path)) {
    return listUploads(ctx, s3store);
  }
  if (ctx.query.uploadId !== undefined) {
    if (req.method === 'DELETE') return abortUpload(ctx, s3store);
    // s3rver would silently recreate an aborted or completed upload for a late part.
    if (uploadsAborting.has(ctx.query.uploadId) || !uploadDir(ctx, s3store)) return noSuchUpload(ctx);
    return forwardUploadRequest(ctx);
  }
  return forward(ctx);
}

// /_test/objects: many small objects straight into s3rver's store (a test
// of a scan over thousands of objects need not spend its time uploading),
// and the removal of a bucket with everything in it.
const S3Object = require('s3rver/lib/models/object');

async function fillObjects({ res, body }) {
  let spec;
  try {
    spec = JSON.parse(body.toString('utf8'));
  } catch (err) {
    return sendJson(res, 400, { error: `invalid JSON: ${err.message}` });
  }
  const { bucket, prefix = '', count, content = '' } = spec;
  if (typeof bucket !== 'string' || bucket === '' || !(Number.isInteger(count) && count > 0 && count <= 100000)) {
    return sendJson(res, 400, { error: 'need bucket (string) and count (1..100000)' });
  }
  await s3store.putBucket(bucket);
  for (let i = 1; i <= count; i += 1) {
    const text = String(content).replaceAll('{n}', String(i));
    await s3store.putObject(new S3Object(bucket, storeKey(`${prefix}${i}`), Buffer.from(text), { 'content-type': 'application/octet-stream' }));
  }
  return sendJson(res, 200, { created: count });
}

async function dropBucket({ res, query }) {
  if (typeof query.bucket !== 'string' || query.bucket === '') return sendJson(res, 400, { error: 'need ?bucket=' });
  await s3store.deleteBucket(query.bucket);
  return sendJson(res, 200, { dropped: query.bucket });
}

const STATUS_CODES = {
  400: 'InvalidRequest', 403: 'AccessDenied', 404: 'NoSuchKey', 409: 'OperationAborted', 500: 'InternalError', 501: 'NotImplemented', 503: 'SlowDown',
};

async function main() {
  const s3rver = new S3rver({
    address: '127.0.0.1',
    port: S3RVER_PORT,
    directory: DATA_DIR,
    silent: true,
    vhostBuckets: false,
    configureBuckets: BUCKETS.map((name) => ({ name })),
  });
  // s3rver looks access keys up in its own registry; the signature itself is checked here.
  AWSAccount.DUMMY_ACCOUNT.createKeyPair(ACCESS_KEY, SECRET_KEY);
  await s3rver.run();
  s3store = s3rver.store;

  startServer({
    name: 's3front',
    portEnv: 'DC_S3_PORT',
    defaultPort: 59000,
    maxBody: MAX_BODY,
    logSizeOnly: true,
    handle,
    testRoutes: { 'POST /_test/objects': fillObjects, 'DELETE /_test/objects': dropBucket },
    onError: (res, err) => (err.limit
      ? sendS3Error(res, 'PUT', '', new S3Error(400, 'EntityTooLarge', `Your proposed upload exceeds the maximum allowed size of this server (${err.limit} bytes).`))
      : sendS3Error(res, 'GET', '', new S3Error(500, 'InternalError', err.message))),
    faultStatus: (res, spec) => {
      // `headers`: extra answer headers, each character sent as one byte (latin1),
      // so a test can send bytes that are not UTF-8
      const headers = { ...(spec.headers || {}) };
      if (spec.retry_after !== undefined) headers['Retry-After'] = String(spec.retry_after);
      if (spec.body !== undefined) {
        return typeof spec.body === 'string'
          ? (res.writeHead(spec.status, { 'Content-Type': 'application/xml', ...headers }),
          res.end(Buffer.from(spec.body, spec.body_encoding === 'latin1' ? 'latin1' : 'utf8')))
          : sendJson(res, spec.status, spec.body, headers);
      }
      // status 200 gives the late CompleteMultipartUpload failure: a 200 whose body is an <Error>.
      const code = spec.code || STATUS_CODES[spec.status] || 'InternalError';
      return sendS3Error(res, 'GET', '', new S3Error(spec.status, code, `injected ${spec.status}`), headers);
    },
    faultModes: {
      // the request is served normally; a CompleteMultipartUpload answer comes with <ETag></ETag>
      blank_etag: (ctx) => handle({ ...ctx, blankEtag: true }),
    },
    faultMalformed: (res) => {
      const body = '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>oops';
      res.writeHead(200, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    },
  });
}

// A part cut short by its client may still be landing in s3rver's store
// when the upload is aborted; s3rver then fails to write into the removed
// directory and raises the error where nothing catches it.  Real S3 drops
// such a part; so does the stand-in, instead of ending the process.
process.on('uncaughtException', (err) => {
  if ((err.code === 'ENOENT' || err.code === 'ENOTEMPTY') && typeof err.path === 'string'
      && err.path.includes(`${path.sep}._S3rver_uploads${path.sep}`)) {
    console.error(`s3front: dropped a part of an aborted upload: ${err.message}`);
    return;
  }
  console.error(`s3front: ${err.stack || err}`);
  process.exit(1);
});

main().catch((err) => {
  console.error(`s3front: ${err.stack || err}`);
  process.exit(1);
});
