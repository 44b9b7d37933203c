/*-------------------------------------------------------------------------
 *
 * s3.c
 *		The S3 client and the datacore.s3_* SQL functions.
 *
 * Every request is path-style (server url + /bucket/key) and signed with
 * SigV4 in a header; the query string sent is the canonical one, so the
 * signed text is exactly what goes on the wire.  Bodies are hashed for
 * x-amz-content-sha256, never sent as UNSIGNED-PAYLOAD.
 *
 * Large uploads go up as multipart, up to parallel_parts parts in flight
 * at once (parts point into the caller's buffer, nothing is copied) and an
 * upload that fails half-way is aborted before
 * the error propagates, so no orphaned parts stay behind.  Downloads are
 * streamed into a buffer sized from Content-Length and capped by
 * max_response_bytes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/wait_event.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "json.h"
#include "s3.h"

#define MiB		(INT64CONST(1024) * 1024)
#define DEFAULT_MULTIPART_THRESHOLD (16 * MiB)
#define DEFAULT_PART_SIZE	(8 * MiB)
#define MIN_PART_SIZE		(5 * MiB)
#define MAX_PARTS			10000
#define DEFAULT_PARALLEL_PARTS 4
#define ABORT_ATTEMPTS		3
#define ABORT_PAUSE_MS		200
#define ERROR_BODY_MAX		(64 * 1024)
#define MAX_PRESIGN_SECS	604800

/* ---------- request construction ---------- */

/*
 * Host header and path prefix of the server URL
 * ("http://h:9000/base" → "h:9000", "/base").
 */
static void
split_url(const char *url, char **host, char **base)
{
	const char *p = strstr(url, "://");
	const char *slash;

	p = p ? p + 3 : url;
	slash = strchr(p, '/');
	*host = slash ? pnstrdup(p, slash - p) : pstrdup(p);
	*base = slash ? pstrdup(slash) : pstrdup("");
	/* curl leaves a default port out of Host; so must the signature */
	if (strncmp(url, "http://", 7) == 0 && strlen(*host) > 3 &&
		strcmp(*host + strlen(*host) - 3, ":80") == 0)
		(*host)[strlen(*host) - 3] = '\0';
	else if (strncmp(url, "https://", 8) == 0 && strlen(*host) > 4 &&
			 strcmp(*host + strlen(*host) - 4, ":443") == 0)
		(*host)[strlen(*host) - 4] = '\0';
}

/*
 * What gets signed for base (the server URL's path part, sent as the admin
 * wrote it) + path (an object_path, already canonical): the server decodes
 * the whole path it receives and encodes it again, so the base is signed in
 * that form.
 */
static char *
signed_uri(const char *base, const char *path)
{
	return psprintf("%s%s", base[0] ? dc_sigv4_canonical_uri(base) : "", path);
}

/* Credentials of the resolved user mapping; both keys are required. */
static void
get_key(DcServer *server, const char *operation, DcSigV4Key *key)
{
	const char *region = dc_option(server, "region");

	key->access_key_id = dc_option(server, "access_key_id");
	key->secret_access_key = dc_option(server, "secret_access_key");
	key->session_token = dc_option(server, "session_token");
	key->region = region ? region : "us-east-1";
	key->service = "s3";
	if (key->access_key_id == NULL || key->secret_access_key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("no S3 credentials for server \"%s\" in %s",
						server->servername, operation),
				 errhint("Create a user mapping with access_key_id and secret_access_key: CREATE USER MAPPING FOR CURRENT_USER SERVER %s OPTIONS (access_key_id '...', secret_access_key '...').",
						 quote_identifier(server->servername))));
}

static void
check_name(const char *what, const char *value)
{
	if (value == NULL || value[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("S3 %s must not be empty", what)));
}

/*
 * A bucket is one path segment: "/" inside it, or a name that is "." or
 * "..", would make the server read another bucket and key out of the path
 * (S3 servers decode the path before they split it).  S3 allows none of
 * these names anyway.
 */
static void
check_bucket(const char *bucket)
{
	check_name("bucket name", bucket);
	if (strchr(bucket, '/') != NULL || strcmp(bucket, ".") == 0 ||
		strcmp(bucket, "..") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid S3 bucket name \"%s\"", bucket),
				 errdetail("A bucket name cannot contain \"/\" or be \".\" or \"..\".")));
}

/*
 * "/bucket" or "/bucket/key", S3-encoded (no server path prefix).  The
 * key's slashes stay literal, empty and dot segments included ("a//b",
 * "/x", "x/", "a/./b"): S3 does not normalise paths, and servers decode the
 * path before they sign it, so a slash sent as %2F would be signed by them
 * as a slash.  libcurl sends the path as it is (CURLOPT_PATH_AS_IS), so
 * the path signed is the path sent.
 */
static char *
object_path(const char *bucket, const char *key)
{
	char	   *b;

	check_bucket(bucket);
	b = dc_sigv4_encode(bucket, strlen(bucket), false);
	if (key == NULL)
		return psprintf("/%s", b);
	return psprintf("/%s/%s", b, dc_sigv4_encode(key, strlen(key), true));
}

/*
 * A signed request for bucket (and key, if not NULL) with raw query
 * parameters "query" (DcSigV4Pair *) and an optional in-memory body.
 * The body is not copied.
 */
