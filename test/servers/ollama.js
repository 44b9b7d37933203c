'use strict';
// Ollama stand-in: the /api/* endpoints datacore calls, with deterministic
// answers so regression output is stable. See README.md for the contract.

const crypto = require('node:crypto');
const { startServer, sendJson, sendText, sleep } = require('./lib');

const VERSION = '0.5.7';
const MODIFIED_AT = '2025-01-15T10:00:00.000000000Z';
const CHUNK_DELAY_MS = Number(process.env.DC_OLLAMA_CHUNK_DELAY_MS || 0);
const CONTEXT_TOKENS = Number(process.env.DC_OLLAMA_CONTEXT_TOKENS || 2048);
const TOKEN = process.env.DC_OLLAMA_TOKEN || '';

// Embedding sizes are deliberately tiny so expected outputs stay readable.
const MODELS = {
  'llama3.2': {
    family: 'llama', arch: 'llama', parameterSize: '3.2B', quant: 'Q4_K_M', size: 2019393189,
    capabilities: ['completion', 'tools'], embeddingLength: 3072, contextLength: 131072,
  },
  'nomic-embed-text': {
    family: 'nomic-bert', arch: 'nomic-bert', parameterSize: '137M', quant: 'F16', size: 274302450,
    capabilities: ['embedding'], embeddingLength: 16, contextLength: 2048,
  },
  'all-minilm': {
    family: 'bert', arch: 'bert', parameterSize: '23M', quant: 'F16', size: 45960996,
    capabilities: ['embedding'], embeddingLength: 8, contextLength: 512,
  },
};

const INT_OPTIONS = new Set(['num_ctx', 'num_predict', 'seed', 'top_k', 'repeat_last_n', 'num_keep', 'num_batch', 'num_gpu', 'main_gpu', 'num_thread']);
const NUM_OPTIONS = new Set(['temperature', 'top_p', 'min_p', 'typical_p', 'repeat_penalty', 'presence_penalty', 'frequency_penalty']);

const loaded = new Map(); // model name -> expiry Date (for /api/ps)

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function baseName(model) {
  return model.endsWith(':latest') ? model.slice(0, -':latest'.length) : model;
}

// Looks the model up; `notFound` lets legacy endpoints use their older wording.
function requireModel(name, notFound = (n) => `model '${n}' not found`) {
  if (typeof name !== 'string' || name.trim() === '') throw new ApiError(400, 'invalid model name');
  const info = MODELS[baseName(name)];
  if (!info) throw new ApiError(404, notFound(name));
  return info;
}

function requireCapability(name, info, capability, verb) {
  if (!info.capabilities.includes(capability)) throw new ApiError(400, `"${name}" does not support ${verb}`);
}

function checkOptions(options) {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) throw new ApiError(400, 'options must be an object');
  for (const [key, value] of Object.entries(options)) {
    if (INT_OPTIONS.has(key) && !Number.isInteger(value)) throw new ApiError(500, `option "${key}" must be of type integer`);
    if (NUM_OPTIONS.has(key) && typeof value !== 'number') throw new ApiError(500, `option "${key}" must be of type float`);
    if (key === 'stop' && !(Array.isArray(value) && value.every((s) => typeof s === 'string'))) {
      throw new ApiError(500, 'option "stop" must be of type array');
    }
  }
  return options;
}

// keep_alive: Go duration string or seconds; negative keeps the model forever.
function keepAliveMs(value) {
  if (value === undefined || value === null) return 5 * 60 * 1000;
  if (typeof value === 'number') return value < 0 ? Infinity : value * 1000;
  if (typeof value !== 'string') throw new ApiError(400, 'invalid keep_alive value');
  const units = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };
  const text = value.trim();
  if (text === '0') return 0;
  const re = /(-?\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  let m;
  while ((m = re.exec(text)) !== null) {
    total += Number(m[1]) * units[m[2]];
    matched = re.lastIndex;
  }
  if (matched !== text.length || text.length === 0) throw new ApiError(400, `time: invalid duration "${value}"`);
  return total < 0 ? Infinity : total;
}

