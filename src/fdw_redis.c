/*-------------------------------------------------------------------------
 *
 * fdw_redis.c
 *		Foreign-data wrapper datacore_redis: a Redis keyspace as a table.
 *
 * A foreign table covers the keys of one Redis type (option table_type:
 * string, hash, list, set, zset) under an optional key_prefix; the key
 * column shows the key without the prefix.  Columns are found by name:
 *
 *	string	key, value, ttl					one row per key
 *	hash	key, field, value, ttl			one row per field
 *	hash	key, value (json/jsonb), ttl	one row per key, the hash as an object
 *	list	key, value, ttl					one row per element
 *	set		key, member, ttl				one row per member
 *	zset	key, member, score, ttl			one row per member
 *
 * ttl (interval) is the key's remaining time to live, NULL when persistent.
 *
 * Scans: "key = expr" and "key = ANY(array)" read exactly those keys;
 * otherwise SCAN walks the keyspace (MATCH on the prefix, plus the literal
 * prefix of a "key LIKE 'abc%'" condition, and TYPE), never KEYS.  Each
 * round trip carries the reads for one SCAN page pipelined with the next
 * SCAN call, so memory is bounded by one batch (scan_count keys) plus the
 * set of keys already returned: SCAN may return a key more than once while
 * Redis resizes its hash table, and a table must not show a key twice.  All
 * conditions are still checked locally.
 *
 * Writes (INSERT/UPDATE/DELETE, RETURNING) are in fdw_redis_modify.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "common/hashfn.h"
#include "fdw_redis.h"
#include "redis.h"

#define OID_TEXT_EQ_OP		98	/* text = text */
#define OID_TEXT_LIKE_OP_	1209	/* text ~~ text */


static const char *const type_names[] = {"string", "hash", "list", "set", "zset"};
static const char *const read_names[] = {"GET", "HGETALL", "LRANGE", "SMEMBERS", "ZRANGE"};

/*
 * The keys a keyspace scan has returned so far.  Keys are binary-safe byte
 * strings, so they are compared by length and bytes.
 */
typedef struct KeyBytes
{
	const char *data;
	size_t		len;
} KeyBytes;

typedef struct SeenKey
{
	KeyBytes	key;
	uint32		hash;
	char		status;			/* used by simplehash */
} SeenKey;

static inline uint32
key_bytes_hash(KeyBytes k)
{
	return hash_bytes((const unsigned char *) k.data, (int) k.len);
}

static inline bool
key_bytes_equal(KeyBytes a, KeyBytes b)
{
	return a.len == b.len && memcmp(a.data, b.data, a.len) == 0;
}

#define SH_PREFIX		seenkeys
#define SH_ELEMENT_TYPE	SeenKey
#define SH_KEY_TYPE		KeyBytes
#define SH_KEY			key
#define SH_HASH_KEY(tb, k)	key_bytes_hash(k)
#define SH_EQUAL(tb, a, b)	key_bytes_equal(a, b)
#define SH_SCOPE		static inline
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a)	((a)->hash)
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

typedef enum ScanMode
{
	SCAN_KEYSPACE,
	SCAN_KEY_EQ,
	SCAN_KEY_ANY
} ScanMode;



/* One round trip of a scan: reads for some keys, maybe the next SCAN. */
typedef struct RedisBatch
{
	MemoryContext cxt;
	bool		live;			/* has keys or a request to process */
	DcRedisPending *request;	/* NULL: nothing sent */
	int			nkeys;
	char	  **keys;			/* full keys, copied into cxt */
	size_t	   *key_len;
	bool		has_scan;		/* last command is SCAN */
} RedisBatch;

typedef struct RedisScanState
{
	DcServer   *server;
	TableInfo	info;
	ColConv    *conv;
	ScanMode	mode;
	char	   *match;			/* SCAN MATCH pattern */
	ExprState  *key_expr;		/* SCAN_KEY_EQ / _ANY */
	bool		need_values;	/* read values, not only keys */
	bool		need_ttl;

	/* keys to read */
	bool		started;
	char	   *cursor;			/* SCAN cursor; "0" ends */
	MemoryContext seen_cxt;		/* keyspace scan: the keys returned so far */
	seenkeys_hash *seen;
	int			nlist;			/* key-list mode: the keys */
	char	  **list;
	size_t	   *list_len;
	int			next_key;		/* key-list mode: next index in list */

	/*
	 * Two batches alternate: while the rows of one are returned, the
	 * request for the next is already on its way, so Redis works while we
	 * convert.  Each batch owns a memory context holding its request, its
	 * replies and its rows.
	 */
	RedisBatch	batch[2];
	int			cur;			/* batch whose rows are being returned */
	int			nrows;
	int			next_row;
	Datum	  **row_values;
	bool	  **row_nulls;
	int			maxrows;
} RedisScanState;


/* ---------------------------------------------------------------------
 * Table description
 * --------------------------------------------------------------------- */

static void
table_error(Relation rel, const char *msg, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_COLUMN_NAME),
			 errmsg("foreign table \"%s\" %s", RelationGetRelationName(rel), msg),
			 hint ? errhint("%s", hint) : 0));
}

/*
 * Read the table's options and find its columns by name; a column that
 * the table type has no use for is an error, so typos surface at once.
 */
