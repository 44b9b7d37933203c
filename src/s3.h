/*-------------------------------------------------------------------------
 *
 * s3.h
 *		The S3 client shared by the SQL functions (s3.c) and the bucket
 *		foreign table (fdw_s3.c): signed requests, S3 error mapping and
 *		the XML replies.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DATACORE_S3_H
#define DATACORE_S3_H

#include "datatype/timestamp.h"

#include "datacore.h"
#include "http.h"
#include "sigv4.h"

/* One object of a listing. */
typedef struct DcS3Object
{
	char	   *key;
	int64		size;
	char	   *etag;
	char	   *last_modified;	/* ISO 8601 as sent */
} DcS3Object;

/* One page of ListObjectsV2. */
typedef struct DcS3ListPage
{
	List	   *objects;		/* DcS3Object * */
	bool		truncated;
	char	   *next_token;		/* NULL when not truncated */
} DcS3ListPage;

/* An S3 <Error> document. */
typedef struct DcS3Error
{
	char	   *code;
	char	   *message;
	char	   *key;
	char	   *bucket;
} DcS3Error;

/* in s3.c */
extern bool dc_s3_abort_upload(DcServer *server, const char *operation,
							   const char *bucket, const char *key,
							   const char *upload_id);
extern DcHttpRequest *dc_s3_request(DcServer *server, const char *operation,
									const char *method, const char *bucket,
									const char *key, List *query,
									const char *body, size_t body_len,
									const char *content_type);
extern void dc_s3_raise(DcServer *server, DcHttpRequest *req,
						DcHttpResponse *resp) pg_attribute_noreturn();
extern DcS3ListPage *dc_s3_list_page(DcServer *server, const char *operation,
									 const char *bucket, const char *prefix,
									 const char *token, int max_keys);
extern DcHttpResponse *dc_s3_head(DcServer *server, const char *operation,
								  const char *bucket, const char *key);
extern char *dc_s3_put(DcServer *server, const char *operation,
					   const char *bucket, const char *key,
					   const char *body, size_t len, const char *content_type);
typedef struct DcS3Put DcS3Put;
extern DcS3Put *dc_s3_put_begin(DcServer *server, const char *operation,
								const char *bucket, const char *key,
								const char *body, size_t len, const char *content_type);
extern char *dc_s3_put_end(DcS3Put *put);
extern bytea *dc_s3_get(DcServer *server, const char *operation,
						const char *bucket, const char *key);
extern DcHttpStream *dc_s3_open(DcServer *server, const char *operation,
								const char *bucket, const char *key);
extern bool dc_s3_delete(DcServer *server, const char *operation,
						 const char *bucket, const char *key);
extern TimestampTz dc_s3_parse_time(const char *iso);

/* in s3xml.c */
extern bool dc_s3_parse_error(const char *data, size_t len, DcS3Error *err);
extern DcS3ListPage *dc_s3_parse_list(DcServer *server, const char *operation,
									  const char *data, size_t len);
extern char *dc_s3_parse_upload_id(DcServer *server, const char *operation,
								   const char *data, size_t len);
extern char *dc_s3_parse_complete(DcServer *server, const char *operation,
								  const char *data, size_t len, DcS3Error *err);
extern char *dc_s3_xml_escape(const char *s);

/* in s3_uploads.c: uploads a crash left open */
extern char *dc_s3_upload_remember(DcServer *server, const char *bucket,
								   const char *key, const char *upload_id);
extern void dc_s3_upload_forget(const char *path);
extern void dc_s3_uploads_startup(void);
extern void dc_s3_abort_stale_uploads(void);

#endif							/* DATACORE_S3_H */
