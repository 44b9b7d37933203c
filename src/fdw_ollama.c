/*-------------------------------------------------------------------------
 *
 * fdw_ollama.c
 *		Foreign-data wrapper callbacks for datacore_ollama: a foreign table
 *		lists the installed models (table_type 'models', GET /api/tags) or
 *		the models loaded in memory (table_type 'running', GET /api/ps).
 *
 * A listing is one small request, so nothing is pushed down: the whole
 * list is fetched on the first row and every qualifier is checked
 * locally.  Columns are matched to the reply's keys by name, as in
 * ollama_models() (see dc_ollama_model_row).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/explain.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "ollama.h"

/* Assumed row count of a listing: a handful of models. */
#define LISTING_ROWS	20

typedef struct OllamaScanState
{
	bool		running;		/* table_type 'running' */
	char	   *operation;		/* for error messages */
	DcServer   *server;
	MemoryContext cxt;			/* holds the fetched listing */
	json_t	   *models;			/* NULL until the first row is asked for */
	size_t		next;
	DcOllamaRowMaker *maker;
} OllamaScanState;

/* True when the foreign table lists running models. */
static bool
table_is_running(Oid relid)
{
	ForeignTable *ft = GetForeignTable(relid);
	const char *type = dc_option_from_list(ft->options, "table_type");

	return type != NULL && strcmp(type, "running") == 0;
}

static void
dcOllamaGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	baserel->rows = LISTING_ROWS;
}

static void
dcOllamaGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	/* one HTTP round trip dominates; rows cost next to nothing */
	Cost		startup = 100.0;
	Cost		total = startup + baserel->rows * cpu_tuple_cost;

	add_path(baserel, (Path *)
			 create_foreignscan_path(root, baserel, NULL, baserel->rows,
#if PG_VERSION_NUM >= 180000
									 0,
#endif
									 startup, total, NIL, NULL, NULL,
#if PG_VERSION_NUM >= 170000
									 NIL,
#endif
									 NIL));
}

static ForeignScan *
dcOllamaGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
					   ForeignPath *best_path, List *tlist, List *scan_clauses,
					   Plan *outer_plan)
{
	scan_clauses = extract_actual_clauses(scan_clauses, false);
	return make_foreignscan(tlist, scan_clauses, baserel->relid,
							NIL, NIL, NIL, NIL, outer_plan);
}

static void
dcOllamaBeginForeignScan(ForeignScanState *node, int eflags)
{
	EState	   *estate = node->ss.ps.state;
	Relation	rel = node->ss.ss_currentRelation;
	OllamaScanState *st;
	Oid			userid;

	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;

	userid = dc_scan_user(node);

	st = palloc0(sizeof(OllamaScanState));
	st->running = table_is_running(RelationGetRelid(rel));
	st->operation = psprintf("scan of foreign table \"%s\"", RelationGetRelationName(rel));
	st->server = dc_get_server_by_oid(GetForeignTable(RelationGetRelid(rel))->serverid,
									  userid, DC_SERVICE_OLLAMA, st->operation);
	st->cxt = estate->es_query_cxt;
	st->maker = dc_ollama_row_maker(RelationGetDescr(rel));
	node->fdw_state = st;
}

static TupleTableSlot *
dcOllamaIterateForeignScan(ForeignScanState *node)
{
	OllamaScanState *st = node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;

	ExecClearTuple(slot);
	if (st->models == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(st->cxt);

		st->models = dc_ollama_list_models(st->server, st->operation, st->running);
		MemoryContextSwitchTo(old);
	}
	if (st->next >= json_array_size(st->models))
		return slot;

	dc_ollama_model_row(st->maker, json_array_get(st->models, st->next++),
						slot->tts_values, slot->tts_isnull);
	ExecStoreVirtualTuple(slot);
	return slot;
}

/* A rescan reuses the listing: one statement sees one snapshot of it. */
static void
dcOllamaReScanForeignScan(ForeignScanState *node)
{
	OllamaScanState *st = node->fdw_state;

	st->next = 0;
}

static void
dcOllamaEndForeignScan(ForeignScanState *node)
{
	/* everything lives in the query context */
}

static void
dcOllamaExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	Relation	rel = node->ss.ss_currentRelation;

	ExplainPropertyText("Ollama request",
						table_is_running(RelationGetRelid(rel)) ? "GET /api/ps" : "GET /api/tags",
						es);
}

PG_FUNCTION_INFO_V1(datacore_ollama_fdw_handler);

Datum
datacore_ollama_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	routine->GetForeignRelSize = dcOllamaGetForeignRelSize;
	routine->GetForeignPaths = dcOllamaGetForeignPaths;
	routine->GetForeignPlan = dcOllamaGetForeignPlan;
	routine->BeginForeignScan = dcOllamaBeginForeignScan;
	routine->IterateForeignScan = dcOllamaIterateForeignScan;
	routine->ReScanForeignScan = dcOllamaReScanForeignScan;
	routine->EndForeignScan = dcOllamaEndForeignScan;
	routine->ExplainForeignScan = dcOllamaExplainForeignScan;
	PG_RETURN_POINTER(routine);
}
