/*-------------------------------------------------------------------------
 *
 * fdw_s3.c
 *		Foreign tables over an S3 bucket (and optional key prefix).
 *
 * format 'raw' (default): one row per object; columns are picked by name
 * from key, size, etag, last_modified and content (bytea or text).  The
 * content is fetched, one object at a time, only when the query uses the
 * column.  INSERT puts an object, DELETE deletes one.
 *
 * format 'jsonl' / 'csv': one row per record of each object; columns are
 * record fields by name (csv without header: by position), plus the
 * optional meta columns _key (object key) and _line (line number).
 * Objects are streamed: only the current chunk and record are in memory.
 *
 * Pushed down: key = value (one HEAD or GET instead of a listing) and
 * key LIKE 'prefix%' (a narrower listing).  Every condition is still
 * checked locally, so pushdown only saves requests.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/appendinfo.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "json.h"
#include "s3.h"

/* Longest record (line) of a jsonl/csv object, unless an option says. */
#define DEFAULT_MAX_RECORD_BYTES	(64 * 1024 * 1024)

typedef enum S3Format
{
	FMT_RAW,
	FMT_JSONL,
	FMT_CSV
} S3Format;

/* Raw-mode columns, by name. */
typedef enum RawCol
{
	COL_OTHER,
	COL_KEY,
	COL_SIZE,
	COL_ETAG,
	COL_LAST_MODIFIED,
	COL_CONTENT
} RawCol;

/* Table options, read at plan and at execution. */
typedef struct S3TableOpts
{
	char	   *bucket;
	char	   *prefix;
	S3Format	format;
	bool		header;
	char		delimiter;
} S3TableOpts;

/* Planner-side state: what could be pushed down. */
typedef struct S3PlanState
{
	S3TableOpts opts;
	AttrNumber	key_attno;		/* key / _key column, or 0 */
	Expr	   *key_expr;		/* key = <expr>, or NULL */
	char	   *list_prefix;	/* effective listing prefix */
	bool		empty;			/* conditions exclude every object */
	bool		need_content;
} S3PlanState;

/* fdw_private list positions */
enum
{
	PRIV_LIST_PREFIX,
	PRIV_HAS_KEY_EXPR,
	PRIV_EMPTY,
	PRIV_NEED_CONTENT
};

typedef struct S3ScanState
{
	DcServer   *server;
	S3TableOpts opts;
	TupleDesc	tupdesc;
	RawCol	   *rawcols;		/* per attribute (raw mode) */
	int		   *fieldpos;		/* per attribute: csv position, -1 meta/none */
	FmgrInfo   *infuncs;
	Oid		   *typioparams;
	AttrNumber	key_attno;
	AttrNumber	line_attno;
	bool		need_content;
	bool		empty;
	char	   *list_prefix;
	ExprState  *key_state;		/* key = expr, evaluated at first fetch */

	/* iteration over objects */
	bool		started;
	bool		single;			/* key = value: at most one object */
	char	   *single_key;
	bool		single_done;
	List	   *objects;		/* current page */
	int			next_object;
	char	   *token;
	bool		last_page;
	MemoryContext pagecxt;
	MemoryContext rowcxt;

	/*
	 * record modes: the object being streamed.  Everything for one object
	 * (its requests, the stream and its buffers, the read buffer, the csv
	 * header) lives in objcxt, reset when the next object starts, so a scan
	 * over many objects needs the memory of one.
	 */
	MemoryContext objcxt;
	int64		max_record_bytes;
	DcHttpStream *stream;
	char	   *cur_key;
	StringInfoData buf;			/* cursor: start of the unread records */
	int			scan_pos;		/* buf is scanned for a record end up to here */
	bool		scan_quoted;	/* csv: scan_pos is inside quotes */
	bool		stream_eof;
	int64		line_no;
	char	  **header_names;
	int			nheader;
} S3ScanState;

/* ---------- options ---------- */

static void
read_table_opts(Oid relid, S3TableOpts *o)
{
	ForeignTable *ft = GetForeignTable(relid);
	const char *fmt = dc_option_from_list(ft->options, "format");
	const char *hdr = dc_option_from_list(ft->options, "header");
	const char *delim = dc_option_from_list(ft->options, "delimiter");
	const char *prefix = dc_option_from_list(ft->options, "prefix");
	const char *bucket = dc_option_from_list(ft->options, "bucket");

	if (bucket == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("foreign table \"%s\" has no bucket option", get_rel_name(relid)),
				 errhint("ALTER FOREIGN TABLE %s OPTIONS (ADD bucket '...').",
						 get_rel_name(relid))));
	o->bucket = pstrdup(bucket);
	o->prefix = pstrdup(prefix ? prefix : "");
	o->format = FMT_RAW;
	if (fmt && strcmp(fmt, "jsonl") == 0)
		o->format = FMT_JSONL;
	else if (fmt && strcmp(fmt, "csv") == 0)
		o->format = FMT_CSV;
	o->header = true;
	if (hdr)
		o->header = defGetBoolean(makeDefElem("header", (Node *) makeString(pstrdup(hdr)), -1));
	o->delimiter = ',';
	if (delim)
	{
		if (strlen(delim) != 1 || delim[0] == '"' || delim[0] == '\n' || delim[0] == '\r')
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("delimiter of foreign table \"%s\" must be a single character other than quote and newline",
							get_rel_name(relid))));
		o->delimiter = delim[0];
	}
}