function touchModel(name, keepAlive) {
  const ms = keepAliveMs(keepAlive);
  if (ms === 0) {
    loaded.delete(baseName(name));
    return;
  }
  const expires = ms === Infinity ? new Date('2318-01-01T00:00:00Z') : new Date(Date.now() + ms);
  loaded.set(baseName(name), expires);
}

function words(text) {
  return String(text).split(/\s+/).filter(Boolean);
}

// Splits text into streamable pieces whose concatenation is exactly the text.
function pieces(text) {
  if (text === '') return [];
  return text.split(/(?<=\s)(?=\S)/);
}

// Applies options.stop and options.num_predict the way a model run ends.
function limitOutput(text, options) {
  let out = text;
  let reason = 'stop';
  for (const stop of options.stop || []) {
    const at = stop === '' ? -1 : out.indexOf(stop);
    if (at >= 0) out = out.slice(0, at);
  }
  const n = options.num_predict;
  if (Number.isInteger(n) && n >= 0) {
    const parts = pieces(out);
    if (parts.length > n) {
      out = parts.slice(0, n).join('').trimEnd();
      reason = 'length';
    }
  }
  return { text: out, reason };
}

// A value that satisfies a (simple) JSON schema, so structured-output callers
// get something their schema accepts.
function sampleFromSchema(schema, prompt, depth = 0) {
  if (!schema || typeof schema !== 'object' || depth > 6) return `echo: ${prompt}`;
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[0];
  if ('const' in schema) return schema.const;
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'object': {
      const out = {};
      const props = schema.properties || {};
      const names = Object.keys(props);
      if (names.length === 0) return { echo: prompt };
      for (const name of names) out[name] = sampleFromSchema(props[name], prompt, depth + 1);
      return out;
    }
    case 'array':
      return [sampleFromSchema(schema.items, prompt, depth + 1)];
    case 'integer':
      return 1;
    case 'number':
      return 1.5;
    case 'boolean':
      return true;
    case 'null':
      return null;
    case 'string':
      return `echo: ${prompt}`;
    default:
      return schema.properties ? sampleFromSchema({ ...schema, type: 'object' }, prompt, depth) : { echo: prompt };
  }
}

function formattedText(format, prompt, plain) {
  if (format === undefined || format === null || format === '') return plain;
  if (format === 'json') return JSON.stringify({ echo: prompt });
  if (typeof format === 'object' && !Array.isArray(format)) return JSON.stringify(sampleFromSchema(format, prompt));
  throw new ApiError(400, `invalid format: ${JSON.stringify(format)}`);
}

// Metrics are derived from sizes so they are plausible and deterministic.
function metrics(promptTokens, evalTokens) {
  const promptEval = 1000000 + promptTokens * 250000;
  const evalDuration = 2000000 + evalTokens * 15000000;
  const load = 1500000;
  const out = {
    total_duration: load + promptEval + evalDuration + 500000,
    load_duration: load,
  };
  if (promptTokens > 0) {
    out.prompt_eval_count = promptTokens;
    out.prompt_eval_duration = promptEval;
  }
  if (evalTokens > 0) {
    out.eval_count = evalTokens;
    out.eval_duration = evalDuration;
  }
  return out;
}

function contextTokens(prompt, reply) {
  return [...words(prompt), ...words(reply)].map((w) => crypto.createHash('sha256').update(w).digest().readUInt32BE(0) % 128000);
}

const now = () => new Date().toISOString();

function startNdjson(res) {
  res.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
}

async function writeLine(res, obj) {
  if (res.destroyed) return false;
  res.write(`${JSON.stringify(obj)}\n`);
  if (CHUNK_DELAY_MS > 0) await sleep(CHUNK_DELAY_MS);
  return !res.destroyed;
}

const MIDSTREAM_ERROR = 'an error was encountered while running the model: unexpected EOF';

/*
 * Shared reply logic for generate and chat. `chunk(piece)` builds a streamed
 * fragment, `final(extra)` the closing object; `whole(text)` the single
 * object for stream:false. Special prompts emulate runner failures.
 */
