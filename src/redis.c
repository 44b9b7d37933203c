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
#include "miscadmin.h"
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
 * server_arg for a call that writes to Redis: refused in a READ ONLY
 * transaction (25006), as PostgreSQL's own writes are, so that a read-only
 * caller (a PostgREST GET, a hot standby) never changes remote state.
 */
static DcServer *
write_server_arg(FunctionCallInfo fcinfo, const char *op)
{
	dc_prevent_if_read_only(op);
	return server_arg(fcinfo, op);
}

/*
 * An interval as a positive number of milliseconds (months count 30 days,
 * as everywhere in PostgreSQL's interval arithmetic).
 */
int64
dc_redis_interval_ms(Interval *iv, const char *what)
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
reply_text(DcServer *server, redisReply *reply)
{
	return dc_redis_reply_text(server, "redis value", reply);
}

static bytea *
reply_bytea(redisReply *reply)
{
	bytea	   *result = palloc(VARHDRSZ + reply->len);

	SET_VARSIZE(result, VARHDRSZ + reply->len);
	memcpy(VARDATA(result), reply->str, reply->len);
	return result;
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

/* Run one command whose reply must be an integer. */
static int64
run_integer(DcServer *server, const char *op, DcRedisCmd *cmd)
{
	return dc_redis_reply_integer(server, op, dc_redis_run(server, op, cmd));
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
	PG_RETURN_TEXT_P(reply_text(server, reply));
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
	DcServer   *server = write_server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("SET");
	redisReply *reply;
	bool		nx = false;

	dc_redis_arg_text(cmd, arg_varlena(fcinfo, 0, "key"));
	dc_redis_arg_text(cmd, arg_varlena(fcinfo, 1, "value"));
	if (!PG_ARGISNULL(2))
	{
		dc_redis_arg_str(cmd, "PX");
		dc_redis_arg_int64(cmd, dc_redis_interval_ms(PG_GETARG_INTERVAL_P(2), "ttl"));
	}
	if (!PG_ARGISNULL(3) && PG_GETARG_BOOL(3))
	{
		dc_redis_arg_str(cmd, "NX");
		nx = true;
	}
	reply = dc_redis_run(server, op, cmd);
	/* nil means NX found the key; only OK is a success */
	if (nx && reply->type == REDIS_REPLY_NIL)
		PG_RETURN_BOOL(false);
	dc_redis_reply_ok(server, op, reply);
	PG_RETURN_BOOL(true);
}

/* DEL of one key or of an array of keys → number of keys removed. */
PG_FUNCTION_INFO_V1(datacore_redis_del);
Datum
datacore_redis_del(PG_FUNCTION_ARGS)
{
	const char *op = "redis_del";
	DcServer   *server = write_server_arg(fcinfo, op);
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
	PG_RETURN_INT64(run_integer(server, op, cmd));
}

PG_FUNCTION_INFO_V1(datacore_redis_exists);
Datum
datacore_redis_exists(PG_FUNCTION_ARGS)
{
	const char *op = "redis_exists";
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("EXISTS");

	dc_redis_arg_text(cmd, PG_GETARG_TEXT_PP(0));
	PG_RETURN_BOOL(run_integer(server, op, cmd) > 0);
}

/* INCRBY → the new value. */
PG_FUNCTION_INFO_V1(datacore_redis_incr);
Datum
datacore_redis_incr(PG_FUNCTION_ARGS)
{
	const char *op = "redis_incr";
	DcServer   *server = write_server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("INCRBY");

	dc_redis_arg_text(cmd, PG_GETARG_TEXT_PP(0));
	dc_redis_arg_int64(cmd, PG_GETARG_INT64(1));
	PG_RETURN_INT64(run_integer(server, op, cmd));
}

/* PEXPIRE → false when the key does not exist. */
PG_FUNCTION_INFO_V1(datacore_redis_expire);
Datum
datacore_redis_expire(PG_FUNCTION_ARGS)
{
	const char *op = "redis_expire";
	DcServer   *server = write_server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("PEXPIRE");

	dc_redis_arg_text(cmd, PG_GETARG_TEXT_PP(0));
	dc_redis_arg_int64(cmd, dc_redis_interval_ms(PG_GETARG_INTERVAL_P(1), "ttl"));
	PG_RETURN_BOOL(run_integer(server, op, cmd) == 1);
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
	ms = run_integer(server, op, cmd);
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
	DcServer   *server = write_server_arg(fcinfo, op);
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
	PG_RETURN_INT64(run_integer(server, op, cmd));
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
	DcServer   *server = write_server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd(command);
	redisReply *reply;

	dc_redis_arg_text(cmd, PG_GETARG_TEXT_PP(0));
	reply = dc_redis_run(server, op, cmd);
	if (!reply_is_value(server, op, reply))
		PG_RETURN_NULL();
	if (get_fn_expr_argtype(fcinfo->flinfo, 0) == BYTEAOID)
		PG_RETURN_BYTEA_P(reply_bytea(reply));
	PG_RETURN_TEXT_P(reply_text(server, reply));
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
	DcServer   *server = write_server_arg(fcinfo, op);
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
	PG_RETURN_TEXT_P(reply_text(server, reply->element[1]));
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
	DcServer   *server = write_server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("HSET");

	dc_redis_arg_text(cmd, arg_varlena(fcinfo, 0, "key"));
	dc_redis_arg_text(cmd, arg_varlena(fcinfo, 1, "field"));
	dc_redis_arg_text(cmd, arg_varlena(fcinfo, 2, "value"));
	PG_RETURN_BOOL(run_integer(server, op, cmd) > 0);
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
	DcServer   *server = write_server_arg(fcinfo, op);
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
	PG_RETURN_INT64(run_integer(server, op, cmd));
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
	PG_RETURN_TEXT_P(reply_text(server, reply));
}

/* HGETALL → jsonb object of strings, {} when the key is missing. */
PG_FUNCTION_INFO_V1(datacore_redis_hgetall);
Datum
datacore_redis_hgetall(PG_FUNCTION_ARGS)
{
	const char *op = "redis_hgetall";
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("HGETALL");

	dc_redis_arg_text(cmd, PG_GETARG_TEXT_PP(0));
	PG_RETURN_JSONB_P(dc_redis_hash_jsonb(server, op, dc_redis_run(server, op, cmd)));
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
	DcServer   *server = write_server_arg(fcinfo, op);
	DcRedisCmd *cmd = dc_redis_cmd("PUBLISH");

	dc_redis_arg_text(cmd, arg_varlena(fcinfo, 0, "channel"));
	dc_redis_arg_text(cmd, arg_varlena(fcinfo, 1, "message"));
	PG_RETURN_INT64(run_integer(server, op, cmd));
}

/*
 * One command from a text[] of its name and arguments; "what" names the
 * array in errors.
 */
static DcRedisCmd *
array_command(ArrayType *arr, const char *what)
{
	DcRedisCmd *cmd = dc_redis_cmd(NULL);
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must name a command", what)));
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain nulls", what)));
		dc_redis_arg_text(cmd, DatumGetTextPP(elems[i]));
	}
	return cmd;
}

