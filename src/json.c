/*-------------------------------------------------------------------------
 *
 * json.c
 *		jansson helpers: parsing replies, building requests, and converting
 *		to and from jsonb, text and real[].
 *
 * A reply that does not parse, or that holds NaN or an infinite number
 * where a vector is expected, is an error of its own (HV00A), never a
 * crash or a half-filled result.
 *
 * Numbers keep their value.  jansson holds integers as int64 and reals as
 * doubles, so an integer outside the int64 range (a Qdrant id above
 * 2^63-1, a big payload number) travels as a "raw number": a jansson
 * string whose first byte is 0xFF, followed by the number's text.  No
 * string that jansson parses or checks can hold 0xFF (it is never valid
 * UTF-8), so a raw number is never confused with a string, whatever a
 * server sends.  JSON text cannot spell 0xFF, so such integers are first
 * rewritten as "\u0000" and their text, and the parsed strings that start
 * with NUL (\u0000 anywhere else is refused first: PostgreSQL text cannot
 * hold it) are then re-marked.  dc_json_dumps() writes raw numbers back as
 * bare numbers and reals in their shortest form that reads back as the
 * same double.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <float.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "json.h"

static void *
dc_json_malloc(size_t size)
{
	/* NO_OOM: jansson reports NULL as a failure instead of a longjmp */
	return MemoryContextAllocExtended(CurrentMemoryContext, size,
									  MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
}

static void
dc_json_free(void *ptr)
{
	if (ptr)
		pfree(ptr);
}

void
dc_json_init(void)
{
	json_set_alloc_funcs(dc_json_malloc, dc_json_free);
}

/*
 * An empty object.  json_pack() builds it inside libjansson, where calls
 * bind to jansson's own json_object() rather than the server's.
 */
json_t *
dc_json_object(void)
{
	json_t	   *obj = json_pack("{}");

	if (obj == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return obj;
}

/* ---------- raw numbers ---------- */

#define RAW_NUMBER_MARK '\xFF'

/* A number kept as its JSON text (see the file header). */
json_t *
dc_json_raw_number(const char *text)
{
	size_t		len = strlen(text);
	char	   *buf = palloc(len + 1);
	json_t	   *v;

	buf[0] = RAW_NUMBER_MARK;
	memcpy(buf + 1, text, len);
	v = json_stringn_nocheck(buf, len + 1);
	pfree(buf);
	if (v == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return v;
}

/* The text of a raw number, or NULL when v is not one. */
const char *
dc_json_raw_number_text(json_t *v)
{
	if (!json_is_string(v) || json_string_length(v) < 2 ||
		json_string_value(v)[0] != RAW_NUMBER_MARK)
		return NULL;
	return json_string_value(v) + 1;
}

/* ---------- strings ---------- */

/*
 * A JSON string from text in the database encoding (JSON is UTF-8).
 * "what" names the value in the error for text that has no UTF-8 form.
 */
json_t *
dc_json_string_server(const char *s, const char *what)
{
	char	   *utf8 = pg_server_to_any(s, strlen(s), PG_UTF8);
	json_t	   *j = json_string(utf8);

	if (j == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("%s cannot be sent as UTF-8", what)));
	return j;
}

/* ---------- serializing ---------- */

static void
append_json(StringInfo out, json_t *json)
{
	check_stack_depth();
	switch (json_typeof(json))
	{
		case JSON_OBJECT:
			{
				const char *key;
				json_t	   *v;
				bool		first = true;

				appendStringInfoChar(out, '{');
				json_object_foreach(json, key, v)
				{
					if (!first)
						appendStringInfoChar(out, ',');
					first = false;
					escape_json(out, key);
					appendStringInfoChar(out, ':');
					append_json(out, v);
				}
				appendStringInfoChar(out, '}');
				break;
			}
		case JSON_ARRAY:
			{
				size_t		i;
				json_t	   *v;

				appendStringInfoChar(out, '[');
				json_array_foreach(json, i, v)
				{
					if (i > 0)
						appendStringInfoChar(out, ',');
					append_json(out, v);
				}
				appendStringInfoChar(out, ']');
				break;
			}
		case JSON_STRING:
			{
				const char *raw = dc_json_raw_number_text(json);

				if (raw)
					appendStringInfoString(out, raw);
				else if (strlen(json_string_value(json)) != json_string_length(json))
				{
					/* only JSON from elsewhere can hold NUL; jsonb refuses it */
					ereport(ERROR,
							(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
							 errmsg("JSON string contains a NUL byte"),
							 errdetail("PostgreSQL text and jsonb cannot hold \\u0000.")));
				}
				else
					escape_json(out, json_string_value(json));
				break;
			}
		case JSON_INTEGER:
			appendStringInfo(out, INT64_FORMAT, (int64) json_integer_value(json));
			break;
		case JSON_REAL:
			{
				char		buf[DOUBLE_SHORTEST_DECIMAL_LEN + 2];
				int			len = double_to_shortest_decimal_buf(json_real_value(json), buf);

				/* stay a real on the other side, as jansson and serde do */
				if (strpbrk(buf, ".eE") == NULL)
				{
					buf[len++] = '.';
					buf[len++] = '0';
					buf[len] = '\0';
				}
				appendBinaryStringInfo(out, buf, len);
				break;
			}
		case JSON_TRUE:
			appendStringInfoString(out, "true");
			break;
		case JSON_FALSE:
			appendStringInfoString(out, "false");
			break;
		case JSON_NULL:
			appendStringInfoString(out, "null");
			break;
	}
}

/*
 * Serialize compactly into a palloc'd string: raw numbers as the numbers
 * they stand for, reals in their shortest exact form (jansson's own
 * writer only offers a fixed number of significant digits).
 */
char *
dc_json_dumps(json_t *json)
{
	StringInfoData out;

	initStringInfo(&out);
	append_json(&out, json);
	return out.data;
}

/* dc_json_dumps() in the database encoding, for messages and EXPLAIN. */
char *
dc_json_dumps_server(json_t *json)
{
	char	   *s = dc_json_dumps(json);

	return pg_any_to_server(s, strlen(s), PG_UTF8);
}

/* Append a jsonb value's JSON text, in UTF-8, to buf. */
void
dc_json_append_jsonb(StringInfo buf, Jsonb *jsonb)
{
	char	   *text;

	if (GetDatabaseEncoding() == PG_UTF8)
	{
		(void) JsonbToCString(buf, &jsonb->root, VARSIZE(jsonb));
		return;
	}
	text = JsonbToCString(NULL, &jsonb->root, VARSIZE(jsonb));
	appendStringInfoString(buf, pg_server_to_any(text, strlen(text), PG_UTF8));
}

void
dc_json_bad_reply(DcServer *server, const char *operation, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_STRING_FORMAT),
			 errmsg("server \"%s\" sent an invalid reply to %s",
					server->servername, operation),
			 errdetail_internal("%s", detail)));
}