void
dc_rfdw_table_info(Relation rel, TableInfo *info)
{
	ForeignTable *ft = GetForeignTable(RelationGetRelid(rel));
	TupleDesc	desc = RelationGetDescr(rel);
	const char *tt = dc_option_from_list(ft->options, "table_type");
	const char *sc = dc_option_from_list(ft->options, "scan_count");
	const char *valid;
	int			i;

	memset(info, 0, sizeof(TableInfo));
	info->serverid = ft->serverid;
	info->type = TT_STRING;
	for (i = 0; tt && i < lengthof(type_names); i++)
		if (strcmp(tt, type_names[i]) == 0)
			info->type = (TableType) i;
	info->prefix = pstrdup(dc_option_from_list(ft->options, "key_prefix") ?
						   dc_option_from_list(ft->options, "key_prefix") : "");
	info->scan_count = sc ? atoi(sc) : 1000;
	info->natts = desc->natts;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name = NameStr(att->attname);
		AttrNumber	attno = i + 1;

		if (att->attisdropped)
			continue;
		if (strcmp(name, "key") == 0)
			info->key_att = attno;
		else if (strcmp(name, "value") == 0)
			info->value_att = attno;
		else if (strcmp(name, "field") == 0 && info->type == TT_HASH)
			info->field_att = attno;
		else if (strcmp(name, "member") == 0 &&
				 (info->type == TT_SET || info->type == TT_ZSET))
			info->member_att = attno;
		else if (strcmp(name, "score") == 0 && info->type == TT_ZSET)
			info->score_att = attno;
		else if (strcmp(name, "ttl") == 0)
		{
			if (att->atttypid != INTERVALOID)
				table_error(rel, "has a column \"ttl\" that is not of type interval", NULL);
			info->ttl_att = attno;
		}
		else
		{
			switch (info->type)
			{
				case TT_STRING:
				case TT_LIST:
					valid = "key, value, ttl";
					break;
				case TT_HASH:
					valid = "key, field, value, ttl";
					break;
				case TT_SET:
					valid = "key, member, ttl";
					break;
				default:
					valid = "key, member, score, ttl";
					break;
			}
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_COLUMN_NAME),
					 errmsg("foreign table \"%s\" has a column \"%s\" that table_type %s does not provide",
							RelationGetRelationName(rel), name, type_names[info->type]),
					 errhint("Columns are found by name; valid names are: %s.", valid)));
		}
	}

	if (info->key_att == 0)
		table_error(rel, "has no column \"key\"", "Every datacore_redis table needs a column named \"key\".");
	if (TupleDescAttr(desc, info->key_att - 1)->atttypid != TEXTOID &&
		TupleDescAttr(desc, info->key_att - 1)->atttypid != BYTEAOID)
		table_error(rel, "has a column \"key\" that is neither text nor bytea", NULL);
	if ((info->type == TT_SET || info->type == TT_ZSET) && info->value_att)
		table_error(rel, "has a column \"value\"", "Members of sets and sorted sets are in a column named \"member\".");
	if (info->type == TT_HASH && info->field_att == 0)
	{
		info->whole_hash = true;
		if (info->value_att &&
			TupleDescAttr(desc, info->value_att - 1)->atttypid != JSONBOID &&
			TupleDescAttr(desc, info->value_att - 1)->atttypid != JSONOID)
			table_error(rel, "of table_type hash needs a column \"field\" or a json/jsonb column \"value\"",
						"Declare (key text, field text, value text) for a row per field, or (key text, value jsonb) for a row per hash.");
	}
}

ColConv *
dc_rfdw_make_conv(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	ColConv    *conv = palloc0(sizeof(ColConv) * desc->natts);
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Oid			func;
		bool		isvarlena;

		if (att->attisdropped)
			continue;
		conv[i].typid = att->atttypid;
		conv[i].typmod = att->atttypmod;
		getTypeInputInfo(att->atttypid, &func, &conv[i].ioparam);
		fmgr_info(func, &conv[i].in);
		getTypeOutputInfo(att->atttypid, &func, &isvarlena);
		fmgr_info(func, &conv[i].out);
	}
	return conv;
}

/*
 * A Redis string as a Datum of column attno; text is checked against the
 * database encoding first ("what" names it in the error).
 */
static Datum
to_datum(RedisScanState *st, AttrNumber attno, const char *what,
		 const char *data, size_t len)
{
	ColConv    *c = &st->conv[attno - 1];

	if (c->typid == BYTEAOID)
	{
		bytea	   *b = palloc(VARHDRSZ + len);

		SET_VARSIZE(b, VARHDRSZ + len);
		memcpy(VARDATA(b), data, len);
		return PointerGetDatum(b);
	}
	dc_check_remote_text(data, (int) len, what, st->server->servername);
	if (c->typid == TEXTOID)
		return PointerGetDatum(cstring_to_text_with_len(data, len));
	return InputFunctionCall(&c->in, pnstrdup(data, len), c->ioparam, c->typmod);
}

/* A Datum of column attno as Redis bytes. */
char *
dc_rfdw_from_datum(ColConv *conv, AttrNumber attno, Datum d, size_t *len)
{
	ColConv    *c = &conv[attno - 1];
	char	   *s;

	if (c->typid == BYTEAOID || c->typid == TEXTOID)
	{
		text	   *t = DatumGetTextPP(d);

		*len = VARSIZE_ANY_EXHDR(t);
		return VARDATA_ANY(t);
	}
	s = OutputFunctionCall(&c->out, d);
	*len = strlen(s);
	return s;
}

/* ---------------------------------------------------------------------
 * Planning
 * --------------------------------------------------------------------- */

