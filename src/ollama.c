/*-------------------------------------------------------------------------
 *
 * ollama.c
 *		SQL functions that call the Ollama HTTP API: generate, chat,
 *		embeddings (single and batched), model listings, show and version.
 *
 * Every request asks for a non-streamed answer ("stream": false), but a
 * reply that arrives as an NDJSON stream anyway (an older server, a proxy
 * that rewrites the body) is still understood: its fragments are joined
 * and the final "done" object is returned as if it had come alone.  An
 * error line inside such a stream, or a stream that ends without its final
 * object, is an error rather than a silently truncated answer.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "cache.h"
#include "http.h"
#include "metrics.h"
#include "ollama.h"

/* Default number of texts sent in one /api/embed request. */
#define DEFAULT_EMBED_BATCH_SIZE	64

/* ---------- conversions between the database encoding and JSON ---------- */

/*
 * A JSON string holding a database-encoded C string.  Ollama speaks UTF-8;
 * jansson rejects anything else, which would otherwise surface as an
 * unexplained NULL.
 */
static json_t *
to_json_string(const char *s, const char *argname)
{
	return dc_json_string_server(s, psprintf("argument \"%s\"", argname));
}

/* A UTF-8 string from a reply as text in the database encoding. */
static text *
from_json_string(const char *s)
{
	char	   *conv = pg_any_to_server(s, strlen(s), PG_UTF8);

	return cstring_to_text(conv);
}

/* ---------- replies ---------- */

/* The "error" text of a reply body, or NULL when there is none. */
static const char *
error_text(DcHttpResponse *resp)
{
	json_error_t err;
	json_t	   *json;

	if (resp->body.len == 0)
		return NULL;
	json = json_loadb(resp->body.data, resp->body.len, JSON_DISABLE_EOF_CHECK, &err);
	return json ? dc_json_get_string(json, "error") : NULL;
}

/*
 * Raise the error for an HTTP status >= 400.  A 404 that carries Ollama's
 * own JSON error is an unknown model; a 404 without one means the endpoint
 * itself is missing (an old or non-Ollama server) and is reported as such.
 */
static void
raise_status(DcServer *server, DcHttpRequest *req, DcHttpResponse *resp,
			 const char *model)
{
	const char *remote = error_text(resp);

	if (resp->status == 404 && remote != NULL && model != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" is not available on server \"%s\" for %s",
						model, server->servername, req->operation),
				 errdetail_internal("%s", dc_remote_excerpt(remote, strlen(remote), 500)),
				 errhint("Pull the model on the Ollama host (ollama pull %s) or pass another model.",
						 model)));
	dc_http_raise_status(server, req, resp, remote);
}

/* An error object inside a 200 reply, e.g. the last line of a stream. */
static void
raise_reply_error(DcServer *server, const char *operation, const char *remote)
{
	ereport(ERROR,
			(errcode(ERRCODE_FDW_ERROR),
			 errmsg("server \"%s\" reported an error during %s",
					server->servername, operation),
			 errdetail_internal("%s", dc_remote_excerpt(remote, strlen(remote), 500))));
}

/* Append the string member "key" of obj (if any) to buf; true if present. */
static bool
append_fragment(StringInfo buf, json_t *obj, const char *key)
{
	const char *s = dc_json_get_string(obj, key);

	if (s == NULL)
		return false;
	appendStringInfoString(buf, s);
	return true;
}

/*
 * Fold an NDJSON stream into the object a non-streamed request would have
 * returned: the final ("done": true) object with "response", "thinking",
 * "message.content", "message.thinking" and "message.tool_calls" replaced
 * by the concatenation over all lines.
 */
