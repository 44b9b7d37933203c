/*-------------------------------------------------------------------------
 *
 * chunk.c
 *		Text chunking, chunk formatting and chunk point ids for RAG pipelines.
 *
 * rag_sync cuts each document into chunks before embedding them; doing it
 * in PL/pgSQL costs a string copy per character step, so the three
 * per-chunk helpers live here.  All sizes are in characters of the database
 * encoding, never bytes: a chunk boundary never splits a multibyte
 * character, and separators are recognised only as whole characters (in
 * encodings such as SJIS an ASCII byte can be the tail of a wider one).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "common/sha1.h"
#include "datacore.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/uuid.h"

/* Separator levels of the recursive chunker, coarsest first. */
typedef enum ChunkLevel
{
	LEVEL_PARAGRAPH,			/* a blank line */
	LEVEL_LINE,					/* a line break */
	LEVEL_SENTENCE,				/* '.', '!' or '?' followed by white space */
	LEVEL_WORD,					/* a space or tab */
	LEVEL_CHARACTER				/* anywhere */
} ChunkLevel;

/* A text seen as characters: off[i] is the byte offset of character i. */
typedef struct CharText
{
	const char *s;
	int			nchars;
	int		   *off;			/* nchars + 1 entries */
} CharText;

/* A run of characters [lo, hi) of a CharText. */
typedef struct Span
{
	int			lo;
	int			hi;
} Span;

typedef struct SpanList
{
	Span	   *items;
	int			n;
	int			cap;
} SpanList;

static void
span_add(SpanList *l, int lo, int hi)
{
	if (l->n == l->cap)
	{
		l->cap = l->cap ? l->cap * 2 : 64;
		l->items = l->items ?
			repalloc_huge(l->items, sizeof(Span) * l->cap) :
			MemoryContextAllocHuge(CurrentMemoryContext, sizeof(Span) * l->cap);
	}
	l->items[l->n].lo = lo;
	l->items[l->n].hi = hi;
	l->n++;
}

static void
char_text_init(CharText *t, const char *s, int len)
{
	int			i = 0;
	int			pos = 0;

	t->s = s;
	t->off = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int) * ((Size) len + 1));
	while (pos < len)
	{
		t->off[i++] = pos;
		pos += pg_mblen(s + pos);
	}
	t->off[i] = len;
	t->nchars = i;
}

