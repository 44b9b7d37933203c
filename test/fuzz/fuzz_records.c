/*
 * fuzz_records.c
 *		The jsonl/csv record splitter of the S3 foreign table (next_record
 *		and csv_fields in src/fdw_s3.c, included here for its static
 *		functions), fed the object in reads of varying sizes as the stream
 *		delivers it.
 *
 * Input: byte 0 bit 0 = csv (else jsonl); byte 1 = max_record_bytes / 16
 * (0 = no practical limit); bytes 2-3 = read sizes seed; the rest is the
 * object.
 */
#include "../../src/fdw_s3.c"

#include "fuzzstub.h"

static const uint8_t *feed;
static size_t feed_len;
static size_t feed_pos;
static unsigned feed_seed;

/* The stream: hands out the object in pseudo-random pieces of 1..4096 bytes. */
bool
dc_http_read(DcHttpStream *stream, StringInfo out)
{
	size_t		n;

	if (feed_pos >= feed_len)
		return false;
	feed_seed = feed_seed * 1103515245 + 12345;
	n = Min(feed_len - feed_pos, (size_t) ((feed_seed >> 16) % 4096) + 1);
	appendBinaryStringInfo(out, (const char *) feed + feed_pos, n);
	feed_pos += n;
	return true;
}

void
dc_http_close(DcHttpStream *stream)
{
}

static void
one_input(const uint8_t *data, size_t size)
{
	S3ScanState st = {0};
	char	   *rec;
	int			len;

	st.opts.format = (data[0] & 1) ? FMT_CSV : FMT_JSONL;
	st.opts.bucket = "fuzz";
	st.opts.delimiter = ',';
	st.cur_key = "object";
	st.max_record_bytes = data[1] ? data[1] * 16 : INT64CONST(1) << 30;
	st.stream = (DcHttpStream *) &st;	/* any non-NULL handle */
	feed_seed = data[2] | (data[3] << 8);
	feed = data + 4;
	feed_len = size - 4;
	feed_pos = 0;
	initStringInfo(&st.buf);

	while (next_record(&st, &rec, &len))
	{
		if ((int) strlen(rec) > len)
			abort();			/* the record is NUL-terminated at len */
		if (st.opts.format == FMT_CSV)
			(void) csv_fields(rec, st.opts.delimiter);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	DC_FUZZ_RUN(one_input(data, size));
	return 0;
}
