'use strict';
// Qdrant stand-in: collections, points, filters and nearest-neighbour search
// held in memory, with the real server's envelopes, status codes and texts.

const { startServer, sendJson, sendText, sleep } = require('./lib');

const API_KEY = process.env.DC_QDRANT_API_KEY || '';
const MAX_BODY = Number(process.env.DC_QDRANT_MAX_BODY_MB || 32) * 1024 * 1024;
const ASYNC_APPLY_MS = 50;
const DISTANCES = ['Cosine', 'Euclid', 'Dot', 'Manhattan'];
const UUID_RE = /^(?:urn:uuid:)?\{?([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{12})\}?$/i;

const collections = new Map();
let operationId = 0;

class QError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const badInput = (msg) => new QError(400, `Wrong input: ${msg}`);
const formatError = (msg) => new QError(400, `Format error in JSON body: ${msg}`);
const validationError = (msg) => new QError(422, `Validation error in JSON body: ${msg}`);
const missingCollection = (name) => new QError(404, `Not found: Collection \`${name}\` doesn't exist!`);

function elapsed(start) {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function ok(ctx, result) {
  return sendJson(ctx.res, 200, exactStringify({ result, status: 'ok', time: elapsed(ctx.start) }));
}

// ---------------------------------------------------------------- exact integers

// Qdrant keeps payload integers exactly (serde_json's i64/u64); JSON.parse
// rounds those beyond 2^53.  Payloads are therefore re-read with such
// integers held as ExactInt, which compare as numbers and are written back
// digit for digit.
class ExactInt {
  constructor(text) { this.text = text; }

  valueOf() { return Number(this.text); }

  toJSON() { return EXACT_MARK + this.text; }
}
const EXACT_MARK = '\u0000exact:';
const JSON_TOKEN_RE = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;

function exactParse(text) {
  const marked = text.replace(JSON_TOKEN_RE, (tok) => (
    tok[0] !== '"' && /^-?\d+$/.test(tok) && !Number.isSafeInteger(Number(tok))
      ? JSON.stringify(EXACT_MARK + tok) : tok));
  return JSON.parse(marked, (key, v) => (
    typeof v === 'string' && v.startsWith(EXACT_MARK) ? new ExactInt(v.slice(EXACT_MARK.length)) : v));
}

function exactStringify(value) {
  return JSON.stringify(value).replace(/"\\u0000exact:(-?\d+)"/g, '$1');
}

// The payloads of an upsert or payload write, re-read exactly.
function keepExactPayloads(value, text) {
  if (!/\d{16}/.test(text)) return;
  const exact = exactParse(text);
  if (Array.isArray(value.points) && Array.isArray(exact.points)) {
    value.points.forEach((p, i) => {
      if (p && typeof p === 'object' && p.payload !== undefined) p.payload = exact.points[i].payload;
    });
  }
  if (value.batch && exact.batch && value.batch.payloads !== undefined) value.batch.payloads = exact.batch.payloads;
  if (value.payload !== undefined) value.payload = exact.payload;
}

// ---------------------------------------------------------------- ids

// Point ids are u64 or UUIDs; UUIDs are stored in canonical lowercase form.
function parseId(value) {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value;
  if (typeof value === 'string') {
    const m = UUID_RE.exec(value);
    if (m) return m.slice(1).join('-').toLowerCase();
  }
  const shown = typeof value === 'string' ? value : JSON.stringify(value);
  throw formatError(`value ${shown} is not a valid point ID, valid values are either an unsigned integer or a UUID`);
}

// Numeric ids sort before UUIDs; UUIDs sort as their 128-bit value.
function compareIds(a, b) {
  const an = typeof a === 'number';
  const bn = typeof b === 'number';
  if (an && bn) return a - b;
  if (an) return -1;
  if (bn) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------- vectors

function toVector(value, field) {
  if (!Array.isArray(value)) throw formatError(`${field}: expected a vector (array of numbers)`);
  const out = new Float32Array(value.length);
  for (let i = 0; i < value.length; i += 1) {
    if (typeof value[i] !== 'number' || !Number.isFinite(value[i])) throw formatError(`${field}[${i}]: invalid type: expected f32`);
    out[i] = value[i];
  }
  return out;
}

function normalised(vec) {
  let sum = 0;
  for (let i = 0; i < vec.length; i += 1) sum += vec[i] * vec[i];
  const norm = Math.sqrt(sum);
  if (norm === 0) return vec;
  const out = new Float32Array(vec.length);
  for (let i = 0; i < vec.length; i += 1) out[i] = vec[i] / norm;
  return out;
}

// Turns a request vector into the stored form of the named vector `name`.
function prepareVector(coll, name, raw, field) {
  const params = coll.vectors.get(name);
  if (!params) throw badInput(`Not existing vector name error: ${name}`);
  const vec = toVector(raw, field);
  if (vec.length !== params.size) throw badInput(`Vector dimension error: expected dim: ${params.size}, got ${vec.length}`);
  return params.distance === 'Cosine' ? normalised(vec) : vec;
}

// A point's `vector` field: an array for the unnamed vector or a name map.
function pointVectors(coll, raw, field) {
  const out = new Map();
  if (Array.isArray(raw)) {
    if (!coll.vectors.has('')) throw badInput('Not existing vector name error: ');
    out.set('', prepareVector(coll, '', raw, field));
    return out;
  }
  if (raw && typeof raw === 'object') {
    for (const [name, value] of Object.entries(raw)) out.set(name, prepareVector(coll, name, value, `${field}.${name}`));
    return out;
  }
  throw formatError(`${field}: missing field \`vector\``);
}

function score(distance, a, b) {
  let acc = 0;
  switch (distance) {
    case 'Cosine':
    case 'Dot':
      for (let i = 0; i < a.length; i += 1) acc += a[i] * b[i];
      return acc;
    case 'Euclid':
      for (let i = 0; i < a.length; i += 1) {
        const d = a[i] - b[i];
        acc += d * d;
      }
      return Math.sqrt(acc);
    default:
      for (let i = 0; i < a.length; i += 1) acc += Math.abs(a[i] - b[i]);
      return acc;
  }
}

const smallerIsBetter = (distance) => distance === 'Euclid' || distance === 'Manhattan';

// ---------------------------------------------------------------- payload paths

function pathSegments(key) {
  return key.split('.').map((seg) => {
    const arr = seg.endsWith('[]');
    return { name: arr ? seg.slice(0, -2) : seg, arr };
  });
}

// All values at `key`; arrays at the end are expanded so that a condition
// matches when any element matches.
function valuesAt(payload, key) {
  let current = [payload];
  for (const { name, arr } of pathSegments(key)) {
    const next = [];
    for (const item of current) {
      const objs = Array.isArray(item) ? item : [item];
      for (const obj of objs) {
        if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) continue;
        if (!Object.prototype.hasOwnProperty.call(obj, name)) continue;
        const value = obj[name];
        if (arr && Array.isArray(value)) next.push(...value);
        else next.push(value);
      }
    }
    current = next;
  }
  return current.flatMap((v) => (Array.isArray(v) ? v : [v]));
}

function rawAt(payload, key) {
  let current = [payload];
  for (const { name } of pathSegments(key)) {
    const next = [];
    for (const item of current) {
      const objs = Array.isArray(item) ? item : [item];
      for (const obj of objs) {
        if (obj && typeof obj === 'object' && !Array.isArray(obj) && Object.prototype.hasOwnProperty.call(obj, name)) next.push(obj[name]);
      }
    }
    current = next;
  }
  return current;
}

// ---------------------------------------------------------------- filters

function asList(value) {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

function matchFilter(filter, point) {
  if (filter === undefined || filter === null) return true;
  if (typeof filter !== 'object' || Array.isArray(filter)) throw formatError('filter: expected an object');
  for (const key of Object.keys(filter)) {
    if (!['must', 'should', 'must_not', 'min_should'].includes(key)) throw formatError(`filter: unknown field \`${key}\`, expected one of \`should\`, \`min_should\`, \`must\`, \`must_not\``);
  }
  if (!asList(filter.must).every((c) => matchCondition(c, point))) return false;
  const should = asList(filter.should);
  if (should.length > 0 && !should.some((c) => matchCondition(c, point))) return false;
  if (asList(filter.must_not).some((c) => matchCondition(c, point))) return false;
  if (filter.min_should) {
    const conds = asList(filter.min_should.conditions);
    const need = filter.min_should.min_count;
    if (!Number.isInteger(need)) throw formatError('min_should.min_count: expected an integer');
    if (conds.filter((c) => matchCondition(c, point)).length < need) return false;
  }
  return true;
}

function isEmptyAt(payload, key) {
  const raw = rawAt(payload, key);
  return raw.every((v) => v === null || (Array.isArray(v) && v.length === 0));
}

function matchCondition(cond, point) {
  if (!cond || typeof cond !== 'object' || Array.isArray(cond)) throw formatError('filter condition: expected an object');
  if ('must' in cond || 'should' in cond || 'must_not' in cond || 'min_should' in cond) return matchFilter(cond, point);
  if ('has_id' in cond) return asList(cond.has_id).map(parseId).some((id) => id === point.id);
  if ('is_empty' in cond) return isEmptyAt(point.payload, requireKey(cond.is_empty, 'is_empty'));
  if ('is_null' in cond) return rawAt(point.payload, requireKey(cond.is_null, 'is_null')).some((v) => v === null);
  if ('has_vector' in cond) return point.vectors.has(cond.has_vector);
  if ('nested' in cond) return matchNested(cond.nested, point);
  if (typeof cond.key === 'string') return matchField(cond, point.payload);
  throw formatError(`filter condition: data did not match any variant of untagged enum Condition: ${JSON.stringify(cond)}`);
}

function requireKey(obj, what) {
  if (!obj || typeof obj.key !== 'string') throw formatError(`${what}: missing field \`key\``);
  return obj.key;
}

function matchNested(nested, point) {
  if (!nested || typeof nested.key !== 'string' || !nested.filter) throw formatError('nested: expected {key, filter}');
  const elements = valuesAt(point.payload, nested.key).filter((v) => v && typeof v === 'object');
  return elements.some((el) => matchFilter(nested.filter, { id: point.id, payload: el, vectors: point.vectors }));
}

function matchField(cond, payload) {
  const values = valuesAt(payload, cond.key);
  if (cond.match !== undefined) return matchValue(cond.match, values);
  if (cond.range !== undefined) return values.some((v) => inRange(cond.range, v));
  if (cond.values_count !== undefined) {
    const count = rawAt(payload, cond.key).reduce((n, v) => n + (Array.isArray(v) ? v.length : v === null ? 0 : 1), 0);
    return inRange(cond.values_count, count);
  }
  if (cond.is_empty !== undefined) return isEmptyAt(payload, cond.key) === Boolean(cond.is_empty);
  const other = ['geo_radius', 'geo_bounding_box', 'geo_polygon', 'datetime_range'].find((k) => k in cond);
  if (other === 'datetime_range') return values.some((v) => inRange(cond.datetime_range, v));
  if (other) throw badInput(`${other} conditions are not supported by this server`);
  throw formatError(`field condition on \`${cond.key}\` has no match, range or values_count`);
}

function scalarEq(a, b) {
  const x = a instanceof ExactInt ? a.valueOf() : a;
  const y = b instanceof ExactInt ? b.valueOf() : b;
  return x === y && typeof x === typeof y;
}

function matchValue(match, values) {
  if (!match || typeof match !== 'object') throw formatError('match: expected an object');
  if ('value' in match) {
    if (typeof match.value === 'number' && !Number.isInteger(match.value)) throw formatError('match.value: floats are not supported, use range');
    return values.some((v) => scalarEq(v, match.value));
  }
  if ('any' in match) {
    if (!Array.isArray(match.any)) throw formatError('match.any: expected an array');
    return values.some((v) => match.any.some((a) => scalarEq(v, a)));
  }
  if ('except' in match) {
    if (!Array.isArray(match.except)) throw formatError('match.except: expected an array');
    if (values.length === 0) return true;
    return values.some((v) => !match.except.some((a) => scalarEq(v, a)));
  }
  const texts = values.filter((v) => typeof v === 'string').map((v) => v.toLowerCase());
  if ('text' in match) {
    const terms = String(match.text).toLowerCase().split(/\s+/).filter(Boolean);
    return texts.some((t) => terms.every((term) => t.includes(term)));
  }
  if ('phrase' in match) return texts.some((t) => t.includes(String(match.phrase).toLowerCase()));
  if ('text_any' in match) {
    const terms = String(match.text_any).toLowerCase().split(/\s+/).filter(Boolean);
    return texts.some((t) => terms.some((term) => t.includes(term)));
  }
  throw formatError(`match: unknown variant ${JSON.stringify(match)}`);
}

// Numbers compare as numbers; RFC 3339 strings compare as instants.
function comparable(value) {
  if (typeof value === 'number') return value;
  if (value instanceof ExactInt) return value.valueOf();
  if (typeof value === 'string') {
    const t = Date.parse(value);
    return Number.isNaN(t) ? null : t;
  }
  return null;
}

function inRange(range, value) {
  if (!range || typeof range !== 'object') throw formatError('range: expected an object');
  // numeric bounds (Qdrant's float range) compare numbers only, never strings
  const numeric = ['gt', 'gte', 'lt', 'lte'].some((n) => typeof range[n] === 'number');
  if (numeric && typeof value !== 'number' && !(value instanceof ExactInt)) return false;
  const v = comparable(value);
  if (v === null) return false;
  const bound = (name) => {
    if (range[name] === undefined || range[name] === null) return null;
    const b = comparable(range[name]);
    if (b === null) throw formatError(`range.${name}: expected a number or an RFC 3339 datetime`);
    return b;
  };
  const gt = bound('gt');
  const gte = bound('gte');
  const lt = bound('lt');
  const lte = bound('lte');
  return (gt === null || v > gt) && (gte === null || v >= gte) && (lt === null || v < lt) && (lte === null || v <= lte);
}

// ---------------------------------------------------------------- output shaping

function selectPayload(payload, spec) {
  if (spec === true) return payload;
  if (Array.isArray(spec)) return pick(payload, spec);
  if (spec && typeof spec === 'object') {
    if (Array.isArray(spec.include)) return pick(payload, spec.include);
    if (Array.isArray(spec.exclude)) {
      const out = { ...payload };
      for (const key of spec.exclude) delete out[key.split('.')[0]];
      return out;
    }
  }
  return undefined;
}

function pick(payload, keys) {
  const out = {};
  for (const key of keys) {
    const top = key.split('.')[0];
    if (Object.prototype.hasOwnProperty.call(payload, top)) out[top] = payload[top];
  }
  return out;
}

function vectorOutput(coll, point, spec) {
  if (!spec) return undefined;
  const names = Array.isArray(spec) ? spec : [...point.vectors.keys()];
  if (coll.vectors.has('') && !Array.isArray(spec)) {
    const v = point.vectors.get('');
    return v ? Array.from(v) : undefined;
  }
  const out = {};
  for (const name of names) {
    const v = point.vectors.get(name);
    if (v) out[name] = Array.from(v);
  }
  return out;
}

function record(coll, point, withPayload, withVector, extra = {}) {
  const out = { id: point.id, ...extra };
  const payload = selectPayload(point.payload, withPayload);
  if (payload !== undefined) out.payload = payload;
  const vector = vectorOutput(coll, point, withVector);
  if (vector !== undefined) out.vector = vector;
  return out;
}

// ---------------------------------------------------------------- write queue

// Writes apply in arrival order. Without wait=true a write becomes visible
// ~50 ms later, like the real server's asynchronous update pipeline.
const queue = [];
let pumping = false;

function enqueueWrite(apply, wait) {
  operationId += 1;
  const op = { id: operationId, apply, due: Date.now() + (wait ? 0 : ASYNC_APPLY_MS) };
  op.done = new Promise((resolve, reject) => { op.resolve = resolve; op.reject = reject; });
  queue.push(op);
  pump();
  return op;
}

async function pump() {
  if (pumping) return;
  pumping = true;
  try {
    while (queue.length > 0) {
      const op = queue[0];
      const wait = op.due - Date.now();
      if (wait > 0) await sleep(wait);
      queue.shift();
      try {
        op.apply(op.id);
        op.resolve();
      } catch (err) {
        op.reject(err);
      }
    }
  } finally {
    pumping = false;
  }
}

// One write of the queue; `count` (points/batch) answers with a list of that
// many UpdateResults, one per operation, as the real server does.
async function write(ctx, apply, count) {
  const wait = ctx.query.wait === 'true' || ctx.query.wait === '1';
  const op = enqueueWrite(apply, wait);
  const result = (status) => {
    const one = { operation_id: op.id, status };
    return count === undefined ? one : Array.from({ length: count }, () => ({ ...one }));
  };
  if (!wait) {
    op.done.catch(() => {});
    return ok(ctx, result('acknowledged'));
  }
  await op.done;
  return ok(ctx, result('completed'));
}

// ---------------------------------------------------------------- collections

function getCollection(name) {
  const coll = collections.get(name);
  if (!coll) throw missingCollection(name);
  return coll;
}

function sortedIds(coll) {
  if (!coll.sorted) coll.sorted = [...coll.points.keys()].sort(compareIds);
  return coll.sorted;
}

function parseVectorParams(field, spec) {
  if (!spec || typeof spec !== 'object') throw formatError(`${field}: expected {size, distance}`);
  if (spec.size === undefined) throw formatError(`${field}: missing field \`size\``);
  if (!Number.isInteger(spec.size)) throw formatError(`${field}.size: invalid type: expected u64`);
  if (spec.size < 1 || spec.size > 65536) throw validationError(`${field}.size: value ${spec.size} invalid, must be from 1 to 65536`);
  if (spec.distance === undefined) throw formatError(`${field}: missing field \`distance\``);
  if (!DISTANCES.includes(spec.distance)) {
    throw formatError(`${field}.distance: unknown variant \`${spec.distance}\`, expected one of \`Cosine\`, \`Euclid\`, \`Dot\`, \`Manhattan\``);
  }
  return { ...spec, size: spec.size, distance: spec.distance };
}

function checkCollectionName(name) {
  if (name.length === 0 || name.length > 255 || /[<>:"/\\|?*\0]/.test(name)) {
    throw validationError(`collection_name: Collection name contains forbidden characters or has invalid length: ${name}`);
  }
}

function createCollection(ctx, name, body) {
  checkCollectionName(name);
  if (collections.has(name)) throw new QError(409, `Wrong input: Collection \`${name}\` already exists!`);
  const cfg = body.vectors;
  if (cfg === undefined) throw formatError('missing field `vectors`');
  const vectors = new Map();
  let configEcho;
  if (cfg && typeof cfg === 'object' && 'size' in cfg) {
    const params = parseVectorParams('vectors', cfg);
    vectors.set('', params);
    configEcho = params;
  } else if (cfg && typeof cfg === 'object') {
    configEcho = {};
    for (const [vname, spec] of Object.entries(cfg)) {
      const params = parseVectorParams(`vectors.${vname}`, spec);
      vectors.set(vname, params);
      configEcho[vname] = params;
    }
  } else {
    throw formatError('vectors: expected an object');
  }
  collections.set(name, {
    name, vectors, configEcho, points: new Map(), sorted: null, payloadSchema: {},
    shardNumber: body.shard_number || 1, replicationFactor: body.replication_factor || 1,
  });
  return ok(ctx, true);
}

function collectionInfo(ctx, coll) {
  return ok(ctx, {
    status: 'green',
    optimizer_status: 'ok',
    indexed_vectors_count: 0,
    points_count: coll.points.size,
    segments_count: 1,
    config: {
      params: {
        vectors: coll.configEcho,
        shard_number: coll.shardNumber,
        replication_factor: coll.replicationFactor,
        write_consistency_factor: 1,
        on_disk_payload: true,
      },
      hnsw_config: { m: 16, ef_construct: 100, full_scan_threshold: 10000, max_indexing_threads: 0, on_disk: false },
      optimizer_config: {
        deleted_threshold: 0.2, vacuum_min_vector_number: 1000, default_segment_number: 0,
        max_segment_size: null, memmap_threshold: null, indexing_threshold: 20000, flush_interval_sec: 5, max_optimization_threads: null,
      },
      wal_config: { wal_capacity_mb: 32, wal_segments_ahead: 0 },
      quantization_config: null,
    },
    payload_schema: coll.payloadSchema,
  });
}

// ---------------------------------------------------------------- points

function parsePoints(coll, body) {
  if (Array.isArray(body.points)) {
    return body.points.map((p, i) => {
      if (!p || typeof p !== 'object') throw formatError(`points[${i}]: expected an object`);
      if (p.id === undefined) throw formatError(`points[${i}]: missing field \`id\``);
      const id = parseId(p.id);
      const vectors = pointVectors(coll, p.vector, `points[${i}].vector`);
      if (p.payload !== undefined && p.payload !== null && (typeof p.payload !== 'object' || Array.isArray(p.payload))) {
        throw formatError(`points[${i}].payload: expected a map`);
      }
      return { id, vectors, payload: p.payload || {} };
    });
  }
  if (body.batch && typeof body.batch === 'object') {
    const { ids, vectors, payloads } = body.batch;
    if (!Array.isArray(ids)) throw formatError('batch: missing field `ids`');
    const vecList = Array.isArray(vectors) ? vectors : null;
    return ids.map((rawId, i) => {
      let raw;
      if (vecList) raw = vecList[i];
      else if (vectors && typeof vectors === 'object') raw = Object.fromEntries(Object.entries(vectors).map(([n, list]) => [n, list[i]]));
      if (raw === undefined) throw badInput(`batch: number of vectors does not match number of ids (${ids.length})`);
      return {
        id: parseId(rawId),
        vectors: pointVectors(coll, raw, `batch.vectors[${i}]`),
        payload: (Array.isArray(payloads) && payloads[i]) || {},
      };
    });
  }
  throw formatError('data did not match any variant of untagged enum PointInsertOperations');
}

// Each write is checked first (errors before anything is queued), then
// returned as the function the write queue applies.
function upsertOp(coll, body) {
  const points = parsePoints(coll, body);
  return (opId) => {
    if (collections.get(coll.name) !== coll) return;
    for (const p of points) {
      if (!coll.points.has(p.id)) coll.sorted = null;
      coll.points.set(p.id, { ...p, version: opId });
    }
  };
}

// Resolves `points` ids or `filter` from a body to the matching point ids.
function selector(coll, body) {
  if (Array.isArray(body.points)) {
    const ids = body.points.map(parseId);
    return () => ids;
  }
  if (body.filter !== undefined) {
    matchFilter(body.filter, { id: 0, payload: {}, vectors: new Map() });
    return () => [...coll.points.values()].filter((p) => matchFilter(body.filter, p)).map((p) => p.id);
  }
  throw formatError('expected `points` (list of ids) or `filter`');
}

function deleteOp(coll, body) {
  const select = selector(coll, body);
  return () => {
    for (const id of select()) {
      if (coll.points.delete(id)) coll.sorted = null;
    }
  };
}

function payloadOp(coll, body, mode) {
  const select = selector(coll, body);
  if (mode !== 'clear' && mode !== 'delete' && (!body.payload || typeof body.payload !== 'object')) throw formatError('missing field `payload`');
  if (mode === 'delete' && !Array.isArray(body.keys)) throw formatError('missing field `keys`');
  return (opId) => {
    for (const id of select()) {
      const p = coll.points.get(id);
      if (!p) continue;
      if (mode === 'set' && typeof body.key === 'string') {
        setNested(p.payload, body.key, body.payload);
      } else if (mode === 'set') {
        p.payload = { ...p.payload, ...body.payload };
      } else if (mode === 'overwrite') {
        p.payload = { ...body.payload };
      } else if (mode === 'delete') {
        p.payload = { ...p.payload };
        for (const key of body.keys) delete p.payload[key];
      } else {
        p.payload = {};
      }
      p.version = opId;
    }
  };
}

function setNested(payload, key, value) {
  let obj = payload;
  for (const seg of key.split('.')) {
    if (!obj[seg] || typeof obj[seg] !== 'object') obj[seg] = {};
    obj = obj[seg];
  }
  Object.assign(obj, value);
}

function vectorsOp(coll, body) {
  if (!Array.isArray(body.points)) throw formatError('missing field `points`');
  const updates = body.points.map((p, i) => ({ id: parseId(p.id), vectors: pointVectors(coll, p.vector, `points[${i}].vector`) }));
  return (opId) => {
    for (const u of updates) {
      const p = coll.points.get(u.id);
      if (!p) continue;
      for (const [name, vec] of u.vectors) p.vectors.set(name, vec);
      p.version = opId;
    }
  };
}

// POST points/batch: {"operations": [{"<kind>": <that endpoint's body>}, ...]},
// every operation checked before any applies, then applied in order as
// one write.
const BATCH_OPERATIONS = {
  upsert: upsertOp,
  delete: deleteOp,
  set_payload: (coll, body) => payloadOp(coll, body, 'set'),
  overwrite_payload: (coll, body) => payloadOp(coll, body, 'overwrite'),
  delete_payload: (coll, body) => payloadOp(coll, body, 'delete'),
  clear_payload: (coll, body) => payloadOp(coll, body, 'clear'),
  update_vectors: vectorsOp,
};

function batchUpdate(ctx, coll, body) {
  if (!Array.isArray(body.operations)) throw formatError('missing field `operations`');
  const applies = body.operations.map((op, i) => {
    const kinds = op && typeof op === 'object' && !Array.isArray(op) ? Object.keys(op) : [];
    const make = kinds.length === 1 ? BATCH_OPERATIONS[kinds[0]] : undefined;
    if (!make || !op[kinds[0]] || typeof op[kinds[0]] !== 'object') {
      throw formatError(`operations[${i}]: data did not match any variant of untagged enum UpdateOperation`);
    }
    return make(coll, op[kinds[0]]);
  });
  return write(ctx, (opId) => { for (const apply of applies) apply(opId); }, applies.length);
}

function getPoints(ctx, coll, body) {
  if (!Array.isArray(body.ids)) throw formatError('missing field `ids`');
  const ids = body.ids.map(parseId);
  const withPayload = body.with_payload === undefined ? true : body.with_payload;
  const out = [];
  for (const id of ids) {
    const p = coll.points.get(id);
    if (p) out.push(record(coll, p, withPayload, body.with_vector || false));
  }
  return ok(ctx, out);
}

function getPoint(ctx, coll, rawId) {
  let id = rawId;
  if (/^\d+$/.test(rawId)) id = Number(rawId);
  id = parseId(id);
  const p = coll.points.get(id);
  if (!p) throw new QError(404, `Not found: No point with id ${rawId} found`);
  return ok(ctx, record(coll, p, true, true));
}

function countPoints(ctx, coll, body) {
  let count = 0;
  for (const p of coll.points.values()) if (matchFilter(body.filter, p)) count += 1;
  return ok(ctx, { count });
}

function checkLimit(value, field, fallback) {
  if (value === undefined || value === null) return fallback;
  if (!Number.isInteger(value) || value < 0) throw formatError(`${field}: invalid value: expected usize`);
  if (value === 0) throw validationError(`${field}: value 0 invalid, must be 1 or larger`);
  return value;
}

// First index in the sorted id list whose id is >= offset.
function lowerBound(ids, offset) {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareIds(ids[mid], offset) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function scroll(ctx, coll, body) {
  const limit = checkLimit(body.limit, 'limit', 10);
  const ids = sortedIds(coll);
  let i = body.offset === undefined || body.offset === null ? 0 : lowerBound(ids, parseId(body.offset));
  const withPayload = body.with_payload === undefined ? true : body.with_payload;
  const points = [];
  let next = null;
  for (; i < ids.length; i += 1) {
    const p = coll.points.get(ids[i]);
    if (!matchFilter(body.filter, p)) continue;
    if (points.length === limit) {
      next = p.id;
      break;
    }
    points.push(record(coll, p, withPayload, body.with_vector || false));
  }
  if (body.order_by !== undefined) next = null;
  return ok(ctx, { points, next_page_offset: next });
}

// Vector name and raw query vector from search's `vector` / query's `query`+`using`.
function queryVector(coll, raw, using) {
  if (raw && !Array.isArray(raw) && typeof raw === 'object' && Array.isArray(raw.vector)) {
    return { name: raw.name || '', vector: raw.vector };
  }
  return { name: using || '', vector: raw };
}

// Linear scan: fine for the test stack's sizes (100k x 384 in well under a second).
function nearest(coll, { name, vector }, opts) {
  const params = coll.vectors.get(name);
  if (!params) throw badInput(`Not existing vector name error: ${name}`);
  const query = prepareVector(coll, name, vector, 'vector');
  const lowFirst = smallerIsBetter(params.distance);
  const threshold = opts.scoreThreshold;
  const hits = [];
  for (const p of coll.points.values()) {
    const v = p.vectors.get(name);
    if (!v) continue;
    if (opts.filter !== undefined && !matchFilter(opts.filter, p)) continue;
    const s = score(params.distance, query, v);
    if (threshold !== undefined && threshold !== null && (lowFirst ? s > threshold : s < threshold)) continue;
    hits.push({ p, s });
  }
  hits.sort((a, b) => (lowFirst ? a.s - b.s : b.s - a.s) || compareIds(a.p.id, b.p.id));
  return hits.slice(opts.offset, opts.offset + opts.limit)
    .map(({ p, s }) => record(coll, p, opts.withPayload, opts.withVector, { version: p.version, score: Math.fround(s) }));
}

function searchRequest(coll, body) {
  if (body.vector === undefined) throw formatError('missing field `vector`');
  const limitRaw = body.limit !== undefined ? body.limit : body.top;
  if (limitRaw === undefined) throw formatError('missing field `limit`');
  return nearest(coll, queryVector(coll, body.vector), {
    limit: checkLimit(limitRaw, 'limit', 10),
    offset: Number.isInteger(body.offset) ? body.offset : 0,
    filter: body.filter,
    withPayload: body.with_payload || false,
    withVector: body.with_vector || false,
    scoreThreshold: body.score_threshold,
  });
}

function queryRequest(coll, body) {
  const limit = checkLimit(body.limit, 'limit', 10);
  const offset = Number.isInteger(body.offset) ? body.offset : 0;
  const withPayload = body.with_payload || false;
  const withVector = body.with_vector || false;
  let q = body.query;
  if (q === undefined || q === null) {
    const ids = sortedIds(coll);
    const matched = [];
    for (const id of ids) {
      const p = coll.points.get(id);
      if (matchFilter(body.filter, p)) matched.push(p);
      if (matched.length >= offset + limit) break;
    }
    return { points: matched.slice(offset).map((p) => record(coll, p, withPayload, withVector, { version: p.version, score: 0 })) };
  }
  if (q && typeof q === 'object' && !Array.isArray(q)) {
    if (q.nearest !== undefined) q = q.nearest;
    else throw badInput(`query variant ${Object.keys(q)[0]} is not supported by this server`);
  }
  let target = queryVector(coll, q, body.using);
  if (typeof q === 'number' || typeof q === 'string') {
    const p = coll.points.get(parseId(q));
    if (!p) throw new QError(404, `Not found: No point with id ${q} found`);
    target = { name: body.using || '', vector: Array.from(p.vectors.get(body.using || '') || []) };
  }
  return {
    points: nearest(coll, target, {
      limit, offset, filter: body.filter, withPayload, withVector, scoreThreshold: body.score_threshold,
    }),
  };
}

function createIndex(ctx, coll, body) {
  if (typeof body.field_name !== 'string') throw formatError('missing field `field_name`');
  const schema = typeof body.field_schema === 'string' ? body.field_schema : (body.field_schema && body.field_schema.type) || 'keyword';
  return write(ctx, () => {
    coll.payloadSchema[body.field_name] = { data_type: schema, params: typeof body.field_schema === 'object' ? body.field_schema : undefined, points: coll.points.size };
  });
}

// ---------------------------------------------------------------- routing

function parseBody(ctx, required) {
  if (ctx.body.length === 0) {
    if (required) throw formatError('EOF while parsing a value at line 1 column 0');
    return {};
  }
  let value;
  try {
    const text = ctx.body.toString('utf8');
    value = JSON.parse(text);
    if (value && typeof value === 'object') keepExactPayloads(value, text);
  } catch (err) {
    throw formatError(err.message);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw formatError('expected a JSON object');
  return value;
}

const POINT_ROUTES = {
  'PUT points': (ctx, coll) => write(ctx, upsertOp(coll, parseBody(ctx, true))),
  'POST points/batch': (ctx, coll) => batchUpdate(ctx, coll, parseBody(ctx, true)),
  'POST points': (ctx, coll) => getPoints(ctx, coll, parseBody(ctx, true)),
  'POST points/delete': (ctx, coll) => write(ctx, deleteOp(coll, parseBody(ctx, true))),
  'POST points/count': (ctx, coll) => countPoints(ctx, coll, parseBody(ctx, false)),
  'POST points/scroll': (ctx, coll) => scroll(ctx, coll, parseBody(ctx, false)),
  'POST points/search': (ctx, coll) => ok(ctx, searchRequest(coll, parseBody(ctx, true))),
  'POST points/search/batch': (ctx, coll) => {
    const body = parseBody(ctx, true);
    if (!Array.isArray(body.searches)) throw formatError('missing field `searches`');
    return ok(ctx, body.searches.map((s) => searchRequest(coll, s)));
  },
  'POST points/query': (ctx, coll) => ok(ctx, queryRequest(coll, parseBody(ctx, false))),
  'POST points/query/batch': (ctx, coll) => {
    const body = parseBody(ctx, true);
    if (!Array.isArray(body.searches)) throw formatError('missing field `searches`');
    return ok(ctx, body.searches.map((s) => queryRequest(coll, s)));
  },
  'POST points/payload': (ctx, coll) => write(ctx, payloadOp(coll, parseBody(ctx, true), 'set')),
  'PUT points/payload': (ctx, coll) => write(ctx, payloadOp(coll, parseBody(ctx, true), 'overwrite')),
  'POST points/payload/delete': (ctx, coll) => write(ctx, payloadOp(coll, parseBody(ctx, true), 'delete')),
  'POST points/payload/clear': (ctx, coll) => write(ctx, payloadOp(coll, parseBody(ctx, true), 'clear')),
  'PUT points/vectors': (ctx, coll) => write(ctx, vectorsOp(coll, parseBody(ctx, true))),
  'PUT index': (ctx, coll) => createIndex(ctx, coll, parseBody(ctx, true)),
  'GET ': (ctx, coll) => collectionInfo(ctx, coll),
  'GET exists': (ctx) => ok(ctx, { exists: true }),
};

function route(ctx) {
  const parts = ctx.path.split('/').filter((s, i) => i > 0);
  const { method } = ctx;
  if (ctx.path === '/' && method === 'GET') {
    return sendJson(ctx.res, 200, { title: 'qdrant - vector search engine', version: '1.13.0', commit: 'datacore-stand-in' });
  }
  if (['/healthz', '/livez', '/readyz'].includes(ctx.path)) return sendText(ctx.res, 200, 'healthz check passed');
  if (parts[0] !== 'collections') throw new QError(404, `Not found: no route for ${method} ${ctx.path}`);
  if (parts.length === 1 && method === 'GET') {
    return ok(ctx, { collections: [...collections.keys()].map((name) => ({ name })) });
  }
  const name = parts[1];
  const rest = parts.slice(2).join('/');
  if (rest === '') {
    if (method === 'PUT') return createCollection(ctx, name, parseBody(ctx, false));
    if (method === 'DELETE') return ok(ctx, collections.delete(name));
    if (method === 'PATCH') {
      getCollection(name);
      return ok(ctx, true);
    }
  }
  if (rest === 'exists' && method === 'GET') return ok(ctx, { exists: collections.has(name) });
  if (parts[2] === 'points' && parts.length === 4 && method === 'GET') return getPoint(ctx, getCollection(name), parts[3]);
  const handler = POINT_ROUTES[`${method} ${rest}`];
  if (!handler) throw new QError(404, `Not found: no route for ${method} ${ctx.path}`);
  return handler(ctx, getCollection(name));
}

// Missing key and wrong key answer in plain text, as the real auth layer does.
function authorise(ctx) {
  if (!API_KEY || ['/healthz', '/livez', '/readyz'].includes(ctx.path)) return true;
  const given = ctx.req.headers['api-key']
    || (/^Bearer\s+(.+)$/i.exec(ctx.req.headers.authorization || '') || [])[1];
  if (!given) {
    sendText(ctx.res, 401, 'Must provide an API key or an Authorization bearer token');
    return false;
  }
  if (given !== API_KEY) {
    sendText(ctx.res, 403, 'Invalid API key or JWT');
    return false;
  }
  return true;
}

async function handle(ctx) {
  ctx.start = process.hrtime.bigint();
  if (!authorise(ctx)) return undefined;
  try {
    return await route(ctx);
  } catch (err) {
    if (!(err instanceof QError)) throw err;
    return sendJson(ctx.res, err.status, { status: { error: err.message }, time: elapsed(ctx.start) });
  }
}

startServer({
  name: 'qdrant',
  portEnv: 'DC_QDRANT_PORT',
  defaultPort: 56333,
  maxBody: MAX_BODY,
  handle,
  onError: (res, err) => (err.limit
    ? sendJson(res, 400, { status: { error: `Format error in JSON body: JSON payload (${err.seen} bytes) is larger than allowed (limit: ${err.limit} bytes).` }, time: 0 })
    : sendJson(res, 500, { status: { error: `Service internal error: ${err.message}` }, time: 0 })),
  faultStatus: (res, spec) => {
    const headers = spec.retry_after !== undefined ? { 'Retry-After': String(spec.retry_after) } : {};
    if (spec.body === undefined) return sendJson(res, spec.status, { status: { error: `injected ${spec.status}` }, time: 0 }, headers);
    if (typeof spec.body === 'string') return sendText(res, spec.status, spec.body, headers);
    return sendJson(res, spec.status, spec.body, headers);
  },
  faultMalformed: (res) => sendJson(res, 200, '{"response": "oops'),
  testRoutes: {
    'POST /_test/reset': ({ res }) => {
      collections.clear();
      return sendJson(res, 200, { reset: true });
    },
  },
});
