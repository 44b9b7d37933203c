/*-------------------------------------------------------------------------
 *
 * redis.c
 *		SQL functions that run Redis commands: strings, counters, expiry,
 *		lists and queues, hashes, pub/sub, and redis_command() for anything
 *		else, with its reply mapped to jsonb.
 *
 * Every function takes the server name last (default 'redis').  Values are
 * text in the database encoding; the bytea overloads (selected by passing
 * the key as bytea) are binary-safe.  A missing key gives NULL, as in Redis.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "json.h"
#include "redis.h"

/* ---------------------------------------------------------------------
 * Argument and reply helpers
 * --------------------------------------------------------------------- */

/* A non-null varlena argument; "what" names it in the error. */
static text *
arg_varlena(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return PG_GETARG_TEXT_PP(n);
}

/* Resolve the server named by the last argument. */
static DcServer *
server_arg(FunctionCallInfo fcinfo, const char *op)
{
	int			n = PG_NARGS() - 1;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("server name must not be null")));
	return dc_get_server(NameStr(*PG_GETARG_NAME(n)), DC_SERVICE_REDIS, op);
}

/*
 * An interval as a positive number of milliseconds (months count 30 days,
 * as everywhere in PostgreSQL's interval arithmetic).
 */
static int64
interval_ms(Interval *iv, const char *what)
{
	double		ms;

	ms = (double) iv->time / 1000.0 +
		((double) iv->day + (double) iv->month * DAYS_PER_MONTH) * 86400000.0;
	if (ms < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be at least 1 millisecond", what)));
	if (ms > (double) PG_INT64_MAX / 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too large", what)));
	return (int64) ms;
}

/* A bulk reply as text, checked against the database encoding. */
static text *
reply_text(redisReply *reply)
{
	pg_verify_mbstr(GetDatabaseEncoding(), reply->str, reply->len, false);
	return cstring_to_text_with_len(reply->str, reply->len);
}

static bytea *
reply_bytea(redisReply *reply)
{
	bytea	   *result = palloc(VARHDRSZ + reply->len);

	SET_VARSIZE(result, VARHDRSZ + reply->len);
	memcpy(VARDATA(result), reply->str, reply->len);
	return result;
}

static int64
reply_integer(DcServer *server, const char *op, redisReply *reply)
{
	if (reply->type != REDIS_REPLY_INTEGER)
		dc_redis_unexpected(server, op, reply);
	return reply->integer;
}

/* A bulk-or-nil reply: true when it holds a value. */
static bool
reply_is_value(DcServer *server, const char *op, redisReply *reply)
{
	if (reply->type == REDIS_REPLY_NIL)
		return false;
	if (reply->type != REDIS_REPLY_STRING)
		dc_redis_unexpected(server, op, reply);
	return true;
}

/*
 * Any reply as JSON: nil → null, integer → number, status and bulk →
 * string, array → array (recursively), and an error nested in an array
 * (EXEC results) → {"error": "..."}.
 */
static json_t *
reply_to_json(redisReply *reply)
{
	json_t	   *result;
	size_t		i;

	switch (reply->type)
	{
		case REDIS_REPLY_NIL:
			return json_null();
		case REDIS_REPLY_INTEGER:
			return json_integer(reply->integer);
		case REDIS_REPLY_STRING:
		case REDIS_REPLY_STATUS:
			pg_verify_mbstr(PG_UTF8, reply->str, reply->len, false);
			return json_stringn(reply->str, reply->len);
		case REDIS_REPLY_ERROR:
			pg_verify_mbstr(PG_UTF8, reply->str, reply->len, false);
			result = dc_json_object();
			json_object_set_new(result, "error", json_stringn(reply->str, reply->len));
			return result;
		case REDIS_REPLY_ARRAY:
			result = json_array();
			for (i = 0; i < reply->elements; i++)
				json_array_append_new(result, reply_to_json(reply->element[i]));
			return result;
	}
	return json_null();
}

/* ---------------------------------------------------------------------
 * Strings and keys
 * --------------------------------------------------------------------- */

/* GET; text or bytea depending on the key's type. */
static Datum
get_value(FunctionCallInfo fcinfo, bool binary)
{
	const char *op = "redis_get";
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("GET");
	redisReply *reply;

	dc_redis_arg_text(cmd, arg_varlena(fcinfo, 0, "key"));
	reply = dc_redis_run(server, op, cmd);
	if (!reply_is_value(server, op, reply))
		PG_RETURN_NULL();
	if (binary)
		PG_RETURN_BYTEA_P(reply_bytea(reply));
	PG_RETURN_TEXT_P(reply_text(reply));
}

PG_FUNCTION_INFO_V1(datacore_redis_get);
Datum
datacore_redis_get(PG_FUNCTION_ARGS)
{
	return get_value(fcinfo, false);
}

PG_FUNCTION_INFO_V1(datacore_redis_get_bytea);
Datum
datacore_redis_get_bytea(PG_FUNCTION_ARGS)
{
	return get_value(fcinfo, true);
}

/*
 * redis_set(key, value, ttl, only_if_absent, server) → boolean: SET with
 * PX when ttl is given and NX when only_if_absent; false when NX found the
 * key present.  Serves the text and the bytea variants.
 */
PG_FUNCTION_INFO_V1(datacore_redis_set);
Datum
datacore_redis_set(PG_FUNCTION_ARGS)
{
	const char *op = "redis_set";
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("SET");
	redisReply *reply;

	dc_redis_arg_text(cmd, arg_varlena(fcinfo, 0, "key"));
	dc_redis_arg_text(cmd, arg_varlena(fcinfo, 1, "value"));
	if (!PG_ARGISNULL(2))
	{
		dc_redis_arg_str(cmd, "PX");
		dc_redis_arg_int64(cmd, interval_ms(PG_GETARG_INTERVAL_P(2), "ttl"));
	}
	if (!PG_ARGISNULL(3) && PG_GETARG_BOOL(3))
		dc_redis_arg_str(cmd, "NX");
	reply = dc_redis_run(server, op, cmd);
	PG_RETURN_BOOL(reply->type == REDIS_REPLY_STATUS);
}

/* DEL of one key or of an array of keys → number of keys removed. */
PG_FUNCTION_INFO_V1(datacore_redis_del);
Datum
datacore_redis_del(PG_FUNCTION_ARGS)
{
	const char *op = "redis_del";
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("DEL");

	if (get_fn_expr_argtype(fcinfo->flinfo, 0) == TEXTARRAYOID)
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
		Datum	   *elems;
		bool	   *nulls;
		int			n,
					i;

		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		if (n == 0)
			PG_RETURN_INT64(0);
		for (i = 0; i < n; i++)
		{
			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("keys must not contain nulls")));
			dc_redis_arg_text(cmd, DatumGetTextPP(elems[i]));
		}
	}
	else
		dc_redis_arg_text(cmd, PG_GETARG_TEXT_PP(0));
	PG_RETURN_INT64(reply_integer(server, op, dc_redis_run(server, op, cmd)));
}