DcHttpRequest *
dc_s3_request(DcServer *server, const char *operation, const char *method,
			  const char *bucket, const char *key, List *query,
			  const char *body, size_t body_len, const char *content_type)
{
	DcSigV4Key	sk;
	DcSigV4Request sr;
	DcSigV4Result *res;
	DcHttpRequest *req;
	char	   *host;
	char	   *base;
	char	   *path;
	char	   *canonical_query;
	char		amz_date[17];
	List	   *headers = NIL;
	ListCell   *lc;

	get_key(server, operation, &sk);
	split_url(server->url, &host, &base);
	path = object_path(bucket, key);
	canonical_query = dc_sigv4_canonical_query(query);
	dc_sigv4_amz_date(amz_date);

	memset(&sr, 0, sizeof(sr));
	sr.method = method;
	sr.canonical_uri = signed_uri(base, path);
	sr.query = query;
	sr.payload_hash = body_len > 0 ? dc_sha256_hex(body, body_len) : DC_SHA256_EMPTY;

	headers = lappend(headers, dc_sigv4_pair("Host", host));
	headers = lappend(headers, dc_sigv4_pair("x-amz-content-sha256", sr.payload_hash));
	headers = lappend(headers, dc_sigv4_pair("x-amz-date", amz_date));
	if (sk.session_token)
		headers = lappend(headers, dc_sigv4_pair("x-amz-security-token", sk.session_token));
	if (content_type)
		headers = lappend(headers, dc_sigv4_pair("Content-Type", content_type));
	sr.headers = headers;

	res = dc_sigv4_sign_headers(&sk, &sr, amz_date);

	req = dc_http_request(server, operation, method,
						  canonical_query[0] ? psprintf("%s?%s", path, canonical_query) : path);
	foreach(lc, headers)
	{
		DcSigV4Pair *h = lfirst(lc);

		dc_http_add_header(req, h->name, h->value);
	}
	dc_http_add_header(req, "Authorization", res->authorization);
	req->body = body;
	req->body_len = body_len;
	/* a POST (multipart create/complete) is not idempotent */
	req->retryable = strcmp(method, "POST") != 0;
	return req;
}

/* ---------- errors ---------- */

static int
s3_errcode(const char *code, long status)
{
	static const struct
	{
		const char *code;
		int			sqlstate;
	}			map[] = {
		{"NoSuchKey", ERRCODE_UNDEFINED_OBJECT},
		{"NoSuchBucket", ERRCODE_UNDEFINED_OBJECT},
		{"NoSuchUpload", ERRCODE_UNDEFINED_OBJECT},
		/*
		 * Every 403 is one SQLSTATE: a HEAD answer has no body to tell a
		 * wrong secret (SignatureDoesNotMatch) from a refusal by policy
		 * (AccessDenied), so the two must not differ anywhere.
		 */
		{"AccessDenied", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION},
		{"AllAccessDisabled", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION},
		{"InvalidAccessKeyId", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION},
		{"SignatureDoesNotMatch", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION},
		{"RequestTimeTooSkewed", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION},
		{"ExpiredToken", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION},
		{"InvalidToken", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION},
		{"AuthorizationHeaderMalformed", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION},
		{"BucketAlreadyExists", ERRCODE_DUPLICATE_OBJECT},
		{"BucketAlreadyOwnedByYou", ERRCODE_DUPLICATE_OBJECT},
		{"BucketNotEmpty", ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE},
		{"EntityTooLarge", ERRCODE_PROGRAM_LIMIT_EXCEEDED},
		{"SlowDown", ERRCODE_CONNECTION_FAILURE},
		{"ServiceUnavailable", ERRCODE_CONNECTION_FAILURE},
	};

	for (int i = 0; i < lengthof(map); i++)
		if (code && strcmp(code, map[i].code) == 0)
			return map[i].sqlstate;
	if (status == 503 || status == 502 || status == 504 || status == 429)
		return ERRCODE_CONNECTION_FAILURE;
	if (status >= 400 && status < 500)
		return ERRCODE_INVALID_PARAMETER_VALUE;
	return ERRCODE_FDW_ERROR;
}

static void
raise_s3_error(DcServer *server, const char *operation, long status,
			   DcS3Error *e) pg_attribute_noreturn();

/* Remote text of an error document, made safe for a message. */
static char *
error_text(const char *s, int maxbytes)
{
	return dc_remote_excerpt(s, strlen(s), maxbytes);
}

/* The error for an S3 <Error>: its Code in the message, its text in detail. */
static void
raise_s3_error(DcServer *server, const char *operation, long status, DcS3Error *e)
{
	StringInfoData detail;
	bool		auth = strcmp(e->code, "SignatureDoesNotMatch") == 0 ||
		strcmp(e->code, "InvalidAccessKeyId") == 0;
	bool		denied = strcmp(e->code, "AccessDenied") == 0;

	initStringInfo(&detail);
	if (e->message && e->message[0])
	{
		appendStringInfoString(&detail, error_text(e->message, 500));
		if (detail.data[detail.len - 1] != '.')
			appendStringInfoChar(&detail, '.');
	}
	if (e->bucket && e->bucket[0])
		appendStringInfo(&detail, "%sBucket: %s.", detail.len ? " " : "",
						 error_text(e->bucket, 200));
	if (e->key && e->key[0])
		appendStringInfo(&detail, "%sKey: %s.", detail.len ? " " : "",
						 error_text(e->key, 200));

	ereport(ERROR,
			(errcode(s3_errcode(e->code, status)),
			 errmsg("server \"%s\" rejected %s with S3 error %s",
					server->servername, operation, error_text(e->code, 64)),
			 detail.len ? errdetail_internal("%s", detail.data) : 0,
			 auth ? errhint("Check access_key_id and secret_access_key in the user mapping for server \"%s\".",
							server->servername) : 0,
			 denied ? errhint("Check access_key_id and secret_access_key in the user mapping for server \"%s\", and what the store's policy grants them.",
							  server->servername) : 0));
}

