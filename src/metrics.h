/*-------------------------------------------------------------------------
 *
 * metrics.h
 *		Request counters per (database, server, operation) in shared memory,
 *		read by the datacore.metrics view and the Prometheus exposition.
 *
 * The recording functions allocate only the first time a backend sees a
 * (server, operation) pair, and not at all while a transaction aborts:
 * they are called where requests end, cleanup paths included.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DATACORE_METRICS_H
#define DATACORE_METRICS_H

#include "datatype/timestamp.h"

#include "datacore.h"

/* in datacore.c's hooks */
extern void dc_metrics_init(void);
extern void dc_metrics_request_shmem(void);
extern void dc_metrics_startup(void);

/*
 * One HTTP transfer attempt ended.  "easy" is the transfer's CURL handle
 * (timings and byte counts are read from it); "finished" is false for a
 * transfer abandoned before its end.  curl_result is a CURLcode.
 */
extern void dc_metrics_http(DcServer *server, const char *operation,
							void *easy, bool finished, int curl_result,
							long status, bool too_large, bool out_of_memory);

/* One Redis request (ncmds replies) was read; error replies are counted. */
struct redisReply;
extern void dc_metrics_redis(DcServer *server, const char *operation,
							 struct redisReply **replies, int nreplies,
							 int64 sent_bytes, int64 received_bytes,
							 TimestampTz started);

/* A request that failed with SQLSTATE sqlerrcode before a reply came. */
extern void dc_metrics_failure(DcServer *server, const char *operation,
							   int sqlerrcode);

/* A request sent again after a transient failure. */
extern void dc_metrics_retry(DcServer *server, const char *operation);

/* Ollama token counts of one reply (negative: not reported). */
extern void dc_metrics_tokens(DcServer *server, const char *operation,
							  int64 prompt_tokens, int64 eval_tokens);

/* A response-cache lookup for (server, operation). */
extern void dc_metrics_cache(DcServer *server, const char *operation, bool hit);

#endif							/* DATACORE_METRICS_H */