PG_FUNCTION_INFO_V1(datacore_redis_exists);
Datum
datacore_redis_exists(PG_FUNCTION_ARGS)
{
	const char *op = "redis_exists";
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("EXISTS");

	dc_redis_arg_text(cmd, PG_GETARG_TEXT_PP(0));
	PG_RETURN_BOOL(reply_integer(server, op, dc_redis_run(server, op, cmd)) > 0);
}

/* INCRBY → the new value. */
PG_FUNCTION_INFO_V1(datacore_redis_incr);
Datum
datacore_redis_incr(PG_FUNCTION_ARGS)
{
	const char *op = "redis_incr";
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("INCRBY");

	dc_redis_arg_text(cmd, PG_GETARG_TEXT_PP(0));
	dc_redis_arg_int64(cmd, PG_GETARG_INT64(1));
	PG_RETURN_INT64(reply_integer(server, op, dc_redis_run(server, op, cmd)));
}

/* PEXPIRE → false when the key does not exist. */
PG_FUNCTION_INFO_V1(datacore_redis_expire);
Datum
datacore_redis_expire(PG_FUNCTION_ARGS)
{
	const char *op = "redis_expire";
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("PEXPIRE");

	dc_redis_arg_text(cmd, PG_GETARG_TEXT_PP(0));
	dc_redis_arg_int64(cmd, interval_ms(PG_GETARG_INTERVAL_P(1), "ttl"));
	PG_RETURN_BOOL(reply_integer(server, op, dc_redis_run(server, op, cmd)) == 1);
}

