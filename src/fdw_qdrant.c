/*-------------------------------------------------------------------------
 *
 * fdw_qdrant.c
 *		Foreign-data wrapper callbacks for datacore_qdrant: a foreign table
 *		is one Qdrant collection.
 *
 * Columns are recognised by name: "id" (any type whose text form is a u64
 * or a UUID), "vector" (real[]), "payload" (jsonb) and "score" (real,
 * filled by similarity searches); every other column reads the payload key
 * of its own name, or of its payload_key column option.
 *
 * Scans page through /points/scroll, or through /points/query when the
 * query carries a similarity condition "vector @@ <query vector>".  Only
 * one page of the reply is held at a time: each page lives in a memory
 * context that is reset before the next request.  Conditions on the id are
 * sent as has_id and not checked again; payload conditions are sent as
 * Qdrant "must" conditions that match a superset of the rows and are
 * checked again locally, so the answer follows PostgreSQL semantics.
 *
 * INSERT uses the batch-insert API (one upsert per batch_size rows).
 * UPDATE and DELETE address points by id and go in batches too: a row is
 * queued and its callback returns at once (Qdrant reports nothing per
 * point that the row count or RETURNING would need), and batch_size rows
 * go in one request per endpoint; the rest at the end of the statement.
 * Qdrant has no transactions: a write is done when the statement that
 * made it returns, whatever happens to the transaction afterwards.
 *
 * Which conditions are sent, and how, is in qdrant_pushdown.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/table.h"
#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/appendinfo.h"
#include "optimizer/inherit.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"

#include "fdw_qdrant.h"
#include "qdrant.h"

#define DEFAULT_BATCH_SIZE	64
#define DEFAULT_PAGE_SIZE	256
#define DEFAULT_ROWS		1000

typedef struct QdModifyState
{
	DcServer   *server;
	QdTable    *table;
	CmdType		cmd;
	char	   *operation;
	AttrNumber	id_junk;		/* "qdrant_id" in the subplan's output */
	AttrNumber	wholerow_junk;
	List	   *updated;		/* attnums set by UPDATE */
	int			batch_size;
	bool		has_key_columns;	/* any column mapped to a payload key */
	MemoryContext temp_cxt;		/* reset after every request */

	/* UPDATE: what the statement sets */
	bool		set_vector;
	bool		set_payload;
	List	   *keys;			/* attnums of the key columns set */

	/*
	 * UPDATE and DELETE rows queued and not sent yet, in batch_cxt (reset
	 * after each batch): the ids for DELETE; for UPDATE the {"id","vector"}
	 * objects and each row's id and payload as JSON text.
	 */
	int			modify_batch;	/* rows per request: batch_size, or 1 */
	int			npending;
	MemoryContext batch_cxt;
	StringInfoData ids;
	StringInfoData vectors;
	char	  **pending_ids;
	char	  **pending_payloads;
	MemoryContextCallback forget;	/* clears pending_writer on abort */
} QdModifyState;

/*
 * The one modify state that has rows queued, if any.  A write of any other
 * Qdrant foreign table in the statement (a data-modifying CTE) sends them
 * first, so requests reach Qdrant in the order the rows were processed.
 */
static QdModifyState *pending_writer = NULL;

/* ---------- table description ---------- */

bool
dc_qd_is_text_type(Oid typid)
{
	return typid == TEXTOID || typid == VARCHAROID || typid == BPCHAROID ||
		typid == NAMEOID;
}

bool
dc_qd_is_number_type(Oid typid)
{
	return typid == INT2OID || typid == INT4OID || typid == INT8OID ||
		typid == FLOAT4OID || typid == FLOAT8OID || typid == NUMERICOID;
}

/*
 * Read a foreign table's options and decide each column's role; a column
 * of the wrong type for its role is an error here, before any request.
 */
static QdTable *
get_table(Relation rel)
{
	ForeignTable *ft = GetForeignTable(RelationGetRelid(rel));
	TupleDesc	tupdesc = RelationGetDescr(rel);
	QdTable    *t = palloc0(sizeof(QdTable));
	const char *v;
	int			i;

	t->relid = RelationGetRelid(rel);
	t->relname = pstrdup(RelationGetRelationName(rel));
	t->serverid = ft->serverid;
	v = dc_option_from_list(ft->options, "collection");
	t->collection = pstrdup(v ? v : t->relname);
	v = dc_option_from_list(ft->options, "batch_size");
	t->batch_size = v ? atoi(v) : DEFAULT_BATCH_SIZE;
	v = dc_option_from_list(ft->options, "page_size");
	t->page_size = v ? atoi(v) : DEFAULT_PAGE_SIZE;
	t->natts = tupdesc->natts;
	t->cols = palloc0(sizeof(QdColumn) * Max(t->natts, 1));

	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		QdColumn   *col = &t->cols[i];
		const char *key;

		if (att->attisdropped)
			continue;
		col->name = pstrdup(NameStr(att->attname));
		col->typid = att->atttypid;
		col->typmod = att->atttypmod;
		key = dc_option_from_list(GetForeignColumnOptions(t->relid, att->attnum), "payload_key");

		if (key == NULL && strcmp(col->name, "id") == 0)
		{
			col->kind = QD_COL_ID;
			t->id_att = att->attnum;
		}
		else if (key == NULL && strcmp(col->name, "vector") == 0)
		{
			if (col->typid != FLOAT4ARRAYOID)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
						 errmsg("column \"vector\" of foreign table \"%s\" must be of type real[]",
								t->relname)));
			col->kind = QD_COL_VECTOR;
			t->vector_att = att->attnum;
		}
		else if (key == NULL && strcmp(col->name, "payload") == 0)
		{
			if (col->typid != JSONBOID)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
						 errmsg("column \"payload\" of foreign table \"%s\" must be of type jsonb",
								t->relname)));
			col->kind = QD_COL_PAYLOAD;
			t->payload_att = att->attnum;
		}
		else if (key == NULL && strcmp(col->name, "score") == 0)
		{
			if (col->typid != FLOAT4OID && col->typid != FLOAT8OID)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
						 errmsg("column \"score\" of foreign table \"%s\" must be of type real or double precision",
								t->relname)));
			col->kind = QD_COL_SCORE;
			t->score_att = att->attnum;
		}
		else
		{
			/* in UTF-8, as the payload's keys are */
			if (key == NULL)
				key = col->name;
			col->kind = QD_COL_KEY;
			col->key = pstrdup(pg_server_to_any(key, strlen(key), PG_UTF8));
		}
	}
	return t;
}

