/*-------------------------------------------------------------------------
 *
 * fdw_qdrant.h
 *		Types shared by the Qdrant foreign-data wrapper's callbacks
 *		(fdw_qdrant.c) and its pushdown code (qdrant_pushdown.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DATACORE_FDW_QDRANT_H
#define DATACORE_FDW_QDRANT_H

#include "nodes/execnodes.h"
#include "nodes/pathnodes.h"

#include "qdrant.h"

/* What a column of the foreign table stands for. */
typedef enum QdColKind
{
	QD_COL_NONE,				/* dropped */
	QD_COL_ID,
	QD_COL_VECTOR,
	QD_COL_PAYLOAD,
	QD_COL_SCORE,
	QD_COL_KEY					/* a payload key */
} QdColKind;

typedef struct QdColumn
{
	QdColKind	kind;
	char	   *name;
	char	   *key;			/* QD_COL_KEY: payload key */
	Oid			typid;
	int32		typmod;
} QdColumn;

/* A foreign table's options and column roles. */
typedef struct QdTable
{
	Oid			relid;
	char	   *relname;
	Oid			serverid;
	char	   *collection;
	int			batch_size;
	int			page_size;
	int			natts;
	QdColumn   *cols;			/* indexed by attnum - 1 */
	AttrNumber	id_att;			/* 0 when the table has no such column */
	AttrNumber	vector_att;
	AttrNumber	payload_att;
	AttrNumber	score_att;
} QdTable;

/*
 * Conditions sent to Qdrant.  Each is a List (kind, key, strategy,
 * expression index into fdw_exprs) in the plan.
 */
typedef enum QdCondKind
{
	QC_ID_EQ,					/* id = value */
	QC_ID_ANY,					/* id = ANY(array) */
	QC_CONTAINS,				/* payload @> jsonb */
	QC_TEXT_EQ,					/* text of payload key = value */
	QC_NUMBER,					/* numeric payload key <op> value */
	QC_BOOL_EQ,					/* boolean payload key = value */
	QC_NEAR						/* vector @@ query vector */
} QdCondKind;

/* Planner state kept in baserel->fdw_private. */
typedef struct QdPlanInfo
{
	QdTable    *table;
	List	   *conds;			/* Lists as above */
	List	   *exprs;			/* the values, in order */
	List	   *exact;			/* RestrictInfos not to check again */
	bool		near;
	bool		all_remote;		/* no condition left to check locally */
	bool		need_payload;
	bool		need_vector;
	int			nids;			/* ids named by id conditions, -1 if none */
} QdPlanInfo;

/* Indexes into a ForeignScan's fdw_private. */
enum
{
	FSP_CONDS,
	FSP_NEED_PAYLOAD,
	FSP_NEED_VECTOR,
	FSP_LIMIT_HINT,
	FSP_DIRECTION,
	FSP_NEAR_TEXT
};

typedef struct QdScanState
{
	DcServer   *server;
	QdTable    *table;
	char	   *operation;
	List	   *conds;
	List	   *exprstates;
	bool		need_payload;
	bool		need_vector;
	bool		near;
	int			limit_hint;		/* size of the first page, 0 = page_size */
	int			direction;		/* 1: scores must not rise, -1: not fall */
	char	   *near_text;		/* the query vector expression, for EXPLAIN */

	MemoryContext scan_cxt;		/* lives as long as the scan */
	MemoryContext req_cxt;		/* filter and query vector, until rescan */
	MemoryContext page_cxt;		/* one reply page */
	MemoryContext row_cxt;		/* one row's values */

	bool		started;
	bool		more;			/* another page may follow */
	json_t	   *filter;			/* in req_cxt */
	json_t	   *query;
	bool		has_next;		/* scroll: next_text is where the next page starts */
	char		next_text[48];
	int64		consumed;		/* query: points already returned */
	json_t	   *points;			/* current page, in page_cxt */
	size_t		pos;
	int			requests;
	bool		have_score;
	float4		last_score;
} QdScanState;

/* in fdw_qdrant.c */
extern bool dc_qd_is_text_type(Oid typid);
extern bool dc_qd_is_number_type(Oid typid);

/* in qdrant_pushdown.c */
extern bool dc_qd_classify_clause(RelOptInfo *baserel, QdPlanInfo *pi, Expr *clause,
								  bool *exact);
extern void dc_qd_build_request(QdScanState *st, ExprContext *econtext, List *exprs,
								bool explain_only);
extern char *dc_qd_datum_text(Datum value, Oid typid);
extern json_t *dc_qd_number_json(const char *s);

#endif							/* DATACORE_FDW_QDRANT_H */
