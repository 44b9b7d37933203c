/*-------------------------------------------------------------------------
 *
 * fdw_redis_modify.c
 *		INSERT, UPDATE and DELETE on datacore_redis foreign tables.
 *
 * The old row of an UPDATE or DELETE comes from a whole-row junk column, so
 * no hidden key needs to be carried.  Redis has no rollback: a write is
 * done when the statement sends it.
 *
 * INSERT without RETURNING or row triggers goes in batches of batch_size
 * rows (the executor's batch insert): every row of a batch is converted
 * first, then one pipelined round trip checks that none of its keys,
 * fields or members exists, then a second one writes the rows before the
 * first one that would fail, and that row's error is raised.  So a batch
 * writes exactly what one row at a time would have written.  UPDATE and
 * DELETE stay one round trip per row: the executor has no batch callback
 * for them and counts a row as changed only when its callback returns it
 * (a DELETE of a key that has gone in the meantime returns nothing), so a
 * write cannot be deferred without changing the row count or RETURNING.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "foreign/foreign.h"
#include "nodes/makefuncs.h"
#include "optimizer/appendinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "fdw_redis.h"
#include "json.h"
#include "redis.h"

typedef struct RedisModifyState
{
	DcServer   *server;
	TableInfo	info;
	ColConv    *conv;
	AttrNumber	wholerow_att;	/* junk column in the subplan, UPDATE/DELETE */
	TupleDesc	tupdesc;
	char	   *relname;
	int			batch_size;		/* rows per batch insert, table option */
	MemoryContext temp_cxt;
} RedisModifyState;

#define DEFAULT_BATCH_SIZE 256

/* ---------------------------------------------------------------------
 * Modifying
 * --------------------------------------------------------------------- */

static void duplicate(RedisModifyState *ms, const char *what, const char *key,
					  size_t klen) pg_attribute_noreturn();

void
dcRedisAddForeignUpdateTargets(PlannerInfo *root, Index rtindex,
							   RangeTblEntry *target_rte, Relation target_relation)
{
	Var		   *var = makeWholeRowVar(target_rte, rtindex, 0, false);

	add_row_identity_var(root, var, rtindex, "wholerow");
}

List *
dcRedisPlanForeignModify(PlannerInfo *root, ModifyTable *plan, Index resultRelation,
						 int subplan_index)
{
	return NIL;
}


/* The table's batch_size option (validated by options.c). */
static int
table_batch_size(Relation rel)
{
	const char *bs = dc_option_from_list(GetForeignTable(RelationGetRelid(rel))->options,
										 "batch_size");

	return bs ? atoi(bs) : DEFAULT_BATCH_SIZE;
}

void
dcRedisBeginForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo,
						  List *fdw_private, int subplan_index, int eflags)
{
	RedisModifyState *ms = palloc0(sizeof(RedisModifyState));
	Relation	rel = rinfo->ri_RelationDesc;

	rinfo->ri_FdwState = ms;
	dc_rfdw_table_info(rel, &ms->info);
	ms->tupdesc = RelationGetDescr(rel);
	ms->relname = pstrdup(RelationGetRelationName(rel));
	ms->batch_size = table_batch_size(rel);
	if (mtstate->operation != CMD_INSERT)
	{
		Plan	   *subplan = outerPlanState(mtstate)->plan;

		ms->wholerow_att = ExecFindJunkAttributeInTlist(subplan->targetlist, "wholerow");
		if (!AttributeNumberIsValid(ms->wholerow_att))
			elog(ERROR, "could not find junk wholerow column");
	}
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;
	ms->server = dc_get_server_by_oid(ms->info.serverid,
									  dc_modify_user(rinfo, mtstate->ps.state),
									  DC_SERVICE_REDIS, "a change to a redis foreign table");
	ms->conv = dc_rfdw_make_conv(rel);
	ms->temp_cxt = AllocSetContextCreate(CurrentMemoryContext, "datacore redis modify",
										 ALLOCSET_SMALL_SIZES);
}