static QdTable *
get_table_by_oid(Oid relid)
{
	Relation	rel = table_open(relid, NoLock);
	QdTable    *t = get_table(rel);

	table_close(rel, NoLock);
	return t;
}

/* ---------- planning (conditions: qdrant_pushdown.c) ---------- */

/*
 * Decide which restrictions go to Qdrant and which columns the scan must
 * ask for; estimate the row count (Qdrant keeps no statistics we could
 * read without a request, so a scan is assumed to return DEFAULT_ROWS).
 */
static void
dcQdrantGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	QdPlanInfo *pi = palloc0(sizeof(QdPlanInfo));
	Bitmapset  *attrs = NULL;
	List	   *local = NIL;
	ListCell   *lc;
	int			i;
	bool		all;

	pi->table = get_table_by_oid(foreigntableid);
	pi->nids = -1;
	pi->all_remote = true;
	baserel->fdw_private = pi;

	foreach(lc, baserel->baserestrictinfo)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);
		bool		exact;

		if (dc_qd_classify_clause(baserel, pi, ri->clause, &exact) && exact)
			pi->exact = lappend(pi->exact, ri);
		else
		{
			local = lappend(local, ri);
			pi->all_remote = false;
		}
	}

	/* ask Qdrant only for what the query reads */
	pull_varattnos((Node *) baserel->reltarget->exprs, baserel->relid, &attrs);
	foreach(lc, local)
		pull_varattnos((Node *) lfirst_node(RestrictInfo, lc)->clause, baserel->relid, &attrs);
	all = bms_is_member(0 - FirstLowInvalidHeapAttributeNumber, attrs);
	for (i = 0; i < pi->table->natts; i++)
	{
		QdColumn   *col = &pi->table->cols[i];

		if (!all && !bms_is_member(i + 1 - FirstLowInvalidHeapAttributeNumber, attrs))
			continue;
		if (col->kind == QD_COL_PAYLOAD || col->kind == QD_COL_KEY)
			pi->need_payload = true;
		else if (col->kind == QD_COL_VECTOR)
			pi->need_vector = true;
	}

	if (pi->nids >= 0)
		baserel->rows = pi->nids;
	else
		baserel->rows = DEFAULT_ROWS *
			clauselist_selectivity(root, local, baserel->relid, JOIN_INNER, NULL);
	baserel->rows = Max(baserel->rows, 1);
}

/*
 * Does ORDER BY ask for the score column alone?  Returns 1 for DESC, -1
 * for ASC, 0 otherwise.
 */
static int
score_order(PlannerInfo *root, RelOptInfo *baserel, QdTable *t)
{
	PathKey    *pk;
	ListCell   *lc;

	if (t->score_att == 0 || list_length(root->query_pathkeys) != 1)
		return 0;
	pk = linitial(root->query_pathkeys);
	foreach(lc, pk->pk_eclass->ec_members)
	{
		EquivalenceMember *em = lfirst(lc);
		Var		   *var = (Var *) em->em_expr;

		while (var && IsA(var, RelabelType))
			var = (Var *) ((RelabelType *) var)->arg;
		if (var && IsA(var, Var) && var->varno == baserel->relid &&
			var->varattno == t->score_att && var->varlevelsup == 0)
			return pk->pk_strategy == BTGreaterStrategyNumber ? 1 : -1;
	}
	return 0;
}

/* create_foreignscan_path() grew an fdw_restrictinfo argument in 17 */
static ForeignPath *
make_path(PlannerInfo *root, RelOptInfo *baserel, Cost startup, Cost total,
		  List *pathkeys, List *fdw_private)
{
#if PG_VERSION_NUM >= 170000
	return create_foreignscan_path(root, baserel, NULL, baserel->rows, startup, total,
								   pathkeys, NULL, NULL, NIL, fdw_private);
#else
	return create_foreignscan_path(root, baserel, NULL, baserel->rows, startup, total,
								   pathkeys, NULL, NULL, fdw_private);
#endif
}

static void
dcQdrantGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	QdPlanInfo *pi = baserel->fdw_private;
	Cost		startup = 10;
	Cost		total = startup + baserel->rows * 0.01 +
		ceil(baserel->rows / pi->table->page_size) * 5;
	int			limit_hint = 0;
	bool		single = bms_membership(root->all_baserels) == BMS_SINGLETON;
	int			direction = score_order(root, baserel, pi->table);

	/*
	 * A LIMIT only sizes the first page: later pages are fetched on demand,
	 * so a hint that turns out too small costs requests, never rows.
	 */
	if (root->limit_tuples > 0 && root->limit_tuples < 100000 && single)
		limit_hint = (int) root->limit_tuples;

	add_path(baserel, (Path *)
			 make_path(root, baserel, startup, total, NIL,
					   list_make2(makeInteger(root->query_pathkeys == NIL ? limit_hint : 0),
								  makeInteger(0))));

	/* a similarity search comes back best first: claim ORDER BY score */
	if (pi->near && direction != 0)
		add_path(baserel, (Path *)
				 make_path(root, baserel, startup, total, root->query_pathkeys,
						   list_make2(makeInteger(limit_hint), makeInteger(direction))));
}

/*
 * The plan keeps every restriction that is not exactly answered by Qdrant
 * as a local qual; the sent conditions travel in fdw_private, their values
 * in fdw_exprs (so that parameters are set up by the executor).
 */
static ForeignScan *
dcQdrantGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
					   ForeignPath *best_path, List *tlist, List *scan_clauses,
					   Plan *outer_plan)
{
	QdPlanInfo *pi = baserel->fdw_private;
	List	   *local = NIL;
	List	   *priv;
	ListCell   *lc;
	char	   *near_text = "";

	foreach(lc, scan_clauses)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);

		if (list_member_ptr(pi->exact, ri))
			continue;
		local = lappend(local, ri->clause);
	}

	foreach(lc, pi->conds)
	{
		if (intVal(linitial(lfirst(lc))) == QC_NEAR)
		{
			List	   *ctx = deparse_context_for(get_rel_name(foreigntableid), foreigntableid);

			near_text = deparse_expression(list_nth(pi->exprs, intVal(lfourth(lfirst(lc)))),
										   ctx, false, false);
		}
	}

	priv = list_make5(pi->conds,
					  makeInteger(pi->need_payload),
					  makeInteger(pi->need_vector),
					  linitial(best_path->fdw_private),
					  lsecond(best_path->fdw_private));
	priv = lappend(priv, makeString(near_text));
	return make_foreignscan(tlist, local, baserel->relid, pi->exprs, priv,
							NIL, NIL, outer_plan);
}