static RawCol
raw_column(const char *name)
{
	if (strcmp(name, "key") == 0)
		return COL_KEY;
	if (strcmp(name, "size") == 0)
		return COL_SIZE;
	if (strcmp(name, "etag") == 0)
		return COL_ETAG;
	if (strcmp(name, "last_modified") == 0)
		return COL_LAST_MODIFIED;
	if (strcmp(name, "content") == 0)
		return COL_CONTENT;
	return COL_OTHER;
}

/*
 * Check the column list against the format: raw columns must be known,
 * with the types the values have.
 */
static void
check_columns(Relation rel, S3TableOpts *o)
{
	TupleDesc	td = RelationGetDescr(rel);

	for (int i = 0; i < td->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);
		const char *name = NameStr(att->attname);
		Oid			want = InvalidOid;

		if (att->attisdropped)
			continue;
		if (o->format != FMT_RAW)
		{
			if (strcmp(name, "_key") == 0)
				want = TEXTOID;
			else if (strcmp(name, "_line") == 0)
				want = INT8OID;
			if (want != InvalidOid && att->atttypid != want)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
						 errmsg("column \"%s\" of foreign table \"%s\" must have type %s",
								name, RelationGetRelationName(rel), format_type_be(want))));
			continue;
		}
		switch (raw_column(name))
		{
			case COL_KEY:
			case COL_ETAG:
				want = TEXTOID;
				break;
			case COL_SIZE:
				want = INT8OID;
				break;
			case COL_LAST_MODIFIED:
				want = TIMESTAMPTZOID;
				break;
			case COL_CONTENT:
				if (att->atttypid != BYTEAOID && att->atttypid != TEXTOID)
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
							 errmsg("column \"content\" of foreign table \"%s\" must have type bytea or text",
									RelationGetRelationName(rel))));
				continue;
			case COL_OTHER:
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_COLUMN_NAME),
						 errmsg("foreign table \"%s\" has unknown column \"%s\"",
								RelationGetRelationName(rel), name),
						 errhint("With format 'raw' the columns are key, size, etag, last_modified and content; use format 'jsonl' or 'csv' to read records.")));
		}
		if (att->atttypid != want)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
					 errmsg("column \"%s\" of foreign table \"%s\" must have type %s",
							name, RelationGetRelationName(rel), format_type_be(want))));
	}
}

