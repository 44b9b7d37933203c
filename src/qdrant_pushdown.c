/*-------------------------------------------------------------------------
 *
 * qdrant_pushdown.c
 *		What a Qdrant foreign scan sends: which restrictions become Qdrant
 *		"must" conditions (at plan time), and the filter and query vector
 *		built from their values (at scan time).
 *
 * A condition is only taken when Qdrant can answer it with a superset of
 * the rows, and every condition but the similarity search is checked
 * again by PostgreSQL, so the answer never depends on Qdrant's matching
 * rules.  Superset means: a point whose column value PostgreSQL would
 * accept is never left out, even when that value is read from a JSON
 * string ("12" in an integer column) or Qdrant compares numbers as
 * doubles (integers beyond 2^53).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "mb/pg_wchar.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "fdw_qdrant.h"

/* ---------- planning: which conditions go to Qdrant ---------- */

/* Is expr evaluable once at scan start (no Vars of this query level)? */
static bool
is_scan_value(Expr *expr, bool allow_volatile)
{
	if (contain_var_clause((Node *) expr))
		return false;
	if (!allow_volatile && contain_volatile_functions((Node *) expr))
		return false;
	return true;
}

/* The column of our relation that expr is, or NULL. */
static QdColumn *
column_of(RelOptInfo *baserel, QdTable *t, Expr *expr)
{
	Var		   *var;

	while (expr && IsA(expr, RelabelType))
		expr = ((RelabelType *) expr)->arg;
	if (expr == NULL || !IsA(expr, Var))
		return NULL;
	var = (Var *) expr;
	if (var->varno != baserel->relid || var->varlevelsup != 0 ||
		var->varattno <= 0 || var->varattno > t->natts)
		return NULL;
	return &t->cols[var->varattno - 1];
}

/*
 * "payload ->> 'key'" with a constant key that Qdrant would read as the
 * same top-level key (no path characters): returns the key, else NULL.
 */
static char *
payload_field_key(RelOptInfo *baserel, QdTable *t, Expr *expr)
{
	OpExpr	   *op;
	QdColumn   *col;
	Const	   *c;
	char	   *key;

	if (!IsA(expr, OpExpr))
		return NULL;
	op = (OpExpr *) expr;
	if (op->opfuncid != F_JSONB_OBJECT_FIELD_TEXT || list_length(op->args) != 2)
		return NULL;
	col = column_of(baserel, t, linitial(op->args));
	if (col == NULL || col->kind != QD_COL_PAYLOAD || !IsA(lsecond(op->args), Const))
		return NULL;
	c = lsecond(op->args);
	if (c->constisnull)
		return NULL;
	key = TextDatumGetCString(c->constvalue);
	if (key[0] == '\0' || strpbrk(key, ".[]\"") != NULL)
		return NULL;
	/* keys in conditions are UTF-8, as the table's (get_table) */
	return pg_server_to_any(key, strlen(key), PG_UTF8);
}

/* Is this the similarity operator's function (datacore.qdrant_similar)? */
static bool
is_similar_function(Oid funcid)
{
	HeapTuple	tp;
	bool		result = false;

	tp = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (HeapTupleIsValid(tp))
	{
		Datum		prosrc;
		bool		isnull;

		prosrc = SysCacheGetAttr(PROCOID, tp, Anum_pg_proc_prosrc, &isnull);
		if (!isnull && ((Form_pg_proc) GETSTRUCT(tp))->prolang == ClanguageId)
			result = strcmp(TextDatumGetCString(prosrc), "datacore_qdrant_similar") == 0;
		ReleaseSysCache(tp);
	}
	return result;
}

/*
 * The btree strategy (< <= = >= >) of a comparison operator, or 0.  "<>"
 * has a btree interpretation too (ROWCOMPARE_NE) but no Qdrant condition
 * means it: it is never sent.
 */
static int
btree_strategy(Oid opno)
{
	List	   *interp = get_op_btree_interpretation(opno);
	int			strategy;

	if (interp == NIL)
		return 0;
	strategy = ((OpBtreeInterpretation *) linitial(interp))->strategy;
	if (strategy < BTLessStrategyNumber || strategy > BTGreaterStrategyNumber)
		return 0;
	return strategy;
}

/*
 * Does comparing text under this collation mean byte equality?  A
 * nondeterministic collation makes other strings equal that Qdrant's exact
 * match would leave out.
 */
static bool
exact_collation(Oid collid)
{
	return !OidIsValid(collid) || get_collation_isdeterministic(collid);
}

