/*
 * fuzz_s3xml.c
 *		S3 XML answers (src/s3xml.c): ListObjectsV2 pages, <Error>
 *		documents, InitiateMultipartUpload and CompleteMultipartUpload
 *		results.  The first byte picks the parser; the rest is the body.
 */
#include "postgres.h"

#include "fuzzstub.h"
#include "s3.h"

static DcServer server = {.service = DC_SERVICE_S3, .servername = "fuzz"};

static void
one_input(const uint8_t *data, size_t size)
{
	const char *body = (const char *) data + 1;
	size_t		len = size - 1;
	DcS3Error	err = {0};

	switch (data[0] % 4)
	{
		case 0:
			(void) dc_s3_parse_list(&server, "s3_list", body, len);
			break;
		case 1:
			(void) dc_s3_parse_error(body, len, &err);
			break;
		case 2:
			(void) dc_s3_parse_upload_id(&server, "s3_put", body, len);
			break;
		default:
			(void) dc_s3_parse_complete(&server, "s3_put", body, len, &err);
			break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	DC_FUZZ_RUN(one_input(data, size));
	return 0;
}
