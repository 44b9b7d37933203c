/*-------------------------------------------------------------------------
 *
 * fdw_redis_modify.c
 *		INSERT, UPDATE and DELETE on datacore_redis foreign tables.
 *
 * The old row of an UPDATE or DELETE comes from a whole-row junk column, so
 * no hidden key needs to be carried.  Redis has no rollback: a write is
 * done when the statement sends it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/explain.h"
#include "executor/executor.h"
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
	MemoryContext temp_cxt;
} RedisModifyState;

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

/* Apply the row's ttl column to a key: PEXPIRE, or PERSIST when NULL. */
static void
apply_ttl(RedisModifyState *ms, const char *op, const char *key, size_t klen,
		  Datum *values, bool *nulls, bool insert)
{
	DcRedisCmd *cmd;

	if (ms->info.ttl_att == 0)
		return;
	if (nulls[ms->info.ttl_att - 1])
	{
		if (insert)
			return;
		cmd = dc_redis_cmd("PERSIST");
		dc_redis_arg(cmd, key, klen);
	}
	else
	{
		Interval   *iv = DatumGetIntervalP(values[ms->info.ttl_att - 1]);
		double		ms_ttl = (double) iv->time / 1000.0 +
			((double) iv->day + (double) iv->month * DAYS_PER_MONTH) * 86400000.0;

		if (ms_ttl < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("ttl must be at least 1 millisecond")));
		cmd = dc_redis_cmd("PEXPIRE");
		dc_redis_arg(cmd, key, klen);
		dc_redis_arg_int64(cmd, (int64) ms_ttl);
	}
	(void) run_int(ms, cmd, op);
}

/* Insert one element (hash field, list value, set/zset member). */
static void
insert_elem(RedisModifyState *ms, const char *op, const char *key, size_t klen,
			Datum *values, bool *nulls)
{
	TableInfo  *info = &ms->info;
	size_t		elen,
				xlen;
	char	   *elem = col_bytes(ms, values, nulls, elem_att(info), &elen, false);
	DcRedisCmd *cmd;

	switch (info->type)
	{
		case TT_HASH:
			cmd = dc_redis_cmd("HSETNX");
			dc_redis_arg(cmd, key, klen);
			dc_redis_arg(cmd, elem, elen);
			{
				char	   *v = col_bytes(ms, values, nulls, info->value_att, &xlen, false);

				dc_redis_arg(cmd, v, xlen);
			}
			if (run_int(ms, cmd, op) == 0)
				duplicate(ms, "hash field", key, klen);
			break;
		case TT_LIST:
			cmd = dc_redis_cmd("RPUSH");
			dc_redis_arg(cmd, key, klen);
			dc_redis_arg(cmd, elem, elen);
			(void) run_int(ms, cmd, op);
			break;
		case TT_SET:
			cmd = dc_redis_cmd("SADD");
			dc_redis_arg(cmd, key, klen);
			dc_redis_arg(cmd, elem, elen);
			if (run_int(ms, cmd, op) == 0)
				duplicate(ms, "set member", key, klen);
			break;
		default:
			cmd = dc_redis_cmd("ZADD");
			dc_redis_arg(cmd, key, klen);
			dc_redis_arg_str(cmd, "NX");
			{
				char	   *s = col_bytes(ms, values, nulls, info->score_att, &xlen, false);

				dc_redis_arg(cmd, s, xlen);
			}
			dc_redis_arg(cmd, elem, elen);
			if (run_int(ms, cmd, op) == 0)
				duplicate(ms, "sorted set member", key, klen);
			break;
	}
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

/* HSET of a whole hash from a json object (DEL first when replacing). */
static void
write_whole_hash(RedisModifyState *ms, const char *op, const char *key, size_t klen,
				 Datum *values, bool *nulls, bool replace)
{
	size_t		vlen;
	char	   *v = col_bytes(ms, values, nulls, ms->info.value_att, &vlen, false);
	json_t	   *obj = dc_json_parse_input(pnstrdup(v, vlen), "value");
	const char *name;
	json_t	   *fv;
	DcRedisCmd *cmds[2];
	redisReply *replies[2];

	if (!json_is_object(obj) || json_object_size(obj) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("value of a hash row must be a non-empty JSON object")));
	cmds[0] = dc_redis_cmd("DEL");
	dc_redis_arg(cmds[0], key, klen);
	cmds[1] = dc_redis_cmd("HSET");
	dc_redis_arg(cmds[1], key, klen);
	json_object_foreach(obj, name, fv)
	{
		dc_redis_arg_str(cmds[1], name);
		if (json_is_string(fv))
			dc_redis_arg(cmds[1], json_string_value(fv), json_string_length(fv));
		else if (json_is_null(fv))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("value of field \"%s\" must not be null", name)));
		else
			dc_redis_arg_str(cmds[1], dc_json_dumps(fv));
	}
	if (replace)
	{
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