/*
 * Raise the error for an HTTP status >= 300.  An S3 <Error> body gives the
 * code; a body-less reply (HEAD) gets the code S3 would have sent.
 */
void
dc_s3_raise(DcServer *server, DcHttpRequest *req, DcHttpResponse *resp)
{
	DcS3Error	e;

	memset(&e, 0, sizeof(e));
	if (dc_s3_parse_error(resp->body.data, resp->body.len, &e))
		raise_s3_error(server, req->operation, resp->status, &e);
	if (resp->body.len == 0)
	{
		switch (resp->status)
		{
			case 404:
				e.code = "NotFound";
				break;
			case 403:
				e.code = "AccessDenied";
				e.message = "The answer to a HEAD request has no error document: the key pair is wrong, or it may not access this object.";
				break;
			case 400:
				e.code = "BadRequest";
				break;
			default:
				e.code = NULL;
		}
		if (e.code)
			raise_s3_error(server, req->operation, resp->status, &e);
	}
	dc_http_raise_status(server, req, resp, NULL);
}

static DcHttpResponse *
execute_ok(DcServer *server, DcHttpRequest *req)
{
	DcHttpResponse *resp = dc_http_execute(server, req);

	if (resp->status >= 300)
		dc_s3_raise(server, req, resp);
	return resp;
}

/* ETag without its quotes. */
static char *
unquote(const char *etag)
{
	size_t		len;

	if (etag == NULL)
		return NULL;
	len = strlen(etag);
	if (len >= 2 && etag[0] == '"' && etag[len - 1] == '"')
		return pnstrdup(etag + 1, len - 2);
	return pstrdup(etag);
}

/* ---------- operations ---------- */

/*
 * Best-effort abort of a multipart upload; failure becomes a WARNING and
 * false.  It runs while an error (often a cancel) is being handled, so it
 * gets the short bounds of a clean-up request, not the server's
 * timeout_ms.  An upload the server no longer knows counts as aborted.
 */
bool
dc_s3_abort_upload(DcServer *server, const char *operation, const char *bucket,
				   const char *key, const char *upload_id)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool aborted = false;

	PG_TRY();
	{
		DcServer   *cleanup = dc_http_cleanup_server(server);
		DcHttpRequest *req;
		DcHttpResponse *resp;

		for (int attempt = 0;; attempt++)
		{
			req = dc_s3_request(cleanup, operation, "DELETE", bucket, key,
								list_make1(dc_sigv4_pair("uploadId", upload_id)),
								NULL, 0, NULL);
			resp = dc_http_execute(cleanup, req);
			/*
			 * A part cancelled in flight may still be landing on the server,
			 * which can then fail the abort: try again shortly, a bounded
			 * number of times (an answer, not a timeout, so it is quick).
			 */
			if (resp->status < 500 || attempt >= ABORT_ATTEMPTS - 1)
				break;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 ABORT_PAUSE_MS, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
		if (resp->status >= 300 && resp->status != 404)
			dc_s3_raise(cleanup, req, resp);
		aborted = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("could not abort multipart upload of \"%s\" on server \"%s\"",
						key, server->servername),
				 errdetail_internal("%s", edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return aborted;
}

/* What the parts of one multipart upload share (dc_http_run_batch). */
typedef struct PartBatch
{
	DcServer   *server;
	const char *operation;
	const char *bucket;
	const char *key;
	const char *upload_id;
	const char *body;
	size_t		len;
	int64		part_size;
	char	  **etags;			/* per part, escaped for the XML */
	MemoryContext cxt;			/* where etags live */
} PartBatch;

/* PUT of part i + 1: a slice of the body, hashed just before it is sent. */
static DcHttpRequest *
part_request(int i, void *arg)
{
	PartBatch  *pb = (PartBatch *) arg;
	size_t		off = (size_t) i * pb->part_size;
	size_t		n = Min((size_t) pb->part_size, pb->len - off);

	CHECK_FOR_INTERRUPTS();
	return dc_s3_request(pb->server, pb->operation, "PUT", pb->bucket, pb->key,
						 list_make2(dc_sigv4_pair("partNumber", psprintf("%d", i + 1)),
									dc_sigv4_pair("uploadId", pb->upload_id)),
						 pb->body + off, n, NULL);
}

/* A part's answer: any error status ends the upload, as does a missing ETag. */
static void
part_done(int i, DcHttpRequest *req, DcHttpResponse *resp, void *arg)
{
	PartBatch  *pb = (PartBatch *) arg;
	const char *part_etag;

	if (resp->status >= 300)
		dc_s3_raise(pb->server, req, resp);
	part_etag = dc_http_header_text(pb->server, resp, "etag");
	if (part_etag == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_STRING_FORMAT),
				 errmsg("server \"%s\" sent an invalid reply to %s",
						pb->server->servername, pb->operation),
				 errdetail("Part %d of the multipart upload came back without an ETag.", i + 1)));
	pb->etags[i] = MemoryContextStrdup(pb->cxt, dc_s3_xml_escape(part_etag));
}