/* A row's column as Redis bytes; NULL is refused unless allow_null. */
static char *
col_bytes(RedisModifyState *ms, Datum *values, bool *nulls, AttrNumber att,
		  size_t *len, bool allow_null)
{
	if (att == 0 || nulls[att - 1])
	{
		if (allow_null)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("column \"%s\" of foreign table \"%s\" must not be null",
						att ? NameStr(TupleDescAttr(ms->tupdesc, att - 1)->attname) : "?",
						ms->relname),
				 errdetail("Redis cannot store a NULL.")));
	}
	return dc_rfdw_from_datum(ms->conv, att, values[att - 1], len);
}

static char *
row_key(RedisModifyState *ms, Datum *values, bool *nulls, size_t *len)
{
	size_t		klen;
	char	   *k = col_bytes(ms, values, nulls, ms->info.key_att, &klen, false);

	return dc_rfdw_full_key(&ms->info, k, klen, len);
}

/* The element column: hash field, list value, set/zset member. */
static AttrNumber
elem_att(TableInfo *info)
{
	switch (info->type)
	{
		case TT_HASH:
			return info->field_att;
		case TT_LIST:
			return info->value_att;
		case TT_SET:
		case TT_ZSET:
			return info->member_att;
		default:
			return 0;
	}
}

/*
 * Run one command whose reply must be an integer (run_int) or OK (run_ok):
 * any other reply, a status QUEUED say, is an error, never a success.
 */
static int64
run_int(RedisModifyState *ms, DcRedisCmd *cmd, const char *op)
{
	return dc_redis_reply_integer(ms->server, op, dc_redis_run(ms->server, op, cmd));
}

static void
run_ok(RedisModifyState *ms, DcRedisCmd *cmd, const char *op)
{
	dc_redis_reply_ok(ms->server, op, dc_redis_run(ms->server, op, cmd));
}

static void
duplicate(RedisModifyState *ms, const char *what, const char *key, size_t klen)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNIQUE_VIOLATION),
			 errmsg("%s already exists in redis server \"%s\"", what, ms->server->servername),
			 errdetail_internal("Key: %s", dc_remote_excerpt(key, (int) klen, 200)),
			 errhint("INSERT and key changes never overwrite an existing entry; delete it first.")));
}

/*
 * The row's ttl in milliseconds into *ttl_ms; false when the column is
 * absent or NULL.  Less than a millisecond is an error.
 */