/* The single-byte character at position i, or '\0' if it is wider. */
static char
ascii_at(const CharText *t, int i)
{
	if (i >= t->nchars || t->off[i + 1] - t->off[i] != 1)
		return '\0';
	return t->s[t->off[i]];
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/*
 * Length in characters of a separator of the given level starting at
 * character i (not beyond hi), 0 if there is none.
 */
static int
separator_at(const CharText *t, int i, int hi, ChunkLevel level)
{
	char		c = ascii_at(t, i);
	char		next = i + 1 < hi ? ascii_at(t, i + 1) : '\0';

	switch (level)
	{
		case LEVEL_PARAGRAPH:
			if (c == '\n' && next == '\n')
				return 2;
			if (c == '\r' && next == '\n' && i + 3 < hi &&
				ascii_at(t, i + 2) == '\r' && ascii_at(t, i + 3) == '\n')
				return 4;
			return 0;
		case LEVEL_LINE:
			return c == '\n' ? 1 : 0;
		case LEVEL_SENTENCE:
			return (c == '.' || c == '!' || c == '?') && is_space(next) ? 2 : 0;
		case LEVEL_WORD:
			return c == ' ' || c == '\t' ? 1 : 0;
		case LEVEL_CHARACTER:
			return 0;
	}
	return 0;
}

/*
 * Cut [lo, hi) into pieces of at most size characters, preferring the
 * coarsest separator that occurs; a separator stays at the end of the
 * piece before it, so the pieces are contiguous and cover the span.
 */
static void
split_recursive(const CharText *t, int lo, int hi, ChunkLevel level, int size,
				SpanList *pieces)
{
	int			part = lo;
	int			i;

	CHECK_FOR_INTERRUPTS();
	if (hi - lo <= size)
	{
		span_add(pieces, lo, hi);
		return;
	}
	if (level == LEVEL_CHARACTER)
	{
		for (i = lo; i < hi; i += size)
			span_add(pieces, i, Min(i + size, hi));
		return;
	}
	for (i = lo; i < hi; i++)
	{
		int			seplen = separator_at(t, i, hi, level);

		if (seplen == 0)
			continue;
		if (i + seplen - part <= size)
			span_add(pieces, part, i + seplen);
		else
			split_recursive(t, part, i + seplen, level + 1, size, pieces);
		part = i + seplen;
		i = part - 1;
	}
	if (part < hi)
	{
		if (hi - part <= size)
			span_add(pieces, part, hi);
		else
			split_recursive(t, part, hi, level + 1, size, pieces);
	}
}

/*
 * Add the chunk [lo, hi) to the result unless it is only white space;
 * trim says whether surrounding white space is dropped first.
 */
static void
emit_chunk(Tuplestorestate *ts, TupleDesc desc, const CharText *t, int lo, int hi,
		   bool trim, int *n)
{
	Datum		values[2];
	bool		nulls[2] = {false, false};
	bool		blank = true;
	int			i;

	for (i = lo; i < hi && blank; i++)
		blank = is_space(ascii_at(t, i));
	if (blank)
		return;
	if (trim)
	{
		while (is_space(ascii_at(t, lo)))
			lo++;
		while (hi > lo && is_space(ascii_at(t, hi - 1)))
			hi--;
	}
	values[0] = Int32GetDatum(++(*n));
	values[1] = PointerGetDatum(cstring_to_text_with_len(t->s + t->off[lo],
														 t->off[hi] - t->off[lo]));
	tuplestore_putvalues(ts, desc, values, nulls);
	pfree(DatumGetPointer(values[1]));
}

/*
 * rag_chunks(doc text, chunker text, size int, overlap int)
 *		RETURNS TABLE(n int, chunk text)
 *
 * The chunks of a document, numbered from 1, in order.  "none" gives the
 * document as its only chunk; "character" cuts windows of size characters,
 * each starting size - overlap characters after the previous one;
 * "recursive" cuts at paragraphs, then lines, sentences, words and at last
 * anywhere, merges consecutive pieces into chunks of at most size
 * characters, and starts each chunk with up to overlap characters of whole
 * pieces from the end of the previous one (recursive chunks are trimmed of
 * surrounding white space).  A NULL or blank document has no chunks, and
 * neither has a chunk that is only white space.
 */
PG_FUNCTION_INFO_V1(datacore_rag_chunks);
Datum
datacore_rag_chunks(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text	   *doc;
	char	   *chunker;
	int			size = PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2);
	int			overlap = PG_ARGISNULL(3) ? 0 : PG_GETARG_INT32(3);
	CharText	t;
	int			n = 0;
	MemoryContext work;
	MemoryContext old;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("chunker must not be null"),
				 errhint("Use 'none', 'character' or 'recursive'.")));
	chunker = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (strcmp(chunker, "none") != 0 && strcmp(chunker, "character") != 0 &&
		strcmp(chunker, "recursive") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown chunker \"%s\"", chunker),
				 errhint("Use 'none', 'character' or 'recursive'.")));
	if (strcmp(chunker, "none") != 0)
	{
		if (PG_ARGISNULL(2) || size < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("chunk_size must be at least 1 for chunker \"%s\"", chunker)));
		if (overlap < 0 || overlap >= size)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("chunk_overlap must be at least 0 and less than chunk_size"),
					 errdetail("chunk_size is %d, chunk_overlap is %d.", size, overlap)));
	}

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0))
		return (Datum) 0;

	/* the character offsets can be large; free them before returning */
	work = AllocSetContextCreate(CurrentMemoryContext, "rag_chunks",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	doc = PG_GETARG_TEXT_PP(0);
	char_text_init(&t, VARDATA_ANY(doc), VARSIZE_ANY_EXHDR(doc));

	if (strcmp(chunker, "none") == 0)
		emit_chunk(rsinfo->setResult, rsinfo->setDesc, &t, 0, t.nchars, false, &n);
	else if (strcmp(chunker, "character") == 0)
	{
		int			lo;

		for (lo = 0; lo < t.nchars; lo += size - overlap)
		{
			int			hi = Min(lo + size, t.nchars);

			CHECK_FOR_INTERRUPTS();
			emit_chunk(rsinfo->setResult, rsinfo->setDesc, &t, lo, hi, false, &n);
			if (hi == t.nchars)
				break;
		}
	}
	else
	{
		SpanList	pieces = {NULL, 0, 0};
		int			start = 0;
		int			len = 0;
		int			i;

		if (t.nchars > 0)
			split_recursive(&t, 0, t.nchars, LEVEL_PARAGRAPH, size, &pieces);
		for (i = 0; i < pieces.n; i++)
		{
			int			plen = pieces.items[i].hi - pieces.items[i].lo;

			if (len + plen > size && i > start)
			{
				emit_chunk(rsinfo->setResult, rsinfo->setDesc, &t,
						   pieces.items[start].lo, pieces.items[i - 1].hi, true, &n);
				/* keep whole pieces worth at most overlap characters */
				while (start < i && (len > overlap || len + plen > size))
				{
					len -= pieces.items[start].hi - pieces.items[start].lo;
					start++;
				}
			}
			len += plen;
		}
		if (pieces.n > 0)
			emit_chunk(rsinfo->setResult, rsinfo->setDesc, &t,
					   pieces.items[start].lo, pieces.items[pieces.n - 1].hi, true, &n);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
	return (Datum) 0;
}

/* Append a jsonb value as text: strings bare, null as nothing, others as JSON. */
static void
append_jsonb_text(StringInfo buf, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			break;
		case jbvString:
			appendBinaryStringInfo(buf, v->val.string.val, v->val.string.len);
			break;
		case jbvNumeric:
			appendStringInfoString(buf,
								   DatumGetCString(DirectFunctionCall1(numeric_out,
																	   NumericGetDatum(v->val.numeric))));
			break;
		case jbvBool:
			appendStringInfoString(buf, v->val.boolean ? "true" : "false");
			break;
		default:
			{
				Jsonb	   *j = JsonbValueToJsonb(v);

				appendStringInfoString(buf, JsonbToCString(NULL, &j->root, VARSIZE(j)));
			}
			break;
	}
}

