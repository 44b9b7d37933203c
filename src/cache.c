/*-------------------------------------------------------------------------
 *
 * cache.c
 *		Model-response cache: answers of Ollama generate and chat calls kept
 *		in Redis, keyed by what determines them.
 *
 * A call is cached when it asks for it (cache_ttl argument) or when its
 * Ollama server has options cache_server and cache_ttl and the request is
 * deterministic: options.temperature = 0 or a fixed options.seed.  A
 * sampled answer is cached only on the caller's explicit request, since
 * serving it again changes what the call means.
 *
 * The key is "datacore:ollama:" followed by the SHA-256 (hex) of the
 * operation, the Ollama server's OID and the request body (model, prompt,
 * system, options, format, messages, tools: built in a fixed order, so the
 * same arguments give the same text), less keep_alive, which does not
 * change the answer.
 *
 * The cache never makes a call fail: when Redis cannot be reached the call
 * goes to the model (a miss) and its answer is not stored.  Other Redis
 * errors (a wrong password, no USAGE on the cache server) are raised, so a
 * misconfiguration shows instead of silently costing every call.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "cache.h"
#include "json.h"
#include "metrics.h"
#include "redis.h"
#include "sigv4.h"

#define CACHE_KEY_PREFIX "datacore:ollama:"

struct DcCache
{
	DcServer   *server;			/* the Ollama server */
	const char *operation;
	DcServer   *redis;
	char	   *key;
	int64		ttl_ms;
};

/* Whether the request would give the same answer again. */
static bool
deterministic(json_t *body)
{
	json_t	   *options = json_object_get(body, "options");
	json_t	   *v;

	if (!json_is_object(options))
		return false;
	if ((v = json_object_get(options, "seed")) != NULL && json_is_integer(v))
		return true;
	v = json_object_get(options, "temperature");
	return v != NULL && json_is_number(v) && json_number_value(v) == 0.0;
}

/*
 * The cache entry for a request about to be sent, or NULL when the call is
 * not cached.  call_ttl is the caller's cache_ttl argument (NULL: none).
 */
DcCache *
dc_cache_begin(DcServer *server, const char *operation, json_t *body,
			   Interval *call_ttl)
{
	const char *redis_name = dc_option(server, "cache_server");
	int			server_ttl_s = dc_option_int(server, "cache_ttl", 0);
	int64		ttl_ms;
	DcCache    *cache;
	json_t	   *keybody;
	char	   *material;

	if (call_ttl != NULL)
		ttl_ms = dc_redis_interval_ms(call_ttl, "cache_ttl");
	else if (redis_name != NULL && server_ttl_s > 0 && deterministic(body))
		ttl_ms = (int64) server_ttl_s * 1000;
	else
		return NULL;

	cache = palloc0(sizeof(DcCache));
	cache->server = server;
	cache->operation = operation;
	cache->ttl_ms = ttl_ms;
	cache->redis = dc_get_server(redis_name ? redis_name : "redis",
								 DC_SERVICE_REDIS, operation);

	keybody = json_deep_copy(body);
	json_object_del(keybody, "keep_alive");
	material = psprintf("%s\n%u\n%s", operation, server->serverid,
						dc_json_dumps(keybody));
	json_decref(keybody);
	cache->key = psprintf(CACHE_KEY_PREFIX "%s",
						  dc_sha256_hex(material, strlen(material)));
	return cache;
}

typedef struct CacheCall
{
	DcCache    *cache;
	const char *value;			/* put: the value */
	size_t		len;
	char	   *found;			/* get: the value, or NULL */
} CacheCall;

static void
cache_get(void *arg)
{
	CacheCall  *c = arg;
	DcRedisCmd *cmd = dc_redis_cmd("GET");
	redisReply *r;

	dc_redis_arg_str(cmd, c->cache->key);
	r = dc_redis_run(c->cache->redis, c->cache->operation, cmd);
	dc_redis_check_reply(c->cache->redis, c->cache->operation, r);
	if (r->type == REDIS_REPLY_STRING)
	{
		/* the value is the model's UTF-8 text or JSON, as stored */
		if (memchr(r->str, '\0', r->len) == NULL)
			c->found = pnstrdup(r->str, r->len);
	}
	else if (r->type != REDIS_REPLY_NIL)
		dc_redis_unexpected(c->cache->redis, c->cache->operation, r);
}

static void
cache_put(void *arg)
{
	CacheCall  *c = arg;
	DcRedisCmd *cmd = dc_redis_cmd("SET");

	dc_redis_arg_str(cmd, c->cache->key);
	dc_redis_arg(cmd, c->value, c->len);
	dc_redis_arg_str(cmd, "PX");
	dc_redis_arg_int64(cmd, c->cache->ttl_ms);
	dc_redis_reply_ok(c->cache->redis, c->cache->operation,
					  dc_redis_run(c->cache->redis, c->cache->operation, cmd));
}

/*
 * The stored answer (NUL-terminated, as the model sent it), or NULL on a
 * miss, including when Redis cannot be reached.  Counted as a hit or miss.
 */
char *
dc_cache_get(DcCache *cache)
{
	CacheCall	c = {cache, NULL, 0, NULL};

	if (!dc_redis_try(cache_get, &c, NULL))
		c.found = NULL;
	dc_metrics_cache(cache->server, cache->operation, c.found != NULL);
	return c.found;
}

/* Store an answer; an unreachable Redis is not an error. */
void
dc_cache_put(DcCache *cache, const char *value, size_t len)
{
	CacheCall	c = {cache, value, len, NULL};

	(void) dc_redis_try(cache_put, &c, NULL);
}