/* PTTL as an interval; NULL when the key is missing or never expires. */
PG_FUNCTION_INFO_V1(datacore_redis_ttl);
Datum
datacore_redis_ttl(PG_FUNCTION_ARGS)
{
	const char *op = "redis_ttl";
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("PTTL");
	int64		ms;
	Interval   *result;

	dc_redis_arg_text(cmd, PG_GETARG_TEXT_PP(0));
	ms = reply_integer(server, op, dc_redis_run(server, op, cmd));
	if (ms < 0)
		PG_RETURN_NULL();
	result = palloc0(sizeof(Interval));
	result->time = ms * 1000;
	PG_RETURN_INTERVAL_P(result);
}

/* ---------------------------------------------------------------------
 * Lists
 * --------------------------------------------------------------------- */

/*
 * LPUSH/RPUSH of one value (text or bytea) or of a text[] → list length.
 */
static Datum
push(FunctionCallInfo fcinfo, const char *command, const char *op)
{
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd(command);

	dc_redis_arg_text(cmd, arg_varlena(fcinfo, 0, "key"));
	if (get_fn_expr_argtype(fcinfo->flinfo, 1) == TEXTARRAYOID)
	{
		ArrayType  *arr;
		Datum	   *elems;
		bool	   *nulls;
		int			n,
					i;

		arr = DatumGetArrayTypeP(PointerGetDatum(arg_varlena(fcinfo, 1, "elements")));
		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		if (n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("elements must not be empty")));
		for (i = 0; i < n; i++)
		{
			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("elements must not contain nulls")));
			dc_redis_arg_text(cmd, DatumGetTextPP(elems[i]));
		}
	}
	else
		dc_redis_arg_text(cmd, arg_varlena(fcinfo, 1, "value"));
	PG_RETURN_INT64(reply_integer(server, op, dc_redis_run(server, op, cmd)));
}

PG_FUNCTION_INFO_V1(datacore_redis_lpush);
Datum
datacore_redis_lpush(PG_FUNCTION_ARGS)
{
	return push(fcinfo, "LPUSH", "redis_lpush");
}

PG_FUNCTION_INFO_V1(datacore_redis_rpush);
Datum
datacore_redis_rpush(PG_FUNCTION_ARGS)
{
	return push(fcinfo, "RPUSH", "redis_rpush");
}

/* LPOP/RPOP → the element, NULL when the list is empty or missing. */
static Datum
pop(FunctionCallInfo fcinfo, const char *command, const char *op)
{
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd(command);
	redisReply *reply;

	dc_redis_arg_text(cmd, PG_GETARG_TEXT_PP(0));
	reply = dc_redis_run(server, op, cmd);
	if (!reply_is_value(server, op, reply))
		PG_RETURN_NULL();
	if (get_fn_expr_argtype(fcinfo->flinfo, 0) == BYTEAOID)
		PG_RETURN_BYTEA_P(reply_bytea(reply));
	PG_RETURN_TEXT_P(reply_text(reply));
}