/*
 * Upload the parts of "body", up to parallel_parts at once, and complete
 * the upload; returns the ETag as S3 sent it.  Any failure throws (the
 * caller aborts the upload); parts still in flight are cancelled first.
 * The parts point into "body", so memory beyond it is a few headers per
 * part in flight.
 */
static char *
upload_parts(DcServer *server, const char *operation, const char *bucket,
			 const char *key, const char *body, size_t len, int64 part_size,
			 const char *upload_id)
{
	DcHttpRequest *req;
	DcHttpResponse *resp;
	StringInfoData xml;
	DcS3Error	e;
	char	   *etag;
	int			nparts = (int) ((len + part_size - 1) / part_size);
	PartBatch	pb;

	pb.server = server;
	pb.operation = operation;
	pb.bucket = bucket;
	pb.key = key;
	pb.upload_id = upload_id;
	pb.body = body;
	pb.len = len;
	pb.part_size = part_size;
	pb.etags = palloc0(sizeof(char *) * nparts);
	pb.cxt = CurrentMemoryContext;
	dc_http_run_batch(server, nparts,
					  dc_option_int(server, "parallel_parts", DEFAULT_PARALLEL_PARTS),
					  part_request, part_done, &pb);

	initStringInfo(&xml);
	appendStringInfoString(&xml, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
	for (int i = 0; i < nparts; i++)
		appendStringInfo(&xml, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>",
						 i + 1, pb.etags[i]);
	appendStringInfoString(&xml, "</CompleteMultipartUpload>");

	req = dc_s3_request(server, operation, "POST", bucket, key,
						list_make1(dc_sigv4_pair("uploadId", upload_id)),
						xml.data, xml.len, "application/xml");
	resp = execute_ok(server, req);
	/* S3 may report a failed completion inside a 200 */
	memset(&e, 0, sizeof(e));
	etag = dc_s3_parse_complete(server, operation, resp->body.data,
								resp->body.len, &e);
	if (etag == NULL && e.code)
		raise_s3_error(server, operation, resp->status, &e);
	if (etag)
		dc_check_remote_text(etag, strlen(etag), "ETag", server->servername);
	return etag;
}

/*
 * Multipart upload: create, one PUT per part (each part a slice of
 * "body", not a copy), complete.  Any error after the create aborts the
 * upload, then propagates unchanged.
 */
static char *
put_multipart(DcServer *server, const char *operation, const char *bucket,
			  const char *key, const char *body, size_t len,
			  const char *content_type, int64 part_size)
{
	DcHttpRequest *req;
	DcHttpResponse *resp;
	char	   *upload_id;
	char	   *record;
	char	   *etag = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	req = dc_s3_request(server, operation, "POST", bucket, key,
						list_make1(dc_sigv4_pair("uploads", "")),
						NULL, 0, content_type);
	resp = execute_ok(server, req);
	upload_id = dc_s3_parse_upload_id(server, operation, resp->body.data, resp->body.len);
	/* until it is completed or aborted, in case a crash comes first */
	record = dc_s3_upload_remember(server, bucket, key, upload_id);

	PG_TRY();
	{
		etag = upload_parts(server, operation, bucket, key, body, len,
							part_size, upload_id);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		/* a failed abort keeps the record: the next server start retries */
		if (dc_s3_abort_upload(server, operation, bucket, key, upload_id))
			dc_s3_upload_forget(record);
		ReThrowError(edata);
	}
	PG_END_TRY();
	dc_s3_upload_forget(record);
	return unquote(etag);
}

static char *stored_etag(DcServer *server, const char *operation,
						 const char *bucket, const char *key);

/* A PUT begun by dc_s3_put_begin. */
struct DcS3Put
{
	DcServer   *server;
	const char *operation;
	const char *bucket;
	const char *key;
	DcHttpRequest *req;			/* single PUT in flight, or NULL */
	DcHttpStream *stream;
	char	   *etag;			/* multipart: already done */
};

/*
 * Begin a PUT of an object from memory: a single PUT is sent and
 * dc_s3_put_end() waits for it, so several can be in flight at once;
 * above the server's multipart_threshold the multipart upload runs here,
 * whole.  The body must stay valid until dc_s3_put_end().
 */
DcS3Put *
dc_s3_put_begin(DcServer *server, const char *operation, const char *bucket,
				const char *key, const char *body, size_t len, const char *content_type)
{
	int64		threshold = dc_option_int64(server, "multipart_threshold",
											DEFAULT_MULTIPART_THRESHOLD);
	int64		part_size = dc_option_int64(server, "part_size", DEFAULT_PART_SIZE);
	DcS3Put    *put = palloc0(sizeof(DcS3Put));

	check_name("bucket name", bucket);
	check_name("key", key);
	put->server = server;
	put->operation = operation;
	put->bucket = bucket;
	put->key = key;
	if ((int64) len > threshold)
	{
		part_size = Max(part_size, MIN_PART_SIZE);
		/* stay within S3's 10000-part limit by growing the parts */
		if ((len + part_size - 1) / part_size > MAX_PARTS)
			part_size = (len + MAX_PARTS - 1) / MAX_PARTS;
		put->etag = put_multipart(server, operation, bucket, key, body, len,
								  content_type, part_size);
		return put;
	}
	put->req = dc_s3_request(server, operation, "PUT", bucket, key,
							 NIL, body ? body : "", len, content_type);
	put->stream = dc_http_start(server, put->req);
	return put;
}

/*
 * Wait for a dc_s3_put_begin() PUT; returns the ETag without quotes, never
 * an empty one (an answer without it is followed by a HEAD).
 */
char *
dc_s3_put_end(DcS3Put *put)
{
	char	   *etag = put->etag;

	if (put->req != NULL)
	{
		DcHttpResponse *resp = dc_http_finish(put->stream);

		if (resp->status >= 300)
			dc_s3_raise(put->server, put->req, resp);
		etag = unquote(dc_http_header_text(put->server, resp, "etag"));
	}
	if (etag == NULL || etag[0] == '\0')
		etag = stored_etag(put->server, put->operation, put->bucket, put->key);
	return etag;
}

/*
 * The ETag of an object just stored whose answer carried none: Ceph's
 * radosgw 16.2 may complete a multipart upload with an empty <ETag>, so the
 * object is asked for it.
 */
static char *
stored_etag(DcServer *server, const char *operation, const char *bucket,
			const char *key)
{
	DcHttpResponse *resp = dc_s3_head(server, operation, bucket, key);
	char	   *etag;

	if (resp->status >= 300)
		dc_s3_raise(server,
					dc_s3_request(server, operation, "HEAD", bucket, key, NIL, NULL, 0, NULL),
					resp);
	etag = unquote(dc_http_header(resp, "etag"));
	if (etag == NULL || etag[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_STRING_FORMAT),
				 errmsg("server \"%s\" sent an invalid reply to %s",
						server->servername, operation),
				 errdetail("The object was stored, but neither the answer nor a HEAD request gave its ETag.")));
	return etag;
}