static bool
is_key_var(Node *node, RelOptInfo *baserel, AttrNumber key_att)
{
	if (node && IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;
	return node && IsA(node, Var) &&
		((Var *) node)->varno == baserel->relid &&
		((Var *) node)->varattno == key_att &&
		((Var *) node)->varlevelsup == 0;
}

/*
 * Equality under a nondeterministic collation (case-insensitive, say) is
 * not byte equality, so it cannot become a lookup of exact keys.
 */
static bool
key_collation_ok(Oid collid)
{
	return !OidIsValid(collid) || get_collation_isdeterministic(collid);
}

/* An expression the executor can compute once before the scan. */
static bool
is_scan_constant(Node *node)
{
	return node && (IsA(node, Const) || IsA(node, Param)) &&
		!contain_volatile_functions(node);
}

/*
 * The literal start of a LIKE pattern (up to the first wildcard, with
 * backslash escapes resolved), as a SCAN glob: glob specials escaped.
 */
static char *
like_prefix_glob(const char *pattern)
{
	StringInfoData buf;
	const char *p;

	initStringInfo(&buf);
	for (p = pattern; *p && *p != '%' && *p != '_'; p++)
	{
		if (*p == '\\')
		{
			p++;
			if (*p == '\0')
				break;
		}
		if (strchr("*?[]\\", *p))
			appendStringInfoChar(&buf, '\\');
		appendStringInfoChar(&buf, *p);
	}
	return buf.data;
}

static char *
glob_escape(const char *s)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (; *s; s++)
	{
		if (strchr("*?[]\\", *s))
			appendStringInfoChar(&buf, '\\');
		appendStringInfoChar(&buf, *s);
	}
	return buf.data;
}

/*
 * Plan-time analysis kept in baserel->fdw_private:
 * list(mode, match pattern, key expression, need_values, need_ttl, rows).
 */
static void
dcRedisGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	Relation	rel = table_open(foreigntableid, NoLock);
	TableInfo	info;
	ListCell   *lc;
	ScanMode	mode = SCAN_KEYSPACE;
	Node	   *key_expr = NULL;
	char	   *like = NULL;
	Bitmapset  *attrs = NULL;
	bool		need_values;
	bool		need_ttl;
	double		rows = 1000;
	int			offset = FirstLowInvalidHeapAttributeNumber;

	dc_rfdw_table_info(rel, &info);
	table_close(rel, NoLock);

	foreach(lc, baserel->baserestrictinfo)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);
		Expr	   *clause = ri->clause;

		if (IsA(clause, OpExpr) && list_length(((OpExpr *) clause)->args) == 2)
		{
			OpExpr	   *op = (OpExpr *) clause;
			Node	   *l = linitial(op->args);
			Node	   *r = lsecond(op->args);

			if (op->opno == OID_TEXT_EQ_OP && mode != SCAN_KEY_EQ &&
				key_collation_ok(op->inputcollid))
			{
				if (is_key_var(r, baserel, info.key_att))
				{
					Node	   *t = l;

					l = r;
					r = t;
				}
				if (is_key_var(l, baserel, info.key_att) && is_scan_constant(r))
				{
					mode = SCAN_KEY_EQ;
					key_expr = r;
				}
			}
			else if (op->opno == OID_TEXT_LIKE_OP_ && mode == SCAN_KEYSPACE &&
					 is_key_var(l, baserel, info.key_att) && IsA(r, Const) &&
					 !((Const *) r)->constisnull)
			{
				char	   *p = like_prefix_glob(TextDatumGetCString(((Const *) r)->constvalue));

				if (like == NULL || strlen(p) > strlen(like))
					like = p;
			}
		}
		else if (IsA(clause, ScalarArrayOpExpr) && mode == SCAN_KEYSPACE)
		{
			ScalarArrayOpExpr *sa = (ScalarArrayOpExpr *) clause;

			if (sa->useOr && sa->opno == OID_TEXT_EQ_OP &&
				key_collation_ok(sa->inputcollid) &&
				is_key_var(linitial(sa->args), baserel, info.key_att) &&
				is_scan_constant(lsecond(sa->args)))
			{
				mode = SCAN_KEY_ANY;
				key_expr = lsecond(sa->args);
			}
		}
	}

	/* which columns are read decides whether values are fetched at all */
	pull_varattnos((Node *) baserel->reltarget->exprs, baserel->relid, &attrs);
	foreach(lc, baserel->baserestrictinfo)
		pull_varattnos((Node *) lfirst_node(RestrictInfo, lc)->clause, baserel->relid, &attrs);
	if (bms_is_member(0 - offset, attrs))
	{
		need_values = true;
		need_ttl = info.ttl_att != 0;
	}
	else
	{
		need_ttl = info.ttl_att && bms_is_member(info.ttl_att - offset, attrs);
		/* rows per element need the elements; rows per key only the keys */
		need_values = (info.type != TT_STRING && !info.whole_hash) ||
			(info.value_att && bms_is_member(info.value_att - offset, attrs));
	}

	if (mode == SCAN_KEY_EQ)
		rows = 1;
	else if (mode == SCAN_KEY_ANY)
	{
		Node	   *arr = key_expr;

		rows = 10;
		if (IsA(arr, Const) && !((Const *) arr)->constisnull)
			rows = ArrayGetNItems(ARR_NDIM(DatumGetArrayTypeP(((Const *) arr)->constvalue)),
								  ARR_DIMS(DatumGetArrayTypeP(((Const *) arr)->constvalue)));
	}
	else if (like)
		rows = 100;
	if (info.type != TT_STRING && !info.whole_hash)
		rows *= 10;
	baserel->rows = clamp_row_est(rows);

	baserel->fdw_private = list_make5(makeInteger(mode),
									  makeString(psprintf("%s%s*", glob_escape(info.prefix),
														  like ? like : "")),
									  key_expr,
									  makeInteger(need_values),
									  makeInteger(need_ttl));
}

