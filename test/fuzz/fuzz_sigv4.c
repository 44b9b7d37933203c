/*
 * fuzz_sigv4.c
 *		SigV4 canonicalisation of S3 keys, query parameters and headers
 *		(src/sigv4.c), up to the signature.
 *
 * Input: NUL-separated fields: the request path as sent, then name/value
 * pairs; pairs before an empty name are query parameters, after it
 * headers.  The canonical URI must hold only unreserved characters, '/'
 * and %XX escapes, whatever the key.
 */
#include "postgres.h"

#include "fuzzstub.h"
#include "sigv4.h"

static void
check_encoded(const char *s, bool slash_ok)
{
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (c == '%')
		{
			if (!isxdigit((unsigned char) s[1]) || !isxdigit((unsigned char) s[2]))
				abort();
			s += 2;
		}
		else if (!(isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
				   (slash_ok && c == '/')))
			abort();
	}
}

static void
one_input(const uint8_t *data, size_t size)
{
	char	   *buf = palloc(size + 2);
	char	   *p = buf;
	char	   *end = buf + size;
	const char *path;
	List	   *query = NIL;
	List	   *headers = NIL;
	bool		in_headers = false;
	DcSigV4Key key = {.access_key_id = "AKIDFUZZ", .secret_access_key = "secret",
	.region = "us-east-1", .service = "s3"};
	DcSigV4Request req = {0};
	char	   *uri;

	memcpy(buf, data, size);
	buf[size] = buf[size + 1] = '\0';
	path = p;
	p += strlen(p) + 1;
	while (p < end)
	{
		const char *name = p;
		const char *value;

		p += strlen(p) + 1;
		value = p < end ? p : "";
		if (p < end)
			p += strlen(p) + 1;
		if (*name == '\0' && !in_headers)
		{
			in_headers = true;
			continue;
		}
		if (in_headers)
			headers = lappend(headers, dc_sigv4_pair(name, value));
		else
			query = lappend(query, dc_sigv4_pair(name, value));
	}

	uri = dc_sigv4_canonical_uri(path);
	check_encoded(uri, true);
	check_encoded(dc_sigv4_encode(path, strlen(path), false), false);
	(void) dc_sigv4_canonical_query(query);

	req.method = "GET";
	req.canonical_uri = uri;
	req.query = query;
	req.headers = lappend(headers, dc_sigv4_pair("host", "127.0.0.1:9000"));
	req.payload_hash = "UNSIGNED-PAYLOAD";
	(void) dc_sigv4_sign_headers(&key, &req, "20260101T000000Z");
	(void) dc_sigv4_presign(&key, &req, "20260101T000000Z", 3600);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	DC_FUZZ_RUN(one_input(data, size));
	return 0;
}
