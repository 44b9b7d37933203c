/*-------------------------------------------------------------------------
 *
 * fdw_redis.h
 *		Types shared by the Redis foreign-data wrapper's scan side
 *		(fdw_redis.c) and its write side (fdw_redis_modify.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DATACORE_FDW_REDIS_H
#define DATACORE_FDW_REDIS_H

#include "foreign/fdwapi.h"
#include "utils/rel.h"

typedef enum TableType
{
	TT_STRING,
	TT_HASH,
	TT_LIST,
	TT_SET,
	TT_ZSET
} TableType;

/* Column roles, found by name. */
typedef struct TableInfo
{
	Oid			serverid;
	TableType	type;
	char	   *prefix;
	int			scan_count;
	int			natts;
	AttrNumber	key_att;		/* 1-based, 0 when absent */
	AttrNumber	value_att;
	AttrNumber	field_att;
	AttrNumber	member_att;
	AttrNumber	score_att;
	AttrNumber	ttl_att;
	bool		whole_hash;		/* hash table without a field column */
} TableInfo;

/* Per-column conversion between Redis strings and Datums. */
typedef struct ColConv
{
	Oid			typid;
	FmgrInfo	in;
	Oid			ioparam;
	int32		typmod;
	FmgrInfo	out;
} ColConv;

/* in fdw_redis.c */
extern void dc_rfdw_table_info(Relation rel, TableInfo *info);
extern ColConv *dc_rfdw_make_conv(Relation rel);
extern char *dc_rfdw_from_datum(ColConv *conv, AttrNumber attno, Datum d,
								size_t *len);
extern char *dc_rfdw_full_key(TableInfo *info, const char *key, size_t keylen,
							  size_t *len);

/* in fdw_redis_modify.c: the FdwRoutine write callbacks */
extern void dcRedisAddForeignUpdateTargets(PlannerInfo *root, Index rtindex,
										   RangeTblEntry *target_rte,
										   Relation target_relation);
extern List *dcRedisPlanForeignModify(PlannerInfo *root, ModifyTable *plan,
									  Index resultRelation, int subplan_index);
extern void dcRedisBeginForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo,
									  List *fdw_private, int subplan_index, int eflags);
extern TupleTableSlot *dcRedisExecForeignInsert(EState *estate, ResultRelInfo *rinfo,
												TupleTableSlot *slot,
												TupleTableSlot *planSlot);
extern TupleTableSlot *dcRedisExecForeignUpdate(EState *estate, ResultRelInfo *rinfo,
												TupleTableSlot *slot,
												TupleTableSlot *planSlot);
extern TupleTableSlot *dcRedisExecForeignDelete(EState *estate, ResultRelInfo *rinfo,
												TupleTableSlot *slot,
												TupleTableSlot *planSlot);
#if PG_VERSION_NUM >= 140000
extern TupleTableSlot **dcRedisExecForeignBatchInsert(EState *estate, ResultRelInfo *rinfo,
													  TupleTableSlot **slots,
													  TupleTableSlot **planSlots,
													  int *numSlots);
extern int	dcRedisGetForeignModifyBatchSize(ResultRelInfo *rinfo);
#endif
extern void dcRedisEndForeignModify(EState *estate, ResultRelInfo *rinfo);
extern int	dcRedisIsForeignRelUpdatable(Relation rel);

#endif							/* DATACORE_FDW_REDIS_H */