static List *
make_cond(QdCondKind kind, const char *key, int strategy, int exprno)
{
	return list_make4(makeInteger(kind), makeString(pstrdup(key ? key : "")),
					  makeInteger(strategy), makeInteger(exprno));
}

/*
 * Try to send one restriction to Qdrant.  Returns true when it was taken;
 * *exact says whether Qdrant's answer is exactly the condition's (then it
 * is not checked again locally).
 */
bool
dc_qd_classify_clause(RelOptInfo *baserel, QdPlanInfo *pi, Expr *clause, bool *exact)
{
	QdTable    *t = pi->table;

	*exact = false;
	if (IsA(clause, OpExpr) && list_length(((OpExpr *) clause)->args) == 2)
	{
		OpExpr	   *op = (OpExpr *) clause;
		Expr	   *left = linitial(op->args);
		Expr	   *right = lsecond(op->args);
		Oid			opno = op->opno;
		QdColumn   *col;
		char	   *key;
		int			strategy;

		/* vector @@ query: the similarity search */
		if (is_similar_function(op->opfuncid))
		{
			col = column_of(baserel, t, left);
			if (col == NULL || col->kind != QD_COL_VECTOR || pi->near ||
				!is_scan_value(right, true))
				return false;
			pi->exprs = lappend(pi->exprs, right);
			pi->conds = lappend(pi->conds, make_cond(QC_NEAR, NULL, 0, list_length(pi->exprs) - 1));
			pi->near = true;
			*exact = true;
			return true;
		}

		/* payload @> jsonb */
		if (op->opfuncid == F_JSONB_CONTAINS)
		{
			col = column_of(baserel, t, left);
			if (col == NULL || col->kind != QD_COL_PAYLOAD || !is_scan_value(right, false))
				return false;
			pi->exprs = lappend(pi->exprs, right);
			pi->conds = lappend(pi->conds, make_cond(QC_CONTAINS, NULL, 0, list_length(pi->exprs) - 1));
			return true;
		}

		/* put the column side on the left */
		if (!is_scan_value(right, false))
		{
			Expr	   *tmp = left;

			if (!is_scan_value(tmp, false))
				return false;
			opno = get_commutator(opno);
			if (!OidIsValid(opno))
				return false;
			left = right;
			right = tmp;
		}
		strategy = btree_strategy(opno);
		if (strategy == 0)
			return false;

		if ((key = payload_field_key(baserel, t, left)) != NULL)
		{
			if (strategy != BTEqualStrategyNumber || !exact_collation(op->inputcollid))
				return false;
			pi->exprs = lappend(pi->exprs, right);
			pi->conds = lappend(pi->conds, make_cond(QC_TEXT_EQ, key, 0, list_length(pi->exprs) - 1));
			return true;
		}

		col = column_of(baserel, t, left);
		if (col == NULL)
			return false;
		/*
		 * Ids are sent in Qdrant's canonical form, so a text id column
		 * compares differently ('0001' is sent as 1): checked again.
		 */
		if (col->kind == QD_COL_ID && strategy == BTEqualStrategyNumber &&
			exact_collation(op->inputcollid))
		{
			pi->exprs = lappend(pi->exprs, right);
			pi->conds = lappend(pi->conds, make_cond(QC_ID_EQ, NULL, 0, list_length(pi->exprs) - 1));
			pi->nids = Max(pi->nids, 0) + 1;
			return true;
		}
		if (col->kind != QD_COL_KEY || strpbrk(col->key, ".[]\"") != NULL)
			return false;

		/*
		 * char(n) ignores trailing spaces and name truncates: equal values
		 * Qdrant's exact match would miss.  A real column rounds the
		 * payload's double, which moves it across a bound.
		 */
		if ((col->typid == TEXTOID || col->typid == VARCHAROID) &&
			strategy == BTEqualStrategyNumber && exact_collation(op->inputcollid))
		{
			pi->exprs = lappend(pi->exprs, right);
			pi->conds = lappend(pi->conds, make_cond(QC_TEXT_EQ, col->key, 0, list_length(pi->exprs) - 1));
			return true;
		}
		if (dc_qd_is_number_type(col->typid) && col->typid != FLOAT4OID &&
			dc_qd_is_number_type(exprType((Node *) right)))
		{
			pi->exprs = lappend(pi->exprs, right);
			pi->conds = lappend(pi->conds, make_cond(QC_NUMBER, col->key, strategy, list_length(pi->exprs) - 1));
			return true;
		}
		if (col->typid == BOOLOID && strategy == BTEqualStrategyNumber)
		{
			pi->exprs = lappend(pi->exprs, right);
			pi->conds = lappend(pi->conds, make_cond(QC_BOOL_EQ, col->key, 0, list_length(pi->exprs) - 1));
			return true;
		}
		return false;
	}

	/* id = ANY(array) */
	if (IsA(clause, ScalarArrayOpExpr))
	{
		ScalarArrayOpExpr *saop = (ScalarArrayOpExpr *) clause;
		QdColumn   *col = column_of(baserel, t, linitial(saop->args));
		Expr	   *arr = lsecond(saop->args);

		if (!saop->useOr || col == NULL || col->kind != QD_COL_ID ||
			btree_strategy(saop->opno) != BTEqualStrategyNumber ||
			!exact_collation(saop->inputcollid) || !is_scan_value(arr, false))
			return false;
		pi->exprs = lappend(pi->exprs, arr);
		pi->conds = lappend(pi->conds, make_cond(QC_ID_ANY, NULL, 0, list_length(pi->exprs) - 1));
		if (IsA(arr, Const) && !((Const *) arr)->constisnull)
			pi->nids = Max(pi->nids, 0) +
				ArrayGetNItems(ARR_NDIM(DatumGetArrayTypeP(((Const *) arr)->constvalue)),
							   ARR_DIMS(DatumGetArrayTypeP(((Const *) arr)->constvalue)));
		else
			pi->nids = Max(pi->nids, 0) + 10;
		return true;
	}
	return false;
}

