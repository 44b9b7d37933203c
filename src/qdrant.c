/*-------------------------------------------------------------------------
 *
 * qdrant.c
 *		The Qdrant REST client and the qdrant_* SQL functions.
 *
 * Every call goes through dc_qdrant_call(), which adds the api-key header
 * from the user mapping, unwraps Qdrant's {"result", "status", "time"}
 * envelope and turns error envelopes into SQL errors.  Writes pass
 * wait=true unless the caller asks otherwise, so that a write is visible
 * to the next statement.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <limits.h>

#include <math.h>

#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "qdrant.h"

#define MAX_DIMENSION	65536

/* ---------- point ids ---------- */

static bool
parse_uuid_text(const char *text, char *canon)
{
	const char *p = text;
	size_t		len;
	int			nhex = 0;
	int			i;
	bool		braced = false;

	if (pg_strncasecmp(p, "urn:uuid:", 9) == 0)
		p += 9;
	else if (*p == '{')
	{
		braced = true;
		p++;
	}
	len = strlen(p);
	if (braced)
	{
		if (len == 0 || p[len - 1] != '}')
			return false;
		len--;
	}
	if (len != 32 && len != 36)
		return false;

	for (i = 0; i < (int) len; i++)
	{
		char		c = p[i];

		if (len == 36 && (i == 8 || i == 13 || i == 18 || i == 23))
		{
			if (c != '-')
				return false;
			continue;
		}
		if (!isxdigit((unsigned char) c))
			return false;
		if (nhex == 8 || nhex == 12 || nhex == 16 || nhex == 20)
			*canon++ = '-';
		*canon++ = pg_ascii_tolower((unsigned char) c);
		nhex++;
	}
	*canon = '\0';
	return nhex == 32;
}

/*
 * A point id from its text form: an unsigned 64-bit integer, or a UUID in
 * any form Qdrant accepts (sent in canonical lowercase form).  Anything
 * else is an error here, before a request is made.
 */
json_t *
dc_qdrant_id_from_text(const char *text)
{
	json_t	   *id = dc_qdrant_id_try_text(text);

	if (id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid Qdrant point id: \"%s\"", text),
				 errdetail("A point id is an unsigned 64-bit integer or a UUID.")));
	return id;
}

/* dc_qdrant_id_from_text(), but NULL for what is no point id. */
json_t *
dc_qdrant_id_try_text(const char *text)
{
	size_t		len = strlen(text);
	char		canon[37];

	if (len > 0 && strspn(text, "0123456789") == len)
	{
		const char *d = text;

		while (*d == '0' && d[1] != '\0')
			d++;
		if (dc_json_cmp_digits(d, strlen(d), "9223372036854775807") <= 0)
			return json_integer((json_int_t) strtoll(d, NULL, 10));
		if (dc_json_cmp_digits(d, strlen(d), "18446744073709551615") <= 0)
			return dc_json_raw_number(d);
	}
	else if (parse_uuid_text(text, canon))
		return json_string(canon);
	return NULL;
}

/* A point id from a SQL value of any type (via its text form). */
json_t *
dc_qdrant_id_from_datum(Datum value, Oid typid)
{
	Oid			outfunc;
	bool		isvarlena;

	getTypeOutputInfo(typid, &outfunc, &isvarlena);
	return dc_qdrant_id_from_text(OidOutputFunctionCall(outfunc, value));
}

/* The text form of an id in a reply. */
char *
dc_qdrant_id_to_text(DcServer *server, const char *operation, json_t *id)
{
	const char *raw = dc_json_raw_number_text(id);

	if (json_is_integer(id) && json_integer_value(id) >= 0)
		return psprintf(INT64_FORMAT, (int64) json_integer_value(id));
	if (raw)
	{
		if (*raw == '-' || dc_json_cmp_digits(raw, strlen(raw), "18446744073709551615") > 0)
			dc_json_bad_reply(server, operation,
							  psprintf("Point id %s is not an unsigned 64-bit integer.", raw));
		return pstrdup(raw);
	}
	if (json_is_string(id))
		return dc_json_text(id, "point id", server->servername);
	dc_json_bad_reply(server, operation, "A point id is neither an unsigned integer nor a string.");
	return NULL;
}

/* ---------- requests ---------- */

/*
 * "/collections/<escaped name><suffix>"; the name stays one segment, also
 * when it is "." or "..".
 */
char *
dc_qdrant_path(const char *collection, const char *suffix)
{
	return psprintf("/collections/%s%s", dc_http_escape_segment(collection),
					suffix ? suffix : "");
}

/* Remote error text made safe for a message (NULL stays NULL). */
static const char *
error_excerpt(const char *msg)
{
	return msg ? dc_remote_excerpt(msg, (int) strlen(msg), 1000) : NULL;
}