static json_t *
merge_stream(DcServer *server, const char *operation, const char *data, size_t len)
{
	StringInfoData response,
				thinking,
				content,
				mthinking;
	bool		have_response = false,
				have_thinking = false,
				have_content = false,
				have_mthinking = false;
	json_t	   *tool_calls = json_array();
	json_t	   *final = NULL;
	const char *p = data;
	const char *end = data + len;
	int			lineno = 0;

	initStringInfo(&response);
	initStringInfo(&thinking);
	initStringInfo(&content);
	initStringInfo(&mthinking);

	while (p < end && final == NULL)
	{
		const char *nl = memchr(p, '\n', end - p);
		const char *eol = nl ? nl : end;
		const char *q;
		json_t	   *line;
		json_t	   *msg;
		json_t	   *calls;
		const char *remote;

		lineno++;
		for (q = p; q < eol && (*q == ' ' || *q == '\t' || *q == '\r'); q++)
			;
		if (q == eol)
		{
			p = eol + 1;
			continue;
		}
		line = dc_json_parse(server, operation, p, eol - p);
		if (!json_is_object(line))
			dc_json_bad_reply(server, operation,
							  psprintf("Line %d of the reply stream is not a JSON object.", lineno));
		if ((remote = dc_json_get_string(line, "error")) != NULL)
			raise_reply_error(server, operation, remote);

		have_response |= append_fragment(&response, line, "response");
		have_thinking |= append_fragment(&thinking, line, "thinking");
		msg = json_object_get(line, "message");
		if (json_is_object(msg))
		{
			have_content |= append_fragment(&content, msg, "content");
			have_mthinking |= append_fragment(&mthinking, msg, "thinking");
			calls = json_object_get(msg, "tool_calls");
			if (json_is_array(calls))
				json_array_extend(tool_calls, calls);
		}
		if (json_is_true(json_object_get(line, "done")))
			final = line;
		p = eol + 1;
	}

	if (final == NULL)
		dc_json_bad_reply(server, operation,
						  "The reply stream ended before its final object (\"done\": true).");

	if (have_response)
		json_object_set_new(final, "response", json_string(response.data));
	if (have_thinking)
		json_object_set_new(final, "thinking", json_string(thinking.data));
	if (have_content || have_mthinking || json_array_size(tool_calls) > 0)
	{
		json_t	   *msg = json_object_get(final, "message");

		if (!json_is_object(msg))
		{
			msg = dc_json_object();
			json_object_set_new(msg, "role", json_string("assistant"));
			json_object_set_new(final, "message", msg);
		}
		if (have_content)
			json_object_set_new(msg, "content", json_string(content.data));
		if (have_mthinking)
			json_object_set_new(msg, "thinking", json_string(mthinking.data));
		if (json_array_size(tool_calls) > 0)
			json_object_set(msg, "tool_calls", tool_calls);
	}
	return final;
}

/*
 * True if the body is several JSON values one per line: the first line
 * parses on its own and something follows it.  A pretty-printed single
 * object fails the first test.
 */
static bool
looks_like_ndjson(const char *data, size_t len)
{
	const char *nl = memchr(data, '\n', len);
	json_error_t err;
	const char *q;

	if (nl == NULL)
		return false;
	for (q = nl; q < data + len; q++)
		if (!(*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
			break;
	if (q == data + len)
		return false;
	return json_loadb(data, nl - data, 0, &err) != NULL;
}

/*
 * The reply as one JSON object: a single object, or a folded NDJSON
 * stream.  An object carrying "error" is raised even with status 200.
 */
static json_t *
parse_reply(DcServer *server, const char *operation, DcHttpResponse *resp)
{
	const char *ct = dc_http_header(resp, "content-type");
	const char *data = resp->body.data ? resp->body.data : "";
	size_t		len = resp->body.len;
	json_t	   *reply;
	const char *remote;

	if ((ct && pg_strncasecmp(ct, "application/x-ndjson", 20) == 0) ||
		looks_like_ndjson(data, len))
		return merge_stream(server, operation, data, len);

	reply = dc_json_parse(server, operation, data, len);
	if (!json_is_object(reply))
		dc_json_bad_reply(server, operation, "The reply is not a JSON object.");
	if ((remote = dc_json_get_string(reply, "error")) != NULL)
		raise_reply_error(server, operation, remote);
	return reply;
}

/*
 * A request to the Ollama API for path, with "body" (or NULL) as JSON.  The
 * bearer token of the user mapping goes out only when one is set.
 */
static DcHttpRequest *
ollama_request(DcServer *server, const char *operation, const char *method,
			   const char *path, json_t *body)
{
	DcHttpRequest *req = dc_http_request(server, operation, method, path);
	const char *token = dc_option(server, "bearer_token");

	if (token)
		dc_http_add_header(req, "Authorization", psprintf("Bearer %s", token));
	if (body)
		dc_http_set_json_body(req, dc_json_dumps(body));
	return req;
}

/* A non-negative integer member of a plain JSON object, or -1. */
static int64
count_member(const char *data, size_t len, const char *key)
{
	const char *v;
	size_t		vlen;
	char		digits[20];

	if (!dc_ollama_fast_member(data, len, key, &v, &vlen) ||
		vlen == 0 || vlen >= sizeof(digits) || strspn(v, "0123456789") < vlen)
		return -1;
	memcpy(digits, v, vlen);
	digits[vlen] = '\0';
	return strtoi64(digits, NULL, 10);
}

/*
 * Count a generate or chat reply's tokens in the metrics: prompt_eval_count
 * and eval_count of the final object (the body, or an NDJSON stream's last
 * line).  Read with the fast scanner; a reply it cannot read counts none.
 */
static void
record_tokens(DcServer *server, const char *operation, DcHttpResponse *resp)
{
	const char *data = resp->body.data;
	size_t		len = resp->body.len;
	const char *last;

	if (data == NULL)
		return;
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r' ||
					   data[len - 1] == ' '))
		len--;
	for (last = data + len; last > data && last[-1] != '\n'; last--)
		;
	len -= last - data;
	dc_metrics_tokens(server, operation,
					  count_member(last, len, "prompt_eval_count"),
					  count_member(last, len, "eval_count"));
}