static bool
is_ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
is_ident_char(char c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9');
}

/*
 * rag_format(template text, chunk text, vars jsonb) RETURNS text
 *
 * The template with $chunk (or ${chunk}) replaced by the chunk and every
 * other $name (${name}) by the value of key name in vars: a string as it
 * is, null or a missing key as nothing, other values as JSON.  $$ is a
 * dollar sign; a $ not followed by a name stays as it is.  Replacements are
 * not scanned again, so a value containing "$chunk" is left alone.
 */
PG_FUNCTION_INFO_V1(datacore_rag_format);
Datum
datacore_rag_format(PG_FUNCTION_ARGS)
{
	text	   *tmpl;
	const char *s;
	int			len;
	int			i = 0;
	Jsonb	   *vars = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	StringInfoData buf;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	tmpl = PG_GETARG_TEXT_PP(0);
	s = VARDATA_ANY(tmpl);
	len = VARSIZE_ANY_EXHDR(tmpl);
	initStringInfo(&buf);
	while (i < len)
	{
		int			name_lo;
		int			name_hi;
		int			next;
		bool		braced;

		if (s[i] != '$')
		{
			int			l = pg_mblen(s + i);

			appendBinaryStringInfo(&buf, s + i, l);
			i += l;
			continue;
		}
		if (i + 1 < len && s[i + 1] == '$')
		{
			appendStringInfoChar(&buf, '$');
			i += 2;
			continue;
		}
		braced = i + 1 < len && s[i + 1] == '{';
		name_lo = i + (braced ? 2 : 1);
		name_hi = name_lo;
		if (name_hi < len && is_ident_start(s[name_hi]))
			while (name_hi < len && is_ident_char(s[name_hi]))
				name_hi++;
		next = name_hi;
		if (braced)
		{
			if (name_hi < len && s[name_hi] == '}')
				next = name_hi + 1;
			else
				name_hi = name_lo;	/* not a ${name}: literal */
		}
		if (name_hi == name_lo)
		{
			appendStringInfoChar(&buf, '$');
			i++;
			continue;
		}
		if (name_hi - name_lo == 5 && strncmp(s + name_lo, "chunk", 5) == 0)
		{
			if (!PG_ARGISNULL(1))
			{
				text	   *chunk = PG_GETARG_TEXT_PP(1);

				appendBinaryStringInfo(&buf, VARDATA_ANY(chunk), VARSIZE_ANY_EXHDR(chunk));
			}
		}
		else if (vars != NULL && JB_ROOT_IS_OBJECT(vars))
		{
			JsonbValue	v;

			if (getKeyJsonValueFromContainer(&vars->root, s + name_lo,
											 name_hi - name_lo, &v) != NULL)
				append_jsonb_text(&buf, &v);
		}
		i = next;
	}
	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf.data, buf.len));
}