static AttrNumber
find_attno(TupleDesc td, const char *name)
{
	for (int i = 0; i < td->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	return InvalidAttrNumber;
}

/* ---------- planning ---------- */

/* Literal prefix of a LIKE pattern (up to the first wildcard). */
static char *
like_prefix(const char *pattern)
{
	StringInfoData buf;
	const char *p;

	initStringInfo(&buf);
	for (p = pattern; *p; p++)
	{
		if (*p == '%' || *p == '_')
			break;
		if (*p == '\\')
		{
			p++;
			if (*p == '\0')
				break;
		}
		appendStringInfoChar(&buf, *p);
	}
	return buf.data;
}

/* Is "e" a Var for our key column? */
static bool
is_key_var(Node *e, Index relid, AttrNumber key_attno)
{
	Var		   *v;

	if (e && IsA(e, RelabelType))
		e = (Node *) ((RelabelType *) e)->arg;
	if (e == NULL || !IsA(e, Var))
		return false;
	v = (Var *) e;
	return v->varno == relid && v->varlevelsup == 0 && v->varattno == key_attno;
}

/* Narrow the listing prefix to p; contradictory prefixes empty the scan. */
static void
narrow_prefix(S3PlanState *ps, const char *p)
{
	if (strncmp(p, ps->list_prefix, strlen(ps->list_prefix)) == 0)
		ps->list_prefix = pstrdup(p);
	else if (strncmp(ps->list_prefix, p, strlen(p)) != 0)
		ps->empty = true;
}

/*
 * Find pushable conditions on the key column: key = const-or-param and
 * key LIKE 'constant%'.
 */
static void
extract_pushdown(PlannerInfo *root, RelOptInfo *baserel, S3PlanState *ps)
{
	ListCell   *lc;

	if (ps->key_attno == InvalidAttrNumber)
		return;
	foreach(lc, baserel->baserestrictinfo)
	{
		RestrictInfo *ri = lfirst(lc);
		OpExpr	   *op;
		Node	   *left;
		Node	   *right;
		Oid			func;

		if (!IsA(ri->clause, OpExpr))
			continue;
		op = (OpExpr *) ri->clause;
		if (list_length(op->args) != 2)
			continue;
		left = linitial(op->args);
		right = lsecond(op->args);
		func = get_opcode(op->opno);
		if (!is_key_var(left, baserel->relid, ps->key_attno))
		{
			if (func != F_TEXTEQ || !is_key_var(right, baserel->relid, ps->key_attno))
				continue;
			right = left;
		}
		if (func == F_TEXTEQ && ps->key_expr == NULL &&
			(IsA(right, Const) || IsA(right, Param)))
		{
			if (IsA(right, Const) && ((Const *) right)->constisnull)
				ps->empty = true;
			else
				ps->key_expr = (Expr *) right;
		}
		else if (func == F_TEXTLIKE && IsA(right, Const) && !((Const *) right)->constisnull)
			narrow_prefix(ps, like_prefix(TextDatumGetCString(((Const *) right)->constvalue)));
	}
}

static S3PlanState *
plan_state(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	S3PlanState *ps = palloc0(sizeof(S3PlanState));
	Relation	rel = table_open(foreigntableid, NoLock);
	Bitmapset  *attrs = NULL;
	ListCell   *lc;
	AttrNumber	content_attno;

	read_table_opts(foreigntableid, &ps->opts);
	check_columns(rel, &ps->opts);
	ps->key_attno = find_attno(RelationGetDescr(rel),
							   ps->opts.format == FMT_RAW ? "key" : "_key");
	content_attno = ps->opts.format == FMT_RAW ?
		find_attno(RelationGetDescr(rel), "content") : InvalidAttrNumber;
	table_close(rel, NoLock);

	ps->list_prefix = ps->opts.prefix;
	extract_pushdown(root, baserel, ps);

	/* content is fetched only if the query reads it */
	pull_varattnos((Node *) baserel->reltarget->exprs, baserel->relid, &attrs);
	foreach(lc, baserel->baserestrictinfo)
		pull_varattnos((Node *) ((RestrictInfo *) lfirst(lc))->clause,
					   baserel->relid, &attrs);
	if (content_attno != InvalidAttrNumber &&
		(bms_is_member(content_attno - FirstLowInvalidHeapAttributeNumber, attrs) ||
		 bms_is_member(0 - FirstLowInvalidHeapAttributeNumber, attrs)))
		ps->need_content = true;
	return ps;
}

static void
dcS3GetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	S3PlanState *ps = plan_state(root, baserel, foreigntableid);

	baserel->fdw_private = ps;
	if (ps->empty)
		baserel->rows = 0;
	else if (ps->key_expr)
		baserel->rows = ps->opts.format == FMT_RAW ? 1 : 1000;
	else
		baserel->rows = ps->opts.format == FMT_RAW ? 1000 : 100000;
}

static void
dcS3GetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	S3PlanState *ps = baserel->fdw_private;
	Cost		startup = 10;
	Cost		total = startup + baserel->rows * (ps->need_content ? 10 : 0.1);

	add_path(baserel, (Path *) create_foreignscan_path(root, baserel, NULL,
													   baserel->rows, startup, total,
													   NIL, NULL, NULL, NIL));
}

static ForeignScan *
dcS3GetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
				   ForeignPath *best_path, List *tlist, List *scan_clauses,
				   Plan *outer_plan)
{
	S3PlanState *ps = baserel->fdw_private;
	List	   *priv;
	List	   *exprs = NIL;

	/* everything is rechecked locally; pushdown only narrows the requests */
	scan_clauses = extract_actual_clauses(scan_clauses, false);
	if (ps->key_expr)
		exprs = list_make1(ps->key_expr);
	priv = list_make4(makeString(ps->list_prefix),
					  makeBoolean(ps->key_expr != NULL),
					  makeBoolean(ps->empty),
					  makeBoolean(ps->need_content));
	return make_foreignscan(tlist, scan_clauses, baserel->relid, exprs, priv,
							NIL, NIL, outer_plan);
}

/* ---------- execution ---------- */