/*
 * Send one request to the Ollama API and return the response, whose HTTP
 * status is known to be below 400.  "model" names the model the request
 * is about, so that a 404 can say which one is missing.
 */
static DcHttpResponse *
ollama_send(DcServer *server, const char *operation, const char *method,
			const char *path, json_t *body, const char *model)
{
	DcHttpRequest *req = ollama_request(server, operation, method, path, body);
	DcHttpResponse *resp = dc_http_execute(server, req);

	if (resp->status >= 400)
		raise_status(server, req, resp, model);
	if (strcmp(path, "/api/generate") == 0 || strcmp(path, "/api/chat") == 0)
		record_tokens(server, operation, resp);
	return resp;
}

/* ollama_send, then the reply as one JSON object (see parse_reply). */
json_t *
dc_ollama_call(DcServer *server, const char *operation, const char *method,
			   const char *path, json_t *body, const char *model)
{
	return parse_reply(server, operation,
					   ollama_send(server, operation, method, path, body, model));
}

/* ---------- request building ---------- */

static char *
text_arg(FunctionCallInfo fcinfo, int argno)
{
	return PG_ARGISNULL(argno) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/*
 * The server named by argument argno.  Callers return NULL (or no rows)
 * for a NULL server name first, as a STRICT function would.
 */
static DcServer *
server_arg(FunctionCallInfo fcinfo, int argno, const char *operation)
{
	Assert(!PG_ARGISNULL(argno));
	return dc_get_server(NameStr(*PG_GETARG_NAME(argno)), DC_SERVICE_OLLAMA, operation);
}

/*
 * The model argument, else the server option "option" (then "model" for
 * embeddings), else an error telling how to set one.
 */
static const char *
resolve_model(DcServer *server, const char *given, const char *operation,
			  const char *option)
{
	const char *model = given;

	if (model == NULL)
		model = dc_option(server, option);
	if (model == NULL && strcmp(option, "model") != 0)
		model = dc_option(server, "model");
	if (model == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no model given for %s and server \"%s\" has no default",
						operation, server->servername),
				 errhint("Pass the model argument, or set one with ALTER SERVER %s OPTIONS (ADD %s '...').",
						 quote_identifier(server->servername), option)));
	if (model[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model name for %s must not be empty", operation)));
	return model;
}

/*
 * A jsonb argument as JSON, checked to be of the expected shape.
 * "kinds" is a mask: 1 object, 2 array, 4 string.
 */
static json_t *
json_arg(FunctionCallInfo fcinfo, int argno, const char *argname, int kinds)
{
	json_t	   *j;

	if (PG_ARGISNULL(argno))
		return NULL;
	j = dc_jsonb_to_json(PG_GETARG_JSONB_P(argno), argname);
	if (json_is_null(j))
		return NULL;
	if (!((kinds & 1 && json_is_object(j)) ||
		  (kinds & 2 && json_is_array(j)) ||
		  (kinds & 4 && json_is_string(j))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"%s\" must be a JSON %s", argname,
						kinds == 1 ? "object" : kinds == 2 ? "array" :
						"object or string")));
	return j;
}

/*
 * "format": the string "json" (JSON mode) or an object (a JSON schema for
 * structured output); anything else is refused here rather than by a 400.
 */
static json_t *
format_arg(FunctionCallInfo fcinfo, int argno)
{
	json_t	   *j = json_arg(fcinfo, argno, "format", 1 | 4);

	if (j && json_is_string(j) && strcmp(json_string_value(j), "json") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"format\" must be the JSON string \"json\" or a JSON schema object"),
				 errhint("Write format => '\"json\"' for JSON mode.")));
	return j;
}

/*
 * keep_alive from the server option: a whole number is seconds (negative:
 * keep loaded), anything else a Go duration string such as "10m".
 */
static void
add_keep_alive(json_t *body, DcServer *server)
{
	const char *ka = dc_option(server, "keep_alive");
	const char *digits;

	if (ka == NULL)
		return;
	digits = (ka[0] == '-') ? ka + 1 : ka;
	if (digits[0] != '\0' && strspn(digits, "0123456789") == strlen(digits) &&
		strlen(digits) < 10)
		json_object_set_new(body, "keep_alive", json_integer(atol(ka)));
	else
		json_object_set_new(body, "keep_alive", json_string(ka));
}

/* The common part of a generate or chat request body. */
static json_t *
base_body(DcServer *server, const char *model, json_t *options, json_t *format)
{
	json_t	   *body = dc_json_object();

	json_object_set_new(body, "model", to_json_string(model, "model"));
	json_object_set_new(body, "stream", json_false());
	if (options)
		json_object_set(body, "options", options);
	if (format)
		json_object_set(body, "format", format);
	add_keep_alive(body, server);
	return body;
}

/* ---------- generate ---------- */

static json_t *generate_reply(DcServer *server, const char *operation,
							  DcHttpResponse *resp, const char **text);