static void
dcRedisGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	ScanMode	mode = intVal(linitial(baserel->fdw_private));
	Cost		startup = 10;
	Cost		total;

	/* a key list costs a round trip; a keyspace scan one per page */
	total = startup + baserel->rows * (mode == SCAN_KEYSPACE ? 0.05 : 0.01);
#if PG_VERSION_NUM >= 180000
	add_path(baserel, (Path *) create_foreignscan_path(root, baserel, NULL, baserel->rows,
													   0, startup, total, NIL, NULL, NULL,
													   NIL, NIL));
#elif PG_VERSION_NUM >= 170000
	add_path(baserel, (Path *) create_foreignscan_path(root, baserel, NULL, baserel->rows,
													   startup, total, NIL, NULL, NULL,
													   NIL, NIL));
#else
	add_path(baserel, (Path *) create_foreignscan_path(root, baserel, NULL, baserel->rows,
													   startup, total, NIL, NULL, NULL,
													   NIL));
#endif
}

static ForeignScan *
dcRedisGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
					  ForeignPath *best_path, List *tlist, List *scan_clauses,
					  Plan *outer_plan)
{
	List	   *priv = baserel->fdw_private;
	Node	   *key_expr = lthird(priv);
	List	   *fdw_exprs = NIL;
	List	   *fdw_private;

	/* every condition is rechecked locally; pushdown only narrows reads */
	scan_clauses = extract_actual_clauses(scan_clauses, false);
	if (key_expr)
		fdw_exprs = list_make1(key_expr);
	fdw_private = list_make4(linitial(priv), lsecond(priv), lfourth(priv),
							 list_nth(priv, 4));
	return make_foreignscan(tlist, scan_clauses, baserel->relid, fdw_exprs,
							fdw_private, NIL, NIL, outer_plan);
}

/* ---------------------------------------------------------------------
 * Scanning
 * --------------------------------------------------------------------- */


static void
dcRedisBeginForeignScan(ForeignScanState *node, int eflags)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	Relation	rel = node->ss.ss_currentRelation;
	RedisScanState *st = palloc0(sizeof(RedisScanState));

	node->fdw_state = st;
	dc_rfdw_table_info(rel, &st->info);
	st->mode = intVal(linitial(fsplan->fdw_private));
	st->match = strVal(lsecond(fsplan->fdw_private));
	st->need_values = intVal(lthird(fsplan->fdw_private));
	st->need_ttl = intVal(lfourth(fsplan->fdw_private));
	if (fsplan->fdw_exprs)
		st->key_expr = ExecInitExpr(linitial(fsplan->fdw_exprs), (PlanState *) node);

	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;

	st->server = dc_get_server_by_oid(st->info.serverid, dc_scan_user(node),
									  DC_SERVICE_REDIS, "a scan of a redis foreign table");
	st->conv = dc_rfdw_make_conv(rel);
	st->batch[0].cxt = AllocSetContextCreate(CurrentMemoryContext, "datacore redis batch",
											 ALLOCSET_DEFAULT_SIZES);
	st->batch[1].cxt = AllocSetContextCreate(CurrentMemoryContext, "datacore redis batch",
											 ALLOCSET_DEFAULT_SIZES);
}

/* Prefix + key as a NUL-terminated string of known length. */
char *
dc_rfdw_full_key(TableInfo *info, const char *key, size_t keylen, size_t *len)
{
	size_t		plen = strlen(info->prefix);
	char	   *k = palloc(plen + keylen + 1);

	memcpy(k, info->prefix, plen);
	memcpy(k + plen, key, keylen);
	k[plen + keylen] = '\0';
	*len = plen + keylen;
	return k;
}

/* Evaluate the pushed-down key expression into the key list. */
static void
load_key_list(ForeignScanState *node, RedisScanState *st)
{
	ExprContext *econtext = node->ss.ps.ps_ExprContext;
	bool		isnull;
	Datum		d = ExecEvalExpr(st->key_expr, econtext, &isnull);
	MemoryContext old = MemoryContextSwitchTo(node->ss.ps.state->es_query_cxt);

	st->nlist = 0;
	st->list = palloc(sizeof(char *));
	st->list_len = palloc(sizeof(size_t));
	if (!isnull && st->mode == SCAN_KEY_EQ)
	{
		text	   *t = DatumGetTextPP(d);

		st->list[0] = dc_rfdw_full_key(&st->info, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t),
							   &st->list_len[0]);
		st->nlist = 1;
	}
	else if (!isnull)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n,
					i;

		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &n);
		st->list = repalloc(st->list, sizeof(char *) * Max(n, 1));
		st->list_len = repalloc(st->list_len, sizeof(size_t) * Max(n, 1));
		for (i = 0; i < n; i++)
		{
			text	   *t;

			if (nulls[i])
				continue;
			t = DatumGetTextPP(elems[i]);
			st->list[st->nlist] = dc_rfdw_full_key(&st->info, VARDATA_ANY(t),
										   VARSIZE_ANY_EXHDR(t),
										   &st->list_len[st->nlist]);
			st->nlist++;
		}
	}
	MemoryContextSwitchTo(old);
	st->next_key = 0;
}