static bool
row_ttl(RedisModifyState *ms, Datum *values, bool *nulls, int64 *ttl_ms)
{
	Interval   *iv;
	double		ms_ttl;

	if (ms->info.ttl_att == 0 || nulls[ms->info.ttl_att - 1])
		return false;
	iv = DatumGetIntervalP(values[ms->info.ttl_att - 1]);
	ms_ttl = (double) iv->time / 1000.0 +
		((double) iv->day + (double) iv->month * DAYS_PER_MONTH) * 86400000.0;
	if (ms_ttl < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl must be at least 1 millisecond")));
	*ttl_ms = (int64) ms_ttl;
	return true;
}

/* PEXPIRE key ttl_ms */
static DcRedisCmd *
pexpire_cmd(const char *key, size_t klen, int64 ttl_ms)
{
	DcRedisCmd *cmd = dc_redis_cmd("PEXPIRE");

	dc_redis_arg(cmd, key, klen);
	dc_redis_arg_int64(cmd, ttl_ms);
	return cmd;
}

/* Apply the row's ttl column to a key: PEXPIRE, or PERSIST when NULL. */
static void
apply_ttl(RedisModifyState *ms, const char *op, const char *key, size_t klen,
		  Datum *values, bool *nulls, bool insert)
{
	DcRedisCmd *cmd;
	int64		ttl_ms;

	if (ms->info.ttl_att == 0)
		return;
	if (row_ttl(ms, values, nulls, &ttl_ms))
		cmd = pexpire_cmd(key, klen, ttl_ms);
	else
	{
		if (insert)
			return;
		cmd = dc_redis_cmd("PERSIST");
		dc_redis_arg(cmd, key, klen);
	}
	(void) run_int(ms, cmd, op);
}

/*
 * The command that inserts one element (hash field, list value, set/zset
 * member) without overwriting, and in *what the name of what a zero reply
 * means already exists (NULL for a list, which takes duplicates).  The
 * element's bytes go to *elem.
 */
static DcRedisCmd *
insert_elem_cmd(RedisModifyState *ms, const char *key, size_t klen,
				Datum *values, bool *nulls, const char **what,
				char **elem, size_t *elen)
{
	TableInfo  *info = &ms->info;
	size_t		xlen;
	char	   *x;
	DcRedisCmd *cmd;

	*elem = col_bytes(ms, values, nulls, elem_att(info), elen, false);
	switch (info->type)
	{
		case TT_HASH:
			x = col_bytes(ms, values, nulls, info->value_att, &xlen, false);
			cmd = dc_redis_cmd("HSETNX");
			dc_redis_arg(cmd, key, klen);
			dc_redis_arg(cmd, *elem, *elen);
			dc_redis_arg(cmd, x, xlen);
			*what = "hash field";
			break;
		case TT_LIST:
			cmd = dc_redis_cmd("RPUSH");
			dc_redis_arg(cmd, key, klen);
			dc_redis_arg(cmd, *elem, *elen);
			*what = NULL;
			break;
		case TT_SET:
			cmd = dc_redis_cmd("SADD");
			dc_redis_arg(cmd, key, klen);
			dc_redis_arg(cmd, *elem, *elen);
			*what = "set member";
			break;
		default:
			x = col_bytes(ms, values, nulls, info->score_att, &xlen, false);
			cmd = dc_redis_cmd("ZADD");
			dc_redis_arg(cmd, key, klen);
			dc_redis_arg_str(cmd, "NX");
			dc_redis_arg(cmd, x, xlen);
			dc_redis_arg(cmd, *elem, *elen);
			*what = "sorted set member";
			break;
	}
	return cmd;
}

/* Insert one element (hash field, list value, set/zset member). */
static void
insert_elem(RedisModifyState *ms, const char *op, const char *key, size_t klen,
			Datum *values, bool *nulls)
{
	const char *what;
	char	   *elem;
	size_t		elen;
	DcRedisCmd *cmd = insert_elem_cmd(ms, key, klen, values, nulls, &what,
									  &elem, &elen);

	if (run_int(ms, cmd, op) == 0 && what)
		duplicate(ms, what, key, klen);
}

static void
delete_elem(RedisModifyState *ms, const char *op, const char *key, size_t klen,
			Datum *values, bool *nulls)
{
	size_t		elen;
	char	   *elem = col_bytes(ms, values, nulls, elem_att(&ms->info), &elen, false);
	DcRedisCmd *cmd;

	switch (ms->info.type)
	{
		case TT_HASH:
			cmd = dc_redis_cmd("HDEL");
			break;
		case TT_LIST:
			cmd = dc_redis_cmd("LREM");
			break;
		case TT_SET:
			cmd = dc_redis_cmd("SREM");
			break;
		default:
			cmd = dc_redis_cmd("ZREM");
			break;
	}
	dc_redis_arg(cmd, key, klen);
	if (ms->info.type == TT_LIST)
		dc_redis_arg_str(cmd, "1");
	dc_redis_arg(cmd, elem, elen);
	(void) run_int(ms, cmd, op);
}

/* HSET of a whole hash from the row's value, a non-empty json object. */
static DcRedisCmd *
whole_hash_cmd(RedisModifyState *ms, const char *key, size_t klen,
			   Datum *values, bool *nulls)
{
	size_t		vlen;
	char	   *v = col_bytes(ms, values, nulls, ms->info.value_att, &vlen, false);
	json_t	   *obj = dc_json_parse_input(pnstrdup(v, vlen), "value");
	const char *name;
	json_t	   *fv;
	DcRedisCmd *cmd;

	if (!json_is_object(obj) || json_object_size(obj) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("value of a hash row must be a non-empty JSON object")));
	cmd = dc_redis_cmd("HSET");
	dc_redis_arg(cmd, key, klen);
	json_object_foreach(obj, name, fv)
	{
		dc_redis_arg_str(cmd, name);
		if (json_is_string(fv))
			dc_redis_arg(cmd, json_string_value(fv), json_string_length(fv));
		else if (json_is_null(fv))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("value of field \"%s\" must not be null", name)));
		else
			dc_redis_arg_str(cmd, dc_json_dumps(fv));
	}
	return cmd;
}