/* The optional cache_ttl argument at argno (NULL: absent or NULL). */
static Interval *
cache_ttl_arg(FunctionCallInfo fcinfo, int argno)
{
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	return PG_GETARG_INTERVAL_P(argno);
}

/* A generate call begun by dc_ollama_generate_begin. */
struct DcOllamaGenerate
{
	DcServer   *server;
	const char *operation;
	const char *model;
	json_t	   *body;
	DcCache    *cache;			/* NULL: not cached */
	char	   *hit;			/* the cached answer, if there was one */
	DcHttpRequest *req;			/* otherwise the request in flight */
	DcHttpStream *stream;
};

/*
 * /api/generate in two halves: the request is sent here (unless the cache
 * answers) and dc_ollama_generate_end() or generate_end() waits for its
 * answer, so that several can be in flight at once (the job runner).
 * model NULL: the server's model; call_ttl: the cache_ttl argument.
 */
DcOllamaGenerate *
dc_ollama_generate_begin(DcServer *server, const char *operation,
						 const char *prompt, const char *model,
						 const char *system, json_t *options, json_t *format,
						 Interval *call_ttl)
{
	DcOllamaGenerate *g = palloc0(sizeof(DcOllamaGenerate));

	g->server = server;
	g->operation = operation;
	g->model = resolve_model(server, model, operation, "model");
	g->body = base_body(server, g->model, options, format);
	json_object_set_new(g->body, "prompt", to_json_string(prompt, "prompt"));
	if (system)
		json_object_set_new(g->body, "system", to_json_string(system, "system"));

	g->cache = dc_cache_begin(server, operation, g->body, call_ttl);
	if (g->cache && (g->hit = dc_cache_get(g->cache)) != NULL)
		return g;
	g->req = ollama_request(server, operation, "POST", "/api/generate", g->body);
	g->stream = dc_http_start(server, g->req);
	return g;
}

/*
 * Wait for a generate call.  With "text" NULL, return the final reply
 * object, checked to have a "response" string.  Otherwise set *text to
 * that string (UTF-8) and return NULL.  A cache hit holds the text
 * (ollama_generate) or the reply (ollama_generate_json); a cached reply
 * that is not one is ignored and the model asked.
 */
static json_t *
generate_end(DcOllamaGenerate *g, const char **text)
{
	DcHttpResponse *resp;
	json_t	   *reply;

	if (g->hit)
	{
		if (text)
		{
			*text = g->hit;
			return NULL;
		}
		reply = dc_json_parse(g->server, g->operation, g->hit, strlen(g->hit));
		if (dc_json_get_string(reply, "response") != NULL)
			return reply;
		g->req = ollama_request(g->server, g->operation, "POST", "/api/generate", g->body);
		g->stream = dc_http_start(g->server, g->req);
	}

	resp = dc_http_finish(g->stream);
	if (resp->status >= 400)
		raise_status(g->server, g->req, resp, g->model);
	record_tokens(g->server, g->operation, resp);
	reply = generate_reply(g->server, g->operation, resp, text);
	if (g->cache)
	{
		char	   *value = text ? (char *) *text : dc_json_dumps(reply);

		dc_cache_put(g->cache, value, strlen(value));
	}
	return reply;
}

/* The text of a dc_ollama_generate_begin() call, in the database encoding. */
char *
dc_ollama_generate_end(DcOllamaGenerate *g)
{
	const char *response;

	(void) generate_end(g, &response);
	return text_to_cstring(from_json_string(response));
}

/* generate for the SQL functions' arguments (prompt, model, system, options, format, server, cache_ttl). */
static json_t *
generate(FunctionCallInfo fcinfo, const char *operation, const char **text)
{
	DcServer   *server = server_arg(fcinfo, 5, operation);
	DcOllamaGenerate *g;

	g = dc_ollama_generate_begin(server, operation, text_arg(fcinfo, 0),
								 text_arg(fcinfo, 1), text_arg(fcinfo, 2),
								 json_arg(fcinfo, 3, "options", 1),
								 format_arg(fcinfo, 4),
								 cache_ttl_arg(fcinfo, 6));
	return generate_end(g, text);
}

/*
 * The answer of /api/generate: with "text" NULL, the final reply object,
 * checked to have a "response" string; otherwise *text is set to that
 * string and NULL returned.
 */
static json_t *
generate_reply(DcServer *server, const char *operation, DcHttpResponse *resp,
			   const char **text)
{
	json_t	   *reply;
	const char *response;

	if (text)
	{
		const char *ct = dc_http_header(resp, "content-type");
		const char *v;
		size_t		vlen;
		json_error_t err;
		json_t	   *value;

		if (!(ct && pg_strncasecmp(ct, "application/x-ndjson", 20) == 0) &&
			dc_ollama_fast_member(resp->body.data, resp->body.len, "response", &v, &vlen) &&
			(value = json_loadb(v, vlen, JSON_DECODE_ANY, &err)) != NULL &&
			json_is_string(value))
		{
			*text = json_string_value(value);
			return NULL;
		}
	}

	reply = parse_reply(server, operation, resp);
	response = dc_json_get_string(reply, "response");
	if (response == NULL)
		dc_json_bad_reply(server, operation, "The reply has no \"response\" string.");
	if (text)
		*text = response;
	return reply;
}