/* The request body for the next page. */
static json_t *
page_body(QdScanState *st, int limit)
{
	json_t	   *body = dc_json_object();

	if (st->near)
		json_object_set(body, "query", st->query);
	if (st->filter)
		json_object_set(body, "filter", st->filter);
	json_object_set_new(body, "limit", json_integer(limit));
	if (st->near && st->consumed > 0)
		json_object_set_new(body, "offset", json_integer(st->consumed));
	if (!st->near && st->has_next)
		json_object_set_new(body, "offset", dc_qdrant_id_from_text(st->next_text));
	json_object_set_new(body, "with_payload", json_boolean(st->need_payload));
	json_object_set_new(body, "with_vector", json_boolean(st->need_vector));
	return body;
}

static const char *
scan_path(QdScanState *st)
{
	return dc_qdrant_path(st->table->collection, st->near ? "/points/query" : "/points/scroll");
}

static int
page_limit(QdScanState *st)
{
	bool		first = st->near ? st->consumed == 0 : !st->has_next;

	return (first && st->limit_hint > 0) ? st->limit_hint : st->table->page_size;
}

/* Fetch the next page into page_cxt. */
static void
fetch_page(QdScanState *st)
{
	MemoryContext old;
	json_t	   *result;
	json_t	   *next;
	int			limit = page_limit(st);

	MemoryContextReset(st->page_cxt);
	st->points = NULL;
	st->pos = 0;
	old = MemoryContextSwitchTo(st->page_cxt);

	result = dc_qdrant_call(st->server, st->operation, "POST", scan_path(st),
							page_body(st, limit), st->table->collection);
	st->requests++;
	st->points = json_object_get(result, "points");
	if (!json_is_array(st->points))
		dc_json_bad_reply(st->server, st->operation, "The result has no \"points\" array.");

	if (st->near)
	{
		st->consumed += json_array_size(st->points);
		st->more = (int) json_array_size(st->points) >= limit;
	}
	else
	{
		next = json_object_get(result, "next_page_offset");
		if (next == NULL || json_is_null(next))
			st->has_next = false;
		else
		{
			char	   *text = dc_qdrant_id_to_text(st->server, st->operation, next);

			if (strlen(text) >= sizeof(st->next_text))
				dc_json_bad_reply(st->server, st->operation, "The next page offset is not a point id.");
			/* a server that keeps pointing at the same page would never end */
			if (st->has_next && strcmp(st->next_text, text) == 0)
				dc_json_bad_reply(st->server, st->operation,
								  psprintf("The next page starts at %s again.", text));
			strlcpy(st->next_text, text, sizeof(st->next_text));
			st->has_next = true;
		}
		st->more = st->has_next;
	}
	MemoryContextSwitchTo(old);
}

/* ---------- rows ---------- */

static Datum
input_value(QdColumn *col, const char *text)
{
	Oid			infunc;
	Oid			ioparam;

	getTypeInputInfo(col->typid, &infunc, &ioparam);
	return OidInputFunctionCall(infunc, (char *) text, ioparam, col->typmod);
}

/* A payload value as the column's type. */
static Datum
key_value(QdScanState *st, QdColumn *col, json_t *v)
{
	if (col->typid == JSONBOID)
		return JsonbPGetDatum(dc_json_to_jsonb(v));
	if (json_is_string(v) && dc_json_raw_number_text(v) == NULL)
		return input_value(col, dc_json_text(v, "payload value", st->server->servername));
	return input_value(col, dc_json_dumps(v));
}

/* Where a conversion error happened: the column and the point. */
typedef struct FillContext
{
	QdScanState *st;
	QdColumn   *col;
	json_t	   *rec;
} FillContext;

static void
fill_error_callback(void *arg)
{
	FillContext *fc = arg;
	json_t	   *id = json_object_get(fc->rec, "id");

	if (fc->col == NULL)
		return;
	if (json_is_integer(id) || json_is_string(id))
		errcontext("column \"%s\" of foreign table \"%s\", point %s",
				   fc->col->name, fc->st->table->relname,
				   dc_qdrant_id_to_text(fc->st->server, fc->st->operation, id));
	else
		errcontext("column \"%s\" of foreign table \"%s\"",
				   fc->col->name, fc->st->table->relname);
}

static void
fill_slot(QdScanState *st, json_t *rec, TupleTableSlot *slot)
{
	TupleDesc	tupdesc = slot->tts_tupleDescriptor;
	json_t	   *payload = json_object_get(rec, "payload");
	int			i;
	FillContext fc = {st, NULL, rec};
	ErrorContextCallback errcb;

	if (!json_is_object(rec))
		dc_json_bad_reply(st->server, st->operation, "A point is not an object.");
	errcb.callback = fill_error_callback;
	errcb.arg = &fc;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	for (i = 0; i < tupdesc->natts; i++)
	{
		QdColumn   *col = &st->table->cols[i];
		json_t	   *v = NULL;

		fc.col = col;

		slot->tts_isnull[i] = true;
		slot->tts_values[i] = (Datum) 0;
		switch (col->kind)
		{
			case QD_COL_NONE:
				break;
			case QD_COL_ID:
				{
					char	   *id = dc_qdrant_id_to_text(st->server, st->operation,
														  json_object_get(rec, "id"));

					slot->tts_values[i] = (col->typid == TEXTOID || col->typid == VARCHAROID) ?
						CStringGetTextDatum(id) : input_value(col, id);
					slot->tts_isnull[i] = false;
					break;
				}
			case QD_COL_VECTOR:
				v = json_object_get(rec, "vector");
				if (st->need_vector && json_is_array(v))
				{
					slot->tts_values[i] = PointerGetDatum(dc_json_to_float4_array(v, st->server,
																				  st->operation, "a point's vector"));
					slot->tts_isnull[i] = false;
				}
				break;
			case QD_COL_PAYLOAD:
				if (st->need_payload && json_is_object(payload))
				{
					slot->tts_values[i] = JsonbPGetDatum(dc_json_to_jsonb(payload));
					slot->tts_isnull[i] = false;
				}
				break;
			case QD_COL_SCORE:
				v = json_object_get(rec, "score");
				if (st->near && json_is_number(v))
				{
					slot->tts_values[i] = col->typid == FLOAT4OID ?
						Float4GetDatum((float4) json_number_value(v)) :
						Float8GetDatum(json_number_value(v));
					slot->tts_isnull[i] = false;
				}
				break;
			case QD_COL_KEY:
				v = json_is_object(payload) ? json_object_get(payload, col->key) : NULL;
				if (v && !json_is_null(v))
				{
					slot->tts_values[i] = key_value(st, col, v);
					slot->tts_isnull[i] = false;
				}
				break;
		}
	}
	error_context_stack = errcb.previous;

	/* the ordered path promised the collection's own ranking */
	if (st->direction != 0)
	{
		json_t	   *s = json_object_get(rec, "score");
		float4		score = json_is_number(s) ? (float4) json_number_value(s) : 0;

		if (st->have_score &&
			((st->direction > 0 && score > st->last_score) ||
			 (st->direction < 0 && score < st->last_score)))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_ERROR),
					 errmsg("similarity search on foreign table \"%s\" does not rank by ORDER BY score %s",
							st->table->relname, st->direction > 0 ? "DESC" : "ASC"),
					 errdetail("Qdrant returns the best match first; for this collection that is the %s score.",
							   st->direction > 0 ? "lowest" : "highest"),
					 errhint("Cosine and Dot collections rank with ORDER BY score DESC, Euclid and Manhattan collections with ORDER BY score ASC.")));
		st->have_score = true;
		st->last_score = score;
	}
	ExecStoreVirtualTuple(slot);
}

