/*-------------------------------------------------------------------------
 *
 * redis_reply.c
 *		Redis replies turned into SQL values: text and jsonb.
 *
 * Every string a reply carries is untrusted: before it becomes text or a
 * jsonb string it must be valid in the database encoding and hold no NUL
 * byte (dc_check_remote_text, 22021).  jsonb is built directly from the
 * reply, without JSON text in between, so no second encoding (jansson's
 * UTF-8) is involved.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "redis.h"

/* A string or status reply as a jsonb string, checked. */
static void
string_value(DcServer *server, const char *what, const char *s, size_t len,
			 JsonbValue *v)
{
	dc_check_remote_text(s, (int) len, what, server->servername);
	v->type = jbvString;
	v->val.string.val = (char *) s;
	v->val.string.len = (int) len;
}

/* A reply that is neither an array nor an error, as a jsonb scalar. */
static void
scalar_value(DcServer *server, redisReply *r, JsonbValue *v)
{
	switch (r->type)
	{
		case REDIS_REPLY_INTEGER:
			v->type = jbvNumeric;
			v->val.numeric = int64_to_numeric(r->integer);
			break;
		case REDIS_REPLY_STRING:
		case REDIS_REPLY_STATUS:
			string_value(server, "redis reply", r->str, r->len, v);
			break;
		default:
			v->type = jbvNull;
			break;
	}
}

static JsonbValue *
push_reply(JsonbParseState **state, DcServer *server, redisReply *r)
{
	JsonbValue	v;
	size_t		i;

	if (r->type == REDIS_REPLY_ERROR)
	{
		JsonbValue	k;

		pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
		k.type = jbvString;
		k.val.string.val = "error";
		k.val.string.len = 5;
		pushJsonbValue(state, WJB_KEY, &k);
		string_value(server, "redis error reply", r->str, r->len, &v);
		pushJsonbValue(state, WJB_VALUE, &v);
		return pushJsonbValue(state, WJB_END_OBJECT, NULL);
	}

	pushJsonbValue(state, WJB_BEGIN_ARRAY, NULL);
	for (i = 0; i < r->elements; i++)
	{
		redisReply *e = r->element[i];

		if (e->type == REDIS_REPLY_ARRAY || e->type == REDIS_REPLY_ERROR)
			push_reply(state, server, e);
		else
		{
			scalar_value(server, e, &v);
			pushJsonbValue(state, WJB_ELEM, &v);
		}
	}
	return pushJsonbValue(state, WJB_END_ARRAY, NULL);
}

/*
 * Any reply as jsonb: nil → null, integer → number, status and bulk →
 * string, array → array (recursively), an error (nested in an EXEC
 * result) → {"error": "..."}.
 */
Jsonb *
dc_redis_reply_jsonb(DcServer *server, redisReply *reply)
{
	JsonbParseState *state = NULL;
	JsonbValue	v;

	if (reply->type == REDIS_REPLY_ARRAY || reply->type == REDIS_REPLY_ERROR)
		return JsonbValueToJsonb(push_reply(&state, server, reply));
	scalar_value(server, reply, &v);
	return JsonbValueToJsonb(&v);
}

/*
 * An HGETALL reply (field, value, field, value ...) as a jsonb object of
 * strings; anything else in it is an unexpected reply to op.
 */
Jsonb *
dc_redis_hash_jsonb(DcServer *server, const char *op, redisReply *reply)
{
	JsonbParseState *state = NULL;
	JsonbValue *result;
	size_t		i;

	if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0)
		dc_redis_unexpected(server, op, reply);
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (i = 0; i < reply->elements; i += 2)
	{
		redisReply *f = reply->element[i];
		redisReply *v = reply->element[i + 1];
		JsonbValue	jk,
					jv;

		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			dc_redis_unexpected(server, op, reply);
		string_value(server, "redis hash field", f->str, f->len, &jk);
		string_value(server, "redis hash value", v->str, v->len, &jv);
		pushJsonbValue(&state, WJB_KEY, &jk);
		pushJsonbValue(&state, WJB_VALUE, &jv);
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(result);
}

/* A bulk string reply as text, checked; "what" names it in an error. */
text *
dc_redis_reply_text(DcServer *server, const char *what, redisReply *reply)
{
	dc_check_remote_text(reply->str, (int) reply->len, what, server->servername);
	return cstring_to_text_with_len(reply->str, (int) reply->len);
}

/* ---------- reading ---------- */

static redisReplyObjectFunctions *hiredis_functions = NULL;
static redisReplyObjectFunctions bounded_functions;
static int64 max_elements = INT_MAX;
static int	refused_elements = 0;

static void *
bounded_create_array(const redisReadTask *task, int elements)
{
	if (elements < 0 || elements > max_elements)
	{
		refused_elements = elements;
		return NULL;			/* hiredis fails the read ("Out of memory") */
	}
	return hiredis_functions->createArray(task, elements);
}

/*
 * hiredis allocates an array reply's element vector as soon as it reads
 * the "*<n>" header, before any element has arrived: a 14-byte
 * "*100000000\r\n" would have the backend allocate 800 MB.  Every element
 * takes at least three bytes on the wire ("+\r\n"), so an array of more
 * than max_bytes / 3 elements can never arrive within the byte limit of
 * the read; the reader refuses it at its header.  Call before each read;
 * after a failed read, dc_redis_refused_array() says whether this was why.
 */
void
dc_redis_bound_reader(redisReader *reader, int64 max_bytes)
{
	if (reader->fn != &bounded_functions)
	{
		if (hiredis_functions == NULL)
		{
			hiredis_functions = reader->fn;
			bounded_functions = *reader->fn;
			bounded_functions.createArray = bounded_create_array;
		}
		reader->fn = &bounded_functions;
	}
	max_elements = Min(max_bytes / 3, (int64) INT_MAX);
	refused_elements = 0;
}

/* The element count of the array the last read refused, or 0. */
int
dc_redis_refused_array(void)
{
	return refused_elements;
}
