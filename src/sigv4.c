/*-------------------------------------------------------------------------
 *
 * sigv4.c
 *		AWS Signature Version 4 as S3 wants it: path encoded once, query
 *		canonicalised, headers trimmed and sorted, then the HMAC chain.
 *
 * Hashing uses PostgreSQL's common/ SHA-256 and HMAC (OpenSSL-backed in
 * most builds, tracked by the resource owner so nothing leaks on ERROR).
 * libcurl's own signer is not used: it cannot presign, and old releases
 * mis-sign queries and omit x-amz-content-sha256.
 *
 * datacore.s3_sigv4_sign() exposes the signer to SQL so the regression
 * suite can check it against the published AWS test vectors.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "common/cryptohash.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "catalog/pg_type.h"
#include "utils/jsonb.h"

#include "sigv4.h"

#define AWS4_ALGORITHM "AWS4-HMAC-SHA256"

DcSigV4Pair *
dc_sigv4_pair(const char *name, const char *value)
{
	DcSigV4Pair *p = palloc(sizeof(DcSigV4Pair));

	p->name = pstrdup(name);
	p->value = pstrdup(value ? value : "");
	return p;
}

/*
 * URI-encode the AWS way: every byte except A-Z a-z 0-9 - _ . ~ becomes
 * %XX with upper-case hex; '/' is kept only when keep_slash.  Space is %20,
 * never '+'.
 */
char *
dc_sigv4_encode(const char *s, size_t len, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	StringInfoData buf;
	size_t		i;

	initStringInfo(&buf);
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
			c == '~' || (keep_slash && c == '/'))
			appendStringInfoChar(&buf, (char) c);
		else
		{
			appendStringInfoChar(&buf, '%');
			appendStringInfoChar(&buf, hex[c >> 4]);
			appendStringInfoChar(&buf, hex[c & 15]);
		}
	}
	return buf.data;
}

/* S3 canonical URI of a raw path: encoded once, slashes (also "//") kept. */
char *
dc_sigv4_encode_path(const char *path)
{
	if (path[0] == '\0')
		return pstrdup("/");
	return dc_sigv4_encode(path, strlen(path), true);
}

/* Percent-decode a path or query component as a server would ('+' stays '+'). */
static char *
pct_decode(const char *s, int len)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < len; i++)
	{
		if (s[i] == '%' && i + 2 < len &&
			isxdigit((unsigned char) s[i + 1]) &&
			isxdigit((unsigned char) s[i + 2]))
		{
			char		h[3] = {s[i + 1], s[i + 2], '\0'};

			appendStringInfoChar(&buf, (char) strtol(h, NULL, 16));
			i += 2;
		}
		else
			appendStringInfoChar(&buf, s[i]);
	}
	return buf.data;
}

/*
 * The canonical URI an S3 server computes for a path as it was sent: the
 * path percent-decoded once, then encoded again with slashes kept (MinIO,
 * Ceph's radosgw).  Nothing is normalised.
 */
char *
dc_sigv4_canonical_uri(const char *sent_path)
{
	return dc_sigv4_encode_path(pct_decode(sent_path, strlen(sent_path)));
}

static int
pair_cmp(const ListCell *a, const ListCell *b)
{
	const DcSigV4Pair *pa = lfirst(a);
	const DcSigV4Pair *pb = lfirst(b);
	int			r = strcmp(pa->name, pb->name);

	return r != 0 ? r : strcmp(pa->value, pb->value);
}

/*
 * The canonical query string: names and values encoded (slash too), pairs
 * sorted by encoded name, then value; a valueless parameter is "name=".
 * The same string is sent as the URL's query, so what is signed is
 * exactly what goes on the wire.
 */