/* ---------- building the request ---------- */

/* Text form of a SQL value. */
char *
dc_qd_datum_text(Datum value, Oid typid)
{
	Oid			outfunc;
	bool		isvarlena;

	getTypeOutputInfo(typid, &outfunc, &isvarlena);
	return OidOutputFunctionCall(outfunc, value);
}

/*
 * A JSON number from a number's text form; NULL if not finite.  An integer
 * beyond int64 stays exact, as a raw number.
 */
json_t *
dc_qd_number_json(const char *s)
{
	char	   *end;
	long long	ll;
	double		d;

	errno = 0;
	ll = strtoll(s, &end, 10);
	if (errno == 0 && *end == '\0' && end != s)
		return json_integer((json_int_t) ll);
	if (errno == ERANGE && *end == '\0' && isdigit((unsigned char) end[-1]))
		return dc_json_raw_number(s);
	d = strtod(s, &end);
	if (*end != '\0' || end == s || isnan(d) || isinf(d))
		return NULL;
	return json_real(d);
}

static json_t *
match_cond(const char *key, const char *what, json_t *value)
{
	json_t	   *cond = dc_json_object();
	json_t	   *match = dc_json_object();

	json_object_set_new(cond, "key", json_string(key));
	json_object_set_new(match, what, value);
	json_object_set_new(cond, "match", match);
	return cond;
}

static json_t *
range_cond(const char *key, const char *bound1, json_t *v1, const char *bound2, json_t *v2)
{
	json_t	   *cond = dc_json_object();
	json_t	   *range = dc_json_object();

	json_object_set_new(cond, "key", json_string(key));
	json_object_set_new(range, bound1, v1);
	if (bound2)
		json_object_set_new(range, bound2, v2);
	json_object_set_new(cond, "range", range);
	return cond;
}

/* {"<what>": {"key": key}}, as is_null and is_empty are written */
static json_t *
key_cond(const char *what, const char *key)
{
	json_t	   *cond = dc_json_object();
	json_t	   *k = dc_json_object();

	json_object_set_new(k, "key", json_string(key));
	json_object_set_new(cond, what, k);
	return cond;
}

static json_t *
any_of(json_t *conds)
{
	json_t	   *f = dc_json_object();

	if (json_array_size(conds) == 1)
		return json_array_get(conds, 0);
	json_object_set_new(f, "should", conds);
	return f;
}

/*
 * Conditions matching a payload value that, read as text, equals s: the
 * string itself, and the number or boolean with that text form.  NULL
 * when s could be the text of an array or object, which no match
 * condition finds: then nothing is sent.
 */
static json_t *
text_eq_cond(const char *key, const char *s)
{
	json_t	   *alts = json_array();
	json_t	   *num;
	const char *p = s;

	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p == '[' || *p == '{')
		return NULL;
	num = dc_qd_number_json(s);
	json_array_append_new(alts, match_cond(key, "value", dc_json_string_server(s, "condition value")));
	if (num && json_is_integer(num))
		json_array_append_new(alts, match_cond(key, "value", num));
	else if (num)
		json_array_append_new(alts, range_cond(key, "gte", num, "lte", json_copy(num)));
	if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)
		json_array_append_new(alts, match_cond(key, "value", json_boolean(s[0] == 't')));
	return any_of(alts);
}