static void
dcS3BeginForeignScan(ForeignScanState *node, int eflags)
{
	ForeignScan *fs = (ForeignScan *) node->ss.ps.plan;
	Relation	rel = node->ss.ss_currentRelation;
	EState	   *estate = node->ss.ps.state;
	S3ScanState *st = palloc0(sizeof(S3ScanState));
	Oid			userid;
	TupleDesc	td = RelationGetDescr(rel);

	node->fdw_state = st;
	read_table_opts(RelationGetRelid(rel), &st->opts);
	st->list_prefix = strVal(list_nth(fs->fdw_private, PRIV_LIST_PREFIX));
	st->empty = boolVal(list_nth(fs->fdw_private, PRIV_EMPTY));
	st->need_content = boolVal(list_nth(fs->fdw_private, PRIV_NEED_CONTENT));
	if (boolVal(list_nth(fs->fdw_private, PRIV_HAS_KEY_EXPR)))
		st->key_state = ExecInitExpr(linitial(fs->fdw_exprs), (PlanState *) node);

	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;

	userid = dc_scan_user(node);
	st->server = dc_get_server_by_oid(GetForeignTable(RelationGetRelid(rel))->serverid,
									  userid, DC_SERVICE_S3, "foreign table scan");
	st->tupdesc = td;
	st->rawcols = palloc0(sizeof(RawCol) * td->natts);
	st->fieldpos = palloc(sizeof(int) * td->natts);
	st->infuncs = palloc0(sizeof(FmgrInfo) * td->natts);
	st->typioparams = palloc0(sizeof(Oid) * td->natts);
	{
		int			pos = 0;

		for (int i = 0; i < td->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(td, i);
			Oid			infunc;

			st->fieldpos[i] = -1;
			if (att->attisdropped)
				continue;
			st->rawcols[i] = raw_column(NameStr(att->attname));
			if (st->opts.format != FMT_RAW)
			{
				if (strcmp(NameStr(att->attname), "_key") == 0)
					st->key_attno = att->attnum;
				else if (strcmp(NameStr(att->attname), "_line") == 0)
					st->line_attno = att->attnum;
				else
					st->fieldpos[i] = pos++;
			}
			getTypeInputInfo(att->atttypid, &infunc, &st->typioparams[i]);
			fmgr_info(infunc, &st->infuncs[i]);
		}
	}
	st->pagecxt = AllocSetContextCreate(estate->es_query_cxt, "datacore S3 page",
										ALLOCSET_DEFAULT_SIZES);
	st->rowcxt = AllocSetContextCreate(estate->es_query_cxt, "datacore S3 row",
									   ALLOCSET_DEFAULT_SIZES);
	st->objcxt = AllocSetContextCreate(estate->es_query_cxt, "datacore S3 object",
									   ALLOCSET_DEFAULT_SIZES);
	{
		const char *mrb = dc_option_from_list(GetForeignTable(RelationGetRelid(rel))->options,
											  "max_record_bytes");

		st->max_record_bytes = mrb ? strtoll(mrb, NULL, 10) :
			dc_option_int64(st->server, "max_record_bytes", DEFAULT_MAX_RECORD_BYTES);
	}
}

/* Begin (again): evaluate key = expr, forget any listing. */
static void
start_scan(ForeignScanState *node, S3ScanState *st)
{
	st->started = true;
	st->single = false;
	st->single_done = false;
	st->objects = NIL;
	st->next_object = 0;
	st->token = NULL;
	st->last_page = false;
	MemoryContextReset(st->pagecxt);
	if (st->key_state)
	{
		bool		isnull;
		Datum		d = ExecEvalExprSwitchContext(st->key_state,
												  node->ss.ps.ps_ExprContext, &isnull);

		st->single = true;
		if (isnull)
			st->single_done = true;
		else
		{
			st->single_key = MemoryContextStrdup(st->pagecxt, TextDatumGetCString(d));
			/* a key outside the table's prefix is not in the table */
			if (strncmp(st->single_key, st->opts.prefix, strlen(st->opts.prefix)) != 0)
				st->single_done = true;
		}
	}
}

/*
 * Next object of the listing into *obj; false at the end.  Pages are
 * fetched as needed, each parsed in pagecxt.
 */
static bool
next_listed(S3ScanState *st, DcS3Object **obj)
{
	while (st->next_object >= list_length(st->objects))
	{
		MemoryContext old;
		DcS3ListPage *page;
		char	   *token;

		if (st->last_page)
			return false;
		token = st->token ? pstrdup(st->token) : NULL;
		MemoryContextReset(st->pagecxt);
		old = MemoryContextSwitchTo(st->pagecxt);
		page = dc_s3_list_page(st->server, "foreign table scan", st->opts.bucket,
							   st->list_prefix, token, 1000);
		st->objects = page->objects;
		st->next_object = 0;
		st->token = page->truncated ? page->next_token : NULL;
		st->last_page = !page->truncated;
		MemoryContextSwitchTo(old);
	}
	*obj = list_nth(st->objects, st->next_object++);
	return true;
}

/* Next object key to read (record modes, and raw listing). */
static bool
next_object(S3ScanState *st, DcS3Object **obj)
{
	if (st->single)
	{
		DcS3Object *o;

		if (st->single_done)
			return false;
		st->single_done = true;
		o = MemoryContextAllocZero(st->pagecxt, sizeof(DcS3Object));
		o->key = st->single_key;
		o->size = -1;
		*obj = o;
		return true;
	}
	return next_listed(st, obj);
}