char *
dc_sigv4_canonical_query(List *params)
{
	List	   *enc = NIL;
	ListCell   *lc;
	StringInfoData buf;

	foreach(lc, params)
	{
		DcSigV4Pair *p = lfirst(lc);
		DcSigV4Pair *e = palloc(sizeof(DcSigV4Pair));

		e->name = dc_sigv4_encode(p->name, strlen(p->name), false);
		e->value = dc_sigv4_encode(p->value, strlen(p->value), false);
		enc = lappend(enc, e);
	}
	list_sort(enc, pair_cmp);

	initStringInfo(&buf);
	foreach(lc, enc)
	{
		DcSigV4Pair *e = lfirst(lc);

		if (buf.len > 0)
			appendStringInfoChar(&buf, '&');
		appendStringInfo(&buf, "%s=%s", e->name, e->value);
	}
	return buf.data;
}

static void crypto_failed(const char *what, const char *detail) pg_attribute_noreturn();

static void
crypto_failed(const char *what, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("could not compute %s for an S3 signature", what),
			 errdetail_internal("%s", detail ? detail : "unknown error")));
}

void
dc_sha256(const void *data, size_t len, uint8 *out)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL)
		crypto_failed("SHA-256", "out of memory");
	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0 ||
		pg_cryptohash_final(ctx, out, PG_SHA256_DIGEST_LENGTH) < 0)
		crypto_failed("SHA-256", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
}

static char *
to_hex(const uint8 *d, int n)
{
	static const char hex[] = "0123456789abcdef";
	char	   *s = palloc(n * 2 + 1);
	int			i;

	for (i = 0; i < n; i++)
	{
		s[2 * i] = hex[d[i] >> 4];
		s[2 * i + 1] = hex[d[i] & 15];
	}
	s[2 * n] = '\0';
	return s;
}

char *
dc_sha256_hex(const void *data, size_t len)
{
	uint8		d[PG_SHA256_DIGEST_LENGTH];

	dc_sha256(data, len, d);
	return to_hex(d, PG_SHA256_DIGEST_LENGTH);
}

static void
hmac_sha256(const uint8 *key, size_t keylen, const char *msg, uint8 *out)
{
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);

	if (ctx == NULL)
		crypto_failed("HMAC-SHA256", "out of memory");
	if (pg_hmac_init(ctx, key, keylen) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) msg, strlen(msg)) < 0 ||
		pg_hmac_final(ctx, out, PG_SHA256_DIGEST_LENGTH) < 0)
		crypto_failed("HMAC-SHA256", pg_hmac_error(ctx));
	pg_hmac_free(ctx);
}

/*
 * kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
 * "aws4_request").  The intermediate keys are wiped.
 */
void
dc_sigv4_signing_key(const char *secret, const char *date, const char *region,
					 const char *service, uint8 *out)
{
	size_t		slen = strlen(secret);
	uint8	   *k0 = palloc(slen + 4);
	uint8		k1[PG_SHA256_DIGEST_LENGTH];
	uint8		k2[PG_SHA256_DIGEST_LENGTH];
	uint8		k3[PG_SHA256_DIGEST_LENGTH];

	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, secret, slen);
	hmac_sha256(k0, slen + 4, date, k1);
	hmac_sha256(k1, sizeof(k1), region, k2);
	hmac_sha256(k2, sizeof(k2), service, k3);
	hmac_sha256(k3, sizeof(k3), "aws4_request", out);
	explicit_bzero(k0, slen + 4);
	explicit_bzero(k1, sizeof(k1));
	explicit_bzero(k2, sizeof(k2));
	explicit_bzero(k3, sizeof(k3));
	pfree(k0);
}