/*
 * cond, or a value of key that Qdrant cannot compare as cond does but
 * PostgreSQL may read as the column's type (a string "12" in an integer
 * column, "yes" in a boolean one): present, and matching none of
 * "others" (the conditions that say the value is of the compared kind).
 */
static json_t *
or_other_kind(const char *key, json_t *cond, json_t *others)
{
	json_t	   *other = dc_json_object();
	json_t	   *alts = json_array();

	json_array_insert_new(others, 0, key_cond("is_empty", key));
	json_object_set_new(other, "must_not", others);
	json_array_append_new(alts, cond);
	json_array_append_new(alts, other);
	return any_of(alts);
}

/*
 * A numeric column compared with the number whose text is s.  Qdrant
 * compares numbers as doubles, so an integer beyond 2^53 or a decimal
 * that is no double can land on the bound: bounds are sent inclusive, and
 * = as a range (which also finds 12.0 for 12).  num comes from
 * dc_qd_number_json(); NULL (NaN, the infinities: no range expresses them)
 * gives NULL.
 */
static json_t *
number_cond(const char *key, int strategy, json_t *num)
{
	json_t	   *cond;

	if (num == NULL)
		return NULL;
	switch (strategy)
	{
		case BTLessStrategyNumber:
		case BTLessEqualStrategyNumber:
			cond = range_cond(key, "lte", num, NULL, NULL);
			break;
		case BTGreaterStrategyNumber:
		case BTGreaterEqualStrategyNumber:
			cond = range_cond(key, "gte", num, NULL, NULL);
			break;
		default:
			cond = range_cond(key, "gte", num, "lte", json_copy(num));
			break;
	}
	return or_other_kind(key, cond,
						 json_pack("[oo]",
								   range_cond(key, "gte", json_integer(0), NULL, NULL),
								   range_cond(key, "lt", json_integer(0), NULL, NULL)));
}

/* A boolean column compared with value, or a value Qdrant does not see as a boolean. */
static json_t *
bool_cond(const char *key, json_t *value)
{
	return or_other_kind(key, match_cond(key, "value", value),
						 json_pack("[oo]",
								   match_cond(key, "value", json_true()),
								   match_cond(key, "value", json_false())));
}

/*
 * Append to "must" the conditions implied by payload @> obj, under the
 * key path prefix.  Returns false for a shape Qdrant's filter cannot
 * express as a superset (objects inside arrays, keys with path
 * characters); the caller then sends nothing for this containment.
 */
static bool
contains_conds(json_t *must, const char *prefix, json_t *obj)
{
	const char *k;
	json_t	   *v;

	json_object_foreach(obj, k, v)
	{
		char	   *path;

		/* integers outside int64 arrive as marked strings: not a match value */
		if (dc_json_raw_number_text(v) != NULL)
			return false;

		if (k[0] == '\0' || strpbrk(k, ".[]\"") != NULL)
			return false;
		path = prefix ? psprintf("%s.%s", prefix, k) : pstrdup(k);
		if (json_is_object(v))
		{
			if (!contains_conds(must, path, v))
				return false;
		}
		else if (json_is_array(v))
		{
			size_t		i;
			json_t	   *e;

			json_array_foreach(v, i, e)
			{
				if (dc_json_raw_number_text(e) != NULL)
					return false;
				if (json_is_string(e) || json_is_boolean(e))
					json_array_append_new(must, match_cond(path, "value", json_copy(e)));
				else if (json_is_number(e))
					json_array_append_new(must, range_cond(path, "gte", json_real(json_number_value(e)),
														   "lte", json_real(json_number_value(e))));
				else
					return false;
			}
		}
		else if (json_is_string(v) || json_is_boolean(v))
			json_array_append_new(must, match_cond(path, "value", json_copy(v)));
		else if (json_is_number(v))
		{
			/* jsonb finds 1.0 for 1: a range does, an integer match does not */
			double		d = json_number_value(v);

			json_array_append_new(must, range_cond(path, "gte", json_real(d), "lte", json_real(d)));
		}
		else if (json_is_null(v))
			json_array_append_new(must, key_cond("is_null", path));
	}
	return true;
}

/* Append the id a SQL value stands for, unless it is no valid id. */
static void
append_id(json_t *ids, Datum value, Oid typid)
{
	json_t	   *id = dc_qdrant_id_try_text(dc_qd_datum_text(value, typid));

	if (id)
		json_array_append_new(ids, id);
}