/* HSET of a whole hash from a json object (DEL first when replacing). */
static void
write_whole_hash(RedisModifyState *ms, const char *op, const char *key, size_t klen,
				 Datum *values, bool *nulls, bool replace)
{
	DcRedisCmd *cmds[2];
	redisReply *replies[2];

	cmds[1] = whole_hash_cmd(ms, key, klen, values, nulls);
	if (replace)
	{
		cmds[0] = dc_redis_cmd("DEL");
		dc_redis_arg(cmds[0], key, klen);
		/* MULTI/EXEC would be atomic; a pipeline keeps it to one trip */
		dc_redis_pipeline(ms->server, op, 2, cmds, replies);
		(void) dc_redis_reply_integer(ms->server, op, replies[0]);
		(void) dc_redis_reply_integer(ms->server, op, replies[1]);
	}
	else
		(void) run_int(ms, cmds[1], op);
}

TupleTableSlot *
dcRedisExecForeignInsert(EState *estate, ResultRelInfo *rinfo,
						 TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	RedisModifyState *ms = rinfo->ri_FdwState;
	const char *op = "INSERT into a redis foreign table";
	MemoryContext old = MemoryContextSwitchTo(ms->temp_cxt);
	size_t		klen;
	char	   *key;
	DcRedisCmd *cmd;
	redisReply *r;

	slot_getallattrs(slot);
	key = row_key(ms, slot->tts_values, slot->tts_isnull, &klen);
	switch (ms->info.type)
	{
		case TT_STRING:
			{
				size_t		vlen;
				char	   *v = col_bytes(ms, slot->tts_values, slot->tts_isnull,
										  ms->info.value_att, &vlen, false);

				cmd = dc_redis_cmd("SET");
				dc_redis_arg(cmd, key, klen);
				dc_redis_arg(cmd, v, vlen);
				dc_redis_arg_str(cmd, "NX");
				r = dc_redis_run(ms->server, op, cmd);
				/* nil: NX found the key */
				if (r->type == REDIS_REPLY_NIL)
					duplicate(ms, "key", key, klen);
				dc_redis_reply_ok(ms->server, op, r);
				break;
			}
		case TT_HASH:
			if (ms->info.whole_hash)
			{
				cmd = dc_redis_cmd("EXISTS");
				dc_redis_arg(cmd, key, klen);
				if (run_int(ms, cmd, op) > 0)
					duplicate(ms, "key", key, klen);
				write_whole_hash(ms, op, key, klen, slot->tts_values, slot->tts_isnull, false);
				break;
			}
			/* FALLTHROUGH */
		default:
			insert_elem(ms, op, key, klen, slot->tts_values, slot->tts_isnull);
			break;
	}
	apply_ttl(ms, op, key, klen, slot->tts_values, slot->tts_isnull, true);
	MemoryContextSwitchTo(old);
	MemoryContextReset(ms->temp_cxt);
	return slot;
}