/* Compare two digit strings without leading zeros as numbers. */
int
dc_json_cmp_digits(const char *a, size_t alen, const char *b)
{
	size_t		blen = strlen(b);

	if (alen != blen)
		return alen < blen ? -1 : 1;
	return strncmp(a, b, alen);
}

/*
 * Prepare JSON text for jansson: integers outside the int64 range become
 * raw numbers ("\u0000" and their text, in a string).  Returns NULL when
 * nothing needed rewriting, else the new text and its length.  Sets
 * *nul_at to the offset of a \u0000 escape inside a string (-1 if none):
 * such a string could pass for a raw number and cannot become text.
 */
static char *
prepare_json_text(const char *data, size_t len, size_t *outlen, int *nul_at)
{
	StringInfoData out;
	bool		rewritten = false;
	size_t		copied = 0;
	size_t		i = 0;

	*nul_at = -1;
	while (i < len)
	{
		char		c = data[i];

		if (c == '"')
		{
			/* skip the string, looking only for \u0000 */
			for (i++; i < len && data[i] != '"'; i++)
			{
				if (data[i] != '\\')
					continue;
				if (i + 5 < len && memcmp(data + i + 1, "u0000", 5) == 0 && *nul_at < 0)
					*nul_at = (int) i;
				i++;
			}
			i++;
			continue;
		}
		if (c == '-' || isdigit((unsigned char) c))
		{
			size_t		start = i;
			size_t		dstart;
			bool		negative = (c == '-');
			bool		integral = true;

			if (negative)
				i++;
			dstart = i;
			while (i < len && isdigit((unsigned char) data[i]))
				i++;
			while (i < len && (data[i] == '.' || data[i] == 'e' || data[i] == 'E' ||
							   data[i] == '+' || data[i] == '-' ||
							   isdigit((unsigned char) data[i])))
			{
				integral = false;
				i++;
			}
			if (integral && i - dstart >= 19 &&
				dc_json_cmp_digits(data + dstart, i - dstart,
						   negative ? "9223372036854775808" : "9223372036854775807") > 0)
			{
				if (!rewritten)
				{
					initStringInfo(&out);
					rewritten = true;
				}
				appendBinaryStringInfo(&out, data + copied, start - copied);
				appendStringInfoString(&out, "\"\\u0000");
				appendBinaryStringInfo(&out, data + start, i - start);
				appendStringInfoChar(&out, '"');
				copied = i;
			}
			continue;
		}
		i++;
	}
	if (!rewritten)
		return NULL;
	appendBinaryStringInfo(&out, data + copied, len - copied);
	*outlen = out.len;
	return out.data;
}