/* ---------- scan callbacks ---------- */


/*
 * Set up the scan's memory contexts and expression states.  The server is
 * resolved (and USAGE checked) for the user the scan runs as; nothing is
 * sent before the first row is asked for.
 */
static void
dcQdrantBeginForeignScan(ForeignScanState *node, int eflags)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	EState	   *estate = node->ss.ps.state;
	QdScanState *st = palloc0(sizeof(QdScanState));
	List	   *priv = fsplan->fdw_private;

	node->fdw_state = st;
	st->table = get_table(node->ss.ss_currentRelation);
	st->operation = psprintf("scan of foreign table \"%s\"", st->table->relname);
	st->conds = list_nth(priv, FSP_CONDS);
	st->need_payload = intVal(list_nth(priv, FSP_NEED_PAYLOAD));
	st->need_vector = intVal(list_nth(priv, FSP_NEED_VECTOR));
	st->limit_hint = intVal(list_nth(priv, FSP_LIMIT_HINT));
	st->direction = intVal(list_nth(priv, FSP_DIRECTION));
	st->near_text = strVal(list_nth(priv, FSP_NEAR_TEXT));
	st->near = st->near_text[0] != '\0';
	st->exprstates = ExecInitExprList(fsplan->fdw_exprs, (PlanState *) node);

	st->scan_cxt = AllocSetContextCreate(estate->es_query_cxt, "datacore qdrant scan",
										 ALLOCSET_DEFAULT_SIZES);
	st->req_cxt = AllocSetContextCreate(st->scan_cxt, "datacore qdrant request",
										ALLOCSET_SMALL_SIZES);
	st->page_cxt = AllocSetContextCreate(st->scan_cxt, "datacore qdrant page",
										 ALLOCSET_DEFAULT_SIZES);
	st->row_cxt = AllocSetContextCreate(st->scan_cxt, "datacore qdrant row",
										ALLOCSET_DEFAULT_SIZES);

	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
	{
		MemoryContext old = MemoryContextSwitchTo(st->req_cxt);

		dc_qd_build_request(st, node->ss.ps.ps_ExprContext, fsplan->fdw_exprs, true);
		MemoryContextSwitchTo(old);
		return;
	}
	st->server = dc_get_server_by_oid(st->table->serverid, dc_scan_user(node),
									  DC_SERVICE_QDRANT, st->operation);
}

/*
 * Return the next point, fetching the next page when the current one is
 * used up.  The first call evaluates the condition values and builds the
 * request.
 */
static TupleTableSlot *
dcQdrantIterateForeignScan(ForeignScanState *node)
{
	QdScanState *st = node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;
	MemoryContext old;

	ExecClearTuple(slot);
	if (!st->started)
	{
		ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;

		MemoryContextReset(st->req_cxt);
		old = MemoryContextSwitchTo(st->req_cxt);
		dc_qd_build_request(st, node->ss.ps.ps_ExprContext, fsplan->fdw_exprs, false);
		MemoryContextSwitchTo(old);
		st->started = true;
		st->more = true;
		st->points = NULL;
	}

	while (st->points == NULL || st->pos >= json_array_size(st->points))
	{
		if (!st->more)
			return slot;
		fetch_page(st);
	}

	MemoryContextReset(st->row_cxt);
	old = MemoryContextSwitchTo(st->row_cxt);
	fill_slot(st, json_array_get(st->points, st->pos++), slot);
	MemoryContextSwitchTo(old);
	return slot;
}

static void
dcQdrantReScanForeignScan(ForeignScanState *node)
{
	QdScanState *st = node->fdw_state;

	/* parameters may have changed: build the request again */
	st->started = false;
	st->points = NULL;
	st->has_next = false;
	st->consumed = 0;
	st->have_score = false;
	MemoryContextReset(st->page_cxt);
	MemoryContextReset(st->row_cxt);
}

static void
dcQdrantEndForeignScan(ForeignScanState *node)
{
	QdScanState *st = node->fdw_state;

	if (st && st->scan_cxt)
		MemoryContextDelete(st->scan_cxt);
}

static void
dcQdrantExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	QdScanState *st = node->fdw_state;

	if (es->verbose)
	{
		MemoryContext old = MemoryContextSwitchTo(st->scan_cxt);

		if (!st->started && st->filter == NULL && st->query == NULL && st->conds != NIL)
			dc_qd_build_request(st, node->ss.ps.ps_ExprContext,
						  ((ForeignScan *) node->ss.ps.plan)->fdw_exprs, true);
		ExplainPropertyText("Qdrant Request",
							psprintf("POST %s", scan_path(st)), es);
		{
			json_t	   *body;

			st->has_next = false;
			st->consumed = 0;
			body = page_body(st, page_limit(st));
			if (st->near)
				json_object_set_new(body, "query", json_string("<query vector>"));
			ExplainPropertyText("Qdrant Body", dc_json_dumps_server(body), es);
		}
		if (st->near)
			ExplainPropertyText("Query Vector", st->near_text, es);
		MemoryContextSwitchTo(old);
	}
	if (es->analyze)
		ExplainPropertyInteger("Qdrant Requests", NULL, st->requests, es);
}

