/*-------------------------------------------------------------------------
 *
 * cache.h
 *		Model-response cache in Redis for Ollama generate and chat calls.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DATACORE_CACHE_H
#define DATACORE_CACHE_H

#include "json.h"

#include "datacore.h"
#include "datatype/timestamp.h"

typedef struct DcCache DcCache;

extern DcCache *dc_cache_begin(DcServer *server, const char *operation,
							   json_t *body, Interval *call_ttl);
extern char *dc_cache_get(DcCache *cache);
extern void dc_cache_put(DcCache *cache, const char *value, size_t len);

#endif							/* DATACORE_CACHE_H */
