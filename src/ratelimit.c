/*-------------------------------------------------------------------------
 *
 * ratelimit.c
 *		Rate limits kept in Redis: rate_limit() and rate_limit_check().
 *
 * A sliding-window log: each allowed call is a member of a sorted set
 * scored by Redis's own clock (microseconds), and a call is allowed while
 * fewer than the limit lie within the last window.  Unlike a fixed
 * per-minute counter, which lets twice the limit through across a minute
 * boundary, this allows at most N calls in ANY window of the given length,
 * at the price of one set member per allowed call (bounded by N per key).
 *
 * The check and the update are one Lua script, so concurrent callers
 * (other backends, other database hosts sharing the Redis) cannot both take
 * the last slot, and it costs one round trip: EVALSHA with the script's
 * SHA-1 computed here; on NOSCRIPT (a restarted or flushed Redis) SCRIPT
 * LOAD and EVALSHA go out together.  These are internal commands, sent
 * through redis_conn.c directly: the fence for user-supplied commands in
 * redis_command() is not on this path.
 *
 * When Redis cannot be reached (class 08: connection failure, timeout, its
 * circuit breaker open) the caller chooses: fail closed (the default,
 * calls are refused) or fail open (calls are let through), with a WARNING
 * either way so the outage shows in the log.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "common/sha1.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "breaker.h"
#include "redis.h"

/* Keys live under this prefix, so a limiter cannot touch other data. */
#define KEY_PREFIX		"datacore:ratelimit:"
#define MAX_LIMIT		1000000
#define MAX_WINDOW_MS	(INT64CONST(7) * 24 * 3600 * 1000)

/*
 * KEYS[1] the set; ARGV: limit, window (µs), member.  Returns {allowed,
 * calls in the window after this one, µs until a call is allowed again}.
 * The window is (now - window, now]: a call exactly one window after an
 * allowed one finds it expired.
 */
static const char script[] =
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
"local limit = tonumber(ARGV[1])\n"
"local window = tonumber(ARGV[2])\n"
"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)\n"
"local n = redis.call('ZCARD', KEYS[1])\n"
"if n < limit then\n"
"  redis.call('ZADD', KEYS[1], now, ARGV[3])\n"
"  redis.call('PEXPIRE', KEYS[1], math.floor(window / 1000) + 1)\n"
"  return {1, n + 1, 0}\n"
"end\n"
"local e = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')\n"
"return {0, n, tonumber(e[2]) + window - now}\n";

static char script_sha[SHA1_DIGEST_LENGTH * 2 + 1];

/* Members are unique per backend start and call. */
static uint64 member_prefix = 0;
static uint64 member_seq = 0;

typedef struct Verdict
{
	bool		reached;		/* false: Redis could not be reached */
	bool		allowed;
	int64		count;			/* calls in the window, this one included */
	int64		retry_after_us; /* denied: until the oldest call expires */
	char	   *cause;			/* !reached: the error's message */
} Verdict;

static const char *
get_script_sha(void)
{
	if (script_sha[0] == '\0')
	{
		pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA1);
		uint8		digest[SHA1_DIGEST_LENGTH];

		if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
			pg_cryptohash_update(ctx, (const uint8 *) script, strlen(script)) < 0 ||
			pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not compute the rate limit script's SHA-1")));
		pg_cryptohash_free(ctx);
		hex_encode((const char *) digest, sizeof(digest), script_sha);
		script_sha[sizeof(script_sha) - 1] = '\0';
	}
	return script_sha;
}

static DcRedisCmd *
evalsha_cmd(const char *key, int limit, int64 window_ms)
{
	DcRedisCmd *cmd = dc_redis_cmd("EVALSHA");
	StringInfoData k;

	if (member_prefix == 0 &&
		!pg_strong_random(&member_prefix, sizeof(member_prefix)))
		member_prefix = ((uint64) MyProcPid << 32) ^ (uint64) GetCurrentTimestamp();

	initStringInfo(&k);
	appendStringInfoString(&k, KEY_PREFIX);
	appendStringInfoString(&k, key);
	dc_redis_arg_str(cmd, get_script_sha());
	dc_redis_arg_str(cmd, "1");
	dc_redis_arg(cmd, k.data, k.len);
	dc_redis_arg_int64(cmd, limit);
	dc_redis_arg_int64(cmd, window_ms * 1000);
	dc_redis_arg_str(cmd, psprintf("%016" INT64_MODIFIER "x:" UINT64_FORMAT,
								   member_prefix, ++member_seq));
	return cmd;
}