async function reply(res, { stream, text, trigger, chunk, final, whole, finalFields }) {
  if (trigger === '__midstream_error__') {
    if (!stream) throw new ApiError(500, MIDSTREAM_ERROR);
    startNdjson(res);
    for (const piece of ['echo: ', 'partial ']) await writeLine(res, chunk(piece));
    await writeLine(res, { error: MIDSTREAM_ERROR });
    return res.end();
  }
  if (trigger === '__midstream_drop__') {
    startNdjson(res);
    for (const piece of ['echo: ', 'partial ']) await writeLine(res, chunk(piece));
    return setTimeout(() => res.destroy(), 20);
  }
  if (!stream) return sendJson(res, 200, whole(text, finalFields), { 'Content-Type': 'application/json; charset=utf-8' });
  startNdjson(res);
  for (const piece of pieces(text)) {
    if (!(await writeLine(res, chunk(piece)))) return undefined;
  }
  await writeLine(res, final(finalFields));
  return res.end();
}

function loadReply(res, model, keepAlive) {
  touchModel(model, keepAlive);
  const unload = keepAliveMs(keepAlive) === 0;
  return sendJson(res, 200, {
    model, created_at: now(), response: '', done: true, done_reason: unload ? 'unload' : 'load',
  }, { 'Content-Type': 'application/json; charset=utf-8' });
}

async function generate(ctx, req) {
  const info = requireModel(req.model);
  requireCapability(req.model, info, 'completion', 'generate');
  const options = checkOptions(req.options);
  keepAliveMs(req.keep_alive);
  if (req.raw === true && (req.system || req.template || req.context)) {
    throw new ApiError(400, 'raw mode does not support template, system, or context');
  }
  const prompt = req.prompt === undefined || req.prompt === null ? '' : String(req.prompt);
  if (prompt === '') return loadReply(ctx.res, req.model, req.keep_alive);
  touchModel(req.model, req.keep_alive);

  const prefix = req.system ? '[system] ' : '';
  const full = prefix + formattedText(req.format, prompt, `echo: ${prompt}`);
  const { text, reason } = limitOutput(full, options);
  const evalCount = pieces(text).length;
  const fields = { done_reason: reason };
  if (req.raw !== true) fields.context = contextTokens(prompt, text);
  Object.assign(fields, metrics(words(`${req.system || ''} ${prompt}`).length + 1, evalCount));

  const model = req.model;
  return reply(ctx.res, {
    stream: req.stream !== false,
    text,
    trigger: prompt,
    finalFields: fields,
    chunk: (piece) => ({ model, created_at: now(), response: piece, done: false }),
    final: (f) => ({ model, created_at: now(), response: '', done: true, ...f }),
    whole: (t, f) => ({ model, created_at: now(), response: t, done: true, ...f }),
  });
}

function lastUserContent(messages) {
  for (let i = messages.length - 1; i >= 0; i -= 1) {
    if (messages[i].role === 'user') return String(messages[i].content ?? '');
  }
  return '';
}

function checkMessages(messages) {
  if (messages === undefined || messages === null) return [];
  if (!Array.isArray(messages)) throw new ApiError(400, 'messages must be an array');
  for (const m of messages) {
    if (!m || typeof m !== 'object' || typeof m.role !== 'string') throw new ApiError(400, 'invalid message: role is required');
    if (!['system', 'user', 'assistant', 'tool'].includes(m.role)) throw new ApiError(400, `invalid role: ${m.role}`);
  }
  return messages;
}

function toolName(tools) {
  const first = tools[0];
  return (first && first.function && first.function.name) || (first && first.name) || 'tool';
}