/* Qdrant's error text from an error envelope, or NULL. */
static const char *
error_text(const char *data, size_t len)
{
	json_error_t err;
	json_t	   *json;
	json_t	   *status;

	if (len == 0)
		return NULL;
	json = json_loadb(data, len, JSON_DECODE_ANY, &err);
	if (json == NULL)
		return NULL;
	status = json_is_object(json) ? json_object_get(json, "status") : NULL;
	return error_excerpt(dc_json_get_string(status, "error"));
}

/*
 * Raise the error for an HTTP error status, with clearer messages for the
 * failures a caller can fix: a missing or duplicate collection and a
 * vector of the wrong dimension.
 */
static void
raise_qdrant_error(DcServer *server, DcHttpRequest *req, DcHttpResponse *resp,
				   const char *collection)
{
	const char *msg = error_text(resp->body.data, resp->body.len);

	if (msg && resp->status == 400 && strstr(msg, "Vector dimension error") != NULL)
	{
		const char *exp = strstr(msg, "expected dim: ");
		int			expected = exp ? atoi(exp + 14) : 0;

		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("wrong vector dimension for collection \"%s\" on server \"%s\" in %s",
						collection ? collection : "?", server->servername, req->operation),
				 errdetail_internal("%s", msg),
				 expected > 0 ?
				 errhint("The collection stores vectors of %d dimensions.", expected) : 0));
	}
	if (msg && collection && resp->status == 404 &&
		strncmp(msg, "Not found: Collection", 21) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("collection \"%s\" does not exist on server \"%s\"",
						collection, server->servername),
				 errdetail_internal("%s", msg),
				 errhint("Create it with qdrant_create_collection().")));
	if (collection && (resp->status == 409 ||
					   (resp->status == 400 && msg && strstr(msg, "already exists") != NULL)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("collection \"%s\" already exists on server \"%s\"",
						collection, server->servername),
				 msg ? errdetail_internal("%s", msg) : 0,
				 errhint("Pass if_not_exists => true to accept an existing collection.")));
	dc_http_raise_status(server, req, resp, msg);
}

/*
 * Append n floats as a JSON array of numbers.  Each element is written in
 * its shortest form that reads back as the same float4 (Ryu), which is
 * both smaller on the wire than a fixed 9 significant digits and much
 * cheaper than a jansson real per element: upserts of large batches spend
 * most of their client time here.  Refuses NaN and infinities, which JSON
 * cannot spell.
 */
static void
append_floats(StringInfo buf, const float4 *v, int n, const char *argname)
{
	int			i;

	/* at most FLOAT_SHORTEST_DECIMAL_LEN - 1 bytes a number, a comma each */
	if ((Size) n * FLOAT_SHORTEST_DECIMAL_LEN + 2 >= MaxAllocSize - (Size) buf->len)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("argument \"%s\" is too large to send", argname),
				 errdetail("A request body cannot exceed 1 GB.")));
	enlargeStringInfo(buf, n * FLOAT_SHORTEST_DECIMAL_LEN + 2);
	buf->data[buf->len++] = '[';
	for (i = 0; i < n; i++)
	{
		if (isnan(v[i]) || isinf(v[i]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("argument \"%s\" must contain only finite numbers", argname)));
		if (i > 0)
			buf->data[buf->len++] = ',';
		buf->len += float_to_shortest_decimal_bufn(v[i], buf->data + buf->len);
	}
	buf->data[buf->len++] = ']';
	buf->data[buf->len] = '\0';
}

/* The checks every vector argument passes: real[], no NULLs. */
static void
check_vector_array(ArrayType *array, const char *argname)
{
	if (ARR_HASNULL(array))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"%s\" must not contain NULL elements", argname)));
	if (ARR_ELEMTYPE(array) != FLOAT4OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("argument \"%s\" must be of type real[]", argname)));
}

/* Append a real[] (one dimension, not empty) as a JSON array of numbers. */
void
dc_qdrant_append_vector(StringInfo buf, ArrayType *array, const char *argname)
{
	int			n = ArrayGetNItems(ARR_NDIM(array), ARR_DIMS(array));

	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("argument \"%s\" must be a one-dimensional array", argname)));
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"%s\" must not be empty", argname)));
	check_vector_array(array, argname);
	append_floats(buf, (const float4 *) ARR_DATA_PTR(array), n, argname);
}

/*
 * Send one request and return the "result" member of the reply (JSON null
 * when the reply has none).  HTTP errors and error envelopes are raised;
 * "collection" (may be NULL) names the collection in error messages.
 */
json_t *
dc_qdrant_call(DcServer *server, const char *operation, const char *method,
			   const char *path, json_t *body, const char *collection)
{
	return dc_qdrant_call_text(server, operation, method, path,
							   body ? dc_json_dumps(body) : NULL, collection);
}

/* A request begun by qdrant_start. */
typedef struct DcQdrantCall
{
	DcServer   *server;
	const char *operation;
	const char *collection;
	DcHttpRequest *req;
	DcHttpStream *stream;
} DcQdrantCall;