/*
 * PUT an object from memory; multipart above the server's
 * multipart_threshold.  Returns the ETag without quotes, never an empty
 * one (an answer without it is followed by a HEAD).
 */
char *
dc_s3_put(DcServer *server, const char *operation, const char *bucket,
		  const char *key, const char *body, size_t len, const char *content_type)
{
	return dc_s3_put_end(dc_s3_put_begin(server, operation, bucket, key, body,
										 len, content_type));
}

/*
 * Start a GET of an object as a stream; an error status is read (up to a
 * small cap) and raised.  A 429/502/503/504 is tried again, up to the
 * server's "retries", like dc_http_execute does for buffered requests.
 */
DcHttpStream *
dc_s3_open(DcServer *server, const char *operation, const char *bucket,
		   const char *key)
{
	check_name("bucket name", bucket);
	check_name("key", key);
	for (int attempt = 0;; attempt++)
	{
		DcHttpRequest *req = dc_s3_request(server, operation, "GET", bucket, key,
										   NIL, NULL, 0, NULL);
		DcHttpStream *stream = dc_http_open(server, req);
		DcHttpResponse *resp = dc_http_stream_response(stream);
		long		ms;

		if (resp->status < 300)
			return stream;
		while (resp->body.len < ERROR_BODY_MAX && dc_http_read(stream, &resp->body))
			;
		dc_http_close(stream);
		if (attempt >= server->retries ||
			!(resp->status == 429 || resp->status == 502 ||
			  resp->status == 503 || resp->status == 504))
			dc_s3_raise(server, req, resp);

		ms = Min(100L << Min(attempt, 6), (long) server->timeout_ms);
		elog(DEBUG1, "datacore: retrying %s on server \"%s\" in %ld ms",
			 operation, server->servername, ms);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

static void
too_large(DcServer *server, const char *operation, int64 size, int64 limit,
		  bool server_limit)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("object from server \"%s\" is too large for %s",
					server->servername, operation),
			 size >= 0 ?
			 errdetail("The object has " INT64_FORMAT " bytes; the limit is " INT64_FORMAT " bytes.", size, limit) :
			 errdetail("The limit is " INT64_FORMAT " bytes.", limit),
			 server_limit ?
			 errhint("Raise the server option max_response_bytes.") :
			 errhint("A bytea or text value holds at most 1 GB; read the object through a foreign table with format 'jsonl' or 'csv' instead.")));
}

/*
 * GET a whole object into a bytea.  The buffer is sized from
 * Content-Length up front, so the body is held once; over
 * max_response_bytes or PostgreSQL's 1 GB value limit it is an error
 * before the body is read.
 */
bytea *
dc_s3_get(DcServer *server, const char *operation, const char *bucket,
		  const char *key)
{
	DcHttpStream *stream = dc_s3_open(server, operation, bucket, key);
	DcHttpResponse *resp = dc_http_stream_response(stream);
	const char *cl = dc_http_header(resp, "content-length");
	int64		limit = Min(server->max_response_bytes, (int64) (MaxAllocSize - VARHDRSZ - 1));
	int64		expected = -1;
	StringInfoData buf;

	if (cl)
	{
		char	   *end;

		errno = 0;
		expected = strtoll(cl, &end, 10);
		if (errno != 0 || *end != '\0' || expected < 0)
			expected = -1;
	}
	if (expected > (int64) (MaxAllocSize - VARHDRSZ - 1))
	{
		dc_http_close(stream);
		too_large(server, operation, expected, MaxAllocSize - VARHDRSZ - 1, false);
	}
	if (expected > server->max_response_bytes)
	{
		dc_http_close(stream);
		too_large(server, operation, expected, server->max_response_bytes, true);
	}

	buf.maxlen = (int) ((expected >= 0 ? expected : 64 * 1024) + VARHDRSZ + 1);
	buf.data = palloc(buf.maxlen);
	buf.len = VARHDRSZ;
	buf.cursor = 0;
	while (dc_http_read(stream, &buf))
	{
		if (buf.len - VARHDRSZ > limit)
		{
			dc_http_close(stream);
			too_large(server, operation, -1, limit,
					  limit == server->max_response_bytes);
		}
	}
	dc_http_close(stream);
	SET_VARSIZE(buf.data, buf.len);
	return (bytea *) buf.data;
}