#if PG_VERSION_NUM >= 140000

/* One row of a batch insert, converted. */
typedef struct BatchRow
{
	int			index;			/* position in the batch */
	char	   *key;
	size_t		klen;
	char	   *elem;			/* field or member; NULL for a key-level table */
	size_t		elen;
	DcRedisCmd *write;
	DcRedisCmd *ttl;			/* PEXPIRE or NULL */
} BatchRow;

/* Order by (key, element), then position: equal neighbours are duplicates. */
static int
batch_row_cmp(const void *a, const void *b)
{
	const BatchRow *x = *(BatchRow *const *) a;
	const BatchRow *y = *(BatchRow *const *) b;
	int			c;

	if (x->klen != y->klen)
		return x->klen < y->klen ? -1 : 1;
	if ((c = memcmp(x->key, y->key, x->klen)) != 0)
		return c;
	if (x->elen != y->elen)
		return x->elen < y->elen ? -1 : 1;
	if (x->elen && (c = memcmp(x->elem, y->elem, x->elen)) != 0)
		return c;
	return x->index - y->index;
}

/* The first row that repeats an earlier row's key (or key and element), or n. */
static int
first_repeat(BatchRow *rows, int n)
{
	BatchRow  **sorted = palloc(sizeof(BatchRow *) * n);
	int			first = n;
	int			i;

	for (i = 0; i < n; i++)
		sorted[i] = &rows[i];
	qsort(sorted, n, sizeof(BatchRow *), batch_row_cmp);
	for (i = 1; i < n; i++)
		if (sorted[i]->klen == sorted[i - 1]->klen &&
			sorted[i]->elen == sorted[i - 1]->elen &&
			memcmp(sorted[i]->key, sorted[i - 1]->key, sorted[i]->klen) == 0 &&
			(sorted[i]->elen == 0 ||
			 memcmp(sorted[i]->elem, sorted[i - 1]->elem, sorted[i]->elen) == 0))
			first = Min(first, sorted[i]->index);
	return first;
}

/*
 * Does the row's key (or its field or member) exist, by its check reply?
 * An error reply or a reply of another type is raised.
 */
static bool
check_says_exists(RedisModifyState *ms, const char *op, redisReply *r)
{
	if (ms->info.type == TT_ZSET)
	{
		/* ZSCORE: nil when absent, the score when present */
		dc_redis_check_reply(ms->server, op, r);
		if (r->type == REDIS_REPLY_NIL)
			return false;
		if (r->type != REDIS_REPLY_STRING)
			dc_redis_unexpected(ms->server, op, r);
		return true;
	}
	return dc_redis_reply_integer(ms->server, op, r) > 0;
}

/*
 * The first row of the batch that exists already in Redis, or whose check
 * fails (*bad: its reply), or n.  Key-level tables ask one EXISTS for the
 * whole batch and look row by row only when it counts a key.
 */
static int
first_existing(RedisModifyState *ms, const char *op, BatchRow *rows, int n,
			   redisReply **bad)
{
	DcRedisCmd **cmds = palloc(sizeof(DcRedisCmd *) * n);
	redisReply **replies = palloc(sizeof(redisReply *) * n);
	bool		key_level = ms->info.type == TT_STRING || ms->info.whole_hash;
	int			i;

	*bad = NULL;
	if (n == 0)
		return 0;
	if (key_level)
	{
		DcRedisCmd *all = dc_redis_cmd("EXISTS");

		for (i = 0; i < n; i++)
			dc_redis_arg(all, rows[i].key, rows[i].klen);
		if (dc_redis_reply_integer(ms->server, op,
								   dc_redis_run(ms->server, op, all)) == 0)
			return n;
	}
	for (i = 0; i < n; i++)
	{
		const char *name = key_level ? "EXISTS" :
			ms->info.type == TT_HASH ? "HEXISTS" :
			ms->info.type == TT_SET ? "SISMEMBER" : "ZSCORE";

		cmds[i] = dc_redis_cmd(name);
		dc_redis_arg(cmds[i], rows[i].key, rows[i].klen);
		if (!key_level)
			dc_redis_arg(cmds[i], rows[i].elem, rows[i].elen);
	}
	dc_redis_pipeline(ms->server, op, n, cmds, replies);
	for (i = 0; i < n; i++)
	{
		if (replies[i]->type == REDIS_REPLY_ERROR)
		{
			*bad = replies[i];
			return i;
		}
		if (check_says_exists(ms, op, replies[i]))
			return i;
	}
	return n;
}

