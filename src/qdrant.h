/*-------------------------------------------------------------------------
 *
 * qdrant.h
 *		The Qdrant client shared by the SQL functions (qdrant.c) and the
 *		foreign-data wrapper (fdw_qdrant.c).
 *
 * Point ids are unsigned 64-bit integers or UUIDs.  jansson's integers are
 * signed 64-bit, so an id above 2^63-1 travels inside jansson as a raw
 * number (json.h), written back as a bare number by dc_json_dumps().
 *
 *-------------------------------------------------------------------------
 */
#ifndef DATACORE_QDRANT_H
#define DATACORE_QDRANT_H

#include "datacore.h"
#include "http.h"
#include "json.h"

/* in qdrant.c */
typedef struct DcQdrantUpsert DcQdrantUpsert;
extern DcQdrantUpsert *dc_qdrant_upsert_begin(DcServer *server,
											  const char *operation,
											  const char *collection,
											  json_t *points, bool wait);
extern int64 dc_qdrant_upsert_end(DcQdrantUpsert *u);
extern json_t *dc_qdrant_call(DcServer *server, const char *operation,
							  const char *method, const char *path,
							  json_t *body, const char *collection);
extern json_t *dc_qdrant_call_text(DcServer *server, const char *operation,
								   const char *method, const char *path,
								   const char *body, const char *collection);
extern char *dc_qdrant_path(const char *collection, const char *suffix);
extern void dc_qdrant_append_vector(StringInfo buf, ArrayType *array,
									const char *argname);

extern json_t *dc_qdrant_id_from_text(const char *text);
extern json_t *dc_qdrant_id_try_text(const char *text);
extern char *dc_qdrant_id_to_text(DcServer *server, const char *operation,
								  json_t *id);
extern json_t *dc_qdrant_id_from_datum(Datum value, Oid typid);


#endif							/* DATACORE_QDRANT_H */