/*
 * rag_point_id(pipeline text, row_id text, chunk int) RETURNS uuid
 *
 * The Qdrant point id of a chunk: a name-based UUID (RFC 4122 version 5,
 * SHA-1) in datacore's own namespace, over the pipeline name, a NUL byte,
 * the row id as text, a NUL byte and the chunk number in decimal.  The same
 * chunk of the same row always gets the same id, so a re-sync replaces it.
 */
PG_FUNCTION_INFO_V1(datacore_rag_point_id);
Datum
datacore_rag_point_id(PG_FUNCTION_ARGS)
{
	/* 2f1c6a4e-9b0d-4c57-8e1a-5d3b7c9f0a21, fixed forever */
	static const uint8 namespace[UUID_LEN] = {
		0x2f, 0x1c, 0x6a, 0x4e, 0x9b, 0x0d, 0x4c, 0x57,
		0x8e, 0x1a, 0x5d, 0x3b, 0x7c, 0x9f, 0x0a, 0x21
	};
	text	   *pipeline = PG_GETARG_TEXT_PP(0);
	text	   *row_id = PG_GETARG_TEXT_PP(1);
	char		chunk[16];
	uint8		digest[SHA1_DIGEST_LENGTH];
	pg_uuid_t  *uuid = palloc(sizeof(pg_uuid_t));
	pg_cryptohash_ctx *ctx;
	static const uint8 nul = 0;

	snprintf(chunk, sizeof(chunk), "%d", PG_GETARG_INT32(2));
	ctx = pg_cryptohash_create(PG_SHA1);
	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, namespace, UUID_LEN) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) VARDATA_ANY(pipeline), VARSIZE_ANY_EXHDR(pipeline)) < 0 ||
		pg_cryptohash_update(ctx, &nul, 1) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) VARDATA_ANY(row_id), VARSIZE_ANY_EXHDR(row_id)) < 0 ||
		pg_cryptohash_update(ctx, &nul, 1) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) chunk, strlen(chunk)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
	{
		pg_cryptohash_free(ctx);
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute SHA-1 for a point id")));
	}
	pg_cryptohash_free(ctx);
	memcpy(uuid->data, digest, UUID_LEN);
	uuid->data[6] = (uuid->data[6] & 0x0f) | 0x50;	/* version 5 */
	uuid->data[8] = (uuid->data[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	PG_RETURN_UUID_P(uuid);
}