/* Current UTC time as YYYYMMDD'T'HHMMSS'Z' into out[17]. */
void
dc_sigv4_amz_date(char *out)
{
	time_t		now = time(NULL);
	struct tm	tm;

	gmtime_r(&now, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* Header value as SigV4 wants it: trimmed, inner blank runs collapsed. */
static char *
trim_value(const char *v)
{
	StringInfoData buf;
	bool		blank = false;

	initStringInfo(&buf);
	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v; v++)
	{
		if (*v == ' ' || *v == '\t')
			blank = true;
		else
		{
			if (blank && buf.len > 0)
				appendStringInfoChar(&buf, ' ');
			blank = false;
			appendStringInfoChar(&buf, *v);
		}
	}
	return buf.data;
}

/* A header being canonicalised; seq keeps repeated headers in order. */
typedef struct CanonHeader
{
	char	   *name;
	char	   *value;
	int			seq;
} CanonHeader;

static int
header_cmp(const ListCell *a, const ListCell *b)
{
	const CanonHeader *ha = lfirst(a);
	const CanonHeader *hb = lfirst(b);
	int			r = strcmp(ha->name, hb->name);

	return r != 0 ? r : ha->seq - hb->seq;
}

/*
 * Canonical header block ("name:value\n" per header, sorted, repeats
 * merged with ',') and the signed-headers list ("a;b;c").
 */
static void
canonical_headers(List *headers, StringInfo block, StringInfo names)
{
	List	   *hdrs = NIL;
	ListCell   *lc;
	CanonHeader *prev = NULL;

	foreach(lc, headers)
	{
		DcSigV4Pair *p = lfirst(lc);
		CanonHeader *c = palloc(sizeof(CanonHeader));
		char	   *s;

		c->name = pstrdup(p->name);
		for (s = c->name; *s; s++)
			*s = pg_ascii_tolower((unsigned char) *s);
		c->value = trim_value(p->value);
		c->seq = foreach_current_index(lc);
		hdrs = lappend(hdrs, c);
	}
	list_sort(hdrs, header_cmp);

	foreach(lc, hdrs)
	{
		CanonHeader *c = lfirst(lc);

		if (prev && strcmp(prev->name, c->name) == 0)
		{
			/* a repeated header continues the previous line */
			block->len--;
			block->data[block->len] = '\0';
			appendStringInfo(block, ",%s\n", c->value);
			continue;
		}
		appendStringInfo(block, "%s:%s\n", c->name, c->value);
		if (names->len > 0)
			appendStringInfoChar(names, ';');
		appendStringInfoString(names, c->name);
		prev = c;
	}
}

/*
 * Canonical request, string to sign and signature for "query" (the
 * canonical query, presign parameters included).  Fills res.
 */
static void
sign(const DcSigV4Key *key, const DcSigV4Request *req, const char *amz_date,
	 const char *query, const char *header_block, const char *signed_headers,
	 DcSigV4Result *res)
{
	StringInfoData cr;
	StringInfoData sts;
	char		date[9];
	uint8		ksigning[PG_SHA256_DIGEST_LENGTH];
	uint8		sig[PG_SHA256_DIGEST_LENGTH];

	initStringInfo(&cr);
	appendStringInfo(&cr, "%s\n%s\n%s\n%s\n%s\n%s",
					 req->method, req->canonical_uri, query, header_block,
					 signed_headers, req->payload_hash);

	memcpy(date, amz_date, 8);
	date[8] = '\0';
	initStringInfo(&sts);
	appendStringInfo(&sts, AWS4_ALGORITHM "\n%s\n%s/%s/%s/aws4_request\n%s",
					 amz_date, date, key->region, key->service,
					 dc_sha256_hex(cr.data, cr.len));

	dc_sigv4_signing_key(key->secret_access_key, date, key->region,
						 key->service, ksigning);
	hmac_sha256(ksigning, sizeof(ksigning), sts.data, sig);
	explicit_bzero(ksigning, sizeof(ksigning));

	res->canonical_request = cr.data;
	res->string_to_sign = sts.data;
	res->signature = to_hex(sig, sizeof(sig));
	res->signed_headers = pstrdup(signed_headers);
	res->canonical_query = pstrdup(query);
}

static void
check_amz_date(const char *amz_date)
{
	if (strlen(amz_date) != 16 || amz_date[8] != 'T' || amz_date[15] != 'Z')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid SigV4 timestamp \"%s\"", amz_date),
				 errhint("Use the form YYYYMMDDTHHMMSSZ.")));
}