static void
add_row(RedisScanState *st, Datum *values, bool *nulls)
{
	int			natts = st->info.natts;

	if (st->nrows == st->maxrows)
	{
		st->maxrows = Max(64, st->maxrows * 2);
		if (st->row_values)
		{
			st->row_values = repalloc(st->row_values, sizeof(Datum *) * st->maxrows);
			st->row_nulls = repalloc(st->row_nulls, sizeof(bool *) * st->maxrows);
		}
		else
		{
			st->row_values = palloc(sizeof(Datum *) * st->maxrows);
			st->row_nulls = palloc(sizeof(bool *) * st->maxrows);
		}
	}
	st->row_values[st->nrows] = palloc(sizeof(Datum) * natts);
	st->row_nulls[st->nrows] = palloc(sizeof(bool) * natts);
	memcpy(st->row_values[st->nrows], values, sizeof(Datum) * natts);
	memcpy(st->row_nulls[st->nrows], nulls, sizeof(bool) * natts);
	st->nrows++;
}

/* The read command for one key of this table type. */
static DcRedisCmd *
read_cmd(RedisScanState *st, const char *key, size_t len)
{
	DcRedisCmd *cmd;

	switch (st->info.type)
	{
		case TT_STRING:
			cmd = dc_redis_cmd("GET");
			break;
		case TT_HASH:
			cmd = dc_redis_cmd("HGETALL");
			break;
		case TT_LIST:
			cmd = dc_redis_cmd("LRANGE");
			break;
		case TT_SET:
			cmd = dc_redis_cmd("SMEMBERS");
			break;
		default:
			cmd = dc_redis_cmd("ZRANGE");
			break;
	}
	dc_redis_arg(cmd, key, len);
	if (st->info.type == TT_LIST || st->info.type == TT_ZSET)
	{
		dc_redis_arg_str(cmd, "0");
		dc_redis_arg_str(cmd, "-1");
	}
	if (st->info.type == TT_ZSET)
		dc_redis_arg_str(cmd, "WITHSCORES");
	return cmd;
}

/* An array reply of strings, a multiple of step long. */
static void
check_array(RedisScanState *st, redisReply *r, int step)
{
	size_t		i;

	if (r->type != REDIS_REPLY_ARRAY || r->elements % step != 0)
		dc_redis_unexpected(st->server, "a scan of a redis foreign table", r);
	for (i = 0; i < r->elements; i++)
		if (r->element[i]->type != REDIS_REPLY_STRING)
			dc_redis_unexpected(st->server, "a scan of a redis foreign table", r->element[i]);
}

/*
 * An HGETALL reply as the text of a JSON object of strings, members in
 * Redis's order (a json column keeps its text as built).
 */
