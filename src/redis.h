/*-------------------------------------------------------------------------
 *
 * redis.h
 *		Internal interface of the Redis client: the per-backend connection
 *		cache with interruptible non-blocking I/O (redis_conn.c), reply
 *		helpers shared by the SQL functions (redis.c) and the foreign table
 *		(fdw_redis.c).
 *
 * Every call names the resolved server (dc_get_server / _by_oid); the
 * connection is looked up from it, so callers never hold a connection
 * across statements.  Replies are owned by CurrentMemoryContext: they are
 * freed when that context is reset or deleted, including on ERROR.
 *
 * Commands whose name (or any argument that picks a command) comes from
 * the caller must pass dc_redis_check_commands (redis_fence.c) first; the
 * fixed commands of the typed functions need not.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DATACORE_REDIS_H
#define DATACORE_REDIS_H

#include <hiredis/hiredis.h>

#include "datacore.h"
#include "datatype/timestamp.h"
#include "utils/jsonb.h"

/* One command as a binary-safe argument vector. */
typedef struct DcRedisCmd
{
	int			argc;
	int			maxargs;
	const char **argv;
	size_t	   *argvlen;
} DcRedisCmd;

/* A request written but not yet read (redis_conn.c). */
typedef struct DcRedisPending DcRedisPending;

/* Wait forever for a blocking command (only interrupts end the wait). */
#define DC_REDIS_BLOCK_FOREVER	(-1)

/* in redis_conn.c */
extern DcRedisCmd *dc_redis_cmd(const char *name);
extern void dc_redis_arg(DcRedisCmd *cmd, const char *data, size_t len);
extern void dc_redis_arg_str(DcRedisCmd *cmd, const char *str);
extern void dc_redis_arg_text(DcRedisCmd *cmd, const text *t);
extern void dc_redis_arg_int64(DcRedisCmd *cmd, int64 value);

extern redisReply *dc_redis_run(DcServer *server, const char *operation,
								DcRedisCmd *cmd);
extern redisReply *dc_redis_run_blocking(DcServer *server, const char *operation,
										 DcRedisCmd *cmd, int64 block_ms);
extern DcRedisPending *dc_redis_send(DcServer *server, const char *operation,
									 int ncmds, DcRedisCmd **cmds, int64 block_ms);
extern redisReply **dc_redis_receive(DcRedisPending *pending);
extern void dc_redis_pipeline(DcServer *server, const char *operation,
							  int ncmds, DcRedisCmd **cmds, redisReply **replies);
extern void dc_redis_check_reply(DcServer *server, const char *operation,
								 redisReply *reply);
extern void dc_redis_raise_reply(DcServer *server, const char *operation,
								 redisReply *reply) pg_attribute_noreturn();
extern void dc_redis_raise_reply_note(DcServer *server, const char *operation,
									  redisReply *reply, const char *note) pg_attribute_noreturn();
extern void dc_redis_unexpected(DcServer *server, const char *operation,
								redisReply *reply) pg_attribute_noreturn();
extern int64 dc_redis_reply_integer(DcServer *server, const char *operation,
									redisReply *reply);
extern void dc_redis_reply_ok(DcServer *server, const char *operation,
							  redisReply *reply);

/* in redis_conn.c, for redis_fence.c */
extern redisReply *dc_redis_run_capped(DcServer *server, const char *operation,
									   DcRedisCmd *cmd, int64 max_bytes);
extern struct HTAB **dc_redis_fence_slot(DcServer *server, const char *operation);

/* in redis_reply.c */
extern void dc_redis_bound_reader(redisReader *reader, int64 max_bytes);
extern int	dc_redis_refused_array(void);
extern Jsonb *dc_redis_reply_jsonb(DcServer *server, redisReply *reply);
extern Jsonb *dc_redis_hash_jsonb(DcServer *server, const char *operation,
								  redisReply *reply);
extern text *dc_redis_reply_text(DcServer *server, const char *what,
								 redisReply *reply);

/* in redis_fence.c */
extern void dc_redis_check_commands(DcServer *server, const char *operation,
									int ncmds, DcRedisCmd **cmds);

/* in redis.c: a TTL argument as milliseconds (>= 1) */
extern int64 dc_redis_interval_ms(Interval *iv, const char *what);

/*
 * in redis_conn.c: run fn(arg), which talks to Redis, in a subtransaction;
 * false (and *cause, the message) when it failed for a connection-class
 * reason (refused, timeout, breaker open), any other error propagates.
 */
extern bool dc_redis_try(void (*fn) (void *), void *arg, char **cause);

#endif							/* DATACORE_REDIS_H */
