/*-------------------------------------------------------------------------
 *
 * pgstub.c
 *		Just enough of PostgreSQL's memory, error and list machinery to run
 *		datacore's parsers outside a backend, for the libFuzzer targets.
 *
 * Memory: every palloc'd chunk is linked into its context; dc_fuzz_reset()
 * frees all of them (and runs reset callbacks), so each fuzz input starts
 * from nothing and a leak inside one input is not a leak of the process.
 * Errors: ereport(ERROR) formats its message (so bad format arguments are
 * caught by the sanitizers) and longjmps to PG_exception_stack, as the
 * backend does; below ERROR nothing happens.  The parsers therefore run
 * the same paths as in the server, and an ERROR is an ordinary outcome.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <stdarg.h>

#include "fuzzstub.h"

#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "nodes/pg_list.h"
#include "nodes/value.h"
#include "commands/defrem.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/array.h"
#include "fmgr.h"

#define json_object dc_jansson_json_object_unusable
#include <jansson.h>
#undef json_object

/* ---------- memory ---------- */

typedef struct StubChunk
{
	struct StubChunk *prev;
	struct StubChunk *next;
	Size		size;
	MemoryContext context;		/* just before the data, as in aset.c */
} StubChunk;

typedef struct StubContext
{
	MemoryContextData base;
	StubChunk	head;			/* circular list of chunks */
	struct StubContext *next_ctx;	/* every context, for dc_fuzz_reset */
} StubContext;

static StubContext top_context;
static StubContext *all_contexts = NULL;
static bool initialized = false;

MemoryContext TopMemoryContext = NULL;
MemoryContext CurrentMemoryContext = NULL;
MemoryContext ErrorContext = NULL;
MemoryContext CacheMemoryContext = NULL;
MemoryContext MessageContext = NULL;
MemoryContext TopTransactionContext = NULL;
MemoryContext CurTransactionContext = NULL;
MemoryContext PortalContext = NULL;

sigjmp_buf *PG_exception_stack = NULL;
ErrorContextCallback *error_context_stack = NULL;
volatile sig_atomic_t InterruptPending = false;
volatile sig_atomic_t QueryCancelPending = false;
volatile sig_atomic_t ProcDiePending = false;
volatile uint32 InterruptHoldoffCount = 0;
volatile uint32 QueryCancelHoldoffCount = 0;
volatile uint32 CritSectionCount = 0;

static void
context_init(StubContext *c, const char *name)
{
	memset(c, 0, sizeof(*c));
	c->base.type = T_AllocSetContext;
	c->base.name = name;
	c->head.prev = c->head.next = &c->head;
	c->next_ctx = all_contexts;
	all_contexts = c;
}

void
dc_fuzz_init(void)
{
	if (initialized)
		return;
	initialized = true;
	context_init(&top_context, "TopMemoryContext");
	TopMemoryContext = CurrentMemoryContext = ErrorContext =
		CacheMemoryContext = MessageContext = TopTransactionContext =
		CurTransactionContext = PortalContext = &top_context.base;
}

static void
run_callbacks(MemoryContext context)
{
	MemoryContextCallback *cb;

	while ((cb = context->reset_cbs) != NULL)
	{
		context->reset_cbs = cb->next;
		cb->func(cb->arg);
	}
}

static void
free_chunks(StubContext *c)
{
	StubChunk  *ch = c->head.next;

	while (ch != &c->head)
	{
		StubChunk  *next = ch->next;

		free(ch);
		ch = next;
	}
	c->head.prev = c->head.next = &c->head;
}

/* Free everything allocated since the start; contexts other than the top one go too. */
void
dc_fuzz_reset(void)
{
	StubContext *c;

	dc_fuzz_init();
	for (c = all_contexts; c; c = c->next_ctx)
		run_callbacks(&c->base);
	for (c = all_contexts; c; c = c->next_ctx)
		free_chunks(c);
	while (all_contexts != &top_context)
	{
		c = all_contexts;
		all_contexts = c->next_ctx;
		free(c);
	}
	CurrentMemoryContext = &top_context.base;
	PG_exception_stack = NULL;
	error_context_stack = NULL;
}