/* ---------- modification ---------- */

/*
 * UPDATE and DELETE identify a point by its id: the scan passes the id
 * column up as the junk column "qdrant_id".
 */
static void
dcQdrantAddForeignUpdateTargets(PlannerInfo *root, Index rtindex,
								RangeTblEntry *target_rte, Relation target_relation)
{
	QdTable    *t = get_table(target_relation);
	QdColumn   *col;
	Var		   *var;

	if (t->id_att == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_COLUMN_NAME_NOT_FOUND),
				 errmsg("foreign table \"%s\" has no \"id\" column", t->relname),
				 errdetail("UPDATE and DELETE address Qdrant points by id.")));
	col = &t->cols[t->id_att - 1];
	var = makeVar(rtindex, t->id_att, col->typid, col->typmod,
				  get_typcollation(col->typid), 0);
	add_row_identity_var(root, var, rtindex, "qdrant_id");

	/* DELETE ... RETURNING returns the row the scan read */
	if (root->parse->commandType == CMD_DELETE && root->parse->returningList != NIL)
		add_row_identity_var(root, makeWholeRowVar(target_rte, rtindex, 0, false),
							 rtindex, "wholerow");
}

/*
 * For UPDATE, remember which columns the statement sets (they decide which
 * Qdrant endpoints a row update uses); id and score cannot be set.
 */
static List *
dcQdrantPlanForeignModify(PlannerInfo *root, ModifyTable *plan, Index resultRelation,
						  int subplan_index)
{
	CmdType		cmd = plan->operation;
	RangeTblEntry *rte = planner_rt_fetch(resultRelation, root);
	List	   *updated = NIL;

	if (cmd == CMD_UPDATE)
	{
		RelOptInfo *rel = find_base_rel(root, resultRelation);
		Bitmapset  *cols = get_rel_all_updated_cols(root, rel);
		QdTable    *t = get_table_by_oid(rte->relid);
		int			col = -1;

		while ((col = bms_next_member(cols, col)) >= 0)
		{
			AttrNumber attno = col + FirstLowInvalidHeapAttributeNumber;
			QdColumn   *c;

			if (attno <= 0 || attno > t->natts)
				continue;
			c = &t->cols[attno - 1];
			if (c->kind == QD_COL_ID)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot change the id of a point in foreign table \"%s\"", t->relname),
						 errhint("Delete the point and insert it with the new id.")));
			if (c->kind == QD_COL_SCORE)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("column \"%s\" of foreign table \"%s\" is read-only", c->name, t->relname),
						 errdetail("The score is computed by similarity searches.")));
			updated = lappend_int(updated, attno);
		}
	}
	return list_make1(updated);
}


static void
begin_modify(ModifyTableState *mtstate, ResultRelInfo *rinfo, CmdType cmd,
			 List *fdw_private, int eflags);
static void forget_pending(void *arg);
static void claim_pending(QdModifyState *st);

static void
dcQdrantBeginForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo,
						   List *fdw_private, int subplan_index, int eflags)
{
	begin_modify(mtstate, rinfo, mtstate->operation, fdw_private, eflags);
}

/* COPY into the table, and tuples routed to it as a partition. */
static void
dcQdrantBeginForeignInsert(ModifyTableState *mtstate, ResultRelInfo *rinfo)
{
	begin_modify(mtstate, rinfo, CMD_INSERT, NIL, 0);
}

/*
 * Modification state for INSERT, UPDATE, DELETE and COPY: the server for
 * the user the statement runs as, and for UPDATE/DELETE where the id is
 * in the subplan's output.
 */
static void
begin_modify(ModifyTableState *mtstate, ResultRelInfo *rinfo, CmdType cmd,
			 List *fdw_private, int eflags)
{
	QdModifyState *st = palloc0(sizeof(QdModifyState));
	EState	   *estate = mtstate->ps.state;

	rinfo->ri_FdwState = st;
	st->table = get_table(rinfo->ri_RelationDesc);
	st->cmd = cmd;
	st->updated = fdw_private ? linitial(fdw_private) : NIL;
	st->batch_size = st->table->batch_size;
	for (int i = 0; i < st->table->natts; i++)
		if (st->table->cols[i].kind == QD_COL_KEY)
			st->has_key_columns = true;
	st->operation = psprintf("%s on foreign table \"%s\"",
							 st->cmd == CMD_INSERT ? "INSERT" :
							 st->cmd == CMD_UPDATE ? "UPDATE" : "DELETE",
							 st->table->relname);
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;

	st->server = dc_get_server_by_oid(st->table->serverid, dc_modify_user(rinfo, estate),
									  DC_SERVICE_QDRANT, st->operation);
	st->temp_cxt = AllocSetContextCreate(estate->es_query_cxt, "datacore qdrant modify",
										 ALLOCSET_DEFAULT_SIZES);
	if (st->cmd == CMD_UPDATE || st->cmd == CMD_DELETE)
	{
		Plan	   *subplan = outerPlanState(mtstate)->plan;
		TriggerDesc *trig = rinfo->ri_TrigDesc;
		ListCell   *lc;

		st->id_junk = ExecFindJunkAttributeInTlist(subplan->targetlist, "qdrant_id");
		if (!AttributeNumberIsValid(st->id_junk))
			elog(ERROR, "could not find junk qdrant_id column");
		st->wholerow_junk = ExecFindJunkAttributeInTlist(subplan->targetlist, "wholerow");

		foreach(lc, st->updated)
		{
			QdColumn   *col = &st->table->cols[lfirst_int(lc) - 1];

			if (col->kind == QD_COL_VECTOR)
				st->set_vector = true;
			else if (col->kind == QD_COL_PAYLOAD)
				st->set_payload = true;
			else if (col->kind == QD_COL_KEY)
				st->keys = lappend_int(st->keys, lfirst_int(lc));
		}

		/*
		 * AFTER ROW triggers fire when the statement's rows are done, before
		 * a last batch would go: with row triggers, each row is sent by its
		 * own callback.
		 */
		st->modify_batch = st->batch_size;
		if (trig && (st->cmd == CMD_UPDATE ?
					 (trig->trig_update_before_row || trig->trig_update_after_row) :
					 (trig->trig_delete_before_row || trig->trig_delete_after_row)))
			st->modify_batch = 1;
		st->batch_cxt = AllocSetContextCreate(estate->es_query_cxt, "datacore qdrant batch",
											  ALLOCSET_DEFAULT_SIZES);
		st->pending_ids = MemoryContextAlloc(estate->es_query_cxt,
											 sizeof(char *) * st->modify_batch);
		st->pending_payloads = MemoryContextAlloc(estate->es_query_cxt,
												  sizeof(char *) * st->modify_batch);
		st->forget.func = forget_pending;
		st->forget.arg = st;
		MemoryContextRegisterResetCallback(estate->es_query_cxt, &st->forget);
	}
}