/*
 * Evaluate the condition values and build the filter and query vector.
 * With explain_only, values that are not constants are shown as the text
 * of their expression instead.
 */
void
dc_qd_build_request(QdScanState *st, ExprContext *econtext, List *exprs, bool explain_only)
{
	json_t	   *must = json_array();
	ListCell   *lc;
	int			i = 0;

	st->query = NULL;
	foreach(lc, st->conds)
	{
		List	   *c = lfirst(lc);
		QdCondKind	kind = intVal(linitial(c));
		const char *key = strVal(lsecond(c));
		int			strategy = intVal(lthird(c));
		int			exprno = intVal(lfourth(c));
		Expr	   *expr = list_nth(exprs, exprno);
		ExprState  *es = list_nth(st->exprstates, exprno);
		Oid			typid = exprType((Node *) expr);
		Datum		value;
		bool		isnull;

		i++;
		if (explain_only && !IsA(expr, Const))
		{
			json_t	   *shown = dc_json_string_server(deparse_expression((Node *) expr, NIL, false, false), "expression");
			json_t	   *c2 = dc_json_object();

			switch (kind)
			{
				case QC_ID_EQ:
					json_object_set_new(c2, "has_id", json_pack("[o]", shown));
					json_array_append_new(must, c2);
					break;
				case QC_ID_ANY:
					json_object_set_new(c2, "has_id", shown);
					json_array_append_new(must, c2);
					break;
				case QC_NEAR:
					st->query = json_string("<query vector>");
					break;
				case QC_CONTAINS:
					json_object_set_new(c2, "payload_contains", shown);
					json_array_append_new(must, c2);
					break;
				case QC_NUMBER:
					json_array_append_new(must, number_cond(key, strategy, shown));
					break;
				case QC_BOOL_EQ:
					json_array_append_new(must, bool_cond(key, shown));
					break;
				case QC_TEXT_EQ:
					json_array_append_new(must, match_cond(key, "value", shown));
					break;
			}
			continue;
		}

		value = ExecEvalExpr(es, econtext, &isnull);
		switch (kind)
		{
			case QC_ID_EQ:
			case QC_ID_ANY:
				{
					json_t	   *ids = json_array();
					json_t	   *c2 = dc_json_object();

					/* a value that is no id matches no point: it is left out */
					if (!isnull && kind == QC_ID_EQ)
						append_id(ids, value, typid);
					else if (!isnull)
					{
						ArrayType  *arr = DatumGetArrayTypeP(value);
						Oid			et = ARR_ELEMTYPE(arr);
						int16		len;
						bool		byval;
						char		align;
						Datum	   *elems;
						bool	   *nulls;
						int			n,
									j;

						get_typlenbyvalalign(et, &len, &byval, &align);
						deconstruct_array(arr, et, len, byval, align, &elems, &nulls, &n);
						for (j = 0; j < n; j++)
							if (!nulls[j])
								append_id(ids, elems[j], et);
					}
					json_object_set_new(c2, "has_id", ids);
					json_array_append_new(must, c2);
					break;
				}
			case QC_NEAR:
				if (isnull)
					ereport(ERROR,
							(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
							 errmsg("query vector for foreign table \"%s\" is null",
									st->table->relname)));
				st->query = explain_only ? json_string("<query vector>") :
					dc_float4_array_to_json(DatumGetArrayTypeP(value), "query vector");
				break;
			case QC_CONTAINS:
				if (!isnull)
				{
					json_t	   *obj = dc_jsonb_to_json(DatumGetJsonbP(value), "payload");
					json_t	   *sub = json_array();

					/* checked again locally: sending nothing is also right */
					if (json_is_object(obj) && contains_conds(sub, NULL, obj))
						json_array_extend(must, sub);
				}
				break;
			case QC_TEXT_EQ:
			case QC_NUMBER:
				if (!isnull)
				{
					const char *text = dc_qd_datum_text(value, typid);
					json_t	   *cond = kind == QC_TEXT_EQ ? text_eq_cond(key, text) :
					number_cond(key, strategy, dc_qd_number_json(text));

					/* not expressible: sending nothing is a superset too */
					if (cond)
						json_array_append_new(must, cond);
				}
				break;
			case QC_BOOL_EQ:
				if (!isnull)
					json_array_append_new(must, bool_cond(key, json_boolean(DatumGetBool(value))));
				break;
		}
	}

	st->filter = NULL;
	if (json_array_size(must) > 0)
	{
		st->filter = dc_json_object();
		json_object_set_new(st->filter, "must", must);
	}
}