/*
 * Turn the "\u0000<number>" strings of a rewritten text into raw numbers,
 * in place; returns the value, or a new one (the caller's to store, which
 * releases the old) when it is such a string itself.
 */
static json_t *
mark_raw_numbers(json_t *json)
{
	check_stack_depth();
	if (json_is_object(json))
	{
		const char *key;
		json_t	   *v;

		json_object_foreach(json, key, v)
		{
			json_t	   *m = mark_raw_numbers(v);

			if (m != v)
				json_object_set_new(json, key, m);
		}
	}
	else if (json_is_array(json))
	{
		size_t		i;
		json_t	   *v;

		json_array_foreach(json, i, v)
		{
			json_t	   *m = mark_raw_numbers(v);

			if (m != v)
				json_array_set_new(json, i, m);
		}
	}
	else if (json_is_string(json) && json_string_length(json) > 1 &&
			 json_string_value(json)[0] == '\0')
		return dc_json_raw_number(json_string_value(json) + 1);
	return json;
}

/*
 * jansson's parse of JSON text (UTF-8) after prepare_json_text().  Returns
 * NULL with *err set when it does not parse, and with *nul_at >= 0 when a
 * string holds \u0000.
 */
static json_t *
load_json(const char *data, size_t len, size_t flags, json_error_t *err, int *nul_at)
{
	size_t		newlen;
	char	   *rewritten = prepare_json_text(data, len, &newlen, nul_at);
	json_t	   *json;

	if (*nul_at >= 0)
		return NULL;
	if (rewritten == NULL)
		return json_loadb(data, len, flags, err);
	json = json_loadb(rewritten, newlen, flags | JSON_ALLOW_NUL, err);
	if (json)
	{
		json_t	   *marked = mark_raw_numbers(json);

		if (marked != json)
			json_decref(json);
		json = marked;
	}
	return json;
}

/*
 * Parse a reply body; anything but well-formed JSON is an error (HV00A),
 * and a string holding \u0000 is refused as PostgreSQL's jsonb refuses it
 * (22021).  Integers beyond int64 come back as raw numbers.
 */
json_t *
dc_json_parse(DcServer *server, const char *operation, const char *data, size_t len)
{
	json_error_t err;
	int			nul_at;
	json_t	   *json = load_json(data ? data : "", data ? len : 0,
								 JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err, &nul_at);

	if (nul_at >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("%s from server \"%s\" contains a NUL byte",
						"JSON string", server->servername),
				 errdetail("The reply to %s has \\u0000 at byte offset %d; PostgreSQL text and jsonb cannot hold it.",
						   operation, nul_at)));
	if (json == NULL)
		dc_json_bad_reply(server, operation,
						  psprintf("JSON error at byte %d: %s.", err.position, err.text));
	return json;
}

/*
 * Parse a JSON argument given by the caller (jsonb text, usually) in the
 * database encoding, with integers beyond int64 as raw numbers.
 */
json_t *
dc_json_parse_input(const char *data, const char *argname)
{
	json_error_t err;
	int			nul_at;
	char	   *utf8 = pg_server_to_any(data, strlen(data), PG_UTF8);
	json_t	   *json = load_json(utf8, strlen(utf8), JSON_DECODE_ANY, &err, &nul_at);

	if (nul_at >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNTRANSLATABLE_CHARACTER),
				 errmsg("argument \"%s\" is not valid JSON", argname),
				 errdetail("\\u0000 cannot be converted to text.")));
	if (json == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"%s\" is not valid JSON", argname),
				 errdetail_internal("%s", err.text)));
	return json;
}