/*
 * Write rows [0, n) in one pipelined round trip and check every reply:
 * a write that finds its key, field or member after all (another client
 * got there between the check and the write) is a duplicate.
 */
static void
write_rows(RedisModifyState *ms, const char *op, const char *what,
		   BatchRow *rows, int n)
{
	DcRedisCmd **cmds = palloc(sizeof(DcRedisCmd *) * n * 2);
	redisReply **replies = palloc(sizeof(redisReply *) * n * 2);
	int			ncmds = 0;
	int			i,
				j;

	for (i = 0; i < n; i++)
	{
		cmds[ncmds++] = rows[i].write;
		if (rows[i].ttl)
			cmds[ncmds++] = rows[i].ttl;
	}
	dc_redis_pipeline(ms->server, op, ncmds, cmds, replies);
	for (i = 0, j = 0; i < n; i++)
	{
		redisReply *r = replies[j++];

		if (ms->info.type == TT_STRING)
		{
			if (r->type == REDIS_REPLY_NIL)
				duplicate(ms, what, rows[i].key, rows[i].klen);
			dc_redis_reply_ok(ms->server, op, r);
		}
		else if (dc_redis_reply_integer(ms->server, op, r) == 0 && !ms->info.whole_hash)
			duplicate(ms, what, rows[i].key, rows[i].klen);
		if (rows[i].ttl)
			(void) dc_redis_reply_integer(ms->server, op, replies[j++]);
	}
}

/*
 * Batch insert: convert every row, find the first that would fail (a
 * repeat within the batch, an existing key, field or member, an error
 * reply to its check), write the rows before it in one round trip, then
 * raise that row's error.  Lists are never batched (batch size 1).
 */
TupleTableSlot **
dcRedisExecForeignBatchInsert(EState *estate, ResultRelInfo *rinfo,
							  TupleTableSlot **slots, TupleTableSlot **planSlots,
							  int *numSlots)
{
	RedisModifyState *ms = rinfo->ri_FdwState;
	const char *op = "INSERT into a redis foreign table";
	MemoryContext old = MemoryContextSwitchTo(ms->temp_cxt);
	int			n = *numSlots;
	BatchRow   *rows = palloc0(sizeof(BatchRow) * n);
	const char *what = "key";
	redisReply *bad;
	int			fail;
	int			i;

	for (i = 0; i < n; i++)
	{
		BatchRow   *row = &rows[i];
		Datum	   *values;
		bool	   *nulls;
		int64		ttl_ms;

		slot_getallattrs(slots[i]);
		values = slots[i]->tts_values;
		nulls = slots[i]->tts_isnull;
		row->index = i;
		row->key = row_key(ms, values, nulls, &row->klen);
		if (ms->info.type == TT_STRING)
		{
			size_t		vlen;
			char	   *v = col_bytes(ms, values, nulls, ms->info.value_att, &vlen, false);

			row->write = dc_redis_cmd("SET");
			dc_redis_arg(row->write, row->key, row->klen);
			dc_redis_arg(row->write, v, vlen);
			dc_redis_arg_str(row->write, "NX");
			/* in the same command, so a lost race leaves the other key's ttl */
			if (row_ttl(ms, values, nulls, &ttl_ms))
			{
				dc_redis_arg_str(row->write, "PX");
				dc_redis_arg_int64(row->write, ttl_ms);
			}
			continue;
		}
		if (ms->info.whole_hash)
			row->write = whole_hash_cmd(ms, row->key, row->klen, values, nulls);
		else
			row->write = insert_elem_cmd(ms, row->key, row->klen, values, nulls,
										 &what, &row->elem, &row->elen);
		if (row_ttl(ms, values, nulls, &ttl_ms))
			row->ttl = pexpire_cmd(row->key, row->klen, ttl_ms);
	}

	fail = first_repeat(rows, n);
	i = first_existing(ms, op, rows, fail, &bad);
	if (i < fail)
		fail = i;
	else
		bad = NULL;
	if (fail > 0)
		write_rows(ms, op, what, rows, fail);
	if (bad)
		dc_redis_raise_reply(ms->server, op, bad);
	if (fail < n)
		duplicate(ms, what, rows[fail].key, rows[fail].klen);

	MemoryContextSwitchTo(old);
	MemoryContextReset(ms->temp_cxt);
	return slots;
}

