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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
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

/* Serialize compactly into a palloc'd string. */
char *
dc_json_dumps(json_t *json)
{
	char	   *s = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);

	if (s == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not serialize JSON")));
	return s;
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

/* Parse a reply body; anything but well-formed JSON is an error. */
json_t *
dc_json_parse(DcServer *server, const char *operation, const char *data, size_t len)
{
	json_error_t err;
	json_t	   *json;

	json = json_loadb(data ? data : "", len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
	if (json == NULL)
		dc_json_bad_reply(server, operation,
						  psprintf("JSON error at byte %d: %s.", err.position, err.text));
	return json;
}

/* Parse a JSON argument given by the caller. */
json_t *
dc_json_parse_input(const char *data, const char *argname)
{
	json_error_t err;
	json_t	   *json = json_loads(data, JSON_DECODE_ANY, &err);

	if (json == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"%s\" is not valid JSON", argname),
				 errdetail_internal("%s", err.text)));
	return json;
}

Jsonb *
dc_json_to_jsonb(json_t *json)
{
	char	   *text = dc_json_dumps(json);

	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
}

json_t *
dc_jsonb_to_json(Jsonb *jsonb, const char *argname)
{
	char	   *text = JsonbToCString(NULL, &jsonb->root, VARSIZE(jsonb));

	return dc_json_parse_input(text, argname);
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

/* real[] (one dimension, no NULLs, finite) as a JSON array. */
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
		json_array_append_new(out, json_real((double) f));
	}
	return out;
}

/* The string member "key" of an object, or NULL when absent or not a string. */
const char *
dc_json_get_string(json_t *object, const char *key)
{
	json_t	   *v = json_is_object(object) ? json_object_get(object, key) : NULL;

	return json_is_string(v) ? json_string_value(v) : NULL;
}