static void *
chunk_alloc(MemoryContext context, Size size, int flags)
{
	StubContext *c = (StubContext *) context;
	StubChunk  *ch;

	if (!(flags & MCXT_ALLOC_HUGE) && !AllocSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	if (size > (Size) 1024 * 1024 * 1024)
	{
		if (flags & MCXT_ALLOC_NO_OOM)
			return NULL;
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	ch = malloc(sizeof(StubChunk) + size);
	if (ch == NULL)
		abort();
	ch->size = size;
	ch->context = context;
	ch->next = c->head.next;
	ch->prev = &c->head;
	c->head.next->prev = ch;
	c->head.next = ch;
	if (flags & MCXT_ALLOC_ZERO)
		memset(ch + 1, 0, size);
	return ch + 1;
}

void *
MemoryContextAllocExtended(MemoryContext context, Size size, int flags)
{
	return chunk_alloc(context, size, flags);
}

void *
MemoryContextAlloc(MemoryContext context, Size size)
{
	return chunk_alloc(context, size, 0);
}

void *
MemoryContextAllocZero(MemoryContext context, Size size)
{
	return chunk_alloc(context, size, MCXT_ALLOC_ZERO);
}

void *
MemoryContextAllocZeroAligned(MemoryContext context, Size size)
{
	return chunk_alloc(context, size, MCXT_ALLOC_ZERO);
}

void *
MemoryContextAllocHuge(MemoryContext context, Size size)
{
	return chunk_alloc(context, size, MCXT_ALLOC_HUGE);
}

void *
palloc(Size size)
{
	return chunk_alloc(CurrentMemoryContext, size, 0);
}

void *
palloc0(Size size)
{
	return chunk_alloc(CurrentMemoryContext, size, MCXT_ALLOC_ZERO);
}

void *
palloc_extended(Size size, int flags)
{
	return chunk_alloc(CurrentMemoryContext, size, flags);
}

void
pfree(void *pointer)
{
	StubChunk  *ch = ((StubChunk *) pointer) - 1;

	ch->prev->next = ch->next;
	ch->next->prev = ch->prev;
	free(ch);
}

static void *
chunk_realloc(void *pointer, Size size, int flags)
{
	StubChunk  *old = ((StubChunk *) pointer) - 1;
	void	   *p = chunk_alloc(old->context, size, flags);

	memcpy(p, pointer, Min(size, old->size));
	pfree(pointer);
	return p;
}

void *
repalloc(void *pointer, Size size)
{
	return chunk_realloc(pointer, size, 0);
}

void *
repalloc_huge(void *pointer, Size size)
{
	return chunk_realloc(pointer, size, MCXT_ALLOC_HUGE);
}

char *
MemoryContextStrdup(MemoryContext context, const char *string)
{
	Size		len = strlen(string) + 1;
	char	   *p = chunk_alloc(context, len, 0);

	memcpy(p, string, len);
	return p;
}

char *
pstrdup(const char *in)
{
	return MemoryContextStrdup(CurrentMemoryContext, in);
}

char *
pnstrdup(const char *in, Size len)
{
	char	   *p;

	len = strnlen(in, len);
	p = palloc(len + 1);
	memcpy(p, in, len);
	p[len] = '\0';
	return p;
}

MemoryContext
AllocSetContextCreateInternal(MemoryContext parent, const char *name,
							  Size minContextSize, Size initBlockSize,
							  Size maxBlockSize)
{
	StubContext *c = malloc(sizeof(StubContext));

	if (c == NULL)
		abort();
	context_init(c, name);
	c->base.parent = parent;
	return &c->base;
}

MemoryContext
GenerationContextCreate(MemoryContext parent, const char *name,
						Size minContextSize, Size initBlockSize,
						Size maxBlockSize)
{
	return AllocSetContextCreateInternal(parent, name, 0, 0, 0);
}

void
MemoryContextReset(MemoryContext context)
{
	run_callbacks(context);
	free_chunks((StubContext *) context);
}

void
MemoryContextResetOnly(MemoryContext context)
{
	MemoryContextReset(context);
}

/* Deleted contexts stay on the list, empty, until dc_fuzz_reset. */
void
MemoryContextDelete(MemoryContext context)
{
	MemoryContextReset(context);
}

void
MemoryContextSetParent(MemoryContext context, MemoryContext new_parent)
{
	context->parent = new_parent;
}

void
MemoryContextRegisterResetCallback(MemoryContext context,
								   MemoryContextCallback *cb)
{
	cb->next = context->reset_cbs;
	context->reset_cbs = cb;
}

/* ---------- errors ---------- */

#define STUB_MSG 4096

static int	cur_elevel;
static char cur_message[STUB_MSG];
static int	cur_sqlstate;

static void
format_into(char *buf, const char *fmt, va_list ap)
{
	pg_vsnprintf(buf, STUB_MSG, fmt, ap);
}

bool
errstart(int elevel, const char *domain)
{
	if (elevel < ERROR)
		return false;
	cur_elevel = elevel;
	cur_message[0] = '\0';
	cur_sqlstate = ERRCODE_INTERNAL_ERROR;
	return true;
}

bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	ErrorContextCallback *cb;

	/* context callbacks run as they would for the server log */
	for (cb = error_context_stack; cb; cb = cb->previous)
		cb->callback(cb->arg);
	if (cur_elevel >= FATAL || PG_exception_stack == NULL)
	{
		fprintf(stderr, "%s:%d: unexpected %s outside PG_TRY: %s\n",
				filename, lineno, cur_elevel >= FATAL ? "FATAL" : "ERROR", cur_message);
		abort();
	}
	/* bad remote or user data is an expected failure: never XX000 */
	if (cur_sqlstate == ERRCODE_INTERNAL_ERROR)
	{
		fprintf(stderr, "%s:%d: internal error (XX000) raised: %s\n",
				filename, lineno, cur_message);
		abort();
	}
	dc_fuzz_last_sqlstate = cur_sqlstate;
	siglongjmp(*PG_exception_stack, 1);
}

int			dc_fuzz_last_sqlstate = 0;

void
pg_re_throw(void)
{
	if (PG_exception_stack == NULL)
		abort();
	siglongjmp(*PG_exception_stack, 1);
}

void
FlushErrorState(void)
{
}

int
errcode(int sqlerrcode)
{
	cur_sqlstate = sqlerrcode;
	return 0;
}

#define STUB_FORMATTER(name) \
int \
name(const char *fmt, ...) \
{ \
	char		buf[STUB_MSG]; \
	va_list		ap; \
	va_start(ap, fmt); \
	format_into(buf, fmt, ap); \
	va_end(ap); \
	if (strcmp(#name, "errmsg") == 0 || strcmp(#name, "errmsg_internal") == 0) \
		strlcpy(cur_message, buf, sizeof(cur_message)); \
	return 0; \
}

STUB_FORMATTER(errmsg)
STUB_FORMATTER(errmsg_internal)
STUB_FORMATTER(errdetail)
STUB_FORMATTER(errdetail_internal)
STUB_FORMATTER(errdetail_log)
STUB_FORMATTER(errhint)
STUB_FORMATTER(errcontext_msg)

int
set_errcontext_domain(const char *domain)
{
	return 0;
}

int
errhidestmt(bool hide_stmt)
{
	return 0;
}

int
errposition(int cursorpos)
{
	return 0;
}

void
ProcessInterrupts(void)
{
}

/* ---------- lists (PostgreSQL 15's array-based List) ---------- */

static List *
new_list(NodeTag type, int n)
{
	int			cap = Max(n, 8);
	List	   *l = palloc(offsetof(List, initial_elements) + cap * sizeof(ListCell));

	l->type = type;
	l->length = n;
	l->max_length = cap;
	l->elements = l->initial_elements;
	return l;
}

static void
grow(List *l)
{
	int			cap = l->max_length * 2;
	ListCell   *cells = palloc(cap * sizeof(ListCell));

	memcpy(cells, l->elements, l->length * sizeof(ListCell));
	if (l->elements != l->initial_elements)
		pfree(l->elements);
	l->elements = cells;
	l->max_length = cap;
}

List *
lappend(List *list, void *datum)
{
	if (list == NIL)
		list = new_list(T_List, 0);
	if (list->length >= list->max_length)
		grow(list);
	lfirst(&list->elements[list->length++]) = datum;
	return list;
}

List *
lappend_int(List *list, int datum)
{
	if (list == NIL)
		list = new_list(T_IntList, 0);
	if (list->length >= list->max_length)
		grow(list);
	lfirst_int(&list->elements[list->length++]) = datum;
	return list;
}

List *
list_make1_impl(NodeTag t, ListCell datum1)
{
	List	   *l = new_list(t, 1);

	l->elements[0] = datum1;
	return l;
}

List *
list_make2_impl(NodeTag t, ListCell datum1, ListCell datum2)
{
	List	   *l = new_list(t, 2);

	l->elements[0] = datum1;
	l->elements[1] = datum2;
	return l;
}

List *
list_concat(List *list1, const List *list2)
{
	int			i;

	for (i = 0; list2 && i < list2->length; i++)
		list1 = lappend(list1, lfirst(&list2->elements[i]));
	return list1;
}

List *
list_copy(const List *list)
{
	return list_concat(NIL, list);
}

void
list_sort(List *list, list_sort_comparator cmp)
{
	if (list && list->length > 1)
		qsort(list->elements, list->length, sizeof(ListCell),
			  (int (*) (const void *, const void *)) cmp);
}

void
list_free(List *list)
{
	if (list == NIL)
		return;
	if (list->elements != list->initial_elements)
		pfree(list->elements);
	pfree(list);
}

void
list_free_deep(List *list)
{
	int			i;

	for (i = 0; list && i < list->length; i++)
		pfree(lfirst(&list->elements[i]));
	list_free(list);
}

/* ---------- nodes ---------- */

char *
defGetString(DefElem *def)
{
	if (def->arg == NULL || !IsA(def->arg, String))
		ereport(ERROR, (errcode(ERRCODE_SYNTAX_ERROR),
						errmsg("%s requires a parameter", def->defname)));
	return strVal(def->arg);
}

bool
superuser(void)
{
	return dc_fuzz_superuser;
}

bool		dc_fuzz_superuser = false;

/* ---------- encoding ---------- */

int
GetDatabaseEncoding(void)
{
	return PG_UTF8;
}

const char *
GetDatabaseEncodingName(void)
{
	return "UTF8";
}

/* ---------- varlena values ---------- */

text *
cstring_to_text_with_len(const char *s, int len)
{
	text	   *t = palloc(VARHDRSZ + len);

	SET_VARSIZE(t, VARHDRSZ + len);
	if (len > 0)
		memcpy(VARDATA(t), s, len);
	return t;
}

text *
cstring_to_text(const char *s)
{
	return cstring_to_text_with_len(s, strlen(s));
}

/* A numeric is opaque here: a varlena holding the int64. */
Numeric
int64_to_numeric(int64 val)
{
	struct varlena *v = palloc(VARHDRSZ + sizeof(int64));

	SET_VARSIZE(v, VARHDRSZ + sizeof(int64));
	memcpy(VARDATA(v), &val, sizeof(int64));
	return (Numeric) v;
}

/* ---------- jsonb: the push sequence is checked, not built ---------- */

typedef struct StubParse
{
	bool		object;
	bool		want_value;		/* object: a key came, its value is due */
	int			count;
	struct StubParse *next;
} StubParse;

static volatile unsigned touch_sum;

/* Read every byte of a scalar, so the sanitizers see a bad pointer or length. */
static void
touch_scalar(const JsonbValue *v)
{
	int			i;

	switch (v->type)
	{
		case jbvString:
			if (v->val.string.len < 0)
				abort();
			for (i = 0; i < v->val.string.len; i++)
				touch_sum += (unsigned char) v->val.string.val[i];
			break;
		case jbvNumeric:
			touch_sum += VARSIZE_ANY((struct varlena *) v->val.numeric);
			break;
		case jbvNull:
		case jbvBool:
			break;
		default:
			fprintf(stderr, "pushJsonbValue: unexpected scalar type %d\n", v->type);
			abort();
	}
}

static void
bad_sequence(const char *what)
{
	fprintf(stderr, "pushJsonbValue: %s\n", what);
	abort();
}

JsonbValue *
pushJsonbValue(JsonbParseState **pstate, JsonbIteratorToken seq,
			   JsonbValue *jbval)
{
	StubParse  *top = (StubParse *) *pstate;
	StubParse  *p;
	static JsonbValue done;

	switch (seq)
	{
		case WJB_BEGIN_ARRAY:
		case WJB_BEGIN_OBJECT:
			if (top && top->object && !top->want_value)
				bad_sequence("container where a key is due");
			if (top && top->object)
				top->want_value = false;
			p = palloc0(sizeof(StubParse));
			p->object = (seq == WJB_BEGIN_OBJECT);
			p->next = top;
			*pstate = (JsonbParseState *) p;
			return NULL;
		case WJB_KEY:
			if (!top || !top->object || top->want_value)
				bad_sequence("key outside an object or where a value is due");
			if (jbval->type != jbvString)
				bad_sequence("key that is not a string");
			touch_scalar(jbval);
			top->want_value = true;
			return NULL;
		case WJB_VALUE:
			if (!top || !top->object || !top->want_value)
				bad_sequence("value without a key");
			touch_scalar(jbval);
			top->want_value = false;
			top->count++;
			return NULL;
		case WJB_ELEM:
			if (!top || top->object)
				bad_sequence("element outside an array");
			touch_scalar(jbval);
			top->count++;
			return NULL;
		case WJB_END_ARRAY:
		case WJB_END_OBJECT:
			if (!top || top->object != (seq == WJB_END_OBJECT) || top->want_value)
				bad_sequence("unbalanced end");
			*pstate = (JsonbParseState *) top->next;
			if (top->next)
				return NULL;
			done.type = top->object ? jbvObject : jbvArray;
			return &done;
		default:
			bad_sequence("unknown token");
	}
	return NULL;
}

Jsonb *
JsonbValueToJsonb(JsonbValue *val)
{
	Jsonb	   *j;

	if (val == NULL)
		bad_sequence("JsonbValueToJsonb of NULL (container not closed)");
	j = palloc0(sizeof(Jsonb));
	SET_VARSIZE(j, sizeof(Jsonb));
	return j;
}

/* PostgreSQL's rules for a boolean option value (define.c) */
bool
defGetBoolean(DefElem *def)
{
	char	   *s;

	if (def->arg == NULL)
		return true;
	s = defGetString(def);
	if (pg_strcasecmp(s, "true") == 0 || pg_strcasecmp(s, "on") == 0 ||
		strcmp(s, "1") == 0)
		return true;
	if (pg_strcasecmp(s, "false") == 0 || pg_strcasecmp(s, "off") == 0 ||
		strcmp(s, "0") == 0)
		return false;
	ereport(ERROR,
			(errcode(ERRCODE_SYNTAX_ERROR),
			 errmsg("%s requires a Boolean value", def->defname)));
	return false;
}

/* Plain edit distance; the costs and the cap are not needed here. */
int
varstr_levenshtein(const char *source, int slen, const char *target, int tlen,
				   int ins_c, int del_c, int sub_c, bool trusted)
{
	int		   *prev = palloc((tlen + 1) * sizeof(int));
	int		   *cur = palloc((tlen + 1) * sizeof(int));
	int			i,
				j,
				d;

	for (j = 0; j <= tlen; j++)
		prev[j] = j * ins_c;
	for (i = 1; i <= slen; i++)
	{
		int		   *t;

		cur[0] = i * del_c;
		for (j = 1; j <= tlen; j++)
		{
			d = prev[j - 1] + (source[i - 1] == target[j - 1] ? 0 : sub_c);
			d = Min(d, prev[j] + del_c);
			d = Min(d, cur[j - 1] + ins_c);
			cur[j] = d;
		}
		t = prev;
		prev = cur;
		cur = t;
	}
	d = prev[tlen];
	pfree(prev);
	pfree(cur);
	return d;
}

/* jsonb_in: only whether the text is JSON matters here (22P02 otherwise). */
Datum
jsonb_in(PG_FUNCTION_ARGS)
{
	char	   *text = PG_GETARG_CSTRING(0);
	json_error_t err;
	json_t	   *j = json_loads(text, JSON_DECODE_ANY, &err);
	Jsonb	   *out;

	if (j == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type json"),
				 errdetail_internal("%s", err.text)));
	json_decref(j);
	out = palloc0(sizeof(Jsonb));
	SET_VARSIZE(out, sizeof(Jsonb));
	PG_RETURN_POINTER(out);
}

Datum
DirectFunctionCall1Coll(PGFunction func, Oid collation, Datum arg1)
{
	LOCAL_FCINFO(fcinfo, 1);

	InitFunctionCallInfoData(*fcinfo, NULL, 1, collation, NULL, NULL);
	fcinfo->args[0].value = arg1;
	fcinfo->args[0].isnull = false;
	return func(fcinfo);
}

/* Arrays of fixed-size by-value elements, as the parsers build them. */
ArrayType *
construct_array(Datum *elems, int nelems, Oid elmtype, int elmlen,
				bool elmbyval, char elmalign)
{
	Size		size = ARR_OVERHEAD_NONULLS(1) + (Size) nelems * elmlen;
	ArrayType  *a = palloc0(size);
	int			i;

	SET_VARSIZE(a, size);
	a->ndim = 1;
	a->elemtype = elmtype;
	ARR_DIMS(a)[0] = nelems;
	ARR_LBOUND(a)[0] = 1;
	for (i = 0; i < nelems; i++)
		memcpy(ARR_DATA_PTR(a) + (Size) i * elmlen, &elems[i], elmlen);
	return a;
}

/* Values here are never toasted or compressed. */
struct varlena *
pg_detoast_datum(struct varlena *datum)
{
	return datum;
}

/*
 * The jsonb converters recurse per nesting level; jansson already refuses
 * documents nested deeper than its own limit, so the fuzz process's stack
 * is never at risk from a parsed reply.
 */
void
check_stack_depth(void)
{
}

/* A JSON string literal of str, as PostgreSQL's escape_json writes it. */
void
escape_json(StringInfo buf, const char *str)
{
	const char *p;

	appendStringInfoCharMacro(buf, '"');
	for (p = str; *p; p++)
	{
		switch (*p)
		{
			case '\b':
				appendStringInfoString(buf, "\\b");
				break;
			case '\f':
				appendStringInfoString(buf, "\\f");
				break;
			case '\n':
				appendStringInfoString(buf, "\\n");
				break;
			case '\r':
				appendStringInfoString(buf, "\\r");
				break;
			case '\t':
				appendStringInfoString(buf, "\\t");
				break;
			case '"':
				appendStringInfoString(buf, "\\\"");
				break;
			case '\\':
				appendStringInfoString(buf, "\\\\");
				break;
			default:
				if ((unsigned char) *p < ' ')
					appendStringInfo(buf, "\\u%04x", (int) *p);
				else
					appendStringInfoCharMacro(buf, *p);
				break;
		}
	}
	appendStringInfoCharMacro(buf, '"');
}

/*
 * PostgreSQL's boolean spellings: true/false, yes/no, on/off, 1/0, any
 * unique prefix of the words (case-insensitive), "o" alone being ambiguous.
 */
bool
parse_bool(const char *value, bool *result)
{
	static const struct
	{
		const char *word;
		bool		val;
		size_t		minlen;
	}			words[] = {
		{"true", true, 1}, {"false", false, 1}, {"yes", true, 1},
		{"no", false, 1}, {"on", true, 2}, {"off", false, 2},
		{"1", true, 1}, {"0", false, 1},
	};
	size_t		len = strlen(value);
	int			i;

	for (i = 0; i < (int) lengthof(words); i++)
	{
		if (len >= words[i].minlen && len <= strlen(words[i].word) &&
			pg_strncasecmp(value, words[i].word, len) == 0)
		{
			if (result)
				*result = words[i].val;
			return true;
		}
	}
	if (result)
		*result = false;
	return false;
}
