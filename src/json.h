/*-------------------------------------------------------------------------
 *
 * json.h
 *		jansson <-> PostgreSQL conversions shared by the service clients.
 *
 * jansson allocates from CurrentMemoryContext (see dc_json_init), so a
 * json_t is freed with its context on ERROR like any palloc'd value.  Keep
 * a json_t within the memory context it was made in.
 *
 * Never call json_object(): the postgres executable exports a function of
 * that name which wins symbol resolution.  Use dc_json_object().
 *
 *-------------------------------------------------------------------------
 */
#ifndef DATACORE_JSON_H
#define DATACORE_JSON_H

/*
 * Declare jansson's json_object() under another name: calls to it then fail
 * to compile (the server's json_object(PG_FUNCTION_ARGS) takes other
 * arguments) instead of crashing at run time.
 */
#define json_object dc_jansson_json_object_unusable
#include <jansson.h>
#undef json_object

#include "utils/array.h"
#include "utils/jsonb.h"
#include "datacore.h"

extern void dc_json_init(void);

extern json_t *dc_json_object(void);
extern json_t *dc_json_raw_number(const char *text);
extern const char *dc_json_raw_number_text(json_t *v);
extern json_t *dc_json_string_server(const char *s, const char *what);
extern char *dc_json_dumps(json_t *json);
extern char *dc_json_dumps_server(json_t *json);
extern void dc_json_append_jsonb(StringInfo buf, Jsonb *jsonb);
extern int	dc_json_cmp_digits(const char *a, size_t alen, const char *b);
extern json_t *dc_json_parse(DcServer *server, const char *operation,
							 const char *data, size_t len);
extern json_t *dc_json_parse_input(const char *data, const char *argname);

extern Jsonb *dc_json_to_jsonb(json_t *json);
extern json_t *dc_jsonb_to_json(Jsonb *jsonb, const char *argname);

extern ArrayType *dc_json_to_float4_array(json_t *array, DcServer *server,
										  const char *operation, const char *what);
extern json_t *dc_float4_array_to_json(ArrayType *array, const char *argname);

extern const char *dc_json_get_string(json_t *object, const char *key);
extern bool dc_json_is_text(json_t *v);
extern char *dc_json_text(json_t *str, const char *what, const char *servername);

extern void dc_json_bad_reply(DcServer *server, const char *operation,
							  const char *detail) pg_attribute_noreturn();

#endif							/* DATACORE_JSON_H */