/* A payload key column's value as JSON. */
static json_t *
column_json(QdModifyState *st, QdColumn *col, Datum value)
{
	switch (col->typid)
	{
		case BOOLOID:
			return json_boolean(DatumGetBool(value));
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
			{
				char	   *s = dc_qd_datum_text(value, col->typid);
				json_t	   *num = dc_qd_number_json(s);

				if (num == NULL)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("value \"%s\" of column \"%s\" cannot be stored in a Qdrant payload",
									s, col->name),
							 errdetail("JSON has no NaN or infinite numbers.")));
				return num;
			}
		case JSONBOID:
			return dc_jsonb_to_json(DatumGetJsonbP(value), col->name);
		case JSONOID:
			return dc_json_parse_input(TextDatumGetCString(value), col->name);
		default:
			return dc_json_string_server(dc_qd_datum_text(value, col->typid), col->name);
	}
}

static json_t *
slot_id(QdModifyState *st, TupleTableSlot *slot, AttrNumber attno)
{
	bool		isnull;
	Datum		value = slot_getattr(slot, attno, &isnull);

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("column \"id\" of foreign table \"%s\" must not be null",
						st->table->relname),
				 errdetail("Every Qdrant point needs an id: an unsigned 64-bit integer or a UUID.")));
	return dc_qdrant_id_from_datum(value, st->table->cols[st->table->id_att - 1].typid);
}

static void
slot_vector_text(StringInfo buf, QdModifyState *st, TupleTableSlot *slot)
{
	bool		isnull;
	Datum		value;

	if (st->table->vector_att == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_COLUMN_NAME_NOT_FOUND),
				 errmsg("foreign table \"%s\" has no \"vector\" column", st->table->relname),
				 errdetail("Every Qdrant point needs a vector.")));
	value = slot_getattr(slot, st->table->vector_att, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("column \"vector\" of foreign table \"%s\" must not be null",
						st->table->relname)));
	dc_qdrant_append_vector(buf, DatumGetArrayTypeP(value), "vector");
}

/*
 * The payload for a row: the payload column's object (or {}), with the
 * key columns listed in "keys" (all key columns when keys is NULL) laid
 * over it.
 */
static json_t *
slot_payload(QdModifyState *st, TupleTableSlot *slot, List *keys, bool with_payload_column)
{
	QdTable    *t = st->table;
	json_t	   *payload = NULL;
	int			i;

	if (with_payload_column && t->payload_att != 0)
	{
		bool		isnull;
		Datum		value = slot_getattr(slot, t->payload_att, &isnull);

		if (!isnull)
		{
			payload = dc_jsonb_to_json(DatumGetJsonbP(value), "payload");
			if (!json_is_object(payload))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("column \"payload\" of foreign table \"%s\" must hold a JSON object",
								t->relname)));
		}
	}
	if (payload == NULL)
		payload = dc_json_object();

	for (i = 0; i < t->natts; i++)
	{
		QdColumn   *col = &t->cols[i];
		bool		isnull;
		Datum		value;

		if (col->kind != QD_COL_KEY || (keys != NIL && !list_member_int(keys, i + 1)))
			continue;
		value = slot_getattr(slot, i + 1, &isnull);
		if (isnull)
		{
			/* INSERT leaves a NULL key out; UPDATE sets it to null */
			if (keys != NIL)
				json_object_set_new(payload, col->key, json_null());
			continue;
		}
		json_object_set_new(payload, col->key, column_json(st, col, value));
	}
	return payload;
}

/* Append one point as JSON text: {"id":..,"vector":[..],"payload":{..}} */
static void
append_point(StringInfo buf, QdModifyState *st, TupleTableSlot *slot)
{
	bool		isnull;

	if (st->table->id_att == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_COLUMN_NAME_NOT_FOUND),
				 errmsg("foreign table \"%s\" has no \"id\" column", st->table->relname),
				 errdetail("Every Qdrant point needs an id.")));
	if (st->table->score_att != 0)
	{
		(void) slot_getattr(slot, st->table->score_att, &isnull);
		if (!isnull)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("column \"score\" of foreign table \"%s\" is read-only",
							st->table->relname)));
	}
	appendStringInfo(buf, "{\"id\":%s,\"vector\":",
					 dc_json_dumps(slot_id(st, slot, st->table->id_att)));
	slot_vector_text(buf, st, slot);
	appendStringInfoString(buf, ",\"payload\":");
	if (!st->has_key_columns && st->table->payload_att != 0 &&
		!slot_attisnull(slot, st->table->payload_att))
	{
		/* the payload column alone: jsonb's text is the JSON to send */
		Jsonb	   *payload = DatumGetJsonbP(slot_getattr(slot, st->table->payload_att, &isnull));

		if (!JB_ROOT_IS_OBJECT(payload))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column \"payload\" of foreign table \"%s\" must hold a JSON object",
							st->table->relname)));
		dc_json_append_jsonb(buf, payload);
	}
	else
		appendStringInfoString(buf, dc_json_dumps(slot_payload(st, slot, NIL, true)));
	appendStringInfoChar(buf, '}');
}

static void
send_points(QdModifyState *st, TupleTableSlot **slots, int n)
{
	MemoryContext old;
	StringInfoData body;
	int			i;

	claim_pending(st);
	old = MemoryContextSwitchTo(st->temp_cxt);

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"points\":[");
	for (i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoChar(&body, ',');
		append_point(&body, st, slots[i]);
	}
	appendStringInfoString(&body, "]}");
	(void) dc_qdrant_call_text(st->server, st->operation, "PUT",
							   dc_qdrant_path(st->table->collection, "/points?wait=true"),
							   body.data, st->table->collection);
	MemoryContextSwitchTo(old);
	MemoryContextReset(st->temp_cxt);
}

