/*
 * fuzz_resp.c
 *		RESP bytes, read by hiredis as datacore reads them, turned into jsonb
 *		and text by src/redis_reply.c.
 *
 * The reader is bounded as datacore bounds it (an array header longer than
 * the byte limit allows is refused before hiredis allocates for it).  The
 * first byte picks the conversion (any reply → jsonb, HGETALL-style
 * flat array → jsonb object, reply → text); the rest is what a server sent.
 */
#include "postgres.h"

#include <hiredis/hiredis.h>

#include "fuzzstub.h"
#include "datacore.h"
#include "redis.h"

static DcServer server = {.service = DC_SERVICE_REDIS, .servername = "fuzz"};

static void
convert(int how, redisReply *reply)
{
	switch (how % 3)
	{
		case 0:
			(void) dc_redis_reply_jsonb(&server, reply);
			break;
		case 1:
			(void) dc_redis_hash_jsonb(&server, "redis_hgetall", reply);
			break;
		default:
			/* callers check the type first (redis.c, reply_is_value) */
			if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS)
				(void) dc_redis_reply_text(&server, "redis reply", reply);
			break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	redisReader *reader;
	void	   *reply = NULL;

	if (size < 1)
		return 0;
	reader = redisReaderCreate();
	/* as read_reply() does, with the default max_response_bytes */
	dc_redis_bound_reader(reader, INT64CONST(64) * 1024 * 1024);
	if (redisReaderFeed(reader, (const char *) data + 1, size - 1) == REDIS_OK)
	{
		while (redisReaderGetReply(reader, &reply) == REDIS_OK && reply != NULL)
		{
			redisReply *volatile r = reply;

			DC_FUZZ_RUN(convert(data[0], r));
			freeReplyObject(r);
			reply = NULL;
		}
	}
	redisReaderFree(reader);
	return 0;
}