/* Send a request (body: JSON text or NULL) without waiting for its answer. */
static DcQdrantCall *
qdrant_start(DcServer *server, const char *operation, const char *method,
			 const char *path, const char *body, const char *collection)
{
	DcQdrantCall *call = palloc(sizeof(DcQdrantCall));
	const char *key = dc_option(server, "api_key");

	call->server = server;
	call->operation = operation;
	call->collection = collection;
	call->req = dc_http_request(server, operation, method, path);
	if (key)
		dc_http_add_header(call->req, "api-key", key);
	if (body)
		dc_http_set_json_body(call->req, body);
	call->stream = dc_http_start(server, call->req);
	return call;
}

/* Wait for a qdrant_start() request; see dc_qdrant_call(). */
static json_t *
qdrant_finish(DcQdrantCall *call)
{
	DcServer   *server = call->server;
	const char *operation = call->operation;
	DcHttpResponse *resp;
	json_t	   *reply;
	json_t	   *status;
	json_t	   *result;

	resp = dc_http_finish(call->stream);
	if (resp->status >= 400)
		raise_qdrant_error(server, call->req, resp, call->collection);
	if (resp->status < 200 || resp->status >= 300)
		dc_http_raise_status(server, call->req, resp, NULL);

	reply = dc_json_parse(server, operation, resp->body.data, resp->body.len);
	if (!json_is_object(reply))
		dc_json_bad_reply(server, operation, "The reply is not a JSON object.");
	status = json_object_get(reply, "status");
	if (json_is_object(status))
	{
		const char *msg = error_excerpt(dc_json_get_string(status, "error"));

		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("server \"%s\" reported an error for %s",
						server->servername, operation),
				 errdetail_internal("%s", msg ? msg : "(no error text)")));
	}
	if (!json_is_string(status))
		dc_json_bad_reply(server, operation, "The reply has no \"status\".");
	result = json_object_get(reply, "result");
	return result ? result : json_null();
}

/* dc_qdrant_call() with a body that is JSON text already. */
json_t *
dc_qdrant_call_text(DcServer *server, const char *operation, const char *method,
					const char *path, const char *body, const char *collection)
{
	return qdrant_finish(qdrant_start(server, operation, method, path, body,
									  collection));
}

/* ---------- argument helpers ---------- */

static const char *
arg_text(FunctionCallInfo fcinfo, int n, const char *argname)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"%s\" must not be null", argname)));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

static DcServer *
arg_server(FunctionCallInfo fcinfo, int n, const char *operation)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("server name must not be null")));
	return dc_get_server(NameStr(*PG_GETARG_NAME(n)), DC_SERVICE_QDRANT, operation);
}

/* arg_server for a call that changes Qdrant: refused when read-only (25006). */
static DcServer *
write_arg_server(FunctionCallInfo fcinfo, int n, const char *operation)
{
	dc_prevent_remote_write_if_read_only(operation);
	return arg_server(fcinfo, n, operation);
}

static bool
arg_bool(FunctionCallInfo fcinfo, int n, bool defval)
{
	return PG_ARGISNULL(n) ? defval : PG_GETARG_BOOL(n);
}

/* A filter argument: NULL, or a JSON object passed through as is. */
static json_t *
arg_filter(FunctionCallInfo fcinfo, int n)
{
	json_t	   *filter;

	if (PG_ARGISNULL(n))
		return NULL;
	filter = dc_jsonb_to_json(PG_GETARG_JSONB_P(n), "filter");
	if (!json_is_object(filter))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"filter\" must be a JSON object"),
				 errhint("For example: '{\"must\": [{\"key\": \"lang\", \"match\": {\"value\": \"en\"}}]}'.")));
	return filter;
}

/* Every element of an id array of any type, as JSON ids. */
static json_t *
id_array_to_json(ArrayType *array)
{
	Oid			elemtype = ARR_ELEMTYPE(array);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;
	json_t	   *ids = json_array();

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(array, elemtype, typlen, typbyval, typalign, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument \"ids\" must not contain NULL elements")));
		json_array_append_new(ids, dc_qdrant_id_from_datum(elems[i], elemtype));
	}
	return ids;
}

static const char *
write_path(const char *collection, const char *suffix, bool wait)
{
	return dc_qdrant_path(collection, psprintf("%s?wait=%s", suffix, wait ? "true" : "false"));
}

/* ---------- collections ---------- */

static const char *
canonical_distance(const char *distance)
{
	static const char *const names[] = {"Cosine", "Dot", "Euclid", "Manhattan"};
	int			i;

	for (i = 0; i < lengthof(names); i++)
		if (pg_strcasecmp(distance, names[i]) == 0)
			return names[i];
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid distance \"%s\"", distance),
			 errhint("Valid distances are Cosine, Dot, Euclid and Manhattan.")));
	return NULL;
}