static int64
reply_int(DcServer *server, const char *op, redisReply *r)
{
	if (r->type != REDIS_REPLY_INTEGER)
		dc_redis_unexpected(server, op, r);
	return (int64) r->integer;
}

/* Run the script once; NOSCRIPT loads it and runs it in the same trip. */
static void
run_script(DcServer *server, const char *op, const char *key, int limit,
		   int64 window_ms, Verdict *v)
{
	DcRedisCmd *cmds[2];
	redisReply *replies[2];
	redisReply *r;

	cmds[0] = evalsha_cmd(key, limit, window_ms);
	dc_redis_pipeline(server, op, 1, cmds, replies);
	r = replies[0];
	if (r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, "NOSCRIPT", 8) == 0)
	{
		cmds[0] = dc_redis_cmd("SCRIPT");
		dc_redis_arg_str(cmds[0], "LOAD");
		dc_redis_arg(cmds[0], script, strlen(script));
		cmds[1] = evalsha_cmd(key, limit, window_ms);
		dc_redis_pipeline(server, op, 2, cmds, replies);
		dc_redis_check_reply(server, op, replies[0]);
		r = replies[1];
	}
	dc_redis_check_reply(server, op, r);
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
		dc_redis_unexpected(server, op, r);
	v->reached = true;
	v->allowed = reply_int(server, op, r->element[0]) == 1;
	v->count = reply_int(server, op, r->element[1]);
	v->retry_after_us = reply_int(server, op, r->element[2]);
}

/* What ask() hands to run_script through dc_redis_try. */
typedef struct AskArgs
{
	DcServer   *server;
	const char *op;
	const char *key;
	int			limit;
	int64		window_ms;
	Verdict    *v;
} AskArgs;

static void
ask_redis(void *arg)
{
	AskArgs    *a = arg;

	run_script(a->server, a->op, a->key, a->limit, a->window_ms, a->v);
}

/*
 * Ask Redis; a connection failure becomes a verdict with reached = false,
 * any other error (a wrong password, a cancel) propagates.
 */
static void
ask(DcServer *server, const char *op, const char *key, int limit,
	int64 window_ms, Verdict *v)
{
	AskArgs		a = {server, op, key, limit, window_ms, v};
	char	   *cause = NULL;

	if (!dc_redis_try(ask_redis, &a, &cause))
	{
		v->reached = false;
		v->cause = cause;
	}
}

static int64
window_arg(Interval *iv)
{
	int64		ms;

	if (iv->month != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rate limit window must not contain months"),
				 errdetail("A month has no fixed length; give the window in days or less.")));
	ms = (iv->time + (int64) iv->day * USECS_PER_DAY) / 1000;
	if (ms < 1 || ms > MAX_WINDOW_MS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rate limit window must be between 1 millisecond and 7 days")));
	return ms;
}

/*
 * Shared by both SQL functions: (key, per_minute, server, window_size,
 * fail_open).  Returns the verdict; "down" calls get reached = false and a
 * WARNING naming the choice made.
 */