PG_FUNCTION_INFO_V1(datacore_redis_lpop);
Datum
datacore_redis_lpop(PG_FUNCTION_ARGS)
{
	return pop(fcinfo, "LPOP", "redis_lpop");
}

PG_FUNCTION_INFO_V1(datacore_redis_rpop);
Datum
datacore_redis_rpop(PG_FUNCTION_ARGS)
{
	return pop(fcinfo, "RPOP", "redis_rpop");
}

/*
 * BLPOP key timeout → the element, or NULL when timeout seconds passed.
 * timeout 0 waits until an element arrives or the statement is cancelled
 * (statement_timeout included); the server's timeout_ms is added on top
 * of a finite timeout.
 */
PG_FUNCTION_INFO_V1(datacore_redis_blpop);
Datum
datacore_redis_blpop(PG_FUNCTION_ARGS)
{
	const char *op = "redis_blpop";
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("BLPOP");
	float8		timeout = PG_GETARG_FLOAT8(1);
	redisReply *reply;

	if (isnan(timeout) || timeout < 0 || timeout > 1e9)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must be between 0 and 1000000000 seconds")));
	dc_redis_arg_text(cmd, PG_GETARG_TEXT_PP(0));
	dc_redis_arg_str(cmd, psprintf("%.3f", timeout));
	reply = dc_redis_run_blocking(server, op, cmd,
								  timeout == 0 ? DC_REDIS_BLOCK_FOREVER :
								  (int64) (timeout * 1000));
	if (reply->type == REDIS_REPLY_NIL)
		PG_RETURN_NULL();
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
		reply->element[1]->type != REDIS_REPLY_STRING)
		dc_redis_unexpected(server, op, reply);
	PG_RETURN_TEXT_P(reply_text(reply->element[1]));
}

/* ---------------------------------------------------------------------
 * Hashes
 * --------------------------------------------------------------------- */

/* HSET key field value → true when the field is new. */
PG_FUNCTION_INFO_V1(datacore_redis_hset);
Datum
datacore_redis_hset(PG_FUNCTION_ARGS)
{
	const char *op = "redis_hset";
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("HSET");

	dc_redis_arg_text(cmd, arg_varlena(fcinfo, 0, "key"));
	dc_redis_arg_text(cmd, arg_varlena(fcinfo, 1, "field"));
	dc_redis_arg_text(cmd, arg_varlena(fcinfo, 2, "value"));
	PG_RETURN_BOOL(reply_integer(server, op, dc_redis_run(server, op, cmd)) > 0);
}

/*
 * HSET key with every member of a jsonb object → number of new fields.
 * String members are stored as their text, others as their JSON text.
 */
PG_FUNCTION_INFO_V1(datacore_redis_hset_jsonb);
Datum
datacore_redis_hset_jsonb(PG_FUNCTION_ARGS)
{
	const char *op = "redis_hset";
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("HSET");
	json_t	   *fields = dc_jsonb_to_json(PG_GETARG_JSONB_P(1), "fields");
	const char *name;
	json_t	   *value;

	if (!json_is_object(fields) || json_object_size(fields) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fields must be a non-empty JSON object")));
	dc_redis_arg_text(cmd, PG_GETARG_TEXT_PP(0));
	json_object_foreach(fields, name, value)
	{
		dc_redis_arg_str(cmd, name);
		if (json_is_string(value))
			dc_redis_arg(cmd, json_string_value(value), json_string_length(value));
		else if (json_is_null(value))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("value of field \"%s\" must not be null", name)));
		else
			dc_redis_arg_str(cmd, dc_json_dumps(value));
	}
	PG_RETURN_INT64(reply_integer(server, op, dc_redis_run(server, op, cmd)));
}