PG_FUNCTION_INFO_V1(datacore_qdrant_create_collection);

/*
 * qdrant_create_collection(collection, dimension, distance, if_not_exists,
 * server) → true when created, false when it existed and if_not_exists.
 */
Datum
datacore_qdrant_create_collection(PG_FUNCTION_ARGS)
{
	const char *op = "qdrant_create_collection";
	const char *collection = arg_text(fcinfo, 0, "collection");
	int			dimension;
	const char *distance;
	bool		if_not_exists = arg_bool(fcinfo, 3, false);
	DcServer   *server = write_arg_server(fcinfo, 4, op);
	json_t	   *body = dc_json_object();
	json_t	   *vectors = dc_json_object();
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool created = true;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"dimension\" must not be null")));
	dimension = PG_GETARG_INT32(1);
	if (dimension < 1 || dimension > MAX_DIMENSION)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("vector dimension %d is out of range", dimension),
				 errdetail("The dimension must be between 1 and %d.", MAX_DIMENSION)));
	distance = canonical_distance(PG_ARGISNULL(2) ? "Cosine" : arg_text(fcinfo, 2, "distance"));
	if (collection[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("collection name must not be empty")));

	json_object_set_new(vectors, "size", json_integer(dimension));
	json_object_set_new(vectors, "distance", json_string(distance));
	json_object_set_new(body, "vectors", vectors);

	if (if_not_exists)
	{
		json_t	   *exists = dc_qdrant_call(server, op, "GET",
											dc_qdrant_path(collection, "/exists"),
											NULL, collection);

		if (json_is_true(json_object_get(exists, "exists")))
			PG_RETURN_BOOL(false);
	}
	/*
	 * Swallowing the error needs no subtransaction: the duplicate is raised
	 * from a complete reply, when nothing is left half-done.
	 */
	PG_TRY();
	{
		(void) dc_qdrant_call(server, op, "PUT", dc_qdrant_path(collection, NULL),
							  body, collection);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/* the caller's memory must not stay in ErrorContext */
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		/* lost a race with another creator: that is what was asked for */
		if (if_not_exists && edata->sqlerrcode == ERRCODE_DUPLICATE_OBJECT)
		{
			FlushErrorState();
			FreeErrorData(edata);
			created = false;
		}
		else
		{
			FreeErrorData(edata);
			PG_RE_THROW();
		}
	}
	PG_END_TRY();
	PG_RETURN_BOOL(created);
}

PG_FUNCTION_INFO_V1(datacore_qdrant_drop_collection);

/*
 * qdrant_drop_collection(collection, if_exists, server) → true when
 * dropped.  Qdrant answers "false" for a missing collection; that is an
 * error unless if_exists.
 */
Datum
datacore_qdrant_drop_collection(PG_FUNCTION_ARGS)
{
	const char *op = "qdrant_drop_collection";
	const char *collection = arg_text(fcinfo, 0, "collection");
	bool		if_exists = arg_bool(fcinfo, 1, false);
	DcServer   *server = write_arg_server(fcinfo, 2, op);
	json_t	   *result;

	result = dc_qdrant_call(server, op, "DELETE", dc_qdrant_path(collection, NULL),
							NULL, collection);
	if (!json_is_boolean(result))
		dc_json_bad_reply(server, op, "The result is not a boolean.");
	if (json_is_false(result) && !if_exists)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("collection \"%s\" does not exist on server \"%s\"",
						collection, server->servername),
				 errhint("Pass if_exists => true to accept a missing collection.")));
	PG_RETURN_BOOL(json_is_true(result));
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

PG_FUNCTION_INFO_V1(datacore_qdrant_collections);