/*
 * Rows per batch insert: batch_size, or 1 where a row must be sent before
 * the next one is seen (RETURNING, row triggers) or where a check cannot
 * tell beforehand that the write will succeed (lists).
 */
int
dcRedisGetForeignModifyBatchSize(ResultRelInfo *rinfo)
{
	RedisModifyState *ms = rinfo->ri_FdwState;

	if (ms == NULL || ms->info.type == TT_LIST ||
		rinfo->ri_projectReturning != NULL ||
		(rinfo->ri_TrigDesc &&
		 (rinfo->ri_TrigDesc->trig_insert_before_row ||
		  rinfo->ri_TrigDesc->trig_insert_after_row)))
		return 1;
	return ms->batch_size;
}
#endif

/* The old row, from the whole-row junk column. */
static void
old_row(RedisModifyState *ms, TupleTableSlot *planSlot, Datum *values, bool *nulls)
{
	bool		isnull;
	Datum		d = ExecGetJunkAttribute(planSlot, ms->wholerow_att, &isnull);
	HeapTupleHeader th;
	HeapTupleData tuple;

	if (isnull)
		elog(ERROR, "wholerow is NULL");
	th = DatumGetHeapTupleHeader(d);
	tuple.t_len = HeapTupleHeaderGetDatumLength(th);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = th;
	heap_deform_tuple(&tuple, ms->tupdesc, values, nulls);
}

static bool
same_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