/* Fill a raw-mode row from an object (and its content, if wanted). */
static bool
raw_row(S3ScanState *st, DcS3Object *o, TupleTableSlot *slot)
{
	Datum	   *values = slot->tts_values;
	bool	   *nulls = slot->tts_isnull;
	bytea	   *content = NULL;
	char	   *etag = o->etag;
	char	   *lm = o->last_modified;
	int64		size = o->size;

	/* key = value: HEAD tells whether it exists, and its metadata */
	if (st->single)
	{
		DcHttpResponse *head = dc_s3_head(st->server, "foreign table scan",
										  st->opts.bucket, o->key);
		const char *v;

		if (head->status == 404)
			return false;
		if (head->status >= 300)
			dc_s3_raise(st->server,
						dc_s3_request(st->server, "foreign table scan", "HEAD",
									  st->opts.bucket, o->key, NIL, NULL, 0, NULL),
						head);
		etag = (char *) dc_http_header_text(st->server, head, "etag");
		if ((v = dc_http_header_text(st->server, head, "last-modified")) != NULL)
			lm = pstrdup(v);
		if ((v = dc_http_header(head, "content-length")) != NULL)
			size = strtoll(v, NULL, 10);
	}
	if (st->need_content)
	{
		content = dc_s3_get(st->server, "foreign table scan", st->opts.bucket, o->key);
		size = VARSIZE(content) - VARHDRSZ;
	}

	for (int i = 0; i < st->tupdesc->natts; i++)
	{
		nulls[i] = true;
		switch (st->rawcols[i])
		{
			case COL_KEY:
				values[i] = CStringGetTextDatum(o->key);
				nulls[i] = false;
				break;
			case COL_SIZE:
				if (size >= 0)
				{
					values[i] = Int64GetDatum(size);
					nulls[i] = false;
				}
				break;
			case COL_ETAG:
				if (etag)
				{
					size_t		n = strlen(etag);

					if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"')
						etag = pnstrdup(etag + 1, n - 2);
					values[i] = CStringGetTextDatum(etag);
					nulls[i] = false;
				}
				break;
			case COL_LAST_MODIFIED:
				if (lm)
				{
					values[i] = TimestampTzGetDatum(dc_s3_parse_time(lm));
					nulls[i] = false;
				}
				break;
			case COL_CONTENT:
				if (content)
				{
					if (TupleDescAttr(st->tupdesc, i)->atttypid == TEXTOID)
						dc_check_remote_text(VARDATA(content), VARSIZE(content) - VARHDRSZ,
											 psprintf("content of object \"%s\"", o->key),
											 st->server->servername);
					values[i] = PointerGetDatum(content);
					nulls[i] = false;
				}
				break;
			case COL_OTHER:
				break;
		}
	}
	return true;
}

/* ---------- record modes ---------- */

static void
record_too_large(S3ScanState *st)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("record at line " INT64_FORMAT " of object \"%s\" in bucket \"%s\" exceeds the size limit",
					st->line_no + 1, st->cur_key, st->opts.bucket),
			 errdetail("The limit is " INT64_FORMAT " bytes.", st->max_record_bytes),
			 errhint("Raise the option max_record_bytes of the foreign table or of its server.")));
}

/*
 * Next record of the current object into *rec (pointing into st->buf,
 * NUL-terminated); false at the object's end.  For csv a record ends at a
 * newline outside quotes.  Only the unread tail of the buffer is kept, and
 * each byte is scanned once however many reads a long record takes; a
 * record over max_record_bytes is an error.
 */
static bool
next_record(S3ScanState *st, char **rec, int *len)
{
	for (;;)
	{
		int			start = st->buf.cursor;
		bool		quoted = st->scan_quoted;
		int			i;

		for (i = st->scan_pos; i < st->buf.len; i++)
		{
			char		c = st->buf.data[i];

			if (st->opts.format == FMT_CSV && c == '"')
				quoted = !quoted;
			else if (c == '\n' && !quoted)
				break;
		}
		if (i - start > st->max_record_bytes)
			record_too_large(st);
		if (i < st->buf.len || (st->stream_eof && i > start))
		{
			int			end = i;

			st->buf.cursor = i < st->buf.len ? i + 1 : i;
			st->scan_pos = st->buf.cursor;
			st->scan_quoted = false;
			if (end > start && st->buf.data[end - 1] == '\r')
				end--;
			st->buf.data[end] = '\0';
			*rec = st->buf.data + start;
			*len = end - start;
			st->line_no++;
			return true;
		}
		st->scan_pos = i;
		st->scan_quoted = quoted;
		if (st->stream_eof)
			return false;

		/* keep the unread tail only, then read more */
		if (st->buf.cursor > 0)
		{
			memmove(st->buf.data, st->buf.data + st->buf.cursor, st->buf.len - st->buf.cursor);
			st->buf.len -= st->buf.cursor;
			st->scan_pos -= st->buf.cursor;
			st->buf.data[st->buf.len] = '\0';
			st->buf.cursor = 0;
		}
		if (!dc_http_read(st->stream, &st->buf))
		{
			dc_http_close(st->stream);
			st->stream = NULL;
			st->stream_eof = true;
		}
	}
}

/* Split a csv record into fields (quotes removed, "" as one quote). */
static List *
csv_fields(char *rec, char delim)
{
	List	   *out = NIL;
	StringInfoData f;
	bool		quoted = false;
	char	   *p = rec;

	initStringInfo(&f);
	for (;; p++)
	{
		if (quoted)
		{
			if (*p == '\0')
				break;
			if (*p == '"' && p[1] == '"')
			{
				appendStringInfoChar(&f, '"');
				p++;
			}
			else if (*p == '"')
				quoted = false;
			else
				appendStringInfoChar(&f, *p);
			continue;
		}
		if (*p == '"')
			quoted = true;
		else if (*p == delim || *p == '\0')
		{
			out = lappend(out, pstrdup(f.data));
			resetStringInfo(&f);
			if (*p == '\0')
				break;
		}
		else
			appendStringInfoChar(&f, *p);
	}
	return out;
}

