/*
 * fuzz_qdrant.c
 *		Qdrant reply bodies: dc_json_parse (ids above INT64_MAX kept as
 *		text), every "id" found turned into text as the scans do, and the
 *		reply's result turned into jsonb.
 */
#include "postgres.h"

#include "fuzzstub.h"
#include "json.h"
#include "qdrant.h"

static DcServer server = {.service = DC_SERVICE_QDRANT, .servername = "fuzz"};

/* Every member named "id", at any depth, as a scan reads point ids. */
static void
walk_ids(json_t *v, int depth)
{
	const char *key;
	json_t	   *member;
	size_t		i;

	if (depth > 64)
		return;
	if (json_is_object(v))
	{
		json_object_foreach(v, key, member)
		{
			if (strcmp(key, "id") == 0 || strcmp(key, "next_page_offset") == 0)
			{
				PG_TRY();
				{
					(void) dc_qdrant_id_to_text(&server, "qdrant_get", member);
				}
				PG_CATCH();
				{
				}
				PG_END_TRY();
			}
			walk_ids(member, depth + 1);
		}
	}
	else if (json_is_array(v))
		for (i = 0; i < json_array_size(v); i++)
			walk_ids(json_array_get(v, i), depth + 1);
}

static void
one_input(const uint8_t *data, size_t size)
{
	json_t	   *reply = dc_json_parse(&server, "qdrant_search", (const char *) data, size);
	json_t	   *result = json_object_get(reply, "result");

	walk_ids(reply, 0);
	(void) dc_json_dumps(reply);
	if (result)
		(void) dc_json_to_jsonb(result);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	dc_fuzz_init();
	dc_json_init();
	DC_FUZZ_RUN(one_input(data, size));
	return 0;
}