TupleTableSlot *
dcRedisExecForeignUpdate(EState *estate, ResultRelInfo *rinfo,
						 TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	RedisModifyState *ms = rinfo->ri_FdwState;
	const char *op = "UPDATE of a redis foreign table";
	MemoryContext old = MemoryContextSwitchTo(ms->temp_cxt);
	int			natts = ms->tupdesc->natts;
	Datum	   *ov = palloc(sizeof(Datum) * natts);
	bool	   *on = palloc(sizeof(bool) * natts);
	Datum	   *nv;
	bool	   *nn;
	size_t		oklen,
				nklen;
	char	   *okey,
			   *nkey;
	bool		key_changed;
	DcRedisCmd *cmd;

	old_row(ms, planSlot, ov, on);
	slot_getallattrs(slot);
	nv = slot->tts_values;
	nn = slot->tts_isnull;
	okey = row_key(ms, ov, on, &oklen);
	nkey = row_key(ms, nv, nn, &nklen);
	key_changed = !same_bytes(okey, oklen, nkey, nklen);

	if (ms->info.type == TT_STRING || ms->info.whole_hash)
	{
		if (key_changed)
		{
			cmd = dc_redis_cmd("RENAMENX");
			dc_redis_arg(cmd, okey, oklen);
			dc_redis_arg(cmd, nkey, nklen);
			if (run_int(ms, cmd, op) == 0)
				duplicate(ms, "key", nkey, nklen);
		}
		if (ms->info.whole_hash)
			write_whole_hash(ms, op, nkey, nklen, nv, nn, true);
		else
		{
			size_t		vlen;
			char	   *v = col_bytes(ms, nv, nn, ms->info.value_att, &vlen, false);

			cmd = dc_redis_cmd("SET");
			dc_redis_arg(cmd, nkey, nklen);
			dc_redis_arg(cmd, v, vlen);
			dc_redis_arg_str(cmd, "KEEPTTL");
			run_ok(ms, cmd, op);
		}
	}
	else
	{
		size_t		oelen,
					nelen;
		char	   *oe = col_bytes(ms, ov, on, elem_att(&ms->info), &oelen, false);
		char	   *ne = col_bytes(ms, nv, nn, elem_att(&ms->info), &nelen, false);

		if (!key_changed && same_bytes(oe, oelen, ne, nelen))
		{
			/* same element: only its value or score can change */
			if (ms->info.type == TT_HASH || ms->info.type == TT_ZSET)
			{
				size_t		xlen;
				char	   *x;

				cmd = dc_redis_cmd(ms->info.type == TT_HASH ? "HSET" : "ZADD");
				dc_redis_arg(cmd, nkey, nklen);
				if (ms->info.type == TT_HASH)
				{
					x = col_bytes(ms, nv, nn, ms->info.value_att, &xlen, false);
					dc_redis_arg(cmd, ne, nelen);
					dc_redis_arg(cmd, x, xlen);
				}
				else
				{
					x = col_bytes(ms, nv, nn, ms->info.score_att, &xlen, false);
					dc_redis_arg(cmd, x, xlen);
					dc_redis_arg(cmd, ne, nelen);
				}
				(void) run_int(ms, cmd, op);
			}
		}
		else
		{
			/* insert first, so a duplicate leaves the old element alone */
			insert_elem(ms, op, nkey, nklen, nv, nn);
			delete_elem(ms, op, okey, oklen, ov, on);
		}
	}
	apply_ttl(ms, op, nkey, nklen, nv, nn, false);
	MemoryContextSwitchTo(old);
	MemoryContextReset(ms->temp_cxt);
	return slot;
}

TupleTableSlot *
dcRedisExecForeignDelete(EState *estate, ResultRelInfo *rinfo,
						 TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	RedisModifyState *ms = rinfo->ri_FdwState;
	const char *op = "DELETE from a redis foreign table";
	MemoryContext old;
	size_t		klen;
	char	   *key;

	/* the old row is also what RETURNING shows, so build it in the slot */
	ExecClearTuple(slot);
	old_row(ms, planSlot, slot->tts_values, slot->tts_isnull);
	ExecStoreVirtualTuple(slot);

	old = MemoryContextSwitchTo(ms->temp_cxt);
	key = row_key(ms, slot->tts_values, slot->tts_isnull, &klen);
	if (ms->info.type == TT_STRING || ms->info.whole_hash)
	{
		DcRedisCmd *cmd = dc_redis_cmd("DEL");

		dc_redis_arg(cmd, key, klen);
		if (run_int(ms, cmd, op) == 0)
		{
			MemoryContextSwitchTo(old);
			MemoryContextReset(ms->temp_cxt);
			return NULL;
		}
	}
	else
		delete_elem(ms, op, key, klen, slot->tts_values, slot->tts_isnull);
	MemoryContextSwitchTo(old);
	MemoryContextReset(ms->temp_cxt);
	return slot;
}

void
dcRedisEndForeignModify(EState *estate, ResultRelInfo *rinfo)
{
}

int
dcRedisIsForeignRelUpdatable(Relation rel)
{
	return (1 << CMD_INSERT) | (1 << CMD_UPDATE) | (1 << CMD_DELETE);
}