/* Where a record field that fails its column's input function came from. */
typedef struct FieldContext
{
	S3ScanState *st;
	const char *column;
} FieldContext;

static void
field_error_context(void *arg)
{
	FieldContext *fc = arg;

	errcontext("column \"%s\", line " INT64_FORMAT " of object \"%s\" in bucket \"%s\"",
			   fc->column, fc->st->line_no, fc->st->cur_key, fc->st->opts.bucket);
}

static Datum
input_value(S3ScanState *st, int i, char *text)
{
	Form_pg_attribute att = TupleDescAttr(st->tupdesc, i);
	ErrorContextCallback cb;
	FieldContext fc;
	Datum		d;

	fc.st = st;
	fc.column = NameStr(att->attname);
	cb.callback = field_error_context;
	cb.arg = &fc;
	cb.previous = error_context_stack;
	error_context_stack = &cb;
	d = InputFunctionCall(&st->infuncs[i], text, st->typioparams[i], att->atttypmod);
	error_context_stack = cb.previous;
	return d;
}

/*
 * A json value as the text a column's input function reads: JSON is
 * UTF-8, the column's text is in the database encoding.
 */
static char *
json_value_text(json_t *v)
{
	char	   *s;

	if (json_is_string(v))
		return pg_any_to_server(json_string_value(v), json_string_length(v), PG_UTF8);
	if (json_is_true(v))
		return pstrdup("true");
	if (json_is_false(v))
		return pstrdup("false");
	s = dc_json_dumps(v);
	return pg_any_to_server(s, strlen(s), PG_UTF8);
}

static void
bad_record(S3ScanState *st, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
			 errmsg("invalid record at line " INT64_FORMAT " of object \"%s\" in bucket \"%s\"",
					st->line_no, st->cur_key, st->opts.bucket),
			 errdetail_internal("%s", detail)));
}

/*
 * Fill a record-mode row; false when the current object has no more
 * records.
 */
static bool
record_row(S3ScanState *st, TupleTableSlot *slot)
{
	char	   *rec;
	int			len;
	List	   *fields = NIL;
	json_t	   *obj = NULL;

	for (;;)
	{
		if (!next_record(st, &rec, &len))
			return false;
		/* every field becomes a value: the record must be valid text */
		if (pg_encoding_verifymbstr(GetDatabaseEncoding(), rec, len) != len)
			dc_check_remote_text(rec, len,
								 psprintf("line " INT64_FORMAT " of object \"%s\" in bucket \"%s\"",
										  st->line_no, st->cur_key, st->opts.bucket),
								 st->server->servername);
		if (st->opts.format == FMT_JSONL)
		{
			json_error_t err;

			if (strspn(rec, " \t") == (size_t) len)
				continue;		/* blank line */
			obj = json_loadb(rec, len, 0, &err);
			if (obj == NULL)
				bad_record(st, psprintf("JSON error at column %d: %s.", err.column, err.text));
			if (!json_is_object(obj))
				bad_record(st, "A JSON Lines record must be an object.");
			break;
		}
		fields = csv_fields(rec, st->opts.delimiter);
		if (st->opts.header && st->line_no == 1)
		{
			/* header row: remember the names, for this object */
			MemoryContext old = MemoryContextSwitchTo(st->objcxt);
			ListCell   *lc;

			st->nheader = list_length(fields);
			st->header_names = palloc(sizeof(char *) * st->nheader);
			foreach(lc, fields)
				st->header_names[foreach_current_index(lc)] = pstrdup(lfirst(lc));
			MemoryContextSwitchTo(old);
			continue;
		}
		break;
	}

	for (int i = 0; i < st->tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(st->tupdesc, i);
		char	   *text = NULL;

		slot->tts_isnull[i] = true;
		if (att->attisdropped)
			continue;
		if (att->attnum == st->key_attno)
		{
			slot->tts_values[i] = CStringGetTextDatum(st->cur_key);
			slot->tts_isnull[i] = false;
			continue;
		}
		if (att->attnum == st->line_attno)
		{
			slot->tts_values[i] = Int64GetDatum(st->line_no);
			slot->tts_isnull[i] = false;
			continue;
		}
		if (obj)
		{
			json_t	   *v = json_object_get(obj, NameStr(att->attname));

			if (v && !json_is_null(v))
				text = json_value_text(v);
		}
		else if (st->opts.header)
		{
			for (int h = 0; h < st->nheader && h < list_length(fields); h++)
				if (strcmp(st->header_names[h], NameStr(att->attname)) == 0)
				{
					text = list_nth(fields, h);
					break;
				}
		}
		else if (st->fieldpos[i] < list_length(fields))
			text = list_nth(fields, st->fieldpos[i]);
		/* an empty csv field is NULL, as COPY reads an unquoted one */
		if (text && (obj || text[0] != '\0'))
		{
			slot->tts_values[i] = input_value(st, i, text);
			slot->tts_isnull[i] = false;
		}
	}
	return true;
}

