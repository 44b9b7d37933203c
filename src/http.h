/*-------------------------------------------------------------------------
 *
 * http.h
 *		The one HTTP client every HTTP service (Ollama, Qdrant, S3) uses.
 *
 * A request is either executed whole (dc_http_execute: the body is
 * buffered up to the server's max_response_bytes) or streamed
 * (dc_http_open / dc_http_read / dc_http_close: at most about one chunk is
 * held in memory).  Every wait is interruptible and bounded; libcurl state
 * is released on ERROR, also inside subtransactions.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DATACORE_HTTP_H
#define DATACORE_HTTP_H

#include "lib/stringinfo.h"
#include "datacore.h"

typedef struct DcHttpRequest
{
	const char *operation;		/* SQL-level name, used in error messages */
	const char *method;			/* GET, HEAD, POST, PUT, DELETE */
	char	   *url;			/* absolute URL, see dc_http_url() */
	List	   *headers;		/* "Name: value" strings (palloc'd) */
	const char *body;			/* request body or NULL */
	size_t		body_len;
	bool		retryable;		/* safe to send again after a failure */
} DcHttpRequest;

typedef struct DcHttpResponse
{
	long		status;
	StringInfoData body;		/* buffered body (dc_http_execute only) */
	List	   *headers;		/* DcHttpHeader *, names lower-cased */
} DcHttpResponse;

typedef struct DcHttpHeader
{
	char	   *name;
	char	   *value;
} DcHttpHeader;

typedef struct DcHttpStream DcHttpStream;

/* Whole-response interface; start/finish lets several requests overlap. */
extern DcHttpResponse *dc_http_execute(DcServer *server, DcHttpRequest *req);
extern DcHttpStream *dc_http_start(DcServer *server, DcHttpRequest *req);
extern DcHttpResponse *dc_http_finish(DcHttpStream *stream);

/*
 * Batches: several requests in flight at once, the first failure cancels
 * the rest (dc_http_run_batch builds each request when a slot frees and
 * sees each response as it completes).
 */
typedef DcHttpRequest *(*DcHttpBatchMake) (int i, void *arg);
typedef void (*DcHttpBatchDone) (int i, DcHttpRequest *req, DcHttpResponse *resp,
								 void *arg);
extern void dc_http_run_batch(DcServer *server, int n, int max_in_flight,
							  DcHttpBatchMake make, DcHttpBatchDone done, void *arg);
extern void dc_http_execute_batch(DcServer *server, int n, DcHttpRequest **reqs,
								  DcHttpResponse **resps, int max_in_flight);

/* Streaming interface; dc_http_open returns once the headers are in. */
extern DcHttpStream *dc_http_open(DcServer *server, DcHttpRequest *req);
extern DcHttpResponse *dc_http_stream_response(DcHttpStream *stream);
extern bool dc_http_read(DcHttpStream *stream, StringInfo out);
extern void dc_http_close(DcHttpStream *stream);

/* Helpers. */
extern DcHttpRequest *dc_http_request(DcServer *server, const char *operation,
									  const char *method, const char *path);
extern void dc_http_add_header(DcHttpRequest *req, const char *name, const char *value);
extern void dc_http_set_json_body(DcHttpRequest *req, const char *json);
extern const char *dc_http_header(DcHttpResponse *resp, const char *name);
extern const char *dc_http_header_text(DcServer *server, DcHttpResponse *resp,
									   const char *name);
extern char *dc_http_escape(const char *s, bool keep_slash);
extern char *dc_http_escape_segment(const char *s);
extern DcServer *dc_http_cleanup_server(DcServer *server);

extern int	dc_http_status_errcode(long status);
extern void dc_http_raise_status(DcServer *server, DcHttpRequest *req,
								 DcHttpResponse *resp, const char *remote_message) pg_attribute_noreturn();

/*
 * Retry-After of the last 429/503 answer this backend received (ms; -1 if
 * none since dc_http_forget_retry_after), for the job runner's retries.
 */
extern int	dc_http_last_retry_after_ms(void);
extern void dc_http_forget_retry_after(void);

/* in datacore.c: lifetime of the curl global state */
extern void dc_http_init(void);

#endif							/* DATACORE_HTTP_H */