PG_FUNCTION_INFO_V1(datacore_ollama_generate);

/*
 * ollama_generate(prompt, model, system, options, format, server) → text:
 * the generated text.  NULL prompt gives NULL.
 */
Datum
datacore_ollama_generate(PG_FUNCTION_ARGS)
{
	const char *response;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(5))
		PG_RETURN_NULL();
	(void) generate(fcinfo, "ollama_generate", &response);
	PG_RETURN_TEXT_P(from_json_string(response));
}

PG_FUNCTION_INFO_V1(datacore_ollama_generate_json);

/*
 * ollama_generate_json(...) → jsonb: the whole final reply, with
 * done_reason, token counts and durations.
 */
Datum
datacore_ollama_generate_json(PG_FUNCTION_ARGS)
{
	json_t	   *reply;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(5))
		PG_RETURN_NULL();
	reply = generate(fcinfo, "ollama_generate_json", NULL);
	PG_RETURN_JSONB_P(dc_json_to_jsonb(reply));
}

/* ---------- chat ---------- */

PG_FUNCTION_INFO_V1(datacore_ollama_chat);

/*
 * ollama_chat(messages, model, options, format, tools, server) → jsonb:
 * the assistant message (role, content, and tool_calls when the model
 * called tools).
 */
Datum
datacore_ollama_chat(PG_FUNCTION_ARGS)
{
	const char *op = "ollama_chat";
	DcServer   *server;
	const char *model;
	json_t	   *messages;
	json_t	   *tools;
	json_t	   *body;
	json_t	   *reply;
	json_t	   *message;
	size_t		i;
	DcCache    *cache;
	char	   *hit;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(5))
		PG_RETURN_NULL();
	messages = json_arg(fcinfo, 0, "messages", 2);
	if (messages == NULL || json_array_size(messages) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"messages\" must be a non-empty JSON array")));
	for (i = 0; i < json_array_size(messages); i++)
	{
		json_t	   *m = json_array_get(messages, i);

		if (!json_is_object(m) || dc_json_get_string(m, "role") == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("element %zu of argument \"messages\" is not a message object", i + 1),
					 errdetail("Each message is an object with a \"role\" string and usually a \"content\" string.")));
	}
	tools = json_arg(fcinfo, 4, "tools", 2);

	server = server_arg(fcinfo, 5, op);
	model = resolve_model(server, text_arg(fcinfo, 1), op, "model");
	body = base_body(server, model, json_arg(fcinfo, 2, "options", 1), format_arg(fcinfo, 3));
	json_object_set(body, "messages", messages);
	if (tools)
		json_object_set(body, "tools", tools);

	cache = dc_cache_begin(server, op, body, cache_ttl_arg(fcinfo, 6));
	if (cache && (hit = dc_cache_get(cache)) != NULL)
	{
		message = dc_json_parse(server, op, hit, strlen(hit));
		if (json_is_object(message))
			PG_RETURN_JSONB_P(dc_json_to_jsonb(message));
	}

	reply = dc_ollama_call(server, op, "POST", "/api/chat", body, model);
	message = json_object_get(reply, "message");
	if (!json_is_object(message))
		dc_json_bad_reply(server, op, "The reply has no \"message\" object.");
	if (cache)
	{
		char	   *dumped = dc_json_dumps(message);

		dc_cache_put(cache, dumped, strlen(dumped));
	}
	PG_RETURN_JSONB_P(dc_json_to_jsonb(message));
}

/* ---------- embeddings ---------- */

/* An /api/embed request on its way (see embed_start). */
typedef struct EmbedCall
{
	DcHttpRequest *req;
	DcHttpStream *stream;
	int			n;				/* number of inputs */
	int			first;			/* 1-based position of the first input */
} EmbedCall;

/*
 * Send POST /api/embed for "inputs" (a JSON string or array of n strings)
 * without waiting for the answer.  "first" is the 1-based position of
 * inputs[0] in the caller's list, for messages.
 */
static EmbedCall *
embed_start(DcServer *server, const char *operation, const char *model,
			json_t *inputs, int n, int first)
{
	json_t	   *body = dc_json_object();
	EmbedCall  *call = palloc(sizeof(EmbedCall));

	json_object_set_new(body, "model", to_json_string(model, "model"));
	json_object_set(body, "input", inputs);
	add_keep_alive(body, server);

	call->req = ollama_request(server, operation, "POST", "/api/embed", body);
	call->stream = dc_http_start(server, call->req);
	call->n = n;
	call->first = first;
	return call;
}