static char *
hash_to_json_text(RedisScanState *st, redisReply *reply)
{
	StringInfoData buf;
	size_t		i;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (i = 0; i < reply->elements; i += 2)
	{
		redisReply *f = reply->element[i];
		redisReply *v = reply->element[i + 1];

		/* checked first: escape_json stops at a NUL byte */
		dc_check_remote_text(f->str, (int) f->len, "redis hash field", st->server->servername);
		dc_check_remote_text(v->str, (int) v->len, "redis hash value", st->server->servername);
		if (i > 0)
			appendStringInfoChar(&buf, ',');
		escape_json(&buf, f->str);
		appendStringInfoChar(&buf, ':');
		escape_json(&buf, v->str);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * Turn the replies for one key into rows.  value is the read reply (NULL
 * when values are not needed), ttl the PTTL reply (or NULL).
 */
static void
key_rows(RedisScanState *st, const char *key, size_t keylen, redisReply *value,
		 redisReply *ttl)
{
	TableInfo  *info = &st->info;
	int			natts = info->natts;
	Datum	   *values = palloc0(sizeof(Datum) * natts);
	bool	   *nulls = palloc(sizeof(bool) * natts);
	size_t		plen = strlen(info->prefix);
	size_t		i;
	const char *op = "a scan of a redis foreign table";

	memset(nulls, true, sizeof(bool) * natts);
	if (value)
	{
		if (value->type == REDIS_REPLY_ERROR)
			dc_redis_raise_reply(st->server, op, value);
		/* the key vanished between SCAN and the read */
		if (value->type == REDIS_REPLY_NIL ||
			(value->type == REDIS_REPLY_ARRAY && value->elements == 0))
			return;
	}
	values[info->key_att - 1] = to_datum(st, info->key_att, "redis key", key + plen, keylen - plen);
	nulls[info->key_att - 1] = false;
	if (ttl && info->ttl_att)
	{
		if (dc_redis_reply_integer(st->server, op, ttl) >= 0)
		{
			Interval   *iv = palloc0(sizeof(Interval));

			iv->time = ttl->integer * 1000;
			values[info->ttl_att - 1] = IntervalPGetDatum(iv);
			nulls[info->ttl_att - 1] = false;
		}
		else if (ttl->integer == -2)
			return;				/* expired meanwhile */
	}

	if (value == NULL)
	{
		add_row(st, values, nulls);
		return;
	}

	switch (info->type)
	{
		case TT_STRING:
			if (value->type != REDIS_REPLY_STRING)
				dc_redis_unexpected(st->server, op, value);
			if (info->value_att)
			{
				values[info->value_att - 1] = to_datum(st, info->value_att, "redis value",
													   value->str, value->len);
				nulls[info->value_att - 1] = false;
			}
			add_row(st, values, nulls);
			break;
		case TT_HASH:
			check_array(st, value, 2);
			if (info->whole_hash && info->value_att &&
				st->conv[info->value_att - 1].typid == JSONBOID)
			{
				values[info->value_att - 1] = JsonbPGetDatum(dc_redis_hash_jsonb(st->server, op, value));
				nulls[info->value_att - 1] = false;
				add_row(st, values, nulls);
				break;
			}
			if (info->whole_hash)
			{
				if (info->value_att)
				{
					char	   *s = hash_to_json_text(st, value);

					values[info->value_att - 1] = to_datum(st, info->value_att, "redis hash",
														   s, strlen(s));
					nulls[info->value_att - 1] = false;
				}
				add_row(st, values, nulls);
				break;
			}
			for (i = 0; i < value->elements; i += 2)
			{
				redisReply *f = value->element[i];
				redisReply *v = value->element[i + 1];

				values[info->field_att - 1] = to_datum(st, info->field_att, "redis hash field",
													   f->str, f->len);
				nulls[info->field_att - 1] = false;
				if (info->value_att)
				{
					values[info->value_att - 1] = to_datum(st, info->value_att, "redis hash value",
														   v->str, v->len);
					nulls[info->value_att - 1] = false;
				}
				add_row(st, values, nulls);
			}
			break;
		case TT_LIST:
		case TT_SET:
			check_array(st, value, 1);
			for (i = 0; i < value->elements; i++)
			{
				redisReply *e = value->element[i];
				AttrNumber	att = info->type == TT_LIST ? info->value_att : info->member_att;

				if (att)
				{
					values[att - 1] = to_datum(st, att, info->type == TT_LIST ?
											   "redis list element" : "redis set member",
											   e->str, e->len);
					nulls[att - 1] = false;
				}
				add_row(st, values, nulls);
			}
			break;
		case TT_ZSET:
			check_array(st, value, 2);
			for (i = 0; i < value->elements; i += 2)
			{
				redisReply *m = value->element[i];
				redisReply *s = value->element[i + 1];

				if (info->member_att)
				{
					values[info->member_att - 1] = to_datum(st, info->member_att, "redis sorted set member",
															m->str, m->len);
					nulls[info->member_att - 1] = false;
				}
				if (info->score_att)
				{
					values[info->score_att - 1] = to_datum(st, info->score_att, "redis score",
														   s->str, s->len);
					nulls[info->score_att - 1] = false;
				}
				add_row(st, values, nulls);
			}
			break;
	}
}

/* Commands per key: -1 TYPE only (a key list with no values read). */
static int
per_key_commands(RedisScanState *st)
{
	int			n = (st->need_values ? 1 : 0) + (st->need_ttl ? 1 : 0);

	return (n == 0 && st->mode != SCAN_KEYSPACE) ? -1 : n;
}

/*
 * Keyspace scans of string tables read a page's values with one MGET: the
 * SCAN's TYPE filter already guarantees strings (MGET would hide a wrong
 * type as nil), and one reply parses much faster than one per key.
 */
static bool
use_mget(RedisScanState *st)
{
	return st->info.type == TT_STRING && st->mode == SCAN_KEYSPACE && st->need_values;
}

/*
 * Send the request of batch b: the reads for nkeys keys (copied into the
 * batch) and, when with_scan, the SCAN call for the next page.
 */
static void
send_batch(RedisScanState *st, RedisBatch *b, int nkeys, char **keys,
		   size_t *lens, bool with_scan)
{
	MemoryContext old;
	int			per_key = per_key_commands(st);
	DcRedisCmd **cmds;
	int			ncmds = 0;
	int			i;

	MemoryContextReset(b->cxt);
	old = MemoryContextSwitchTo(b->cxt);
	b->nkeys = nkeys;
	b->keys = palloc(sizeof(char *) * Max(nkeys, 1));
	b->key_len = palloc(sizeof(size_t) * Max(nkeys, 1));
	b->has_scan = with_scan;
	cmds = palloc(sizeof(DcRedisCmd *) * (nkeys * Max(per_key, 1) + 2));
	if (use_mget(st) && nkeys > 0)
		cmds[ncmds++] = dc_redis_cmd("MGET");
	for (i = 0; i < nkeys; i++)
	{
		b->keys[i] = pnstrdup(keys[i], lens[i]);
		b->key_len[i] = lens[i];
		if (per_key == -1)
		{
			cmds[ncmds] = dc_redis_cmd("TYPE");
			dc_redis_arg(cmds[ncmds++], b->keys[i], lens[i]);
		}
		if (use_mget(st))
			dc_redis_arg(cmds[0], b->keys[i], lens[i]);
		else if (st->need_values)
			cmds[ncmds++] = read_cmd(st, b->keys[i], lens[i]);
		if (st->need_ttl)
		{
			cmds[ncmds] = dc_redis_cmd("PTTL");
			dc_redis_arg(cmds[ncmds++], b->keys[i], lens[i]);
		}
	}
	if (with_scan)
	{
		cmds[ncmds] = dc_redis_cmd("SCAN");
		dc_redis_arg_str(cmds[ncmds], st->cursor ? st->cursor : "0");
		dc_redis_arg_str(cmds[ncmds], "MATCH");
		dc_redis_arg_str(cmds[ncmds], st->match);
		dc_redis_arg_str(cmds[ncmds], "COUNT");
		dc_redis_arg_int64(cmds[ncmds], st->info.scan_count);
		dc_redis_arg_str(cmds[ncmds], "TYPE");
		dc_redis_arg_str(cmds[ncmds], type_names[st->info.type]);
		ncmds++;
	}
	/* keys alone (count(*) of a keyspace) need no request */
	b->request = ncmds > 0 ?
		dc_redis_send(st->server, "a scan of a redis foreign table", ncmds, cmds, 0) : NULL;
	b->live = true;
	MemoryContextSwitchTo(old);
}

/* Send the next key-list chunk into batch b, if any keys are left. */
static void
send_list_chunk(RedisScanState *st, RedisBatch *b)
{
	int			n = Min(st->nlist - st->next_key, st->info.scan_count);

	if (n <= 0)
	{
		b->live = false;
		return;
	}
	send_batch(st, b, n, st->list + st->next_key, st->list_len + st->next_key, false);
	st->next_key += n;
}

/*
 * True the first time a keyspace scan meets a key.  The key is copied: the
 * reply it came in is freed with its batch.
 */
static bool
first_sight(RedisScanState *st, const char *data, size_t len)
{
	KeyBytes	k = {data, len};
	bool		found;
	SeenKey    *entry;

	entry = seenkeys_insert(st->seen, k, &found);
	if (found)
		return false;
	entry->key.data = MemoryContextAlloc(st->seen_cxt, Max(len, 1));
	memcpy((char *) entry->key.data, data, len);
	return true;
}

/* The first request of a scan. */
static void
start_scan(ForeignScanState *node, RedisScanState *st)
{
	st->started = true;
	st->cur = 0;
	st->cursor = NULL;
	st->batch[1].live = false;
	if (st->mode == SCAN_KEYSPACE)
	{
		if (st->seen_cxt == NULL)
			st->seen_cxt = AllocSetContextCreate(GetMemoryChunkContext(st),
												 "datacore redis scan keys",
												 ALLOCSET_DEFAULT_SIZES);
		else
			MemoryContextReset(st->seen_cxt);
		st->seen = seenkeys_create(st->seen_cxt, 1024, NULL);
		send_batch(st, &st->batch[0], 0, NULL, NULL, true);
	}
	else
	{
		load_key_list(node, st);
		send_list_chunk(st, &st->batch[0]);
	}
}

/*
 * Receive the batch in flight, send the next request at once, then turn
 * the replies into rows.  Returns false when the scan is over.
 */
static bool
fetch_batch(RedisScanState *st)
{
	RedisBatch *b = &st->batch[st->cur];
	RedisBatch *next = &st->batch[1 - st->cur];
	MemoryContext old;
	redisReply **replies;
	int			per_key = per_key_commands(st);
	int			ncmds = 0;
	int			i;
	const char *op = "a scan of a redis foreign table";
	redisReply *mget = NULL;

	if (!b->live)
		return false;

	old = MemoryContextSwitchTo(b->cxt);
	replies = b->request ? dc_redis_receive(b->request) : NULL;
	b->request = NULL;
	b->live = false;
	st->nrows = 0;
	st->next_row = 0;
	st->maxrows = 0;
	st->row_values = NULL;
	st->row_nulls = NULL;

	/* the next request first, so Redis works while we convert */
	if (b->has_scan)
	{
		int			nread;
		redisReply *r;
		redisReply *keys;
		char	  **names;
		size_t	   *lens;
		int			nnew;

		/* SCAN is the last command, after the reads */
		if (use_mget(st))
			nread = b->nkeys > 0 ? 1 + (st->need_ttl ? b->nkeys : 0) : 0;
		else
			nread = b->nkeys * Max(per_key, 0) + (per_key == -1 ? b->nkeys : 0);
		r = replies[nread];

		dc_redis_check_reply(st->server, op, r);
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
			r->element[0]->type != REDIS_REPLY_STRING ||
			r->element[1]->type != REDIS_REPLY_ARRAY)
			dc_redis_unexpected(st->server, op, r);
		keys = r->element[1];
		names = palloc(sizeof(char *) * Max(keys->elements, 1));
		lens = palloc(sizeof(size_t) * Max(keys->elements, 1));
		nnew = 0;
		for (i = 0; i < (int) keys->elements; i++)
		{
			if (keys->element[i]->type != REDIS_REPLY_STRING)
				dc_redis_unexpected(st->server, op, r);
			if (!first_sight(st, keys->element[i]->str, keys->element[i]->len))
				continue;
			names[nnew] = keys->element[i]->str;
			lens[nnew] = keys->element[i]->len;
			nnew++;
		}
		st->cursor = MemoryContextStrdup(GetMemoryChunkContext(st), r->element[0]->str);
		if (nnew > 0 || strcmp(st->cursor, "0") != 0)
			send_batch(st, next, nnew, names, lens, strcmp(st->cursor, "0") != 0);
		else
			next->live = false;
	}
	else if (st->mode != SCAN_KEYSPACE)
		send_list_chunk(st, next);
	else
		next->live = false;

	if (use_mget(st) && b->nkeys > 0)
	{
		mget = replies[ncmds++];
		dc_redis_check_reply(st->server, op, mget);
		if (mget->type != REDIS_REPLY_ARRAY || mget->elements != b->nkeys)
			dc_redis_unexpected(st->server, op, mget);
	}
	for (i = 0; i < b->nkeys; i++)
	{
		redisReply *value = NULL;
		redisReply *ttl = NULL;

		if (per_key == -1)
		{
			redisReply *t = replies[ncmds++];

			dc_redis_check_reply(st->server, op, t);
			if (t->type != REDIS_REPLY_STATUS)
				dc_redis_unexpected(st->server, op, t);
			if (strcmp(t->str, "none") == 0)
				continue;
			if (strcmp(t->str, type_names[st->info.type]) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_WRONG_OBJECT_TYPE),
						 errmsg("redis server \"%s\" rejected %s: WRONGTYPE, the key holds another kind of value",
								st->server->servername, op),
						 errdetail_internal("Key \"%s\" is a %s, the table reads %s keys.",
											dc_remote_excerpt(b->keys[i], (int) b->key_len[i], 200),
											dc_remote_excerpt(t->str, (int) t->len, 40),
											type_names[st->info.type])));
		}
		if (mget)
			value = mget->element[i];
		else if (st->need_values)
			value = replies[ncmds++];
		if (st->need_ttl)
			ttl = replies[ncmds++];
		key_rows(st, b->keys[i], b->key_len[i], value, ttl);
	}
	MemoryContextSwitchTo(old);
	st->cur = 1 - st->cur;
	return true;
}