/* HEAD an object; the response (any status) for the caller to judge. */
DcHttpResponse *
dc_s3_head(DcServer *server, const char *operation, const char *bucket,
		   const char *key)
{
	DcHttpRequest *req;

	check_name("bucket name", bucket);
	check_name("key", key);
	req = dc_s3_request(server, operation, "HEAD", bucket, key, NIL, NULL, 0, NULL);
	return dc_http_execute(server, req);
}

/*
 * Delete an object.  S3 answers 204 for a missing key too, so a HEAD
 * first tells whether there was anything to delete.
 */
bool
dc_s3_delete(DcServer *server, const char *operation, const char *bucket,
			 const char *key)
{
	DcHttpResponse *head = dc_s3_head(server, operation, bucket, key);
	DcHttpRequest *req;

	if (head->status == 404)
		return false;
	if (head->status >= 300)
	{
		req = dc_s3_request(server, operation, "HEAD", bucket, key, NIL, NULL, 0, NULL);
		dc_s3_raise(server, req, head);
	}
	req = dc_s3_request(server, operation, "DELETE", bucket, key, NIL, NULL, 0, NULL);
	execute_ok(server, req);
	return true;
}

/* One ListObjectsV2 page; token NULL for the first. */
DcS3ListPage *
dc_s3_list_page(DcServer *server, const char *operation, const char *bucket,
				const char *prefix, const char *token, int max_keys)
{
	List	   *query = NIL;
	DcHttpRequest *req;
	DcHttpResponse *resp;

	check_name("bucket name", bucket);
	query = lappend(query, dc_sigv4_pair("list-type", "2"));
	if (prefix && prefix[0])
		query = lappend(query, dc_sigv4_pair("prefix", prefix));
	if (token)
		query = lappend(query, dc_sigv4_pair("continuation-token", token));
	if (max_keys > 0)
		query = lappend(query, dc_sigv4_pair("max-keys", psprintf("%d", max_keys)));
	req = dc_s3_request(server, operation, "GET", bucket, NULL, query, NULL, 0, NULL);
	resp = execute_ok(server, req);
	return dc_s3_parse_list(server, operation, resp->body.data, resp->body.len);
}

/* ISO 8601 or RFC 1123 time from S3 into timestamptz. */
TimestampTz
dc_s3_parse_time(const char *text)
{
	return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
												   CStringGetDatum(text),
												   ObjectIdGetDatum(InvalidOid),
												   Int32GetDatum(-1)));
}

/* ---------- SQL functions ---------- */

static DcServer *
server_arg(FunctionCallInfo fcinfo, int argno, const char *operation)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("server name for %s must not be null", operation)));
	return dc_get_server(NameStr(*PG_GETARG_NAME(argno)), DC_SERVICE_S3, operation);
}

/* server_arg for a call that changes the store: refused when read-only (25006). */
static DcServer *
write_server_arg(FunctionCallInfo fcinfo, int argno, const char *operation)
{
	dc_prevent_remote_write_if_read_only(operation);
	return server_arg(fcinfo, argno, operation);
}

static char *
text_arg(FunctionCallInfo fcinfo, int argno, const char *what, const char *operation)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s for %s must not be null", what, operation)));
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/*
 * s3_put(bucket, key, body bytea|text|jsonb, content_type, server) → ETag.
 * One C function for the three overloads; the body's type decides the
 * default content type.
 */
PG_FUNCTION_INFO_V1(datacore_s3_put);

Datum
datacore_s3_put(PG_FUNCTION_ARGS)
{
	const char *op = "s3_put";
	Oid			bodytype = get_fn_expr_argtype(fcinfo->flinfo, 2);
	char	   *bucket = text_arg(fcinfo, 0, "bucket", op);
	char	   *key = text_arg(fcinfo, 1, "key", op);
	char	   *content_type = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	DcServer   *server = write_server_arg(fcinfo, 4, op);
	const char *data;
	size_t		len;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("body for %s must not be null", op)));

	if (bodytype == JSONBOID)
	{
		Jsonb	   *jb = PG_GETARG_JSONB_P(2);

		data = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
		len = strlen(data);
		if (content_type == NULL)
			content_type = "application/json";
	}
	else
	{
		/* bytea and text share the varlena layout; no copy beyond detoast */
		struct varlena *v = PG_GETARG_VARLENA_PP(2);

		data = VARDATA_ANY(v);
		len = VARSIZE_ANY_EXHDR(v);
		if (content_type == NULL)
			content_type = bodytype == TEXTOID ? "text/plain; charset=utf-8"
				: "application/octet-stream";
	}
	PG_RETURN_TEXT_P(cstring_to_text(dc_s3_put(server, op, bucket, key, data, len,
											   content_type)));
}

PG_FUNCTION_INFO_V1(datacore_s3_get);