async function chat(ctx, req) {
  const info = requireModel(req.model);
  requireCapability(req.model, info, 'completion', 'chat');
  const options = checkOptions(req.options);
  keepAliveMs(req.keep_alive);
  const messages = checkMessages(req.messages);
  if (messages.length === 0) return loadReply(ctx.res, req.model, req.keep_alive);
  touchModel(req.model, req.keep_alive);

  const last = lastUserContent(messages);
  const tools = Array.isArray(req.tools) ? req.tools : [];
  const toolCalls = tools.length > 0 && /weather/i.test(last)
    ? [{ function: { name: toolName(tools), arguments: { city: 'Paris' } } }]
    : null;
  const { text, reason } = toolCalls
    ? { text: '', reason: 'stop' }
    : limitOutput(formattedText(req.format, last, `echo: ${last}`), options);
  const promptTokens = messages.reduce((n, m) => n + words(m.content || '').length + 4, 0);
  const fields = { done_reason: reason, ...metrics(promptTokens, Math.max(pieces(text).length, toolCalls ? 8 : 0)) };

  const model = req.model;
  const msg = (content) => ({ role: 'assistant', content });
  const stream = req.stream !== false;
  if (toolCalls && stream && last !== '__midstream_error__') {
    startNdjson(ctx.res);
    await writeLine(ctx.res, { model, created_at: now(), message: { ...msg(''), tool_calls: toolCalls }, done: false });
    await writeLine(ctx.res, { model, created_at: now(), message: msg(''), done: true, ...fields });
    return ctx.res.end();
  }
  return reply(ctx.res, {
    stream,
    text,
    trigger: last,
    finalFields: fields,
    chunk: (piece) => ({ model, created_at: now(), message: msg(piece), done: false }),
    final: (f) => ({ model, created_at: now(), message: msg(''), done: true, ...f }),
    whole: (t, f) => ({
      model, created_at: now(), message: toolCalls ? { ...msg(''), tool_calls: toolCalls } : msg(t), done: true, ...f,
    }),
  });
}

// Bag-of-words hashing: texts sharing words get similar vectors, so RAG tests
// retrieve sensible neighbours while every vector stays reproducible.
const wordCache = new Map();
function wordVector(model, word, dim) {
  const key = `${model}\0${dim}\0${word}`;
  let vec = wordCache.get(key);
  if (vec) return vec;
  vec = new Float64Array(dim);
  for (let block = 0; block * 8 < dim; block += 1) {
    const digest = crypto.createHash('sha256').update(`${key}\0${block}`).digest();
    for (let j = 0; j < 8 && block * 8 + j < dim; j += 1) {
      vec[block * 8 + j] = digest.readUInt32BE(j * 4) / 0x80000000 - 1;
    }
  }
  if (wordCache.size > 200000) wordCache.clear();
  wordCache.set(key, vec);
  return vec;
}

function rawEmbedding(model, text, dim) {
  const tokens = text.toLowerCase().match(/[\p{L}\p{N}]+/gu) || [text];
  const sum = new Float64Array(dim);
  for (const token of tokens) {
    const v = wordVector(model, token, dim);
    for (let i = 0; i < dim; i += 1) sum[i] += v[i];
  }
  return Array.from(sum, (x) => Math.fround(x));
}

function normalise(vec) {
  const norm = Math.sqrt(vec.reduce((s, x) => s + x * x, 0)) || 1;
  return vec.map((x) => Math.fround(x / norm));
}

// JSON.stringify would turn NaN into null; the __nan__ probe needs the literal.
function vectorJson(vec) {
  return `[${vec.map((x) => (Number.isNaN(x) ? 'NaN' : String(x))).join(',')}]`;
}

function embedOne(modelKey, text, dim) {
  if (text === '__nan__') {
    const v = normalise(rawEmbedding(modelKey, text, dim));
    v[0] = NaN;
    return v;
  }
  const size = text === '__dimmismatch__' ? dim - 1 : dim;
  return normalise(rawEmbedding(modelKey, text, size));
}