/* Wait for an embed_start() request; its HTTP status is checked. */
static DcHttpResponse *
embed_wait(DcServer *server, const char *model, EmbedCall *call)
{
	DcHttpResponse *resp = dc_http_finish(call->stream);

	if (resp->status >= 400)
		raise_status(server, call->req, resp, model);
	return resp;
}

/*
 * The n vectors of an /api/embed reply as real[] Datums.  Every vector
 * must have "*dim" elements; a *dim of 0 is set from the first vector.
 */
static Datum *
embed_vectors(DcServer *server, const char *operation, EmbedCall *call,
			  DcHttpResponse *resp, int *dim)
{
	int			n = call->n;
	const char *ct = dc_http_header(resp, "content-type");
	json_t	   *reply;
	json_t	   *vectors;
	Datum	   *out = palloc(sizeof(Datum) * n);
	int			i;

	if (!(ct && pg_strncasecmp(ct, "application/x-ndjson", 20) == 0) &&
		dc_ollama_fast_embeddings(resp->body.data, resp->body.len, n, dim, out))
		return out;

	/* anything unusual: the general reader, whose checks explain failures */
	reply = parse_reply(server, operation, resp);
	vectors = json_object_get(reply, "embeddings");
	if (!json_is_array(vectors))
		dc_json_bad_reply(server, operation, "The reply has no \"embeddings\" array.");
	if (json_array_size(vectors) != (size_t) n)
		dc_json_bad_reply(server, operation,
						  psprintf("The reply has %zu vectors for %d inputs.",
								   json_array_size(vectors), n));
	for (i = 0; i < n; i++)
	{
		ArrayType  *arr = dc_json_to_float4_array(json_array_get(vectors, i), server, operation,
												  psprintf("embedding %d", call->first + i));
		int			len = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));

		if (*dim == 0)
			*dim = len;
		else if (len != *dim)
			dc_json_bad_reply(server, operation,
							  psprintf("Embedding %d has %d dimensions where the others have %d.",
									   call->first + i, len, *dim));
		out[i] = PointerGetDatum(arr);
	}
	return out;
}

static void
check_embed_input(const char *s, int idx)
{
	if (s[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 idx > 0 ?
				 errmsg("element %d of argument \"inputs\" is an empty string", idx) :
				 errmsg("argument \"input\" is an empty string"),
				 errdetail("Ollama returns no embedding for empty text.")));
}

PG_FUNCTION_INFO_V1(datacore_ollama_embed);

/* ollama_embed(input text, model, server) → real[] */
Datum
datacore_ollama_embed(PG_FUNCTION_ARGS)
{
	const char *op = "ollama_embed";
	char	   *input;
	DcServer   *server;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	input = text_arg(fcinfo, 0);
	server = server_arg(fcinfo, 2, op);
	PG_RETURN_DATUM(dc_ollama_embed_end(dc_ollama_embed_begin(server, input,
															  text_arg(fcinfo, 1))));
}

/* An embedding of one text begun by dc_ollama_embed_begin. */
struct DcOllamaEmbed
{
	DcServer   *server;
	const char *model;
	EmbedCall  *call;
};

/*
 * ollama_embed of one text in two halves: the request is sent here and
 * dc_ollama_embed_end() waits for its answer, so that several can be in
 * flight at once (the job runner).  model NULL: the server's
 * embedding_model.
 */
DcOllamaEmbed *
dc_ollama_embed_begin(DcServer *server, const char *input, const char *model)
{
	const char *op = "ollama_embed";
	DcOllamaEmbed *e = palloc(sizeof(DcOllamaEmbed));

	check_embed_input(input, 0);
	e->server = server;
	e->model = resolve_model(server, model, op, "embedding_model");
	e->call = embed_start(server, op, e->model, to_json_string(input, "input"), 1, 1);
	return e;
}

/* The vector (real[]) of a dc_ollama_embed_begin() request. */
Datum
dc_ollama_embed_end(DcOllamaEmbed *e)
{
	int			dim = 0;
	Datum	   *vec = embed_vectors(e->server, "ollama_embed", e->call,
									embed_wait(e->server, e->model, e->call), &dim);

	return vec[0];
}

/* Start the /api/embed request for inputs [start, start + count). */
static EmbedCall *
embed_start_chunk(DcServer *server, const char *operation, const char *model,
				  Datum *elems, int start, int count)
{
	json_t	   *inputs = json_array();
	int			i;

	for (i = 0; i < count; i++)
		json_array_append_new(inputs,
							  to_json_string(TextDatumGetCString(elems[start + i]), "inputs"));
	return embed_start(server, operation, model, inputs, count, start + 1);
}

PG_FUNCTION_INFO_V1(datacore_ollama_embed_batch);

