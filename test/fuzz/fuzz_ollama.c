/*
 * fuzz_ollama.c
 *		Ollama reply bodies: a single JSON object or an NDJSON stream folded
 *		into one (parse_reply / merge_stream in src/ollama.c, included here
 *		for its static functions), and the scanners of src/ollama_vectors.c
 *		that read /api/embed vectors and one member without a JSON tree.
 *
 * First byte: bit 0 = Content-Type application/x-ndjson (else
 * application/json); bits 1-2 = how many vectors the embed scanner
 * expects (1-4).  The rest is the body.
 */
#include "../../src/ollama.c"

#include "fuzzstub.h"

static DcServer server = {.service = DC_SERVICE_OLLAMA, .servername = "fuzz"};

static void
one_input(const uint8_t *data, size_t size)
{
	DcHttpResponse resp = {.status = 200};
	DcHttpHeader *ct = palloc(sizeof(DcHttpHeader));
	char	   *body = palloc(size);	/* the last byte becomes the NUL */
	size_t		len = size - 1;
	int			n = ((data[0] >> 1) & 3) + 1;
	int			dim = 0;
	Datum		vectors[4];
	const char *v;
	size_t		vlen;

	memcpy(body, data + 1, len);
	body[len] = '\0';
	ct->name = "content-type";
	ct->value = (data[0] & 1) ? "application/x-ndjson" : "application/json";
	resp.headers = list_make1(ct);
	resp.body.data = body;
	resp.body.len = len;
	resp.body.maxlen = len + 1;

	(void) dc_ollama_fast_embeddings(body, len, n, &dim, vectors);
	(void) dc_ollama_fast_member(body, len, "response", &v, &vlen);
	(void) parse_reply(&server, "ollama_generate", &resp);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	dc_fuzz_init();
	dc_json_init();
	DC_FUZZ_RUN(one_input(data, size));
	return 0;
}