/*
 * Let go of the current object: close its stream (a finished transfer
 * keeps its connection for the next object), then free everything it
 * used.
 */
static void
end_object(S3ScanState *st)
{
	if (st->stream)
		dc_http_close(st->stream);
	st->stream = NULL;
	st->cur_key = NULL;
	st->buf.data = NULL;
	st->scan_pos = 0;
	st->scan_quoted = false;
	st->stream_eof = false;
	st->line_no = 0;
	st->header_names = NULL;
	st->nheader = 0;
	MemoryContextReset(st->objcxt);
}

static TupleTableSlot *
dcS3IterateForeignScan(ForeignScanState *node)
{
	S3ScanState *st = node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;
	MemoryContext old;

	ExecClearTuple(slot);
	if (st->empty)
		return slot;
	if (!st->started)
		start_scan(node, st);

	MemoryContextReset(st->rowcxt);
	old = MemoryContextSwitchTo(st->rowcxt);
	for (;;)
	{
		DcS3Object *o;

		CHECK_FOR_INTERRUPTS();
		if (st->opts.format == FMT_RAW)
		{
			if (!next_object(st, &o))
				break;
			if (!raw_row(st, o, slot))
				continue;
			ExecStoreVirtualTuple(slot);
			break;
		}

		/* record modes: continue the current object, or open the next */
		if (st->cur_key && record_row(st, slot))
		{
			ExecStoreVirtualTuple(slot);
			break;
		}
		end_object(st);
		if (!next_object(st, &o))
			break;
		MemoryContextSwitchTo(st->objcxt);
		initStringInfo(&st->buf);
		if (st->single)
		{
			/* key = value: a missing object is no rows, not an error */
			DcHttpResponse *head = dc_s3_head(st->server, "foreign table scan",
											  st->opts.bucket, o->key);

			if (head->status == 404)
			{
				MemoryContextSwitchTo(st->rowcxt);
				continue;
			}
		}
		st->cur_key = pstrdup(o->key);
		st->stream = dc_s3_open(st->server, "foreign table scan", st->opts.bucket, o->key);
		MemoryContextSwitchTo(st->rowcxt);
	}
	MemoryContextSwitchTo(old);
	return slot;
}

static void
dcS3ReScanForeignScan(ForeignScanState *node)
{
	S3ScanState *st = node->fdw_state;

	end_object(st);
	st->started = false;
}

static void
dcS3EndForeignScan(ForeignScanState *node)
{
	S3ScanState *st = node->fdw_state;

	if (st && st->stream)
		dc_http_close(st->stream);
}

static void
dcS3ExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	ForeignScan *fs = (ForeignScan *) node->ss.ps.plan;
	S3ScanState *st = node->fdw_state;
	const char *fmt = st->opts.format == FMT_RAW ? "raw" :
		st->opts.format == FMT_JSONL ? "jsonl" : "csv";

	if (boolVal(list_nth(fs->fdw_private, PRIV_EMPTY)))
		ExplainPropertyText("S3 request", "none (conditions exclude every object)", es);
	else if (boolVal(list_nth(fs->fdw_private, PRIV_HAS_KEY_EXPR)))
		ExplainPropertyText("S3 request",
							psprintf("%s /%s/<key>", st->need_content || st->opts.format != FMT_RAW ? "GET" : "HEAD",
									 st->opts.bucket), es);
	else
		ExplainPropertyText("S3 request",
							psprintf("ListObjectsV2 /%s prefix '%s'", st->opts.bucket,
									 st->list_prefix), es);
	ExplainPropertyText("S3 format", fmt, es);
	if (st->opts.format == FMT_RAW)
		ExplainPropertyBool("S3 content fetched", st->need_content, es);
}

/* ---------- modification ---------- */

static int
dcS3IsForeignRelUpdatable(Relation rel)
{
	S3TableOpts o;

	read_table_opts(RelationGetRelid(rel), &o);
	if (o.format != FMT_RAW)
		return 0;
	return (1 << CMD_INSERT) | (1 << CMD_DELETE);
}

static void
dcS3AddForeignUpdateTargets(PlannerInfo *root, Index rtindex,
							RangeTblEntry *target_rte, Relation target_relation)
{
	AttrNumber	attno = find_attno(RelationGetDescr(target_relation), "key");
	Var		   *var;

	if (attno == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_COLUMN_NAME_NOT_FOUND),
				 errmsg("foreign table \"%s\" needs a key column for DELETE",
						RelationGetRelationName(target_relation))));
	var = makeVar(rtindex, attno, TEXTOID, -1, InvalidOid, 0);
	add_row_identity_var(root, var, rtindex, "s3key");
}

typedef struct S3ModifyState
{
	DcServer   *server;
	S3TableOpts opts;
	AttrNumber	key_attno;
	AttrNumber	content_attno;
	AttrNumber	junk_attno;
	Oid			content_type;
	MemoryContext cxt;
} S3ModifyState;