async function embed(ctx, req) {
  const info = requireModel(req.model);
  requireCapability(req.model, info, 'embedding', 'embeddings');
  checkOptions(req.options);
  keepAliveMs(req.keep_alive);
  let inputs;
  if (req.input === undefined || req.input === null || req.input === '') inputs = [];
  else if (typeof req.input === 'string') inputs = [req.input];
  else if (Array.isArray(req.input)) inputs = req.input;
  else throw new ApiError(400, 'invalid input type');
  if (!inputs.every((s) => typeof s === 'string')) throw new ApiError(400, 'invalid input type');
  touchModel(req.model, req.keep_alive);
  if (inputs.length === 0) {
    return sendJson(ctx.res, 200, { model: req.model, embeddings: [] }, { 'Content-Type': 'application/json; charset=utf-8' });
  }
  if (req.truncate === false && inputs.some((s) => words(s).length > Math.min(CONTEXT_TOKENS, info.contextLength))) {
    throw new ApiError(400, 'the input length exceeds the context length');
  }
  let dim = info.embeddingLength;
  const wanted = req.dimensions;
  if (wanted !== undefined && wanted !== null && !Number.isInteger(wanted)) throw new ApiError(400, 'dimensions must be an integer');
  const key = baseName(req.model);
  const vectors = inputs.map((text) => {
    let v = embedOne(key, text, dim);
    if (Number.isInteger(wanted) && wanted > 0 && wanted < v.length) v = normalise(v.slice(0, wanted));
    return v;
  });
  if (Number.isInteger(wanted) && wanted > 0 && wanted < dim) dim = wanted;
  const tokens = inputs.reduce((n, s) => n + Math.max(1, words(s).length), 0);
  const m = metrics(tokens, 0);
  const body = `{"model":${JSON.stringify(req.model)},"embeddings":[${vectors.map(vectorJson).join(',')}],`
    + `"total_duration":${m.total_duration},"load_duration":${m.load_duration},"prompt_eval_count":${tokens}}`;
  return sendJson(ctx.res, 200, body, { 'Content-Type': 'application/json; charset=utf-8' });
}

async function legacyEmbeddings(ctx, req) {
  const info = requireModel(req.model, (n) => `model "${n}" not found, try pulling it first`);
  requireCapability(req.model, info, 'embedding', 'embeddings');
  checkOptions(req.options);
  touchModel(req.model, req.keep_alive);
  const prompt = typeof req.prompt === 'string' ? req.prompt : '';
  if (prompt === '') return sendJson(ctx.res, 200, { embedding: [] });
  let vec;
  if (prompt === '__nan__' || prompt === '__dimmismatch__') vec = embedOne(baseName(req.model), prompt, info.embeddingLength);
  else vec = rawEmbedding(baseName(req.model), prompt, info.embeddingLength);
  return sendJson(ctx.res, 200, `{"embedding":${vectorJson(vec)}}`, { 'Content-Type': 'application/json; charset=utf-8' });
}

function modelDetails(info) {
  return {
    parent_model: '',
    format: 'gguf',
    family: info.family,
    families: [info.family],
    parameter_size: info.parameterSize,
    quantization_level: info.quant,
  };
}

function digestOf(name) {
  return crypto.createHash('sha256').update(name).digest('hex');
}

function tags(ctx) {
  const models = Object.entries(MODELS).map(([name, info]) => ({
    name: `${name}:latest`,
    model: `${name}:latest`,
    modified_at: MODIFIED_AT,
    size: info.size,
    digest: digestOf(name),
    details: modelDetails(info),
  }));
  return sendJson(ctx.res, 200, { models });
}

function ps(ctx) {
  const nowMs = Date.now();
  const models = [];
  for (const [name, expires] of loaded) {
    if (expires.getTime() < nowMs) {
      loaded.delete(name);
      continue;
    }
    const info = MODELS[name];
    models.push({
      name: `${name}:latest`,
      model: `${name}:latest`,
      size: info.size,
      digest: digestOf(name),
      details: modelDetails(info),
      expires_at: expires.toISOString(),
      size_vram: info.size,
      context_length: Math.min(4096, info.contextLength),
    });
  }
  return sendJson(ctx.res, 200, { models });
}

function show(ctx, req) {
  const name = req.model || req.name;
  const info = requireModel(name);
  const base = baseName(name);
  const parameters = info.capabilities.includes('completion')
    ? 'stop                           "<|start_header_id|>"\nstop                           "<|eot_id|>"'
    : 'num_ctx                        ' + info.contextLength;
  return sendJson(ctx.res, 200, {
    license: 'stand-in model, no license text',
    modelfile: `# Modelfile generated by the datacore stand-in\nFROM ${base}:latest\n`,
    parameters,
    template: info.capabilities.includes('completion') ? '{{ .Prompt }}' : '{{ .Prompt }}',
    details: modelDetails(info),
    model_info: {
      'general.architecture': info.arch,
      'general.parameter_count': info.size,
      [`${info.arch}.context_length`]: info.contextLength,
      [`${info.arch}.embedding_length`]: info.embeddingLength,
    },
    capabilities: info.capabilities,
    modified_at: MODIFIED_AT,
  });
}

