/*-------------------------------------------------------------------------
 *
 * metrics.c
 *		Counters per (database, server, operation), kept in a fixed-size
 *		shared-memory table so that a monitoring query sees the requests of
 *		every backend, and their exposition to SQL.
 *
 * Table: datacore.metrics_max_entries slots (default 1000), filled in the
 * order keys first appear and emptied only by datacore.reset_metrics().
 * Operations are the SQL-level names compiled into the module and servers
 * are catalog objects, so the key set is bounded by what an administrator
 * created; when the table is full anyway, a new key's requests are not
 * recorded and datacore_metrics_overflow_total counts them instead.
 *
 * Hot path: a backend remembers which slot holds each key it has used, so
 * recording takes no lock but the slot's own spinlock (held for a few
 * additions).  The table-wide LWLock is taken only to add a key, to read
 * the table and to reset it.  A reset bumps a generation number; a
 * backend that finds its remembered slot emptied or reused looks the key
 * up again, so no count lands on another key.
 *
 * Without shared_preload_libraries there is no shared memory to ask for;
 * each backend then counts its own requests only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>
#include <hiredis/hiredis.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "http.h"
#include "metrics.h"

#define OPERATION_LEN	48

/*
 * SQLSTATE classes errors are counted under; anything else is "other".
 * A fixed list keeps the label set bounded.
 */
static const char *const error_classes[] = {
	"08",						/* connection: refused, timeout, 429, 502-504 */
	"22",						/* data exception: bad request (400, 422) */
	"28",						/* authorization (401, 403, Redis NOAUTH) */
	"42",						/* undefined object, privilege (404, 409) */
	"53",						/* out of memory */
	"54",						/* size limit (413, max_response_bytes) */
	"HV",						/* other remote error */
	"other"
};

#define NCLASSES	lengthof(error_classes)

/* Latency histogram upper bounds in seconds; the last bucket is +Inf. */
static const double bucket_bounds[] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30, 60
};

#define NBUCKETS	(lengthof(bucket_bounds) + 1)

typedef struct MetricsKey
{
	Oid			dbid;
	Oid			serverid;
	char		operation[OPERATION_LEN];
} MetricsKey;

typedef struct MetricsCounters
{
	uint64		requests;
	uint64		retries;
	uint64		sent_bytes;
	uint64		received_bytes;
	uint64		errors[NCLASSES];
	uint64		buckets[NBUCKETS];	/* not cumulative */
	uint64		latency_us;		/* sum over the histogram's observations */
	uint64		prompt_tokens;
	uint64		eval_tokens;
	uint64		cache_hits;
	uint64		cache_misses;
} MetricsCounters;

typedef struct MetricsEntry
{
	slock_t		mutex;			/* protects everything below */
	bool		used;
	MetricsKey	key;
	NameData	servername;		/* label; refreshed if the server is renamed */
	int			service;		/* DcService */
	MetricsCounters c;
} MetricsEntry;

typedef struct MetricsTable
{
	LWLock	   *lock;			/* NULL in the backend-local fallback */
	int			max_entries;
	int			nused;			/* entries[0 .. nused-1] hold keys */
	pg_atomic_uint32 generation;	/* bumped by each reset */
	pg_atomic_uint64 overflow;	/* recordings dropped: table full */
	TimestampTz reset_at;
	MetricsEntry entries[FLEXIBLE_ARRAY_MEMBER];
} MetricsTable;

/* A backend's memory of where its keys live. */
typedef struct LocalSlot
{
	MetricsKey	key;			/* hash key, must be first */
	uint32		generation;
	int			slot;			/* -1: table was full */
} LocalSlot;

static int	max_entries_guc = 1000;
static bool track_metrics = true;
static MetricsTable *table = NULL;
static HTAB *local_slots = NULL;

static Size
table_size(int n)
{
	return add_size(offsetof(MetricsTable, entries),
					mul_size(sizeof(MetricsEntry), n));
}