/*
 * redis_command(args text[]) → jsonb: one command, its reply mapped by
 * dc_redis_reply_jsonb.  An error reply to the command itself is raised.
 * The command passes the fence first (redis_fence.c).
 */
PG_FUNCTION_INFO_V1(datacore_redis_command);
Datum
datacore_redis_command(PG_FUNCTION_ARGS)
{
	const char *op = "redis_command";
	DcServer   *server = server_arg(fcinfo, op);
	DcRedisCmd *cmd = array_command(DatumGetArrayTypeP(PointerGetDatum(arg_varlena(fcinfo, 0, "args"))),
									"args");

	dc_redis_check_commands(server, op, 1, &cmd);
	PG_RETURN_JSONB_P(dc_redis_reply_jsonb(server, dc_redis_run(server, op, cmd)));
}

/*
 * The commands of redis_transaction: a two-dimensional text array, one
 * command per row; rows are padded at the end with NULLs to the length of
 * the longest.  A one-dimensional array is one command.
 */
static DcRedisCmd **
transaction_commands(ArrayType *arr, int *ncmds)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				rows,
				width,
				r,
				i;
	DcRedisCmd **cmds;

	if (ARR_NDIM(arr) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("commands must not be empty")));
	if (ARR_NDIM(arr) > 2)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("commands must be a one- or two-dimensional array")));
	if (ARR_NDIM(arr) == 1)
	{
		*ncmds = 1;
		cmds = palloc(sizeof(DcRedisCmd *));
		cmds[0] = array_command(arr, "commands");
		return cmds;
	}
	rows = ARR_DIMS(arr)[0];
	width = ARR_DIMS(arr)[1];
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	cmds = palloc(sizeof(DcRedisCmd *) * rows);
	for (r = 0; r < rows; r++)
	{
		int			len = width;

		while (len > 0 && nulls[r * width + len - 1])
			len--;
		if (len == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("command %d of commands is empty", r + 1)));
		cmds[r] = dc_redis_cmd(NULL);
		for (i = 0; i < len; i++)
		{
			if (nulls[r * width + i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("command %d of commands has a null before its last argument", r + 1),
						 errhint("Only trailing nulls, padding a row to the width of the array, are allowed.")));
			dc_redis_arg_text(cmds[r], DatumGetTextPP(elems[r * width + i]));
		}
	}
	*ncmds = rows;
	return cmds;
}