/*
 * Sign for an Authorization header.  req->headers must already hold every
 * header to sign (host, x-amz-date, x-amz-content-sha256, and
 * x-amz-security-token with temporary credentials).
 */
DcSigV4Result *
dc_sigv4_sign_headers(const DcSigV4Key *key, const DcSigV4Request *req,
					  const char *amz_date)
{
	DcSigV4Result *res = palloc0(sizeof(DcSigV4Result));
	StringInfoData block;
	StringInfoData names;
	char		date[9];

	check_amz_date(amz_date);
	initStringInfo(&block);
	initStringInfo(&names);
	canonical_headers(req->headers, &block, &names);
	sign(key, req, amz_date, dc_sigv4_canonical_query(req->query),
		 block.data, names.data, res);

	memcpy(date, amz_date, 8);
	date[8] = '\0';
	res->authorization = psprintf(AWS4_ALGORITHM " Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
								  key->access_key_id, date, key->region,
								  key->service, names.data, res->signature);
	return res;
}

/*
 * Presign: the X-Amz-* parameters join req->query, the payload line is
 * req->payload_hash (UNSIGNED-PAYLOAD for S3).  res->canonical_query plus
 * "&X-Amz-Signature=" + res->signature is the URL's query.
 */
DcSigV4Result *
dc_sigv4_presign(const DcSigV4Key *key, const DcSigV4Request *req,
				 const char *amz_date, int expires)
{
	DcSigV4Result *res = palloc0(sizeof(DcSigV4Result));
	StringInfoData block;
	StringInfoData names;
	List	   *query = list_copy(req->query);
	char		date[9];

	check_amz_date(amz_date);
	memcpy(date, amz_date, 8);
	date[8] = '\0';
	initStringInfo(&block);
	initStringInfo(&names);
	canonical_headers(req->headers, &block, &names);

	query = lappend(query, dc_sigv4_pair("X-Amz-Algorithm", AWS4_ALGORITHM));
	query = lappend(query, dc_sigv4_pair("X-Amz-Credential",
										 psprintf("%s/%s/%s/%s/aws4_request",
												  key->access_key_id, date,
												  key->region, key->service)));
	query = lappend(query, dc_sigv4_pair("X-Amz-Date", amz_date));
	query = lappend(query, dc_sigv4_pair("X-Amz-Expires", psprintf("%d", expires)));
	query = lappend(query, dc_sigv4_pair("X-Amz-SignedHeaders", names.data));
	if (key->session_token)
		query = lappend(query, dc_sigv4_pair("X-Amz-Security-Token", key->session_token));

	sign(key, req, amz_date, dc_sigv4_canonical_query(query),
		 block.data, names.data, res);
	return res;
}

/* ---------- SQL access for tests ---------- */

/* "a=1&b&c=%2F" into raw pairs. */
static List *
parse_query(const char *q)
{
	List	   *out = NIL;

	while (q && *q)
	{
		const char *amp = strchr(q, '&');
		int			len = amp ? amp - q : strlen(q);
		const char *eq = memchr(q, '=', len);

		if (len > 0)
		{
			DcSigV4Pair *p = palloc(sizeof(DcSigV4Pair));

			p->name = pct_decode(q, eq ? eq - q : len);
			p->value = eq ? pct_decode(eq + 1, len - (eq - q) - 1) : pstrdup("");
			out = lappend(out, p);
		}
		q = amp ? amp + 1 : NULL;
	}
	return out;
}

static void
add_pair(JsonbParseState **st, const char *k, const char *v)
{
	JsonbValue	jk;
	JsonbValue	jv;

	jk.type = jbvString;
	jk.val.string.val = (char *) k;
	jk.val.string.len = strlen(k);
	pushJsonbValue(st, WJB_KEY, &jk);
	jv.type = jbvString;
	jv.val.string.val = (char *) v;
	jv.val.string.len = strlen(v);
	pushJsonbValue(st, WJB_VALUE, &jv);
}