async function pull(ctx, req) {
  const name = req.model || req.name;
  if (typeof name !== 'string' || name.trim() === '') throw new ApiError(400, 'invalid model name');
  const known = Boolean(MODELS[baseName(name)]);
  const failure = 'pull model manifest: file does not exist';
  if (req.stream === false) {
    if (!known) throw new ApiError(500, failure);
    return sendJson(ctx.res, 200, { status: 'success' });
  }
  startNdjson(ctx.res);
  await writeLine(ctx.res, { status: 'pulling manifest' });
  if (!known) {
    await writeLine(ctx.res, { error: failure });
    return ctx.res.end();
  }
  const digest = `sha256:${digestOf(name)}`;
  const total = MODELS[baseName(name)].size;
  await writeLine(ctx.res, { status: `pulling ${digest.slice(7, 19)}`, digest, total, completed: total });
  for (const status of ['verifying sha256 digest', 'writing manifest', 'success']) await writeLine(ctx.res, { status });
  return ctx.res.end();
}

const ROUTES = {
  'POST /api/generate': generate,
  'POST /api/chat': chat,
  'POST /api/embed': embed,
  'POST /api/embeddings': legacyEmbeddings,
  'POST /api/show': show,
  'POST /api/pull': pull,
  'GET /api/tags': tags,
  'GET /api/ps': ps,
  'GET /api/version': (ctx) => sendJson(ctx.res, 200, { version: VERSION }),
};

const BODY_ROUTES = new Set(['POST /api/generate', 'POST /api/chat', 'POST /api/embed', 'POST /api/embeddings', 'POST /api/show', 'POST /api/pull']);

function parseRequest(body) {
  if (body.length === 0) throw new ApiError(400, 'missing request body');
  try {
    const value = JSON.parse(body.toString('utf8'));
    if (!value || typeof value !== 'object' || Array.isArray(value)) {
      throw new ApiError(400, 'json: cannot unmarshal into Go value of type api.Request');
    }
    return value;
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw new ApiError(400, err.message);
  }
}

async function handle(ctx) {
  const { req, res, method, path } = ctx;
  if (TOKEN && req.headers.authorization !== `Bearer ${TOKEN}`) {
    return sendJson(res, 401, { error: 'unauthorized' });
  }
  if (path === '/' && (method === 'GET' || method === 'HEAD')) return sendText(res, 200, 'Ollama is running');
  // HEAD mirrors GET for the routes the real server registers both ways.
  const key = `${method === 'HEAD' ? 'GET' : method} ${path}`;
  const route = ROUTES[key];
  if (!route) return sendText(res, 404, '404 page not found');
  try {
    const body = BODY_ROUTES.has(key) ? parseRequest(ctx.body) : null;
    return await route(ctx, body);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    if (res.headersSent) return res.destroy();
    return sendJson(res, err.status, { error: err.message }, { 'Content-Type': 'application/json; charset=utf-8' });
  }
}

startServer({
  name: 'ollama',
  portEnv: 'DC_OLLAMA_PORT',
  defaultPort: 51434,
  maxBody: 100 * 1024 * 1024,
  handle,
  onError: (res, err) => (err.limit
    ? sendJson(res, 413, { error: 'request body too large' })
    : sendJson(res, 500, { error: `internal error: ${err.message}` })),
  faultStatus: (res, spec) => {
    const headers = spec.retry_after !== undefined ? { 'Retry-After': String(spec.retry_after) } : {};
    if (spec.body === undefined) return sendJson(res, spec.status, { error: `injected ${spec.status}` }, headers);
    if (typeof spec.body === 'string') return sendText(res, spec.status, spec.body, headers);
    return sendJson(res, spec.status, spec.body, headers);
  },
  faultMalformed: (res) => sendJson(res, 200, '{"response": "oops'),
});
