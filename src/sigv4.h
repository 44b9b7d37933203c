/*-------------------------------------------------------------------------
 *
 * sigv4.h
 *		AWS Signature Version 4 for S3: canonical requests, header
 *		signatures and presigned query strings.
 *
 * The signer is self-contained (PostgreSQL's own SHA-256 and HMAC) so it
 * can be checked against the published test vectors without a network.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DATACORE_SIGV4_H
#define DATACORE_SIGV4_H

#include "nodes/pg_list.h"

#define DC_SHA256_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define DC_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

/* A query parameter or header: raw (not yet encoded) name and value. */
typedef struct DcSigV4Pair
{
	char	   *name;
	char	   *value;
} DcSigV4Pair;

/* Who signs, for which scope. */
typedef struct DcSigV4Key
{
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;	/* NULL unless temporary credentials */
	const char *region;
	const char *service;		/* "s3" except in tests */
} DcSigV4Key;

/* What gets signed. */
typedef struct DcSigV4Request
{
	const char *method;
	const char *canonical_uri;	/* already encoded, see dc_sigv4_encode_path */
	List	   *query;			/* DcSigV4Pair *, raw */
	List	   *headers;		/* DcSigV4Pair *, every header to sign */
	const char *payload_hash;	/* hex SHA-256 or UNSIGNED-PAYLOAD */
} DcSigV4Request;

/* Everything a caller or a test may want to look at. */
typedef struct DcSigV4Result
{
	char	   *canonical_request;
	char	   *string_to_sign;
	char	   *signature;		/* lower-case hex */
	char	   *signed_headers; /* "host;x-amz-date" */
	char	   *canonical_query;	/* the query string to send (presign: w/o signature) */
	char	   *authorization;	/* header value (header signing only) */
} DcSigV4Result;

extern DcSigV4Pair *dc_sigv4_pair(const char *name, const char *value);
extern char *dc_sigv4_encode(const char *s, size_t len, bool keep_slash);
extern char *dc_sigv4_encode_path(const char *path);
extern char *dc_sigv4_canonical_uri(const char *sent_path);
extern char *dc_sigv4_canonical_query(List *params);
extern void dc_sha256(const void *data, size_t len, uint8 *out);
extern char *dc_sha256_hex(const void *data, size_t len);
extern void dc_sigv4_signing_key(const char *secret, const char *date,
								 const char *region, const char *service,
								 uint8 *out);
extern void dc_sigv4_amz_date(char *out);
extern DcSigV4Result *dc_sigv4_sign_headers(const DcSigV4Key *key,
											const DcSigV4Request *req,
											const char *amz_date);
extern DcSigV4Result *dc_sigv4_presign(const DcSigV4Key *key,
									   const DcSigV4Request *req,
									   const char *amz_date, int expires);

#endif							/* DATACORE_SIGV4_H */