/*
 * redis_transaction(commands text[][]) → jsonb: MULTI, the commands and
 * EXEC in one pipelined round trip, so no transaction state outlives the
 * call.  Returns EXEC's array of replies (errors inside as {"error": ...}).
 * A command Redis refuses while queueing makes EXEC discard everything
 * (EXECABORT): that refusal is raised.  Each command passes the fence.
 */
PG_FUNCTION_INFO_V1(datacore_redis_transaction);
Datum
datacore_redis_transaction(PG_FUNCTION_ARGS)
{
	const char *op = "redis_transaction";
	DcServer   *server = server_arg(fcinfo, op);
	ArrayType  *arr = DatumGetArrayTypeP(PointerGetDatum(arg_varlena(fcinfo, 0, "commands")));
	int			ncmds;
	DcRedisCmd **user = transaction_commands(arr, &ncmds);
	DcRedisCmd **cmds = palloc(sizeof(DcRedisCmd *) * (ncmds + 2));
	redisReply **replies = palloc(sizeof(redisReply *) * (ncmds + 2));
	redisReply *exec;
	int			i;

	dc_redis_check_commands(server, op, ncmds, user);
	cmds[0] = dc_redis_cmd("MULTI");
	memcpy(cmds + 1, user, sizeof(DcRedisCmd *) * ncmds);
	cmds[ncmds + 1] = dc_redis_cmd("EXEC");
	dc_redis_pipeline(server, op, ncmds + 2, cmds, replies);

	/* without MULTI the commands ran one by one: say so */
	if (replies[0]->type == REDIS_REPLY_ERROR)
		dc_redis_raise_reply_note(server, "MULTI of redis_transaction", replies[0],
								  "No transaction was started: the commands were run one by one, as far as Redis accepted them.");
	dc_redis_reply_ok(server, "MULTI of redis_transaction", replies[0]);

	exec = replies[ncmds + 1];
	for (i = 1; i <= ncmds; i++)
	{
		if (replies[i]->type == REDIS_REPLY_ERROR)
			dc_redis_raise_reply_note(server,
									  psprintf("command %d of redis_transaction", i),
									  replies[i],
									  exec->type == REDIS_REPLY_ERROR ?
									  "Redis discarded the transaction: no command of it ran." : NULL);
		if (replies[i]->type != REDIS_REPLY_STATUS || replies[i]->len != 6 ||
			memcmp(replies[i]->str, "QUEUED", 6) != 0)
			dc_redis_unexpected(server, psprintf("command %d of redis_transaction", i),
								replies[i]);
	}
	if (exec->type == REDIS_REPLY_ERROR)
		dc_redis_raise_reply_note(server, "EXEC of redis_transaction", exec,
								  "Redis discarded the transaction: no command of it ran.");
	if (exec->type == REDIS_REPLY_NIL)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("redis server \"%s\" aborted the transaction of redis_transaction",
						server->servername),
				 errdetail("EXEC answered nil: no command of the transaction ran.")));
	if (exec->type != REDIS_REPLY_ARRAY || exec->elements != (size_t) ncmds)
		dc_redis_unexpected(server, "EXEC of redis_transaction", exec);
	PG_RETURN_JSONB_P(dc_redis_reply_jsonb(server, exec));
}