static TupleTableSlot *
dcQdrantExecForeignInsert(EState *estate, ResultRelInfo *rinfo,
						  TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	send_points(rinfo->ri_FdwState, &slot, 1);
	return slot;
}

static TupleTableSlot **
dcQdrantExecForeignBatchInsert(EState *estate, ResultRelInfo *rinfo,
							   TupleTableSlot **slots, TupleTableSlot **planSlots,
							   int *numSlots)
{
	send_points(rinfo->ri_FdwState, slots, *numSlots);
	return slots;
}

/* Rows per ExecForeignBatchInsert call: the table's batch_size. */
static int
dcQdrantGetForeignModifyBatchSize(ResultRelInfo *rinfo)
{
	QdModifyState *st = rinfo->ri_FdwState;

	/* RETURNING and row triggers need each row back as it is inserted */
	if (rinfo->ri_projectReturning != NULL ||
		(rinfo->ri_TrigDesc && (rinfo->ri_TrigDesc->trig_insert_before_row ||
								rinfo->ri_TrigDesc->trig_insert_after_row)))
		return 1;
	return st ? st->batch_size : get_table(rinfo->ri_RelationDesc)->batch_size;
}

/* ---------- batched UPDATE and DELETE ---------- */

/* The es_query_cxt callback: the queued rows went with the statement. */
static void
forget_pending(void *arg)
{
	if (pending_writer == arg)
		pending_writer = NULL;
}

/* Send the rows queued by UPDATE (see dcQdrantExecForeignUpdate). */
static void
flush_update(QdModifyState *st)
{
	const char *coll = st->table->collection;
	int			ngroups = 0;
	int			i;

	if (st->set_vector)
		(void) dc_qdrant_call_text(st->server, st->operation, "PUT",
								   dc_qdrant_path(coll, "/points/vectors?wait=true"),
								   psprintf("{\"points\":[%s]}", st->vectors.data), coll);
	if (!st->set_payload && st->keys == NIL)
		return;

	/*
	 * One payload write names many points, so rows in a run with the same
	 * payload (UPDATE ... SET lang = 'fr') share one; runs of different
	 * payloads become the operations of one /points/batch request.
	 */
	for (i = 0; i < st->npending; i++)
		if (i == 0 || strcmp(st->pending_payloads[i], st->pending_payloads[i - 1]) != 0)
			ngroups++;
	{
		StringInfoData body;
		int			start;

		initStringInfo(&body);
		if (ngroups > 1)
			appendStringInfoString(&body, "{\"operations\":[");
		for (start = 0; start < st->npending;)
		{
			int			end = start + 1;

			while (end < st->npending &&
				   strcmp(st->pending_payloads[end], st->pending_payloads[start]) == 0)
				end++;
			if (ngroups > 1)
				appendStringInfo(&body, "%s{\"%s\":", start > 0 ? "," : "",
								 st->set_payload ? "overwrite_payload" : "set_payload");
			appendStringInfoString(&body, "{\"points\":[");
			for (i = start; i < end; i++)
				appendStringInfo(&body, "%s%s", i > start ? "," : "", st->pending_ids[i]);
			appendStringInfo(&body, "],\"payload\":%s}", st->pending_payloads[start]);
			if (ngroups > 1)
				appendStringInfoChar(&body, '}');
			start = end;
		}
		if (ngroups > 1)
		{
			appendStringInfoString(&body, "]}");
			(void) dc_qdrant_call_text(st->server, st->operation, "POST",
									   dc_qdrant_path(coll, "/points/batch?wait=true"),
									   body.data, coll);
		}
		else
			/* a new payload replaces the old one; key columns alone merge */
			(void) dc_qdrant_call_text(st->server, st->operation,
									   st->set_payload ? "PUT" : "POST",
									   dc_qdrant_path(coll, "/points/payload?wait=true"),
									   body.data, coll);
	}
}

/* Send the queued rows of an UPDATE or DELETE, if any. */
static void
flush_pending(QdModifyState *st)
{
	MemoryContext old;

	if (st->npending == 0)
		return;
	/* whatever happens now, these rows are not sent again */
	if (pending_writer == st)
		pending_writer = NULL;
	old = MemoryContextSwitchTo(st->temp_cxt);
	if (st->cmd == CMD_DELETE)
		(void) dc_qdrant_call_text(st->server, st->operation, "POST",
								   dc_qdrant_path(st->table->collection, "/points/delete?wait=true"),
								   psprintf("{\"points\":[%s]}", st->ids.data),
								   st->table->collection);
	else
		flush_update(st);
	MemoryContextSwitchTo(old);
	st->npending = 0;
	MemoryContextReset(st->temp_cxt);
	MemoryContextReset(st->batch_cxt);
}

/* Before st writes: send the rows another table's write has queued. */
static void
claim_pending(QdModifyState *st)
{
	if (pending_writer != NULL && pending_writer != st)
		flush_pending(pending_writer);
}

/*
 * Queue a row of an UPDATE or DELETE: its id, and for UPDATE its vector
 * and payload as JSON text; send the batch once it is full.
 */