/* HGET → the value, NULL when the key or field is missing. */
PG_FUNCTION_INFO_V1(datacore_redis_hget);
Datum
datacore_redis_hget(PG_FUNCTION_ARGS)
{
	const char *op = "redis_hget";
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("HGET");
	redisReply *reply;

	dc_redis_arg_text(cmd, PG_GETARG_TEXT_PP(0));
	dc_redis_arg_text(cmd, PG_GETARG_TEXT_PP(1));
	reply = dc_redis_run(server, op, cmd);
	if (!reply_is_value(server, op, reply))
		PG_RETURN_NULL();
	if (get_fn_expr_argtype(fcinfo->flinfo, 0) == BYTEAOID)
		PG_RETURN_BYTEA_P(reply_bytea(reply));
	PG_RETURN_TEXT_P(reply_text(reply));
}

/* HGETALL → jsonb object of strings, {} when the key is missing. */
PG_FUNCTION_INFO_V1(datacore_redis_hgetall);
Datum
datacore_redis_hgetall(PG_FUNCTION_ARGS)
{
	const char *op = "redis_hgetall";
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("HGETALL");
	redisReply *reply;
	json_t	   *result = dc_json_object();
	size_t		i;

	dc_redis_arg_text(cmd, PG_GETARG_TEXT_PP(0));
	reply = dc_redis_run(server, op, cmd);
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0)
		dc_redis_unexpected(server, op, reply);
	for (i = 0; i < reply->elements; i += 2)
	{
		redisReply *f = reply->element[i];
		redisReply *v = reply->element[i + 1];

		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			dc_redis_unexpected(server, op, reply);
		pg_verify_mbstr(PG_UTF8, f->str, f->len, false);
		pg_verify_mbstr(PG_UTF8, v->str, v->len, false);
		json_object_set_new(result, pnstrdup(f->str, f->len),
							json_stringn(v->str, v->len));
	}
	PG_RETURN_JSONB_P(dc_json_to_jsonb(result));
}

/* ---------------------------------------------------------------------
 * Pub/sub and the general command
 * --------------------------------------------------------------------- */

/* PUBLISH → number of subscribers that received the message. */
PG_FUNCTION_INFO_V1(datacore_redis_publish);
Datum
datacore_redis_publish(PG_FUNCTION_ARGS)
{
	const char *op = "redis_publish";
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("PUBLISH");

	dc_redis_arg_text(cmd, arg_varlena(fcinfo, 0, "channel"));
	dc_redis_arg_text(cmd, arg_varlena(fcinfo, 1, "message"));
	PG_RETURN_INT64(reply_integer(server, op, dc_redis_run(server, op, cmd)));
}

/*
 * redis_command(args text[]) → jsonb: any command, its reply mapped by
 * reply_to_json.  An error reply to the command itself is raised.
 * Commands that change the connection's protocol state are refused: the
 * connection is shared by every later call in this session.
 */
PG_FUNCTION_INFO_V1(datacore_redis_command);
Datum
datacore_redis_command(PG_FUNCTION_ARGS)
{
	const char *op = "redis_command";
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd(NULL);
	ArrayType  *arr = DatumGetArrayTypeP(PointerGetDatum(arg_varlena(fcinfo, 0, "args")));
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;
	char	   *name;
	static const char *const refused[] = {
		"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR", "HELLO", "AUTH",
		"SELECT", "QUIT", "RESET", "CLIENT", "SYNC", "PSYNC", "REPLCONF", NULL
	};

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("args must name a command")));
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("args must not contain nulls")));
		dc_redis_arg_text(cmd, DatumGetTextPP(elems[i]));
	}
	name = text_to_cstring(DatumGetTextPP(elems[0]));
	for (i = 0; refused[i]; i++)
	{
		if (pg_strcasecmp(name, refused[i]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("redis_command cannot run %s", refused[i]),
					 errdetail("The command would change the state of the connection that later calls share."),
					 errhint("Connection settings belong in the server and user mapping options.")));
	}

	PG_RETURN_JSONB_P(dc_json_to_jsonb(reply_to_json(dc_redis_run(server, op, cmd))));
}