/* qdrant_collections(server) → SETOF text, sorted by name. */
Datum
datacore_qdrant_collections(PG_FUNCTION_ARGS)
{
	const char *op = "qdrant_collections";
	DcServer   *server = arg_server(fcinfo, 0, op);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	json_t	   *result;
	json_t	   *list;
	size_t		i,
				n;
	const char **names;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	result = dc_qdrant_call(server, op, "GET", "/collections", NULL, NULL);
	list = json_object_get(result, "collections");
	if (!json_is_array(list))
		dc_json_bad_reply(server, op, "The result has no \"collections\" array.");
	n = json_array_size(list);
	names = palloc(sizeof(char *) * (n + 1));
	for (i = 0; i < n; i++)
	{
		json_t	   *name = json_object_get(json_array_get(list, i), "name");

		if (!dc_json_is_text(name))
			dc_json_bad_reply(server, op, "A collection has no \"name\".");
		names[i] = dc_json_text(name, "collection name", server->servername);
	}
	/* a stable order makes the output usable in tests and diffs */
	if (n > 1)
		qsort(names, n, sizeof(char *), cmp_names);
	for (i = 0; i < n; i++)
	{
		Datum		value = CStringGetTextDatum(names[i]);
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(datacore_qdrant_collection_info);

/* qdrant_collection_info(collection, server) → the CollectionInfo as jsonb. */
Datum
datacore_qdrant_collection_info(PG_FUNCTION_ARGS)
{
	const char *op = "qdrant_collection_info";
	const char *collection = arg_text(fcinfo, 0, "collection");
	DcServer   *server = arg_server(fcinfo, 1, op);
	json_t	   *result;

	result = dc_qdrant_call(server, op, "GET", dc_qdrant_path(collection, NULL),
							NULL, collection);
	PG_RETURN_JSONB_P(dc_json_to_jsonb(result));
}

/* ---------- points ---------- */

PG_FUNCTION_INFO_V1(datacore_qdrant_upsert);

/*
 * qdrant_upsert(collection, id, vector, payload, wait, server) → the id
 * as Qdrant stores it.  The id argument may be text, bigint or uuid.
 */
Datum
datacore_qdrant_upsert(PG_FUNCTION_ARGS)
{
	const char *op = "qdrant_upsert";
	const char *collection = arg_text(fcinfo, 0, "collection");
	bool		wait = arg_bool(fcinfo, 4, true);
	DcServer   *server;
	json_t	   *id;
	StringInfoData body;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"id\" must not be null")));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"vector\" must not be null")));
	id = dc_qdrant_id_from_datum(PG_GETARG_DATUM(1), get_fn_expr_argtype(fcinfo->flinfo, 1));
	initStringInfo(&body);
	appendStringInfo(&body, "{\"points\":[{\"id\":%s,\"vector\":", dc_json_dumps(id));
	dc_qdrant_append_vector(&body, PG_GETARG_ARRAYTYPE_P(2), "vector");
	if (!PG_ARGISNULL(3))
	{
		Jsonb	   *payload = PG_GETARG_JSONB_P(3);

		if (!JB_ROOT_IS_OBJECT(payload))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("argument \"payload\" must be a JSON object")));
		/* jsonb's text is JSON already, big numbers included */
		appendStringInfoString(&body, ",\"payload\":");
		dc_json_append_jsonb(&body, payload);
	}
	appendStringInfoString(&body, "}]}");

	server = write_arg_server(fcinfo, 5, op);
	(void) dc_qdrant_call_text(server, op, "PUT", write_path(collection, "/points", wait),
							   body.data, collection);
	PG_RETURN_TEXT_P(cstring_to_text(dc_qdrant_id_to_text(server, op, id)));
}

/*
 * The canonical form of a point id given as a JSON string, which must be
 * a UUID: Qdrant takes no number in a string.
 */
static char *
uuid_string_id(const char *s)
{
	char	   *canon = palloc(37);

	if (!parse_uuid_text(s, canon))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid Qdrant point id: \"%s\"", s),
				 errdetail("A point id is an unsigned 64-bit integer or a UUID; a number in a JSON string is not accepted.")));
	return canon;
}

/*
 * Check the points of a batch upsert (an array of {"id", "vector",
 * "payload"} objects) and put each id in Qdrant's form; returns how many
 * there are.
 */
static size_t
check_points(json_t *points)
{
	size_t		i,
				n;

	if (!json_is_array(points))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"points\" must be a JSON array of points"),
				 errhint("For example: '[{\"id\": 1, \"vector\": [0.1, 0.2], \"payload\": {\"doc\": \"a\"}}]'.")));
	n = json_array_size(points);
	for (i = 0; i < n; i++)
	{
		json_t	   *p = json_array_get(points, i);
		json_t	   *id = json_is_object(p) ? json_object_get(p, "id") : NULL;
		json_t	   *vec = json_is_object(p) ? json_object_get(p, "vector") : NULL;
		json_t	   *payload = json_is_object(p) ? json_object_get(p, "payload") : NULL;
		char	   *idtext;

		if (!json_is_object(p) || id == NULL || vec == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("point %zu of argument \"points\" needs an \"id\" and a \"vector\"", i + 1)));
		/* re-parse the id from its text so that "42" and -1 are rejected */
		if (json_is_integer(id))
			idtext = psprintf("%lld", (long long) json_integer_value(id));
		else if (dc_json_raw_number_text(id) != NULL)
			idtext = pstrdup(dc_json_raw_number_text(id));
		else if (json_is_string(id))
			idtext = uuid_string_id(json_string_value(id));
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid Qdrant point id: %s", dc_json_dumps_server(id)),
					 errdetail("A point id is an unsigned 64-bit integer or a UUID.")));
		json_object_set_new(p, "id", dc_qdrant_id_from_text(idtext));
		if (!json_is_array(vec) || json_array_size(vec) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("point %zu of argument \"points\" has no vector array", i + 1)));
		if (payload != NULL && !json_is_object(payload) && !json_is_null(payload))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("payload of point %zu must be a JSON object", i + 1)));
	}
	return n;
}