/*
 * ollama_embed(inputs text[], model, server) → TABLE(idx int, embedding
 * real[]): one /api/embed request per embed_batch_size texts, rows in
 * input order with 1-based idx.  Any failure fails the whole call, so a
 * caller never sees part of the set.
 *
 * The next chunk's request is sent before the current answer is read, so
 * the server embeds one chunk while we convert the previous one.  Each
 * chunk lives in one of two memory contexts, used in turn: resetting the
 * finished chunk's context must not touch the request still in flight.
 */
Datum
datacore_ollama_embed_batch(PG_FUNCTION_ARGS)
{
	const char *op = "ollama_embed";
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *enulls;
	int			n,
				i,
				start;
	DcServer   *server;
	const char *model;
	int			batch;
	int			dim = 0;
	MemoryContext cxt[2],
				oldcxt;
	EmbedCall  *pending;
	int			k;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		return (Datum) 0;

	arr = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("argument \"inputs\" must be a one-dimensional array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &enulls, &n);
	for (i = 0; i < n; i++)
	{
		if (enulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("element %d of argument \"inputs\" is null", i + 1)));
		check_embed_input(TextDatumGetCString(elems[i]), i + 1);
	}
	if (n == 0)
		return (Datum) 0;

	server = server_arg(fcinfo, 2, op);
	model = resolve_model(server, text_arg(fcinfo, 1), op, "embedding_model");
	batch = dc_option_int(server, "embed_batch_size", DEFAULT_EMBED_BATCH_SIZE);

	cxt[0] = AllocSetContextCreate(CurrentMemoryContext, "ollama_embed chunk",
								   ALLOCSET_DEFAULT_SIZES);
	cxt[1] = AllocSetContextCreate(CurrentMemoryContext, "ollama_embed chunk",
								   ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt[0]);
	pending = embed_start_chunk(server, op, model, elems, 0, Min(batch, n));

	for (start = 0, k = 0; start < n; start += batch, k++)
	{
		EmbedCall  *call = pending;
		DcHttpResponse *resp;
		Datum	   *vectors;

		CHECK_FOR_INTERRUPTS();
		MemoryContextSwitchTo(cxt[k % 2]);
		resp = embed_wait(server, model, call);

		if (start + batch < n)
		{
			MemoryContextSwitchTo(cxt[(k + 1) % 2]);
			pending = embed_start_chunk(server, op, model, elems, start + batch,
										Min(batch, n - start - batch));
			MemoryContextSwitchTo(cxt[k % 2]);
		}

		vectors = embed_vectors(server, op, call, resp, &dim);
		for (i = 0; i < call->n; i++)
		{
			Datum		values[2];
			bool		nulls[2] = {false, false};

			values[0] = Int32GetDatum(start + i + 1);
			values[1] = vectors[i];
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
		MemoryContextReset(cxt[k % 2]);
	}
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt[0]);
	MemoryContextDelete(cxt[1]);
	return (Datum) 0;
}

/* ---------- models, show, version ---------- */

/*
 * The "models" array of /api/tags (installed) or /api/ps (loaded), each
 * element checked to be an object.
 */
json_t *
dc_ollama_list_models(DcServer *server, const char *operation, bool running)
{
	json_t	   *reply = dc_ollama_call(server, operation, "GET",
									   running ? "/api/ps" : "/api/tags", NULL, NULL);
	json_t	   *models = json_object_get(reply, "models");
	size_t		i;

	if (!json_is_array(models))
		dc_json_bad_reply(server, operation, "The reply has no \"models\" array.");
	for (i = 0; i < json_array_size(models); i++)
		if (!json_is_object(json_array_get(models, i)))
			dc_json_bad_reply(server, operation,
							  psprintf("Element %zu of \"models\" is not an object.", i + 1));
	return models;
}

/*
 * Prepare to fill rows of "tupdesc" from model objects: input functions
 * are looked up once, not per row.
 */
DcOllamaRowMaker *
dc_ollama_row_maker(TupleDesc tupdesc)
{
	DcOllamaRowMaker *maker = palloc(sizeof(DcOllamaRowMaker));
	int			i;

	maker->tupdesc = tupdesc;
	maker->infuncs = palloc0(sizeof(FmgrInfo) * tupdesc->natts);
	maker->ioparams = palloc0(sizeof(Oid) * tupdesc->natts);
	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		Oid			infunc;

		if (att->attisdropped)
			continue;
		getTypeInputInfo(att->atttypid, &infunc, &maker->ioparams[i]);
		fmgr_info(infunc, &maker->infuncs[i]);
	}
	return maker;
}

/*
 * A JSON array as an array literal ({"a","b"}), so that members such as
 * "families" or "capabilities" fit a text[] column.  Nested values are
 * written as their JSON text.
 */