static TupleTableSlot *
dcRedisIterateForeignScan(ForeignScanState *node)
{
	RedisScanState *st = node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;

	if (!st->started)
		start_scan(node, st);

	while (st->next_row >= st->nrows)
	{
		if (!fetch_batch(st))
			return ExecClearTuple(slot);
	}

	ExecClearTuple(slot);
	memcpy(slot->tts_values, st->row_values[st->next_row], sizeof(Datum) * st->info.natts);
	memcpy(slot->tts_isnull, st->row_nulls[st->next_row], sizeof(bool) * st->info.natts);
	st->next_row++;
	return ExecStoreVirtualTuple(slot);
}

/* Read (and drop) a request still in flight, keeping the connection usable. */
static void
finish_requests(RedisScanState *st)
{
	int			i;

	for (i = 0; i < 2; i++)
	{
		if (st->batch[i].request)
		{
			MemoryContext old = MemoryContextSwitchTo(st->batch[i].cxt);

			(void) dc_redis_receive(st->batch[i].request);
			MemoryContextSwitchTo(old);
			st->batch[i].request = NULL;
		}
		st->batch[i].live = false;
	}
}

static void
dcRedisReScanForeignScan(ForeignScanState *node)
{
	RedisScanState *st = node->fdw_state;

	finish_requests(st);
	st->started = false;
	st->cursor = NULL;
	st->nrows = 0;
	st->next_row = 0;
}