/* A batch upsert begun by dc_qdrant_upsert_begin. */
struct DcQdrantUpsert
{
	DcQdrantCall *call;			/* NULL: no points */
	size_t		n;
};

/*
 * qdrant_upsert of a batch in two halves: the request is sent here and
 * dc_qdrant_upsert_end() waits for it, so that several can be in flight
 * at once (the job runner).
 */
DcQdrantUpsert *
dc_qdrant_upsert_begin(DcServer *server, const char *operation,
					   const char *collection, json_t *points, bool wait)
{
	DcQdrantUpsert *u = palloc0(sizeof(DcQdrantUpsert));
	json_t	   *body = dc_json_object();

	u->n = check_points(points);
	if (u->n == 0)
		return u;
	json_object_set(body, "points", points);
	u->call = qdrant_start(server, operation, "PUT",
						   write_path(collection, "/points", wait),
						   dc_json_dumps(body), collection);
	return u;
}

/* The number of points of a dc_qdrant_upsert_begin() request, once stored. */
int64
dc_qdrant_upsert_end(DcQdrantUpsert *u)
{
	if (u->call)
		(void) qdrant_finish(u->call);
	return (int64) u->n;
}

PG_FUNCTION_INFO_V1(datacore_qdrant_upsert_batch);

/*
 * qdrant_upsert(collection, points jsonb, wait, server) → number of
 * points.  points is an array of {"id", "vector", "payload"} objects, sent
 * in one request after every id and vector has been checked.
 */
Datum
datacore_qdrant_upsert_batch(PG_FUNCTION_ARGS)
{
	const char *op = "qdrant_upsert";
	const char *collection = arg_text(fcinfo, 0, "collection");
	bool		wait = arg_bool(fcinfo, 2, true);
	DcServer   *server;
	json_t	   *points;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"points\" must not be null")));
	points = dc_jsonb_to_json(PG_GETARG_JSONB_P(1), "points");
	server = write_arg_server(fcinfo, 3, op);
	if (json_is_array(points) && json_array_size(points) == 0)
		PG_RETURN_INT32(0);
	PG_RETURN_INT32((int32) dc_qdrant_upsert_end(dc_qdrant_upsert_begin(server, op, collection,
																	  points, wait)));
}

/*
 * The JSON text of a point id given as a jsonb scalar: a number (an
 * unsigned 64-bit integer) or a string holding a UUID, as in the points
 * of qdrant_upsert(collection, points jsonb).
 */
static char *
jsonb_id_text(Jsonb *jb)
{
	JsonbValue	v;

	if (JB_ROOT_IS_SCALAR(jb) && JsonbExtractScalar(&jb->root, &v))
	{
		if (v.type == jbvString)
			return psprintf("\"%s\"", uuid_string_id(pnstrdup(v.val.string.val,
																  v.val.string.len)));
		if (v.type == jbvNumeric)
			return dc_json_dumps(dc_qdrant_id_from_text(
								 DatumGetCString(DirectFunctionCall1(numeric_out,
																	 NumericGetDatum(v.val.numeric)))));
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid Qdrant point id: %s",
					JsonbToCString(NULL, &jb->root, VARSIZE(jb))),
			 errdetail("A point id is an unsigned 64-bit integer or a UUID.")));
	return NULL;
}

/* The elements of a one-dimensional array argument (NULL: none). */
static Datum *
arg_elements(FunctionCallInfo fcinfo, int argno, Oid elemtype, const char *argname,
			 bool **nulls, int *n)
{
	ArrayType  *array;
	Datum	   *elems;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	if (PG_ARGISNULL(argno))
	{
		*nulls = NULL;
		*n = 0;
		return NULL;
	}
	array = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("argument \"%s\" must be a one-dimensional array", argname)));
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(array, elemtype, typlen, typbyval, typalign, &elems, nulls, n);
	return elems;
}

PG_FUNCTION_INFO_V1(datacore_qdrant_upsert_arrays);

/*
 * qdrant_upsert(collection, ids jsonb[], vectors real[], payloads jsonb[],
 * wait, server) → number of points.  vectors is two-dimensional, one row
 * per id (what array_agg of real[] values makes); payloads, when given,
 * has one object or NULL per id.  Everything is checked first, then the
 * points go in one request, written straight from the arrays: the path
 * rag_sync takes, where every vector element through jsonb would cost a
 * numeric conversion each way.
 */