PG_FUNCTION_INFO_V1(datacore_s3_sigv4_sign);

/*
 * s3_sigv4_sign(method, path, query, headers text[], payload_hash,
 *				 access_key_id, secret_access_key, region, service, amz_date,
 *				 presign_expires int, session_token) → jsonb
 *
 * Runs the signer on caller-supplied inputs, no network: path is the raw
 * (unencoded) path, query a raw query string, headers "Name: value"
 * strings.  Returns the intermediate strings so a test can compare them
 * with published vectors.  The secret is an argument, never a stored one.
 */
Datum
datacore_s3_sigv4_sign(PG_FUNCTION_ARGS)
{
	DcSigV4Key	key;
	DcSigV4Request req;
	DcSigV4Result *res;
	char	   *amz_date;
	JsonbParseState *st = NULL;
	JsonbValue *top;

	for (int i = 0; i < 10; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("s3_sigv4_sign arguments 1 to 10 must not be null")));

	memset(&req, 0, sizeof(req));
	req.method = text_to_cstring(PG_GETARG_TEXT_PP(0));
	req.canonical_uri = dc_sigv4_encode_path(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	req.query = parse_query(text_to_cstring(PG_GETARG_TEXT_PP(2)));
	req.payload_hash = text_to_cstring(PG_GETARG_TEXT_PP(4));

	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(3);
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
		{
			char	   *h;
			char	   *colon;

			if (nulls[i])
				continue;
			h = TextDatumGetCString(elems[i]);
			colon = strchr(h, ':');
			if (colon == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("header \"%s\" has no colon", h)));
			*colon = '\0';
			req.headers = lappend(req.headers, dc_sigv4_pair(h, colon + 1));
		}
	}

	key.access_key_id = text_to_cstring(PG_GETARG_TEXT_PP(5));
	key.secret_access_key = text_to_cstring(PG_GETARG_TEXT_PP(6));
	key.region = text_to_cstring(PG_GETARG_TEXT_PP(7));
	key.service = text_to_cstring(PG_GETARG_TEXT_PP(8));
	key.session_token = PG_ARGISNULL(11) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(11));
	amz_date = text_to_cstring(PG_GETARG_TEXT_PP(9));

	if (PG_ARGISNULL(10))
		res = dc_sigv4_sign_headers(&key, &req, amz_date);
	else
		res = dc_sigv4_presign(&key, &req, amz_date, PG_GETARG_INT32(10));

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	add_pair(&st, "canonical_request", res->canonical_request);
	add_pair(&st, "canonical_request_hash",
			 dc_sha256_hex(res->canonical_request, strlen(res->canonical_request)));
	add_pair(&st, "string_to_sign", res->string_to_sign);
	add_pair(&st, "signature", res->signature);
	add_pair(&st, "signed_headers", res->signed_headers);
	add_pair(&st, "canonical_query", res->canonical_query);
	if (res->authorization)
		add_pair(&st, "authorization", res->authorization);
	top = pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(top));
}

PG_FUNCTION_INFO_V1(datacore_s3_sigv4_signing_key);

/* s3_sigv4_signing_key(secret, date, region, service) → hex kSigning. */
Datum
datacore_s3_sigv4_signing_key(PG_FUNCTION_ARGS)
{
	uint8		k[PG_SHA256_DIGEST_LENGTH];

	dc_sigv4_signing_key(text_to_cstring(PG_GETARG_TEXT_PP(0)),
						 text_to_cstring(PG_GETARG_TEXT_PP(1)),
						 text_to_cstring(PG_GETARG_TEXT_PP(2)),
						 text_to_cstring(PG_GETARG_TEXT_PP(3)), k);
	PG_RETURN_TEXT_P(cstring_to_text(to_hex(k, sizeof(k))));
}