Datum
datacore_s3_get(PG_FUNCTION_ARGS)
{
	const char *op = "s3_get";
	DcServer   *server = dc_get_server(NameStr(*PG_GETARG_NAME(2)), DC_SERVICE_S3, op);

	PG_RETURN_BYTEA_P(dc_s3_get(server, op,
								text_to_cstring(PG_GETARG_TEXT_PP(0)),
								text_to_cstring(PG_GETARG_TEXT_PP(1))));
}

PG_FUNCTION_INFO_V1(datacore_s3_get_text);

/* The object as text; its bytes must be valid in the database encoding. */
Datum
datacore_s3_get_text(PG_FUNCTION_ARGS)
{
	const char *op = "s3_get_text";
	DcServer   *server = dc_get_server(NameStr(*PG_GETARG_NAME(2)), DC_SERVICE_S3, op);
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	bytea	   *b = dc_s3_get(server, op, text_to_cstring(PG_GETARG_TEXT_PP(0)), key);

	dc_check_remote_text(VARDATA(b), VARSIZE(b) - VARHDRSZ,
						 psprintf("content of object \"%s\"", key), server->servername);
	PG_RETURN_TEXT_P((text *) b);
}

PG_FUNCTION_INFO_V1(datacore_s3_head);

/*
 * Object metadata as jsonb (size, etag, last_modified, content_type,
 * metadata), or NULL when the key does not exist.
 */
Datum
datacore_s3_head(PG_FUNCTION_ARGS)
{
	const char *op = "s3_head";
	DcServer   *server = dc_get_server(NameStr(*PG_GETARG_NAME(2)), DC_SERVICE_S3, op);
	char	   *bucket = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	DcHttpResponse *resp = dc_s3_head(server, op, bucket, key);
	json_t	   *obj;
	json_t	   *meta;
	const char *v;
	ListCell   *lc;

	if (resp->status == 404)
		PG_RETURN_NULL();
	if (resp->status >= 300)
		dc_s3_raise(server,
					dc_s3_request(server, op, "HEAD", bucket, key, NIL, NULL, 0, NULL),
					resp);

	obj = dc_json_object();
	meta = dc_json_object();
	if ((v = dc_http_header(resp, "content-length")) != NULL)
		json_object_set_new(obj, "size", json_integer(strtoll(v, NULL, 10)));
	if ((v = dc_http_header_text(server, resp, "etag")) != NULL)
		json_object_set_new(obj, "etag", json_string(unquote(v)));
	if ((v = dc_http_header_text(server, resp, "last-modified")) != NULL)
	{
		char		buf[MAXDATELEN + 1];

		JsonEncodeDateTime(buf, TimestampTzGetDatum(dc_s3_parse_time(v)),
						   TIMESTAMPTZOID, NULL);
		json_object_set_new(obj, "last_modified", json_string(buf));
	}
	if ((v = dc_http_header_text(server, resp, "content-type")) != NULL)
		json_object_set_new(obj, "content_type", json_string(v));
	foreach(lc, resp->headers)
	{
		DcHttpHeader *h = lfirst(lc);

		if (strncmp(h->name, "x-amz-meta-", 11) == 0)
		{
			dc_check_remote_text(h->name, strlen(h->name), "metadata header name",
								 server->servername);
			dc_check_remote_text(h->value, strlen(h->value),
								 psprintf("%s header", h->name), server->servername);
			json_object_set_new(meta, h->name + 11, json_string(h->value));
		}
	}
	json_object_set_new(obj, "metadata", meta);
	PG_RETURN_JSONB_P(dc_json_to_jsonb(obj));
}

PG_FUNCTION_INFO_V1(datacore_s3_delete);

/* True when the object existed and was deleted. */
Datum
datacore_s3_delete(PG_FUNCTION_ARGS)
{
	const char *op = "s3_delete";
	DcServer   *server = write_server_arg(fcinfo, 2, op);

	PG_RETURN_BOOL(dc_s3_delete(server, op, text_to_cstring(PG_GETARG_TEXT_PP(0)),
								text_to_cstring(PG_GETARG_TEXT_PP(1))));
}

PG_FUNCTION_INFO_V1(datacore_s3_list);

/*
 * s3_list(bucket, prefix, server) → (key, size, etag, last_modified),
 * following continuation tokens to the end of the listing.  Each page is
 * parsed in a scratch context reset before the next.
 */