/*
 * A JSON value as jsonb.  The text is UTF-8; in a database of another
 * encoding it is converted first (PostgreSQL's own errors when a
 * character has no equivalent there).
 */
Jsonb *
dc_json_to_jsonb(json_t *json)
{
	char	   *text = dc_json_dumps(json);

	if (GetDatabaseEncoding() != PG_UTF8)
		text = pg_any_to_server(text, strlen(text), PG_UTF8);
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
}

json_t *
dc_jsonb_to_json(Jsonb *jsonb, const char *argname)
{
	char	   *text = JsonbToCString(NULL, &jsonb->root, VARSIZE(jsonb));

	return dc_json_parse_input(text, argname);
}

/*
 * A string from a remote server's JSON as a C string in the database
 * encoding, for a text value, a name or a message: converted from UTF-8
 * and checked by dc_check_remote_text() (22021 on NUL or a bad byte).
 * "what" names the value in the error message.
 */
char *
dc_json_text(json_t *str, const char *what, const char *servername)
{
	const char *s = json_string_value(str);
	int			len = (int) json_string_length(str);
	int			encoding = GetDatabaseEncoding();
	char	   *conv;

	if (encoding == PG_UTF8 || encoding == PG_SQL_ASCII || memchr(s, '\0', len) != NULL)
		dc_check_remote_text(s, len, what, servername);
	if (encoding == PG_UTF8 || encoding == PG_SQL_ASCII)
		return pnstrdup(s, len);
	/* raises PostgreSQL's own error for a character the database lacks */
	conv = pg_any_to_server(s, len, PG_UTF8);
	return conv == s ? pnstrdup(s, len) : conv;
}

/*
 * A JSON array of numbers as real[].  Every element must be a finite
 * number that fits a float4.
 */
ArrayType *
dc_json_to_float4_array(json_t *array, DcServer *server, const char *operation,
						const char *what)
{
	size_t		n,
				i;
	Datum	   *elems;

	if (!json_is_array(array))
		dc_json_bad_reply(server, operation, psprintf("The value of %s is not an array.", what));
	n = json_array_size(array);
	if (n == 0)
		dc_json_bad_reply(server, operation, psprintf("The value of %s is empty.", what));

	elems = palloc(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
	{
		json_t	   *v = json_array_get(array, i);
		double		d;

		if (!json_is_number(v))
			dc_json_bad_reply(server, operation,
							  psprintf("Element %zu of %s is not a number.", i + 1, what));
		d = json_number_value(v);
		if (isnan(d) || isinf(d) || fabs(d) > FLT_MAX)
			dc_json_bad_reply(server, operation,
							  psprintf("Element %zu of %s is not a finite real.", i + 1, what));
		elems[i] = Float4GetDatum((float4) d);
	}
	return construct_array(elems, (int) n, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT);
}

/*
 * real[] (one dimension, no NULLs, finite) as a JSON array.  Elements are
 * raw numbers in float4's shortest form: written as doubles they would
 * carry digits the value never had (0.1 as 0.10000000149011612).
 */
json_t *
dc_float4_array_to_json(ArrayType *array, const char *argname)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;
	json_t	   *out;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("argument \"%s\" must be a one-dimensional array", argname)));
	deconstruct_array(array, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT,
					  &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"%s\" must not be empty", argname)));

	out = json_array();
	for (i = 0; i < n; i++)
	{
		float4		f;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument \"%s\" must not contain NULL elements", argname)));
		f = DatumGetFloat4(elems[i]);
		if (isnan(f) || isinf(f))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("argument \"%s\" must contain only finite numbers", argname)));
		{
			char		buf[FLOAT_SHORTEST_DECIMAL_LEN];

			float_to_shortest_decimal_buf(f, buf);
			json_array_append_new(out, dc_json_raw_number(buf));
		}
	}
	return out;
}

/* The string member "key" of an object, or NULL when absent or not a string. */
const char *
dc_json_get_string(json_t *object, const char *key)
{
	json_t	   *v = json_is_object(object) ? json_object_get(object, key) : NULL;

	return dc_json_is_text(v) ? json_string_value(v) : NULL;
}

/* Is v a string (and not a raw number)? */
bool
dc_json_is_text(json_t *v)
{
	return json_is_string(v) && dc_json_raw_number_text(v) == NULL;
}