static void
dcRedisEndForeignScan(ForeignScanState *node)
{
	RedisScanState *st = node->fdw_state;

	/* a LIMIT can end the scan with the next batch on its way */
	if (st && st->server)
		finish_requests(st);
}

static void
dcRedisExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	RedisScanState *st = node->fdw_state;
	StringInfoData reads;

	if (st->mode == SCAN_KEYSPACE)
		ExplainPropertyText("Redis Scan",
							psprintf("SCAN MATCH %s COUNT %d TYPE %s", st->match,
									 st->info.scan_count, type_names[st->info.type]), es);
	else
		ExplainPropertyText("Redis Keys",
							st->mode == SCAN_KEY_EQ ? "key = (pushed down)" :
							"key = ANY (pushed down)", es);
	initStringInfo(&reads);
	if (use_mget(st))
		appendStringInfoString(&reads, "MGET");
	else if (st->need_values)
		appendStringInfoString(&reads, read_names[st->info.type]);
	if (st->need_ttl)
		appendStringInfo(&reads, "%sPTTL", reads.len ? ", " : "");
	if (reads.len == 0)
		appendStringInfoString(&reads, st->mode == SCAN_KEYSPACE ? "none" : "TYPE");
	ExplainPropertyText("Redis Reads", reads.data, es);
}

PG_FUNCTION_INFO_V1(datacore_redis_fdw_handler);

Datum
datacore_redis_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	routine->GetForeignRelSize = dcRedisGetForeignRelSize;
	routine->GetForeignPaths = dcRedisGetForeignPaths;
	routine->GetForeignPlan = dcRedisGetForeignPlan;
	routine->BeginForeignScan = dcRedisBeginForeignScan;
	routine->IterateForeignScan = dcRedisIterateForeignScan;
	routine->ReScanForeignScan = dcRedisReScanForeignScan;
	routine->EndForeignScan = dcRedisEndForeignScan;
	routine->ExplainForeignScan = dcRedisExplainForeignScan;

	routine->AddForeignUpdateTargets = dcRedisAddForeignUpdateTargets;
	routine->PlanForeignModify = dcRedisPlanForeignModify;
	routine->BeginForeignModify = dcRedisBeginForeignModify;
	routine->ExecForeignInsert = dcRedisExecForeignInsert;
#if PG_VERSION_NUM >= 140000
	routine->ExecForeignBatchInsert = dcRedisExecForeignBatchInsert;
	routine->GetForeignModifyBatchSize = dcRedisGetForeignModifyBatchSize;
#endif
	routine->ExecForeignUpdate = dcRedisExecForeignUpdate;
	routine->ExecForeignDelete = dcRedisExecForeignDelete;
	routine->EndForeignModify = dcRedisEndForeignModify;
	routine->IsForeignRelUpdatable = dcRedisIsForeignRelUpdatable;

	PG_RETURN_POINTER(routine);
}