static void
queue_row(QdModifyState *st, TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	MemoryContext old;
	char	   *id;

	claim_pending(st);
	old = MemoryContextSwitchTo(st->temp_cxt);
	id = dc_json_dumps(slot_id(st, planSlot, st->id_junk));
	MemoryContextSwitchTo(st->batch_cxt);
	if (st->npending == 0)
	{
		initStringInfo(&st->ids);
		initStringInfo(&st->vectors);
	}
	if (st->cmd == CMD_DELETE)
		appendStringInfo(&st->ids, "%s%s", st->npending > 0 ? "," : "", id);
	else
	{
		st->pending_ids[st->npending] = pstrdup(id);
		if (st->set_vector)
		{
			appendStringInfo(&st->vectors, "%s{\"id\":%s,\"vector\":",
							 st->npending > 0 ? "," : "", id);
			slot_vector_text(&st->vectors, st, slot);
			appendStringInfoChar(&st->vectors, '}');
		}
		if (st->set_payload || st->keys != NIL)
		{
			char	   *payload;

			MemoryContextSwitchTo(st->temp_cxt);
			payload = dc_json_dumps(slot_payload(st, slot,
												 st->keys != NIL ? st->keys : list_make1_int(-1),
												 st->set_payload));
			st->pending_payloads[st->npending] = MemoryContextStrdup(st->batch_cxt, payload);
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(st->temp_cxt);
	st->npending++;
	pending_writer = st;
	if (st->npending >= st->modify_batch)
		flush_pending(st);
}

/*
 * Update a point: the vector through /points/vectors, the payload through
 * /points/payload (PUT replaces it, POST merges key columns), batched.
 */
static TupleTableSlot *
dcQdrantExecForeignUpdate(EState *estate, ResultRelInfo *rinfo,
						  TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	queue_row(rinfo->ri_FdwState, slot, planSlot);
	return slot;
}

/*
 * Delete a point by id, batched; for RETURNING, hand back the row the scan
 * read.
 */
static TupleTableSlot *
dcQdrantExecForeignDelete(EState *estate, ResultRelInfo *rinfo,
						  TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	QdModifyState *st = rinfo->ri_FdwState;

	queue_row(st, slot, planSlot);
	if (AttributeNumberIsValid(st->wholerow_junk))
	{
		bool		isnull;
		Datum		row = ExecGetJunkAttribute(planSlot, st->wholerow_junk, &isnull);

		if (!isnull)
		{
			HeapTupleHeader td = DatumGetHeapTupleHeader(row);
			HeapTupleData tuple;

			tuple.t_len = HeapTupleHeaderGetDatumLength(td);
			ItemPointerSetInvalid(&tuple.t_self);
			tuple.t_tableOid = RelationGetRelid(rinfo->ri_RelationDesc);
			tuple.t_data = td;
			/* the slot keeps the tuple it is given: hand it a copy it owns */
			ExecForceStoreHeapTuple(heap_copytuple(&tuple), slot, true);
		}
	}
	return slot;
}

/* The end of the statement: the last batch goes now. */
static void
dcQdrantEndForeignModify(EState *estate, ResultRelInfo *rinfo)
{
	QdModifyState *st = rinfo->ri_FdwState;

	if (st == NULL || st->temp_cxt == NULL)
		return;
	flush_pending(st);
	MemoryContextDelete(st->temp_cxt);
	st->temp_cxt = NULL;
}

static void
dcQdrantExplainForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo,
							 List *fdw_private, int subplan_index, ExplainState *es)
{
	QdModifyState *st = rinfo->ri_FdwState;
	const char *coll = st->table->collection;
	StringInfoData buf;

	if (!es->verbose)
		return;
	initStringInfo(&buf);
	switch (st->cmd)
	{
		case CMD_INSERT:
			appendStringInfo(&buf, "PUT %s", dc_qdrant_path(coll, "/points?wait=true"));
			ExplainPropertyText("Qdrant Request", buf.data, es);
			ExplainPropertyInteger("Batch Size", NULL,
								   dcQdrantGetForeignModifyBatchSize(rinfo), es);
			break;
		case CMD_UPDATE:
			{
				bool		vec = false,
							pay = false,
							keys = false;
				ListCell   *lc;

				foreach(lc, st->updated)
				{
					QdColKind	k = st->table->cols[lfirst_int(lc) - 1].kind;

					vec |= (k == QD_COL_VECTOR);
					pay |= (k == QD_COL_PAYLOAD);
					keys |= (k == QD_COL_KEY);
				}
				if (vec)
					appendStringInfo(&buf, "PUT %s", dc_qdrant_path(coll, "/points/vectors?wait=true"));
				if (pay || keys)
					appendStringInfo(&buf, "%s%s %s", buf.len ? ", " : "", pay ? "PUT" : "POST",
									 dc_qdrant_path(coll, "/points/payload?wait=true"));
				ExplainPropertyText("Qdrant Request", buf.len ? buf.data : "(none)", es);
				break;
			}
		case CMD_DELETE:
			appendStringInfo(&buf, "POST %s", dc_qdrant_path(coll, "/points/delete?wait=true"));
			ExplainPropertyText("Qdrant Request", buf.data, es);
			break;
		default:
			break;
	}
}

static int
dcQdrantIsForeignRelUpdatable(Relation rel)
{
	return (1 << CMD_INSERT) | (1 << CMD_UPDATE) | (1 << CMD_DELETE);
}

PG_FUNCTION_INFO_V1(datacore_qdrant_fdw_handler);

Datum
datacore_qdrant_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *r = makeNode(FdwRoutine);

	r->GetForeignRelSize = dcQdrantGetForeignRelSize;
	r->GetForeignPaths = dcQdrantGetForeignPaths;
	r->GetForeignPlan = dcQdrantGetForeignPlan;
	r->BeginForeignScan = dcQdrantBeginForeignScan;
	r->IterateForeignScan = dcQdrantIterateForeignScan;
	r->ReScanForeignScan = dcQdrantReScanForeignScan;
	r->EndForeignScan = dcQdrantEndForeignScan;
	r->ExplainForeignScan = dcQdrantExplainForeignScan;

	r->AddForeignUpdateTargets = dcQdrantAddForeignUpdateTargets;
	r->PlanForeignModify = dcQdrantPlanForeignModify;
	r->BeginForeignModify = dcQdrantBeginForeignModify;
	r->ExecForeignInsert = dcQdrantExecForeignInsert;
	r->ExecForeignBatchInsert = dcQdrantExecForeignBatchInsert;
	r->GetForeignModifyBatchSize = dcQdrantGetForeignModifyBatchSize;
	r->ExecForeignUpdate = dcQdrantExecForeignUpdate;
	r->ExecForeignDelete = dcQdrantExecForeignDelete;
	r->EndForeignModify = dcQdrantEndForeignModify;
	r->BeginForeignInsert = dcQdrantBeginForeignInsert;
	r->EndForeignInsert = dcQdrantEndForeignModify;
	r->ExplainForeignModify = dcQdrantExplainForeignModify;
	r->IsForeignRelUpdatable = dcQdrantIsForeignRelUpdatable;

	PG_RETURN_POINTER(r);
}

PG_FUNCTION_INFO_V1(datacore_qdrant_similar);

/*
 * The function behind "vector @@ query".  A Qdrant foreign scan takes the
 * condition as its similarity search; anywhere else it has no meaning.
 */
Datum
datacore_qdrant_similar(PG_FUNCTION_ARGS)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("operator @@ on real[] is only a similarity search condition on a Qdrant foreign table"),
			 errdetail("The condition must compare the table's \"vector\" column with a query vector that does not depend on other tables, and must not be under OR or NOT."),
			 errhint("Write: WHERE vector @@ <query vector> ORDER BY score DESC LIMIT k.")));
	PG_RETURN_BOOL(false);
}