Datum
datacore_s3_list(PG_FUNCTION_ARGS)
{
	const char *op = "s3_list";
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DcServer   *server = dc_get_server(NameStr(*PG_GETARG_NAME(2)), DC_SERVICE_S3, op);
	char	   *bucket = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *prefix = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *token = NULL;
	MemoryContext pagecxt;
	MemoryContext old;

	InitMaterializedSRF(fcinfo, 0);
	pagecxt = AllocSetContextCreate(CurrentMemoryContext, "datacore s3_list page",
									ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		DcS3ListPage *page;
		ListCell   *lc;
		char	   *next;

		CHECK_FOR_INTERRUPTS();
		old = MemoryContextSwitchTo(pagecxt);
		page = dc_s3_list_page(server, op, bucket, prefix, token, 1000);
		foreach(lc, page->objects)
		{
			DcS3Object *o = lfirst(lc);
			Datum		values[4];
			bool		nulls[4] = {false, false, false, false};

			values[0] = CStringGetTextDatum(o->key);
			values[1] = Int64GetDatum(o->size);
			if (o->etag)
				values[2] = CStringGetTextDatum(unquote(o->etag));
			else
				nulls[2] = true;
			if (o->last_modified)
				values[3] = TimestampTzGetDatum(dc_s3_parse_time(o->last_modified));
			else
				nulls[3] = true;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
		MemoryContextSwitchTo(old);
		next = page->truncated ? pstrdup(page->next_token) : NULL;
		MemoryContextReset(pagecxt);
		if (next == NULL)
			break;
		token = next;
	}
	MemoryContextDelete(pagecxt);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(datacore_s3_presign);

/*
 * s3_presign(bucket, key, method, expires interval, server) → URL valid
 * for "expires" (1 second to 7 days) without further credentials.
 */
Datum
datacore_s3_presign(PG_FUNCTION_ARGS)
{
	const char *op = "s3_presign";
	char	   *bucket = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *method = text_to_cstring(PG_GETARG_TEXT_PP(2));
	Interval   *span = PG_GETARG_INTERVAL_P(3);
	DcServer   *server = dc_get_server(NameStr(*PG_GETARG_NAME(4)), DC_SERVICE_S3, op);
	DcSigV4Key	sk;
	DcSigV4Request sr;
	DcSigV4Result *res;
	char	   *host;
	char	   *base;
	char	   *path;
	char		amz_date[17];
	double		secs;

	for (char *p = method; *p; p++)
		*p = pg_ascii_toupper((unsigned char) *p);
	if (strcmp(method, "GET") != 0 && strcmp(method, "PUT") != 0 &&
		strcmp(method, "HEAD") != 0 && strcmp(method, "DELETE") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid method \"%s\" for %s", method, op),
				 errhint("Use GET, PUT, HEAD or DELETE.")));
	secs = (double) span->time / USECS_PER_SEC +
		(double) span->day * SECS_PER_DAY +
		(double) span->month * DAYS_PER_MONTH * SECS_PER_DAY;
	if (secs < 1 || secs > MAX_PRESIGN_SECS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expiry for %s must be between 1 second and 7 days", op)));
	check_name("bucket name", bucket);
	check_name("key", key);

	get_key(server, op, &sk);
	split_url(server->url, &host, &base);
	path = object_path(bucket, key);
	dc_sigv4_amz_date(amz_date);

	memset(&sr, 0, sizeof(sr));
	sr.method = method;
	sr.canonical_uri = signed_uri(base, path);
	sr.headers = list_make1(dc_sigv4_pair("host", host));
	sr.payload_hash = DC_UNSIGNED_PAYLOAD;
	res = dc_sigv4_presign(&sk, &sr, amz_date, (int) secs);

	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s%s?%s&X-Amz-Signature=%s",
											  server->url, path,
											  res->canonical_query,
											  res->signature)));
}

PG_FUNCTION_INFO_V1(datacore_s3_create_bucket);

/*
 * Create a bucket: true when this call created it, false when it existed
 * already and the credentials own it.  Servers tell the second case
 * differently (AWS in us-east-1 and Ceph's radosgw answer 200 as for a new
 * bucket, MinIO and AWS elsewhere 409 BucketAlreadyOwnedByYou), so a HEAD
 * first says whether it was there.  A bucket owned by someone else is
 * BucketAlreadyExists, 42710.
 */
Datum
datacore_s3_create_bucket(PG_FUNCTION_ARGS)
{
	const char *op = "s3_create_bucket";
	char	   *bucket = text_to_cstring(PG_GETARG_TEXT_PP(0));
	DcServer   *server = write_server_arg(fcinfo, 1, op);
	const char *region = dc_option(server, "region");
	char	   *body = NULL;
	DcHttpRequest *req;
	DcHttpResponse *resp;
	bool		existed;

	check_name("bucket name", bucket);
	resp = dc_http_execute(server, dc_s3_request(server, op, "HEAD", bucket, NULL,
												 NIL, NULL, 0, NULL));
	existed = resp->status < 300;

	/* outside us-east-1, AWS wants the region named in the body */
	if (region && region[0] && strcmp(region, "us-east-1") != 0)
		body = psprintf("<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>",
						dc_s3_xml_escape(region));
	req = dc_s3_request(server, op, "PUT", bucket, NULL, NIL,
						body ? body : "", body ? strlen(body) : 0,
						body ? "application/xml" : NULL);
	resp = dc_http_execute(server, req);
	if (resp->status >= 300)
	{
		DcS3Error	e;

		memset(&e, 0, sizeof(e));
		if (resp->status == 409 &&
			dc_s3_parse_error(resp->body.data, resp->body.len, &e) &&
			strcmp(e.code, "BucketAlreadyOwnedByYou") == 0)
			PG_RETURN_BOOL(false);
		dc_s3_raise(server, req, resp);
	}
	PG_RETURN_BOOL(!existed);
}

PG_FUNCTION_INFO_V1(datacore_s3_delete_bucket);

/* Delete an empty bucket. */
Datum
datacore_s3_delete_bucket(PG_FUNCTION_ARGS)
{
	const char *op = "s3_delete_bucket";
	char	   *bucket = text_to_cstring(PG_GETARG_TEXT_PP(0));
	DcServer   *server = write_server_arg(fcinfo, 1, op);

	check_name("bucket name", bucket);
	execute_ok(server, dc_s3_request(server, op, "DELETE", bucket, NULL, NIL,
									 NULL, 0, NULL));
	PG_RETURN_VOID();
}