static char *
array_literal(json_t *array)
{
	StringInfoData buf;
	size_t		i;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (i = 0; i < json_array_size(array); i++)
	{
		json_t	   *e = json_array_get(array, i);
		const char *s;
		const char *p;

		if (i > 0)
			appendStringInfoChar(&buf, ',');
		if (json_is_null(e))
		{
			appendStringInfoString(&buf, "NULL");
			continue;
		}
		s = json_is_string(e) ?
			pg_any_to_server(json_string_value(e), json_string_length(e), PG_UTF8) :
			dc_json_dumps(e);
		appendStringInfoChar(&buf, '"');
		for (p = s; *p; p++)
		{
			if (*p == '"' || *p == '\\')
				appendStringInfoChar(&buf, '\\');
			appendStringInfoChar(&buf, *p);
		}
		appendStringInfoChar(&buf, '"');
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * Fill one row from a model object.  A column takes the member of the same
 * name, or else the member of that name inside "details" (family,
 * parameter_size, quantization_level...); absent members are NULL, so
 * fields a newer server adds can be picked up by adding a column.  jsonb
 * columns take the JSON value; array columns take a JSON array element by
 * element; other types parse the value's text.
 */
void
dc_ollama_model_row(DcOllamaRowMaker *maker, json_t *model, Datum *values, bool *nulls)
{
	TupleDesc	tupdesc = maker->tupdesc;
	json_t	   *details = json_object_get(model, "details");
	int			i;

	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		const char *key = NameStr(att->attname);
		json_t	   *v;
		char	   *str;

		values[i] = (Datum) 0;
		nulls[i] = true;
		if (att->attisdropped)
			continue;
		v = json_object_get(model, key);
		if (v == NULL && json_is_object(details))
			v = json_object_get(details, key);
		if (v == NULL || json_is_null(v))
			continue;

		if (att->atttypid == JSONBOID)
		{
			values[i] = JsonbPGetDatum(dc_json_to_jsonb(v));
			nulls[i] = false;
			continue;
		}
		if (json_is_string(v))
			str = pg_any_to_server(json_string_value(v), json_string_length(v), PG_UTF8);
		else if (json_is_array(v) && OidIsValid(get_element_type(att->atttypid)))
			str = array_literal(v);
		else
			str = dc_json_dumps(v);
		values[i] = InputFunctionCall(&maker->infuncs[i], str, maker->ioparams[i],
									  att->atttypmod);
		nulls[i] = false;
	}
}

/* Shared body of ollama_models and ollama_running. */
static Datum
list_models_srf(FunctionCallInfo fcinfo, const char *operation, bool running)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DcServer   *server;
	json_t	   *models;
	DcOllamaRowMaker *maker;
	Datum	   *values;
	bool	   *nulls;
	size_t		i;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0))
		return (Datum) 0;
	server = server_arg(fcinfo, 0, operation);
	models = dc_ollama_list_models(server, operation, running);
	maker = dc_ollama_row_maker(rsinfo->setDesc);
	values = palloc(sizeof(Datum) * rsinfo->setDesc->natts);
	nulls = palloc(sizeof(bool) * rsinfo->setDesc->natts);
	for (i = 0; i < json_array_size(models); i++)
	{
		dc_ollama_model_row(maker, json_array_get(models, i), values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(datacore_ollama_models);

/* ollama_models(server) → the installed models (/api/tags). */
Datum
datacore_ollama_models(PG_FUNCTION_ARGS)
{
	return list_models_srf(fcinfo, "ollama_models", false);
}

PG_FUNCTION_INFO_V1(datacore_ollama_running);

/* ollama_running(server) → the models loaded in memory (/api/ps). */
Datum
datacore_ollama_running(PG_FUNCTION_ARGS)
{
	return list_models_srf(fcinfo, "ollama_running", true);
}

PG_FUNCTION_INFO_V1(datacore_ollama_show);

/* ollama_show(model, server) → jsonb: the whole /api/show reply. */
Datum
datacore_ollama_show(PG_FUNCTION_ARGS)
{
	const char *op = "ollama_show";
	DcServer   *server;
	const char *model;
	json_t	   *body;
	json_t	   *reply;

	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	server = server_arg(fcinfo, 1, op);
	model = resolve_model(server, text_arg(fcinfo, 0), op, "model");
	body = dc_json_object();

	json_object_set_new(body, "model", to_json_string(model, "model"));
	reply = dc_ollama_call(server, op, "POST", "/api/show", body, model);
	PG_RETURN_JSONB_P(dc_json_to_jsonb(reply));
}

PG_FUNCTION_INFO_V1(datacore_ollama_version);

/* ollama_version(server) → text: the server's version string. */
Datum
datacore_ollama_version(PG_FUNCTION_ARGS)
{
	const char *op = "ollama_version";
	DcServer   *server;
	json_t	   *reply;
	const char *version;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	server = server_arg(fcinfo, 0, op);
	reply = dc_ollama_call(server, op, "GET", "/api/version", NULL, NULL);
	version = dc_json_get_string(reply, "version");

	if (version == NULL)
		dc_json_bad_reply(server, op, "The reply has no \"version\" string.");
	PG_RETURN_TEXT_P(from_json_string(version));
}