Datum
datacore_qdrant_upsert_arrays(PG_FUNCTION_ARGS)
{
	const char *op = "qdrant_upsert";
	const char *collection = arg_text(fcinfo, 0, "collection");
	bool		wait = arg_bool(fcinfo, 4, true);
	DcServer   *server;
	Datum	   *ids;
	bool	   *id_nulls;
	int			n;
	Datum	   *payloads;
	bool	   *payload_nulls;
	int			npayloads;
	ArrayType  *vectors;
	const float4 *v;
	int			dim = 0;
	Size		guess;
	StringInfoData body;
	int			i;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"ids\" must not be null")));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"vectors\" must not be null")));
	ids = arg_elements(fcinfo, 1, JSONBOID, "ids", &id_nulls, &n);
	payloads = arg_elements(fcinfo, 3, JSONBOID, "payloads", &payload_nulls, &npayloads);
	vectors = PG_GETARG_ARRAYTYPE_P(2);
	check_vector_array(vectors, "vectors");
	if (ARR_NDIM(vectors) == 2)
		dim = ARR_DIMS(vectors)[1];
	if (n > 0 && (ARR_NDIM(vectors) != 2 || ARR_DIMS(vectors)[0] != n))
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("argument \"vectors\" must be a two-dimensional array with one row per id"),
				 errdetail_plural("There is %d id.", "There are %d ids.", n, n),
				 errhint("array_agg() of real[] values makes such an array.")));
	if (n == 0 && ArrayGetNItems(ARR_NDIM(vectors), ARR_DIMS(vectors)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("argument \"vectors\" has vectors but there are no ids")));
	if (!PG_ARGISNULL(3) && npayloads != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("argument \"payloads\" must have one element per id"),
				 errdetail("The arrays have %d and %d elements.", n, npayloads)));
	server = write_arg_server(fcinfo, 5, op);
	if (n == 0)
		PG_RETURN_INT32(0);

	initStringInfo(&body);
	/* the vectors' share of the body in one allocation, when it is sane */
	guess = (Size) n * ((Size) dim * FLOAT_SHORTEST_DECIMAL_LEN + 64);
	if (guess < MaxAllocSize / 2)
		enlargeStringInfo(&body, (int) guess);
	appendStringInfoString(&body, "{\"points\":[");
	v = (const float4 *) ARR_DATA_PTR(vectors);
	for (i = 0; i < n; i++)
	{
		if (id_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument \"ids\" must not contain NULL elements")));
		appendStringInfo(&body, "%s{\"id\":%s,\"vector\":", i > 0 ? "," : "",
						 jsonb_id_text(DatumGetJsonbP(ids[i])));
		append_floats(&body, v + (size_t) i * dim, dim, "vectors");
		if (payloads && !payload_nulls[i])
		{
			Jsonb	   *payload = DatumGetJsonbP(payloads[i]);

			if (!JB_ROOT_IS_OBJECT(payload))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("payload of point %d must be a JSON object", i + 1)));
			appendStringInfoString(&body, ",\"payload\":");
			dc_json_append_jsonb(&body, payload);
		}
		appendStringInfoChar(&body, '}');
	}
	appendStringInfoString(&body, "]}");
	(void) dc_qdrant_call_text(server, op, "PUT", write_path(collection, "/points", wait),
							   body.data, collection);
	PG_RETURN_INT32(n);
}

PG_FUNCTION_INFO_V1(datacore_qdrant_search);

/*
 * qdrant_search(collection, vector, k, filter, server) →
 * TABLE(id text, score real, payload jsonb), best match first.
 */
Datum
datacore_qdrant_search(PG_FUNCTION_ARGS)
{
	const char *op = "qdrant_search";
	const char *collection = arg_text(fcinfo, 0, "collection");
	int			k;
	json_t	   *filter = arg_filter(fcinfo, 3);
	DcServer   *server;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	json_t	   *body = dc_json_object();
	json_t	   *result;
	json_t	   *hits;
	size_t		i;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"vector\" must not be null")));
	k = PG_ARGISNULL(2) ? 10 : PG_GETARG_INT32(2);
	if (k < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"k\" must be at least 1")));
	json_object_set_new(body, "query", dc_float4_array_to_json(PG_GETARG_ARRAYTYPE_P(1), "vector"));
	if (filter)
		json_object_set_new(body, "filter", filter);
	json_object_set_new(body, "limit", json_integer(k));
	json_object_set_new(body, "with_payload", json_true());
	server = arg_server(fcinfo, 4, op);

	InitMaterializedSRF(fcinfo, 0);
	result = dc_qdrant_call(server, op, "POST", dc_qdrant_path(collection, "/points/query"),
							body, collection);
	hits = json_object_get(result, "points");
	if (!json_is_array(hits))
		dc_json_bad_reply(server, op, "The result has no \"points\" array.");
	for (i = 0; i < json_array_size(hits); i++)
	{
		json_t	   *hit = json_array_get(hits, i);
		json_t	   *score = json_object_get(hit, "score");
		json_t	   *payload = json_object_get(hit, "payload");
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		if (!json_is_object(hit) || !json_is_number(score))
			dc_json_bad_reply(server, op, "A hit has no numeric \"score\".");
		values[0] = CStringGetTextDatum(dc_qdrant_id_to_text(server, op, json_object_get(hit, "id")));
		values[1] = Float4GetDatum((float4) json_number_value(score));
		if (payload && !json_is_null(payload))
			values[2] = JsonbPGetDatum(dc_json_to_jsonb(payload));
		else
			nulls[2] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(datacore_qdrant_delete_ids);

/* qdrant_delete(collection, ids anyarray, wait, server): delete by id. */
Datum
datacore_qdrant_delete_ids(PG_FUNCTION_ARGS)
{
	const char *op = "qdrant_delete";
	const char *collection = arg_text(fcinfo, 0, "collection");
	bool		wait = arg_bool(fcinfo, 2, true);
	json_t	   *body = dc_json_object();
	DcServer   *server;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"ids\" must not be null")));
	json_object_set_new(body, "points", id_array_to_json(PG_GETARG_ARRAYTYPE_P(1)));
	server = write_arg_server(fcinfo, 3, op);
	(void) dc_qdrant_call(server, op, "POST", write_path(collection, "/points/delete", wait),
						  body, collection);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(datacore_qdrant_delete_filter);