static void
dcS3BeginForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo,
					   List *fdw_private, int subplan_index, int eflags)
{
	Relation	rel = rinfo->ri_RelationDesc;
	S3ModifyState *ms = palloc0(sizeof(S3ModifyState));
	TupleDesc	td = RelationGetDescr(rel);

	rinfo->ri_FdwState = ms;
	read_table_opts(RelationGetRelid(rel), &ms->opts);
	ms->key_attno = find_attno(td, "key");
	ms->content_attno = find_attno(td, "content");
	if (ms->content_attno != InvalidAttrNumber)
		ms->content_type = TupleDescAttr(td, ms->content_attno - 1)->atttypid;
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;
	ms->server = dc_get_server_by_oid(GetForeignTable(RelationGetRelid(rel))->serverid,
									  dc_modify_user(rinfo, mtstate->ps.state), DC_SERVICE_S3,
									  mtstate->operation == CMD_INSERT ? "INSERT" : "DELETE");
	if (mtstate->operation == CMD_DELETE)
	{
		Plan	   *sub = outerPlanState(mtstate)->plan;

		ms->junk_attno = ExecFindJunkAttributeInTlist(sub->targetlist, "s3key");
		if (!AttributeNumberIsValid(ms->junk_attno))
			elog(ERROR, "could not find the key of the row to delete");
	}
	ms->cxt = AllocSetContextCreate(CurrentMemoryContext, "datacore S3 modify",
									ALLOCSET_DEFAULT_SIZES);
}

static TupleTableSlot *
dcS3ExecForeignInsert(EState *estate, ResultRelInfo *rinfo,
					  TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	S3ModifyState *ms = rinfo->ri_FdwState;
	MemoryContext old;
	bool		isnull;
	Datum		d;
	char	   *key;
	struct varlena *v = NULL;

	if (ms->key_attno == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_COLUMN_NAME_NOT_FOUND),
				 errmsg("foreign table \"%s\" needs a key column for INSERT",
						RelationGetRelationName(rinfo->ri_RelationDesc))));
	MemoryContextReset(ms->cxt);
	old = MemoryContextSwitchTo(ms->cxt);
	d = slot_getattr(slot, ms->key_attno, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("key of an object inserted into \"%s\" must not be null",
						RelationGetRelationName(rinfo->ri_RelationDesc))));
	key = TextDatumGetCString(d);
	if (strncmp(key, ms->opts.prefix, strlen(ms->opts.prefix)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("key \"%s\" is outside the prefix \"%s\" of foreign table \"%s\"",
						key, ms->opts.prefix,
						RelationGetRelationName(rinfo->ri_RelationDesc))));
	if (ms->content_attno != InvalidAttrNumber)
	{
		d = slot_getattr(slot, ms->content_attno, &isnull);
		if (!isnull)
			v = PG_DETOAST_DATUM_PACKED(d);
	}
	dc_s3_put(ms->server, "INSERT", ms->opts.bucket, key,
			  v ? VARDATA_ANY(v) : "", v ? VARSIZE_ANY_EXHDR(v) : 0,
			  ms->content_type == TEXTOID ? "text/plain; charset=utf-8" : "application/octet-stream");
	MemoryContextSwitchTo(old);
	return slot;
}

static TupleTableSlot *
dcS3ExecForeignDelete(EState *estate, ResultRelInfo *rinfo,
					  TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	S3ModifyState *ms = rinfo->ri_FdwState;
	bool		isnull;
	Datum		d = ExecGetJunkAttribute(planSlot, ms->junk_attno, &isnull);
	bool		deleted;
	MemoryContext old;

	if (isnull)
		return NULL;
	MemoryContextReset(ms->cxt);
	old = MemoryContextSwitchTo(ms->cxt);
	deleted = dc_s3_delete(ms->server, "DELETE", ms->opts.bucket, TextDatumGetCString(d));
	MemoryContextSwitchTo(old);
	return deleted ? slot : NULL;
}

PG_FUNCTION_INFO_V1(datacore_s3_fdw_handler);

Datum
datacore_s3_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *r = makeNode(FdwRoutine);

	r->GetForeignRelSize = dcS3GetForeignRelSize;
	r->GetForeignPaths = dcS3GetForeignPaths;
	r->GetForeignPlan = dcS3GetForeignPlan;
	r->BeginForeignScan = dcS3BeginForeignScan;
	r->IterateForeignScan = dcS3IterateForeignScan;
	r->ReScanForeignScan = dcS3ReScanForeignScan;
	r->EndForeignScan = dcS3EndForeignScan;
	r->ExplainForeignScan = dcS3ExplainForeignScan;
	r->IsForeignRelUpdatable = dcS3IsForeignRelUpdatable;
	r->AddForeignUpdateTargets = dcS3AddForeignUpdateTargets;
	r->BeginForeignModify = dcS3BeginForeignModify;
	r->ExecForeignInsert = dcS3ExecForeignInsert;
	r->ExecForeignDelete = dcS3ExecForeignDelete;
	PG_RETURN_POINTER(r);
}