static Verdict
limit_call(FunctionCallInfo fcinfo, const char *op, int64 *window_ms,
		   int *limit)
{
	Verdict		v = {0};
	DcServer   *server;
	char	   *key;
	bool		fail_open;
	TimestampTz next;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(3) || PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s: key, per_minute, window_size and fail_open must not be null", op)));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("server name must not be null")));
	key = text_to_cstring(PG_GETARG_TEXT_PP(0));
	*limit = PG_GETARG_INT32(1);
	*window_ms = window_arg(PG_GETARG_INTERVAL_P(3));
	fail_open = PG_GETARG_BOOL(4);
	if (*limit < 1 || *limit > MAX_LIMIT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rate limit must be between 1 and %d calls per window", MAX_LIMIT)));

	server = dc_get_server(NameStr(*PG_GETARG_NAME(2)), DC_SERVICE_REDIS, op);
	ask(server, op, key, *limit, *window_ms, &v);
	if (!v.reached)
	{
		v.allowed = fail_open;
		ereport(WARNING,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 fail_open ?
				 errmsg("rate limiter on server \"%s\" is unavailable; the call was let through",
						server->servername) :
				 errmsg("rate limiter on server \"%s\" is unavailable; the call was refused",
						server->servername),
				 errdetail_internal("%s", v.cause),
				 errhint("fail_open chooses what happens while Redis cannot be reached.")));
		/* for a Retry-After: the breaker knows when Redis is tried next */
		if (dc_breaker_state(server->serverid, &next) != DC_BREAKER_CLOSED)
			v.retry_after_us = Max(next - GetCurrentTimestamp(), 0);
	}
	return v;
}

/* Whole seconds for Retry-After, rounded up, at least 1. */
static int64
retry_seconds(int64 us)
{
	return Max((us + USECS_PER_SEC - 1) / USECS_PER_SEC, 1);
}

static char *
window_text(int64 ms)
{
	return ms % 1000 == 0 ? psprintf(INT64_FORMAT " s", ms / 1000) :
		psprintf(INT64_FORMAT " ms", ms);
}

PG_FUNCTION_INFO_V1(datacore_rate_limit);

/*
 * rate_limit(key, per_minute, server, window_size, fail_open) → boolean:
 * whether this call is within the limit (and is then counted).
 */
Datum
datacore_rate_limit(PG_FUNCTION_ARGS)
{
	int64		window_ms;
	int			limit;
	Verdict		v = limit_call(fcinfo, "rate_limit", &window_ms, &limit);

	PG_RETURN_BOOL(v.allowed);
}

PG_FUNCTION_INFO_V1(datacore_rate_limit_check);

/*
 * rate_limit_check(...) → void: like rate_limit, but a refused call raises
 * the error PostgREST turns into its HTTP answer (SQLSTATE PGRST, the
 * message and detail as JSON): 429 with Retry-After when over the limit,
 * 503 when Redis is unavailable and fail_open is off.
 */
Datum
datacore_rate_limit_check(PG_FUNCTION_ARGS)
{
	int64		window_ms;
	int			limit;
	Verdict		v = limit_call(fcinfo, "rate_limit_check", &window_ms, &limit);

	if (v.allowed)
		PG_RETURN_VOID();
	if (!v.reached)
	{
		if (v.retry_after_us > 0)
			ereport(ERROR,
					(errcode(MAKE_SQLSTATE('P', 'G', 'R', 'S', 'T')),
					 errmsg_internal("{\"code\":\"DC503\",\"message\":\"rate limiter unavailable\",\"hint\":\"Retry later.\"}"),
					 errdetail_internal("{\"status\":503,\"headers\":{\"Retry-After\":\"" INT64_FORMAT "\"}}",
										retry_seconds(v.retry_after_us))));
		ereport(ERROR,
				(errcode(MAKE_SQLSTATE('P', 'G', 'R', 'S', 'T')),
				 errmsg_internal("{\"code\":\"DC503\",\"message\":\"rate limiter unavailable\",\"hint\":\"Retry later.\"}"),
				 errdetail_internal("{\"status\":503}")));
	}
	ereport(ERROR,
			(errcode(MAKE_SQLSTATE('P', 'G', 'R', 'S', 'T')),
			 errmsg_internal("{\"code\":\"DC429\",\"message\":\"rate limit exceeded\",\"details\":\"The limit is %d per %s.\",\"hint\":\"Retry after " INT64_FORMAT " s.\"}",
							 limit, window_text(window_ms), retry_seconds(v.retry_after_us)),
			 errdetail_internal("{\"status\":429,\"headers\":{\"Retry-After\":\"" INT64_FORMAT "\"}}",
								retry_seconds(v.retry_after_us))));
	PG_RETURN_VOID();
}