/* qdrant_delete(collection, filter jsonb, wait, server): delete by filter. */
Datum
datacore_qdrant_delete_filter(PG_FUNCTION_ARGS)
{
	const char *op = "qdrant_delete";
	const char *collection = arg_text(fcinfo, 0, "collection");
	json_t	   *filter = arg_filter(fcinfo, 1);
	bool		wait = arg_bool(fcinfo, 2, true);
	json_t	   *body = dc_json_object();
	DcServer   *server;

	if (filter == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"filter\" must not be null"),
				 errhint("To delete every point, pass '{}' as the filter.")));
	json_object_set_new(body, "filter", filter);
	server = write_arg_server(fcinfo, 3, op);
	(void) dc_qdrant_call(server, op, "POST", write_path(collection, "/points/delete", wait),
						  body, collection);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(datacore_qdrant_count);

/* qdrant_count(collection, filter, exact, server) → bigint */
Datum
datacore_qdrant_count(PG_FUNCTION_ARGS)
{
	const char *op = "qdrant_count";
	const char *collection = arg_text(fcinfo, 0, "collection");
	json_t	   *filter = arg_filter(fcinfo, 1);
	bool		exact = arg_bool(fcinfo, 2, true);
	DcServer   *server = arg_server(fcinfo, 3, op);
	json_t	   *body = dc_json_object();
	json_t	   *result;
	json_t	   *count;

	if (filter)
		json_object_set_new(body, "filter", filter);
	json_object_set_new(body, "exact", json_boolean(exact));
	result = dc_qdrant_call(server, op, "POST", dc_qdrant_path(collection, "/points/count"),
							body, collection);
	count = json_object_get(result, "count");
	if (!json_is_integer(count) || json_integer_value(count) < 0)
		dc_json_bad_reply(server, op, "The result has no \"count\".");
	PG_RETURN_INT64((int64) json_integer_value(count));
}

PG_FUNCTION_INFO_V1(datacore_qdrant_get);

/*
 * qdrant_get(collection, ids anyarray, server) →
 * TABLE(id text, vector real[], payload jsonb); ids that do not exist are
 * skipped, as Qdrant does.
 */
Datum
datacore_qdrant_get(PG_FUNCTION_ARGS)
{
	const char *op = "qdrant_get";
	const char *collection = arg_text(fcinfo, 0, "collection");
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	json_t	   *body = dc_json_object();
	DcServer   *server;
	json_t	   *result;
	size_t		i;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"ids\" must not be null")));
	json_object_set_new(body, "ids", id_array_to_json(PG_GETARG_ARRAYTYPE_P(1)));
	json_object_set_new(body, "with_payload", json_true());
	json_object_set_new(body, "with_vector", json_true());
	server = arg_server(fcinfo, 2, op);

	InitMaterializedSRF(fcinfo, 0);
	result = dc_qdrant_call(server, op, "POST", dc_qdrant_path(collection, "/points"),
							body, collection);
	if (!json_is_array(result))
		dc_json_bad_reply(server, op, "The result is not an array of points.");
	for (i = 0; i < json_array_size(result); i++)
	{
		json_t	   *rec = json_array_get(result, i);
		json_t	   *vec = json_object_get(rec, "vector");
		json_t	   *payload = json_object_get(rec, "payload");
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		if (!json_is_object(rec))
			dc_json_bad_reply(server, op, "A point is not an object.");
		values[0] = CStringGetTextDatum(dc_qdrant_id_to_text(server, op, json_object_get(rec, "id")));
		if (json_is_array(vec))
			values[1] = PointerGetDatum(dc_json_to_float4_array(vec, server, op, "the vector"));
		else
			nulls[1] = true;
		if (payload && !json_is_null(payload))
			values[2] = JsonbPGetDatum(dc_json_to_jsonb(payload));
		else
			nulls[2] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