void
dc_metrics_init(void)
{
	DefineCustomIntVariable("datacore.metrics_max_entries",
							"Number of (database, server, operation) keys the metrics table holds.",
							"When the table is full, requests of a new key are counted only in datacore_metrics_overflow_total.",
							&max_entries_guc,
							1000, 16, 100000,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("datacore.track_metrics",
							 "Count requests in the metrics table.",
							 NULL,
							 &track_metrics,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
}

void
dc_metrics_request_shmem(void)
{
	RequestAddinShmemSpace(MAXALIGN(table_size(max_entries_guc)));
	RequestNamedLWLockTranche("datacore_metrics", 1);
}

static void
table_init(MetricsTable *t, int n)
{
	int			i;

	t->max_entries = n;
	t->nused = 0;
	pg_atomic_init_u32(&t->generation, 1);
	pg_atomic_init_u64(&t->overflow, 0);
	t->reset_at = GetCurrentTimestamp();
	for (i = 0; i < n; i++)
	{
		SpinLockInit(&t->entries[i].mutex);
		t->entries[i].used = false;
	}
}

void
dc_metrics_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	table = ShmemInitStruct("datacore metrics", table_size(max_entries_guc), &found);
	if (!found)
	{
		table_init(table, max_entries_guc);
		table->lock = &(GetNamedLWLockTranche("datacore_metrics"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* The table, or this backend's own when the library was not preloaded. */
static MetricsTable *
get_table(void)
{
	if (table == NULL)
	{
		table = MemoryContextAllocExtended(TopMemoryContext,
										   table_size(max_entries_guc),
										   MCXT_ALLOC_NO_OOM);
		if (table == NULL)
			return NULL;
		table_init(table, max_entries_guc);
		table->lock = NULL;
	}
	return table;
}

static void
lock_table(MetricsTable *t, LWLockMode mode)
{
	if (t->lock)
		LWLockAcquire(t->lock, mode);
}

static void
unlock_table(MetricsTable *t)
{
	if (t->lock)
		LWLockRelease(t->lock);
}

static bool
key_equal(const MetricsKey *a, const MetricsKey *b)
{
	return a->dbid == b->dbid && a->serverid == b->serverid &&
		strcmp(a->operation, b->operation) == 0;
}

/* Index of key in the table (added if "create" and there is room), or -1. */
static int
shared_slot(MetricsTable *t, const MetricsKey *key, DcServer *server,
			bool create)
{
	int			i;
	int			slot = -1;

	lock_table(t, LW_SHARED);
	for (i = 0; i < t->nused && slot < 0; i++)
		if (key_equal(&t->entries[i].key, key))
			slot = i;
	unlock_table(t);
	if (slot >= 0 || !create)
		return slot;

	lock_table(t, LW_EXCLUSIVE);
	for (i = 0; i < t->nused && slot < 0; i++)
		if (key_equal(&t->entries[i].key, key))
			slot = i;
	if (slot < 0 && t->nused < t->max_entries)
	{
		MetricsEntry *e = &t->entries[t->nused];

		SpinLockAcquire(&e->mutex);
		e->key = *key;
		namestrcpy(&e->servername, server->servername);
		e->service = server->service;
		memset(&e->c, 0, sizeof(e->c));
		e->used = true;
		SpinLockRelease(&e->mutex);
		slot = t->nused++;
	}
	unlock_table(t);
	return slot;
}

/*
 * The entry for (server, operation) with its spinlock held, or NULL if it
 * cannot be had (table full, or "create" is false and the key is new to
 * this backend or the table).  Only a key new to this backend allocates,
 * and never inside an aborting transaction, so that recording from a
 * cleanup path cannot raise.
 */
static MetricsEntry *
acquire_entry(DcServer *server, const char *operation, bool create)
{
	MetricsTable *t = get_table();
	MetricsKey	key;
	LocalSlot  *local;
	uint32		gen;
	int			attempt;

	if (!track_metrics || t == NULL || server == NULL || operation == NULL)
		return NULL;
	/* while a transaction aborts, allocating (and so erring) is off limits */
	if (!IsTransactionState())
		create = false;
	if (local_slots == NULL)
	{
		HASHCTL		ctl;

		if (!create)
			return NULL;
		ctl.keysize = sizeof(MetricsKey);
		ctl.entrysize = sizeof(LocalSlot);
		ctl.hcxt = TopMemoryContext;
		local_slots = hash_create("datacore metrics slots", 32, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}

	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.serverid = server->serverid;
	strlcpy(key.operation, operation, OPERATION_LEN);

	local = hash_search(local_slots, &key, HASH_FIND, NULL);
	if (local == NULL)
	{
		if (!create)
			return NULL;
		local = hash_search(local_slots, &key, HASH_ENTER, NULL);
		local->generation = 0;	/* never current: looked up below */
	}

	for (attempt = 0; attempt < 2; attempt++)
	{
		MetricsEntry *e;

		gen = pg_atomic_read_u32(&t->generation);
		if (local->generation != gen)
		{
			int			slot = shared_slot(t, &key, server, create);

			/* not remembered: a later call may still add the key */
			if (slot < 0 && !create)
				return NULL;
			local->slot = slot;
			local->generation = gen;
		}
		if (local->slot < 0)
		{
			if (create)
				pg_atomic_fetch_add_u64(&t->overflow, 1);
			return NULL;
		}
		e = &t->entries[local->slot];
		SpinLockAcquire(&e->mutex);
		if (e->used && key_equal(&e->key, &key))
		{
			/* a renamed server keeps its counters under the new label */
			if (strcmp(NameStr(e->servername), server->servername) != 0)
				namestrcpy(&e->servername, server->servername);
			return e;
		}
		/* emptied or reused by a reset since we looked */
		SpinLockRelease(&e->mutex);
		local->generation = 0;
	}
	return NULL;
}

static void
release_entry(MetricsEntry *e)
{
	SpinLockRelease(&e->mutex);
}

static int
class_index(int sqlerrcode)
{
	char		cls[3];
	int			i;

	cls[0] = PGUNSIXBIT(sqlerrcode);
	cls[1] = PGUNSIXBIT(sqlerrcode >> 6);
	cls[2] = '\0';
	for (i = 0; i < NCLASSES - 1; i++)
		if (strcmp(error_classes[i], cls) == 0)
			return i;
	return NCLASSES - 1;
}

static void
observe_latency(MetricsCounters *c, int64 us)
{
	double		seconds;
	int			i;

	if (us < 0)
		us = 0;
	seconds = us / 1000000.0;
	for (i = 0; i < NBUCKETS - 1; i++)
		if (seconds <= bucket_bounds[i])
			break;
	c->buckets[i]++;
	c->latency_us += us;
}

/*
 * The SQLSTATE a finished transfer's outcome is raised with (0: none):
 * the same mapping http.c applies when it raises the error.
 */
static int
http_errcode(int curl_result, long status, bool too_large, bool out_of_memory)
{
	if (too_large)
		return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
	if (out_of_memory)
		return ERRCODE_OUT_OF_MEMORY;
	if (curl_result != CURLE_OK)
		return ERRCODE_CONNECTION_FAILURE;
	if (status >= 400)
		return dc_http_status_errcode(status);
	return 0;
}

void
dc_metrics_http(DcServer *server, const char *operation, void *easy,
				bool finished, int curl_result, long status, bool too_large,
				bool out_of_memory)
{
	curl_off_t	up = 0,
				down = 0,
				total_us = 0;
	long		req_header = 0,
				resp_header = 0;
	int			errcode;
	MetricsEntry *e;

	if (!track_metrics)
		return;
	if (easy)
	{
		curl_easy_getinfo((CURL *) easy, CURLINFO_SIZE_UPLOAD_T, &up);
		curl_easy_getinfo((CURL *) easy, CURLINFO_SIZE_DOWNLOAD_T, &down);
		curl_easy_getinfo((CURL *) easy, CURLINFO_REQUEST_SIZE, &req_header);
		curl_easy_getinfo((CURL *) easy, CURLINFO_HEADER_SIZE, &resp_header);
		curl_easy_getinfo((CURL *) easy, CURLINFO_TOTAL_TIME_T, &total_us);
	}
	errcode = finished ? http_errcode(curl_result, status, too_large, out_of_memory) : 0;

	/*
	 * An abandoned transfer (cancel, an error elsewhere, a scan that stopped
	 * reading) may end inside an aborting transaction: count it only if the
	 * key needs no memory.
	 */
	e = acquire_entry(server, operation, finished);
	if (e == NULL)
		return;
	e->c.requests++;
	e->c.sent_bytes += (uint64) up + (uint64) req_header;
	e->c.received_bytes += (uint64) down + (uint64) resp_header;
	if (errcode != 0)
		e->c.errors[class_index(errcode)]++;
	if (finished)
		observe_latency(&e->c, (int64) total_us);
	release_entry(e);
}

/* The SQLSTATE class a Redis error reply is raised with (see redis_conn.c). */
static int
redis_reply_class(const char *msg)
{
	if (msg == NULL)
		return class_index(ERRCODE_FDW_ERROR);
	if (strncmp(msg, "NOAUTH", 6) == 0 || strncmp(msg, "WRONGPASS", 9) == 0)
		return class_index(ERRCODE_INVALID_PASSWORD);
	if (strncmp(msg, "WRONGTYPE", 9) == 0 || strncmp(msg, "NOPERM", 6) == 0)
		return class_index(ERRCODE_WRONG_OBJECT_TYPE);
	return class_index(ERRCODE_FDW_ERROR);
}

void
dc_metrics_redis(DcServer *server, const char *operation,
				 struct redisReply **replies, int nreplies,
				 int64 sent_bytes, int64 received_bytes, TimestampTz started)
{
	TimestampTz now;
	MetricsEntry *e;
	int			i;

	if (!track_metrics)
		return;
	now = GetCurrentTimestamp();
	e = acquire_entry(server, operation, true);
	if (e == NULL)
		return;
	e->c.requests++;
	e->c.sent_bytes += Max(sent_bytes, 0);
	e->c.received_bytes += Max(received_bytes, 0);
	for (i = 0; i < nreplies; i++)
		if (replies[i] && replies[i]->type == REDIS_REPLY_ERROR)
			e->c.errors[redis_reply_class(replies[i]->str)]++;
	observe_latency(&e->c, now - started);
	release_entry(e);
}

void
dc_metrics_failure(DcServer *server, const char *operation, int sqlerrcode)
{
	MetricsEntry *e = acquire_entry(server, operation, true);

	if (e == NULL)
		return;
	e->c.requests++;
	e->c.errors[class_index(sqlerrcode)]++;
	release_entry(e);
}

void
dc_metrics_retry(DcServer *server, const char *operation)
{
	MetricsEntry *e = acquire_entry(server, operation, true);

	if (e == NULL)
		return;
	e->c.retries++;
	release_entry(e);
}

void
dc_metrics_tokens(DcServer *server, const char *operation,
				  int64 prompt_tokens, int64 eval_tokens)
{
	MetricsEntry *e;

	if (prompt_tokens <= 0 && eval_tokens <= 0)
		return;
	e = acquire_entry(server, operation, true);
	if (e == NULL)
		return;
	e->c.prompt_tokens += Max(prompt_tokens, 0);
	e->c.eval_tokens += Max(eval_tokens, 0);
	release_entry(e);
}

void
dc_metrics_cache(DcServer *server, const char *operation, bool hit)
{
	MetricsEntry *e = acquire_entry(server, operation, true);

	if (e == NULL)
		return;
	if (hit)
		e->c.cache_hits++;
	else
		e->c.cache_misses++;
	release_entry(e);
}

/* ---------- SQL ---------- */

static Datum
int8_array(const uint64 *values, int n, bool cumulative)
{
	Datum	   *d = palloc(sizeof(Datum) * n);
	uint64		sum = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		sum = cumulative ? sum + values[i] : values[i];
		d[i] = Int64GetDatum((int64) sum);
	}
	return PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

static Datum
text_array(const char *const *values, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * n);
	int			i;

	for (i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(values[i]);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

static Datum
float8_array(const double *values, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * (n + 1));
	int			i;

	for (i = 0; i < n; i++)
		d[i] = Float8GetDatum(values[i]);
	d[n] = Float8GetDatum(get_float8_infinity());
	return PointerGetDatum(construct_array(d, n + 1, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

PG_FUNCTION_INFO_V1(datacore_metrics_entries);

/*
 * metrics_entries() → one row per key of every database: the raw counters
 * with errors per class (aligned with the error_classes column) and the
 * latency histogram as cumulative counts per upper bound (latency_le).
 */
Datum
datacore_metrics_entries(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MetricsTable *t = get_table();
	MetricsEntry *copy;
	int			n = 0;
	int			i;
	Datum		classes;
	Datum		bounds;

	InitMaterializedSRF(fcinfo, 0);
	if (t == NULL)
		return (Datum) 0;

	copy = palloc(sizeof(MetricsEntry) * Max(t->max_entries, 1));
	lock_table(t, LW_SHARED);
	for (i = 0; i < t->nused; i++)
	{
		MetricsEntry *e = &t->entries[i];

		SpinLockAcquire(&e->mutex);
		if (e->used)
			copy[n++] = *e;
		SpinLockRelease(&e->mutex);
	}
	unlock_table(t);

	classes = text_array(error_classes, NCLASSES);
	bounds = float8_array(bucket_bounds, NBUCKETS - 1);
	for (i = 0; i < n; i++)
	{
		MetricsEntry *e = &copy[i];
		MetricsCounters *c = &e->c;
		Datum		values[18];
		bool		nulls[18] = {0};
		char	   *dbname = get_database_name(e->key.dbid);
		uint64		count = 0;
		int			b;

		if (dbname == NULL)
			continue;			/* dropped since */
		for (b = 0; b < NBUCKETS; b++)
			count += c->buckets[b];
		values[0] = CStringGetTextDatum(dbname);
		values[1] = CStringGetTextDatum(NameStr(e->servername));
		values[2] = CStringGetTextDatum(dc_service_name((DcService) e->service));
		values[3] = CStringGetTextDatum(e->key.operation);
		values[4] = Int64GetDatum((int64) c->requests);
		values[5] = Int64GetDatum((int64) c->retries);
		values[6] = Int64GetDatum((int64) c->sent_bytes);
		values[7] = Int64GetDatum((int64) c->received_bytes);
		values[8] = classes;
		values[9] = int8_array(c->errors, NCLASSES, false);
		values[10] = bounds;
		values[11] = int8_array(c->buckets, NBUCKETS, true);
		values[12] = Float8GetDatum(c->latency_us / 1000000.0);
		values[13] = Int64GetDatum((int64) count);
		values[14] = Int64GetDatum((int64) c->prompt_tokens);
		values[15] = Int64GetDatum((int64) c->eval_tokens);
		values[16] = Int64GetDatum((int64) c->cache_hits);
		values[17] = Int64GetDatum((int64) c->cache_misses);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(datacore_metrics_info);

/*
 * metrics_info() → (entries, max_entries, overflow, reset_at, shared):
 * how full the table is and how many recordings it had to drop.
 */
Datum
datacore_metrics_info(PG_FUNCTION_ARGS)
{
	MetricsTable *t = get_table();
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (t == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	lock_table(t, LW_SHARED);
	values[0] = Int32GetDatum(t->nused);
	values[1] = Int32GetDatum(t->max_entries);
	values[2] = Int64GetDatum((int64) pg_atomic_read_u64(&t->overflow));
	values[3] = TimestampTzGetDatum(t->reset_at);
	values[4] = BoolGetDatum(t->lock != NULL);
	unlock_table(t);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

PG_FUNCTION_INFO_V1(datacore_reset_metrics);

/*
 * reset_metrics(): empty the table, for every database.  Who may call it
 * is decided by EXECUTE grants (revoked from PUBLIC by the install script).
 */
Datum
datacore_reset_metrics(PG_FUNCTION_ARGS)
{
	MetricsTable *t = get_table();
	int			i;

	if (t == NULL)
		PG_RETURN_VOID();
	lock_table(t, LW_EXCLUSIVE);
	for (i = 0; i < t->nused; i++)
	{
		MetricsEntry *e = &t->entries[i];

		SpinLockAcquire(&e->mutex);
		e->used = false;
		SpinLockRelease(&e->mutex);
	}
	t->nused = 0;
	pg_atomic_write_u64(&t->overflow, 0);
	t->reset_at = GetCurrentTimestamp();
	pg_atomic_fetch_add_u32(&t->generation, 1);
	unlock_table(t);
	PG_RETURN_VOID();
}
