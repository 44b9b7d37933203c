/*-------------------------------------------------------------------------
 *
 * jobs.c
 *		Durable jobs: enqueueing into datacore.jobs, running a job as the
 *		role that enqueued it, retries, and the SQL functions around them.
 *
 * Enqueueing is a plain INSERT, so a job exists only once its transaction
 * commits; a transaction callback then wakes the database's worker (see
 * worker.c).  The table is owned by the extension's owner and readable by
 * everyone through a row-level policy that shows each role its own jobs;
 * nobody else may write it.  The functions that change it therefore record
 * the caller (GetUserId(), never an argument) and then write as the table's
 * owner.
 *
 * A job runs in a subtransaction with the current user switched to its
 * owner, so the owner's USAGE on the server, its user mapping and its
 * EXECUTE privilege on the function decide, never the worker's superuser.
 * Errors are sorted into "try again later" (class 08, 429/502/503/504,
 * resource shortages), "the request is wrong" (failed at once) and "the
 * owner may not do this" (dead at once).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include <curl/curl.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/extension.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "breaker.h"
#include "datacore.h"
#include "http.h"
#include "jobs.h"
#include "ollama.h"
#include "qdrant.h"
#include "s3.h"

/* GUCs */
bool		dc_job_worker_enabled = true;
int			dc_job_retention_min = 7 * 24 * 60;
static int	job_retry_delay_ms = 1000;
static int	job_retry_max_delay_ms = 10 * 60 * 1000;
static int	job_concurrency = 16;

#define MAX_ATTEMPTS_LIMIT	100
#define WAIT_POLL_MAX_MS	100

/*
 * What a job kind needs in its args and how it runs: one SQL statement
 * calling the synchronous function, $1 = args (jsonb), $2 = server (name),
 * returning the result as jsonb.  "required" lists keys that must be
 * present and not JSON null; "a|b" means one of them.
 */
typedef struct JobKind
{
	const char *name;
	DcService	service;
	const char *required;
	const char *sql;
} JobKind;

#define ARG_JSONB(k) "nullif($1->'" k "', 'null')"
#define ARG_BOOL(k, d) "coalesce(($1->>'" k "')::boolean, " d ")"
#define ARG_VECTOR \
	"ARRAY(SELECT v::real FROM jsonb_array_elements_text($1->'vector') " \
	"WITH ORDINALITY AS e(v, i) ORDER BY i)"

static const JobKind job_kinds[] = {
	{"ollama_generate", DC_SERVICE_OLLAMA, "prompt",
		"SELECT to_jsonb(datacore.ollama_generate($1->>'prompt', $1->>'model', "
		"$1->>'system', " ARG_JSONB("options") ", " ARG_JSONB("format") ", $2))"},
	{"ollama_embed", DC_SERVICE_OLLAMA, "input",
		"SELECT to_jsonb(datacore.ollama_embed($1->>'input', $1->>'model', $2))"},
	{"s3_put", DC_SERVICE_S3, "bucket,key,body|body_base64|body_json",
		"SELECT to_jsonb(CASE "
		"WHEN $1 ? 'body_base64' THEN datacore.s3_put($1->>'bucket', $1->>'key', "
		"decode($1->>'body_base64', 'base64'), $1->>'content_type', $2) "
		"WHEN $1 ? 'body_json' THEN datacore.s3_put($1->>'bucket', $1->>'key', "
		"$1->'body_json', $1->>'content_type', $2) "
		"ELSE datacore.s3_put($1->>'bucket', $1->>'key', $1->>'body', "
		"$1->>'content_type', $2) END)"},
	{"qdrant_upsert", DC_SERVICE_QDRANT, "collection,points|vector",
		"SELECT CASE "
		"WHEN $1 ? 'points' THEN to_jsonb(datacore.qdrant_upsert($1->>'collection', "
		"$1->'points', " ARG_BOOL("wait", "true") ", $2)) "
		"WHEN jsonb_typeof($1->'id') = 'number' THEN to_jsonb(datacore.qdrant_upsert("
		"$1->>'collection', ($1->>'id')::bigint, " ARG_VECTOR ", " ARG_JSONB("payload")
		", " ARG_BOOL("wait", "true") ", $2)) "
		"ELSE to_jsonb(datacore.qdrant_upsert($1->>'collection', $1->>'id', "
		ARG_VECTOR ", " ARG_JSONB("payload") ", " ARG_BOOL("wait", "true") ", $2)) END"},
	{"redis_set", DC_SERVICE_REDIS, "key,value|value_base64",
		"SELECT to_jsonb(CASE "
		"WHEN $1 ? 'value_base64' THEN datacore.redis_set($1->>'key', "
		"decode($1->>'value_base64', 'base64'), ($1->>'ttl')::interval, "
		ARG_BOOL("only_if_absent", "false") ", $2) "
		"ELSE datacore.redis_set($1->>'key', $1->>'value', ($1->>'ttl')::interval, "
		ARG_BOOL("only_if_absent", "false") ", $2) END)"},
	/* a stale datacore.summarize result regenerated; $2 is the Ollama server */
	{"summarize", DC_SERVICE_OLLAMA, "cache_key,prompt",
		"SELECT datacore.summarize_refresh($1, $2)"},
};

#define NUM_KINDS lengthof(job_kinds)

/* One claimed job and, after it ran, its outcome. */
typedef struct DcJob
{
	int64		id;
	const JobKind *kind;		/* NULL: unknown kind */
	int			kind_index;
	char	   *server;
	Datum		args;			/* jsonb */
	Oid			owner;
	int			attempts;		/* including this one */
	int			max_attempts;

	/* outcome */
	const char *state;			/* queued, succeeded, failed, dead */
	Datum		result;			/* jsonb or 0 */
	Datum		error;			/* jsonb or 0 */
	TimestampTz run_after;		/* when requeued */
	bool		refund;			/* requeued without spending the attempt */
	Oid			serverid;		/* set by precheck */
} DcJob;

/* Plans kept for the life of the process. */
static SPIPlanPtr kind_plans[NUM_KINDS];
static SPIPlanPtr insert_plan = NULL;
static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr finish_plan = NULL;

static void finish_job(DcJob *job);

static bool wake_at_commit = false;
static bool xact_cb_registered = false;

/* ---------- GUCs ---------- */

void
dc_jobs_define_gucs(void)
{
	DefineCustomBoolVariable("datacore.job_worker",
							 "Runs queued jobs in a background worker.",
							 "Needs datacore in shared_preload_libraries; when off, call datacore.run_jobs() (from pg_cron, for instance).",
							 &dc_job_worker_enabled, true, PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("datacore.job_retention",
							"How long finished jobs are kept before they are deleted.",
							"-1 keeps them forever.",
							&dc_job_retention_min, 7 * 24 * 60, -1, INT_MAX,
							PGC_SUSET, GUC_UNIT_MIN, NULL, NULL, NULL);
	DefineCustomIntVariable("datacore.job_concurrency",
							"Requests a job runner keeps in flight at once.",
							"For the kinds that support it (s3_put, ollama_embed); others run one at a time.",
							&job_concurrency, 16, 1, 100,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("datacore.job_retry_delay",
							"Delay before the first retry of a failed job; it doubles with each attempt.",
							NULL, &job_retry_delay_ms, 1000, 1, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("datacore.job_retry_max_delay",
							"Longest delay between two attempts of a job.",
							NULL, &job_retry_max_delay_ms, 10 * 60 * 1000, 1, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
}

/* ---------- helpers ---------- */

static const JobKind *
find_kind(const char *name, int *index)
{
	int			i;

	for (i = 0; i < (int) NUM_KINDS; i++)
	{
		if (strcmp(job_kinds[i].name, name) == 0)
		{
			if (index)
				*index = i;
			return &job_kinds[i];
		}
	}
	return NULL;
}

static char *
kind_list(void)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < (int) NUM_KINDS; i++)
		appendStringInfo(&buf, "%s%s", i ? ", " : "", job_kinds[i].name);
	return buf.data;
}

/* The value of key in a jsonb object; NULL if absent or JSON null. */
static JsonbValue *
jsonb_key(Jsonb *obj, const char *key)
{
	JsonbValue	k;
	JsonbValue *v;

	if (!JB_ROOT_IS_OBJECT(obj))
		return NULL;
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(&obj->root, JB_FOBJECT, &k);
	return v != NULL && v->type != jbvNull ? v : NULL;
}

static bool
jsonb_has(Jsonb *obj, const char *key)
{
	return jsonb_key(obj, key) != NULL;
}

/* Reject args a job of this kind could never run with (22023). */
static void
check_args(const JobKind *kind, Jsonb *args)
{
	char	   *req = pstrdup(kind->required);
	char	   *save = NULL;
	char	   *tok;

	if (!JB_ROOT_IS_OBJECT(args))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("job arguments must be a JSON object")));

	for (tok = strtok_r(req, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
	{
		char	   *alts = pstrdup(tok);
		char	   *s2 = NULL;
		char	   *alt;
		bool		found = false;

		for (alt = strtok_r(alts, "|", &s2); alt; alt = strtok_r(NULL, "|", &s2))
			found |= jsonb_has(args, alt);
		if (!found)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("job of kind %s needs the argument \"%s\"",
							kind->name, tok),
					 errdetail("Arguments separated by | are alternatives; one of them must be given and not null.")));
	}
}

/* The owner of datacore.jobs, who alone writes it. */
static Oid
queue_owner(void)
{
	Oid			nsp = get_namespace_oid("datacore", false);
	Oid			relid = get_relname_relid("jobs", nsp);
	HeapTuple	tp;
	Oid			owner;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table datacore.jobs does not exist"),
				 errhint("Update the extension: ALTER EXTENSION datacore UPDATE;")));
	tp = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tp))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tp))->relowner;
	ReleaseSysCache(tp);
	return owner;
}

static SPIPlanPtr
keep_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*slot = p;
	}
	return *slot;
}

static Datum
jsonb_from_cstring(const char *s)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(s));
}

static void
json_field(StringInfo buf, const char *name, const char *value, bool *first)
{
	if (value == NULL)
		return;
	appendStringInfoString(buf, *first ? "{" : ", ");
	*first = false;
	escape_json(buf, name);
	appendStringInfoString(buf, ": ");
	escape_json(buf, value);
}

/* An error as the jsonb kept in last_error. */
static Datum
error_jsonb(ErrorData *edata, int attempt)
{
	StringInfoData buf;
	bool		first = true;

	initStringInfo(&buf);
	json_field(&buf, "sqlstate", unpack_sql_state(edata->sqlerrcode), &first);
	json_field(&buf, "message", edata->message ? edata->message : "", &first);
	json_field(&buf, "detail", edata->detail, &first);
	json_field(&buf, "hint", edata->hint, &first);
	appendStringInfo(&buf, ", \"attempt\": %d}", attempt);
	return jsonb_from_cstring(buf.data);
}

/* ---------- waking the worker at commit ---------- */

static void
jobs_xact_cb(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_at_commit)
				dc_worker_wake(MyDatabaseId);
			wake_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

/* Ask for the worker to be woken when this transaction commits. */
static void
wake_worker_at_commit(void)
{
	if (!xact_cb_registered)
	{
		RegisterXactCallback(jobs_xact_cb, NULL);
		xact_cb_registered = true;
	}
	wake_at_commit = true;
}

/* ---------- enqueue ---------- */

PG_FUNCTION_INFO_V1(datacore_enqueue);

/*
 * enqueue(kind, args, server, max_attempts, run_after) → job id.
 *
 * The owner is the current user; USAGE on the server is checked now (and
 * again when the job runs).  The row is written as the table's owner.
 */
Datum
datacore_enqueue(PG_FUNCTION_ARGS)
{
	const JobKind *kind;
	char	   *kindname;
	Jsonb	   *args;
	char	   *servername;
	int			max_attempts;
	TimestampTz run_after;
	Oid			owner = GetUserId();
	Oid			save_user;
	int			save_sec;
	int64		id = 0;

	/* the queue is a table, but a standby's refusal should say where to go */
	dc_prevent_if_read_only("enqueue()");
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("job kind, arguments and server must not be null")));
	kindname = text_to_cstring(PG_GETARG_TEXT_PP(0));
	args = PG_GETARG_JSONB_P(1);
	servername = NameStr(*PG_GETARG_NAME(2));
	max_attempts = PG_ARGISNULL(3) ? 5 : PG_GETARG_INT32(3);
	run_after = PG_ARGISNULL(4) ? GetCurrentTransactionStartTimestamp() :
		PG_GETARG_TIMESTAMPTZ(4);

	kind = find_kind(kindname, NULL);
	if (kind == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown job kind \"%s\"", kindname),
				 errhint("Known kinds: %s.", kind_list())));
	if (max_attempts < 1 || max_attempts > MAX_ATTEMPTS_LIMIT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_attempts must be between 1 and %d", MAX_ATTEMPTS_LIMIT)));
	check_args(kind, args);

	/* server exists, has the right wrapper, and the caller may use it */
	(void) dc_get_server(servername, kind->service, kind->name);

	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(queue_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		Oid			types[6] = {TEXTOID, NAMEOID, JSONBOID, INT4OID,
		TIMESTAMPTZOID, OIDOID};
		Datum		values[6];
		bool		isnull;

		values[0] = CStringGetTextDatum(kind->name);
		values[1] = DirectFunctionCall1(namein, CStringGetDatum(servername));
		values[2] = JsonbPGetDatum(args);
		values[3] = Int32GetDatum(max_attempts);
		values[4] = TimestampTzGetDatum(run_after);
		values[5] = ObjectIdGetDatum(owner);

		SPI_connect();
		keep_plan(&insert_plan,
				  "INSERT INTO datacore.jobs (kind, server, args, max_attempts, run_after, owner) "
				  "VALUES ($1, $2, $3, $4, $5, $6::regrole) RETURNING id",
				  6, types);
		if (SPI_execute_plan(insert_plan, values, NULL, false, 1) != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "could not insert into datacore.jobs");
		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_user, save_sec);
	}
	PG_END_TRY();

	wake_worker_at_commit();
	PG_RETURN_INT64(id);
}

/* ---------- claiming, running, finishing (SPI connected) ---------- */

bool
dc_jobs_extension_present(void)
{
	return OidIsValid(get_extension_oid("datacore", true)) &&
		OidIsValid(get_relname_relid("jobs", get_namespace_oid("datacore", false)));
}

/*
 * Jobs left "running" by a process that is gone (a crash, an immediate
 * shutdown, a terminated worker) are queued again.  The interrupted run is
 * not counted: it may or may not have reached the server, and retrying is
 * what at-least-once promises.  Call only when no worker of this database
 * can be running jobs.
 */
void
dc_jobs_requeue_orphans(void)
{
	int			ret;

	ret = SPI_execute("UPDATE datacore.jobs SET state = 'queued', "
					  "attempts = greatest(attempts - 1, 0), started_at = NULL, "
					  "run_after = now() WHERE state = 'running'", false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not requeue interrupted jobs");
	if (SPI_processed > 0)
		ereport(LOG,
				(errmsg("datacore: requeued %llu interrupted jobs",
						(unsigned long long) SPI_processed)));
}

/* Delete jobs that finished more than datacore.job_retention ago. */
void
dc_jobs_prune(void)
{
	char		sql[256];

	if (dc_job_retention_min < 0)
		return;
	snprintf(sql, sizeof(sql),
			 "DELETE FROM datacore.jobs WHERE state IN ('succeeded', 'failed', 'dead') "
			 "AND finished_at < now() - interval '%d minutes'", dc_job_retention_min);
	if (SPI_execute(sql, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not prune datacore.jobs");
}

/* When the next queued job is due; 0 if none is queued. */
TimestampTz
dc_jobs_next_due(void)
{
	bool		isnull;
	Datum		d;

	if (SPI_execute("SELECT min(run_after) FROM datacore.jobs WHERE state = 'queued'",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read datacore.jobs");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetTimestampTz(d);
}

/*
 * Mark up to max due jobs running (attempt counted) and return them,
 * allocated in cxt.  Rows locked by another runner are skipped.
 */
static List *
claim_jobs(int max, MemoryContext cxt)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1];
	List	   *jobs = NIL;
	TransactionId *writers;
	uint64		i;

	keep_plan(&claim_plan,
			  "UPDATE datacore.jobs j SET state = 'running', attempts = j.attempts + 1, "
			  "started_at = clock_timestamp() FROM ("
			  "SELECT id, xmin AS written_by FROM datacore.jobs "
			  "WHERE state = 'queued' AND run_after <= clock_timestamp() "
			  "ORDER BY run_after, id LIMIT $1 FOR UPDATE SKIP LOCKED) c WHERE j.id = c.id "
			  "RETURNING j.id, j.kind, j.server, j.args, j.owner::oid, j.attempts, "
			  "j.max_attempts, c.written_by",
			  1, types);
	values[0] = Int32GetDatum(max);
	if (SPI_execute_plan(claim_plan, values, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not claim jobs");

	writers = palloc(sizeof(TransactionId) * (SPI_processed + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(cxt);
		DcJob	   *job = palloc0(sizeof(DcJob));
		bool		isnull;
		char	   *kindname;

		job->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		kindname = SPI_getvalue(tup, desc, 2);
		job->kind = find_kind(kindname, &job->kind_index);
		job->server = SPI_getvalue(tup, desc, 3);
		job->args = datumCopy(SPI_getbinval(tup, desc, 4, &isnull), false, -1);
		job->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 5, &isnull));
		job->attempts = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
		job->max_attempts = DatumGetInt32(SPI_getbinval(tup, desc, 7, &isnull));
		writers[i] = DatumGetTransactionId(SPI_getbinval(tup, desc, 8, &isnull));
		jobs = lappend(jobs, job);
		MemoryContextSwitchTo(old);
	}

	/*
	 * A job becomes visible when its transaction commits, but the catalog
	 * invalidations of that transaction (a REVOKE USAGE next to the
	 * enqueue, say) are sent a moment later, before its locks go.  Wait for
	 * the writers' locks, then read the invalidations, so that the checks
	 * made as the owner see every change committed with or before the job.
	 */
	for (i = 0; i < SPI_processed; i++)
	{
		if (TransactionIdIsNormal(writers[i]) &&
			!TransactionIdIsCurrentTransactionId(writers[i]) &&
			(i == 0 || writers[i] != writers[i - 1]))
			XactLockTableWait(writers[i], NULL, NULL, XLTW_None);
	}
	AcceptInvalidationMessages();
	return jobs;
}

/* Errors that a later attempt may not meet. */
static bool
retryable(int sqlstate)
{
	switch (ERRCODE_TO_CATEGORY(sqlstate))
	{
		case ERRCODE_CONNECTION_EXCEPTION:	/* class 08 */
		case ERRCODE_INSUFFICIENT_RESOURCES:	/* class 53 */
		case ERRCODE_TRANSACTION_ROLLBACK:	/* class 40 */
			return true;
		default:
			return sqlstate == ERRCODE_QUERY_CANCELED ||
				sqlstate == ERRCODE_LOCK_NOT_AVAILABLE;
	}
}

/* Exponential backoff with jitter: delay·2^(n-1)·[0.5, 1.5), capped. */
static int64
backoff_ms(int attempt)
{
	double		ms = (double) job_retry_delay_ms * pow(2.0, Min(attempt - 1, 30));

	ms = Min(ms, (double) job_retry_max_delay_ms);
	ms *= 0.5 + pg_prng_double(&pg_global_prng_state);
	return (int64) Min(ms, (double) job_retry_max_delay_ms);
}

static void
set_error(DcJob *job, ErrorData *edata)
{
	int			code = edata->sqlerrcode;

	job->error = error_jsonb(edata, job->attempts);
	if (retryable(code))
	{
		int64		delay;
		int			retry_after = dc_http_last_retry_after_ms();
		TimestampTz now = GetCurrentTimestamp();

		if (job->attempts >= job->max_attempts)
		{
			job->state = "dead";
			return;
		}
		delay = retry_after >= 0 ? retry_after : backoff_ms(job->attempts);
		job->state = "queued";
		job->run_after = TimestampTzPlusMilliseconds(now, delay);
		/* a failure that opened the breaker: not before it may close */
		job->run_after = Max(job->run_after, dc_breaker_open_until(job->serverid));
	}
	else if (code == ERRCODE_INSUFFICIENT_PRIVILEGE)
		job->state = "dead";
	else
		job->state = "failed";
}

/*
 * Checks before a job is attempted.  Returns false when the job already
 * has its outcome: its kind, server or owner is gone (dead), or its
 * server's breaker is open (queued again until the breaker may close,
 * without spending the attempt: the call would only fail fast).
 */
static bool
precheck(DcJob *job)
{
	ForeignServer *fs;
	TimestampTz until;

	if (job->kind == NULL)
	{
		job->state = "failed";
		job->error = jsonb_from_cstring("{\"sqlstate\": \"22023\", \"message\": \"unknown job kind\"}");
		return false;
	}
	fs = GetForeignServerByName(job->server, true);
	if (fs == NULL || !SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(job->owner)))
	{
		StringInfoData buf;
		bool		first = true;

		initStringInfo(&buf);
		json_field(&buf, "sqlstate", "42704", &first);
		json_field(&buf, "message", fs == NULL ?
				   psprintf("server \"%s\" does not exist", job->server) :
				   psprintf("role with OID %u that enqueued the job does not exist", job->owner),
				   &first);
		appendStringInfo(&buf, ", \"attempt\": %d}", job->attempts);
		job->error = jsonb_from_cstring(buf.data);
		job->state = "dead";
		return false;
	}
	job->serverid = fs->serverid;
	until = dc_breaker_open_until(fs->serverid);
	if (until > GetCurrentTimestamp())
	{
		job->state = "queued";
		job->refund = true;
		job->run_after = until;
		return false;
	}
	return true;
}

typedef void (*JobStep) (DcJob *job, void *arg);

/*
 * Run one step of a job in a subtransaction, as the job's owner (a
 * security-restricted operation).  Returns the step's error, copied into
 * cxt, or NULL.  A cancel or shutdown request is for the runner, not the
 * job: it is thrown on.
 */
static ErrorData *
as_owner(DcJob *job, JobStep step, void *arg, MemoryContext cxt)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;
	Oid			save_user;
	int			save_sec;

	GetUserIdAndSecContext(&save_user, &save_sec);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		SetUserIdAndSecContext(job->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		dc_http_forget_retry_after();
		step(job, arg);
		SetUserIdAndSecContext(save_user, save_sec);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();

		RollbackAndReleaseCurrentSubTransaction();
		SetUserIdAndSecContext(save_user, save_sec);
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;

		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
			ReThrowError(edata);
	}
	PG_END_TRY();
	return edata;
}

/* Step: run the job's statement (the synchronous SQL function). */
static void
step_sql(DcJob *job, void *arg)
{
	MemoryContext cxt = (MemoryContext) arg;
	Oid			types[2] = {JSONBOID, NAMEOID};
	Datum		values[2];
	bool		isnull;
	Datum		d;

	values[0] = job->args;
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(job->server));
	keep_plan(&kind_plans[job->kind_index], job->kind->sql, 2, types);
	if (SPI_execute_plan(kind_plans[job->kind_index], values, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "job statement returned no row");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	MemoryContextSwitchTo(cxt);
	job->result = isnull ? jsonb_from_cstring("null") : datumCopy(d, false, -1);
	job->state = "succeeded";
}

/* Record a step's error (NULL: none) in the job. */
static void
note_error(DcJob *job, ErrorData *edata, MemoryContext cxt)
{
	MemoryContext old;

	if (edata == NULL)
		return;
	old = MemoryContextSwitchTo(cxt);
	set_error(job, edata);
	MemoryContextSwitchTo(old);
}

/* ---------- requests in flight together ---------- */

/* The value of an args key as ->> gives it, or NULL. */
static char *
arg_text(DcJob *job, const char *key)
{
	JsonbValue *v = jsonb_key(DatumGetJsonbP(job->args), key);

	if (v == NULL)
		return NULL;
	if (v->type == jbvString)
		return pnstrdup(v->val.string.val, v->val.string.len);
	if (v->type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	if (v->type == jbvBool)
		return pstrdup(v->val.boolean ? "true" : "false");
	return JsonbToCString(NULL, &JsonbValueToJsonb(v)->root, 0);
}

static Datum
jsonb_string(const char *s)
{
	StringInfoData buf;

	initStringInfo(&buf);
	escape_json(&buf, s);
	return jsonb_from_cstring(buf.data);
}

/* s3_put: the PUT is sent by begin, its answer read by end. */
static void *
begin_s3_put(DcJob *job)
{
	const char *op = job->kind->name;
	DcServer   *server = dc_get_server(job->server, DC_SERVICE_S3, op);
	char	   *content_type = arg_text(job, "content_type");
	char	   *b64 = arg_text(job, "body_base64");
	const char *data;
	size_t		len;

	if (b64)
	{
		bytea	   *raw = DatumGetByteaPP(DirectFunctionCall2(binary_decode,
															  CStringGetTextDatum(b64),
															  CStringGetTextDatum("base64")));

		data = VARDATA_ANY(raw);
		len = VARSIZE_ANY_EXHDR(raw);
		if (content_type == NULL)
			content_type = "application/octet-stream";
	}
	else if ((data = arg_text(job, "body_json")) != NULL)
	{
		len = strlen(data);
		if (content_type == NULL)
			content_type = "application/json";
	}
	else
	{
		data = arg_text(job, "body");
		if (data == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("body for %s must not be null", op)));
		len = strlen(data);
		if (content_type == NULL)
			content_type = "text/plain; charset=utf-8";
	}
	return dc_s3_put_begin(server, op, arg_text(job, "bucket"), arg_text(job, "key"),
						   data, len, content_type);
}

static Datum
end_s3_put(void *call)
{
	return jsonb_string(dc_s3_put_end((DcS3Put *) call));
}

/* ollama_embed of one text. */
static void *
begin_ollama_embed(DcJob *job)
{
	DcServer   *server = dc_get_server(job->server, DC_SERVICE_OLLAMA, job->kind->name);

	return dc_ollama_embed_begin(server, arg_text(job, "input"), arg_text(job, "model"));
}

static Datum
end_ollama_embed(void *call)
{
	Datum		json = DirectFunctionCall1(array_to_json, dc_ollama_embed_end((DcOllamaEmbed *) call));

	return jsonb_from_cstring(text_to_cstring(DatumGetTextPP(json)));
}

/* A JSON argument (options, format) of a job, or NULL when absent or null. */
static json_t *
arg_json(DcJob *job, const char *key)
{
	char	   *t = arg_text(job, key);

	if (t == NULL || strcmp(t, "null") == 0)
		return NULL;
	return dc_json_parse_input(t, key);
}

/* ollama_generate: the text, as a jsonb string. */
static void *
begin_ollama_generate(DcJob *job)
{
	DcServer   *server = dc_get_server(job->server, DC_SERVICE_OLLAMA, job->kind->name);
	char	   *prompt = arg_text(job, "prompt");

	if (prompt == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("prompt for %s must not be null", job->kind->name)));
	return dc_ollama_generate_begin(server, job->kind->name, prompt,
									arg_text(job, "model"), arg_text(job, "system"),
									arg_json(job, "options"), arg_json(job, "format"),
									NULL);
}

static Datum
end_ollama_generate(void *call)
{
	return jsonb_string(dc_ollama_generate_end((DcOllamaGenerate *) call));
}

/* qdrant_upsert of one point or a batch (args "points"). */
typedef struct QdrantJob
{
	DcServer   *server;
	DcQdrantUpsert *upsert;
	json_t	   *id;				/* one point: its id, for the result */
} QdrantJob;

static void *
begin_qdrant_upsert(DcJob *job)
{
	const char *op = job->kind->name;
	QdrantJob  *q = palloc0(sizeof(QdrantJob));
	json_t	   *args = dc_jsonb_to_json(DatumGetJsonbP(job->args), "args");
	json_t	   *points = json_object_get(args, "points");
	json_t	   *wait = json_object_get(args, "wait");
	char	   *collection = arg_text(job, "collection");

	q->server = dc_get_server(job->server, DC_SERVICE_QDRANT, op);
	if (points == NULL)
	{
		json_t	   *id = json_object_get(args, "id");
		json_t	   *payload = json_object_get(args, "payload");
		json_t	   *point = dc_json_object();

		/* the id is read as qdrant_upsert(collection, id bigint | text, ...) reads it */
		if (json_is_integer(id))
			q->id = dc_qdrant_id_from_datum(Int64GetDatum(json_integer_value(id)), INT8OID);
		else if (id != NULL && !json_is_null(id))
			q->id = dc_qdrant_id_from_datum(CStringGetTextDatum(arg_text(job, "id")), TEXTOID);
		else
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument \"id\" must not be null")));
		json_object_set(point, "id", q->id);
		json_object_set(point, "vector", json_object_get(args, "vector"));
		if (payload != NULL && !json_is_null(payload))
			json_object_set(point, "payload", payload);
		points = json_array();
		json_array_append_new(points, point);
	}
	q->upsert = dc_qdrant_upsert_begin(q->server, op, collection, points,
									   wait == NULL || json_is_null(wait) || json_is_true(wait));
	return q;
}

static Datum
end_qdrant_upsert(void *call)
{
	QdrantJob  *q = call;
	int64		n = dc_qdrant_upsert_end(q->upsert);

	if (q->id)
		return jsonb_string(dc_qdrant_id_to_text(q->server, "qdrant_upsert", q->id));
	return jsonb_from_cstring(psprintf(INT64_FORMAT, n));
}

typedef struct Split
{
	const char *kind;
	void	   *(*begin) (DcJob *job);
	Datum		(*end) (void *call);
} Split;

/* Kinds whose request can be sent before the previous answers are in. */
static const Split splits[] = {
	{"s3_put", begin_s3_put, end_s3_put},
	{"ollama_embed", begin_ollama_embed, end_ollama_embed},
	{"ollama_generate", begin_ollama_generate, end_ollama_generate},
	{"qdrant_upsert", begin_qdrant_upsert, end_qdrant_upsert},
};

static const Split *
find_split(const JobKind *kind)
{
	int			i;

	for (i = 0; i < (int) lengthof(splits); i++)
		if (strcmp(splits[i].kind, kind->name) == 0)
			return &splits[i];
	return NULL;
}

typedef struct InFlight
{
	DcJob	   *job;
	const Split *split;
	void	   *call;
} InFlight;

static void
step_begin(DcJob *job, void *arg)
{
	InFlight   *f = (InFlight *) arg;

	f->call = f->split->begin(job);
}

static void
step_end(DcJob *job, void *arg)
{
	InFlight   *f = (InFlight *) arg;
	Datum		result = f->split->end(f->call);

	job->result = result;
	job->state = "succeeded";
}

/*
 * The jobs of one batch: up to datacore.job_concurrency requests in
 * flight at once over libcurl's multi interface (kinds with a split),
 * answers read in order; kinds without one run by themselves.  A server
 * that just failed gets one request at a time until one succeeds, so that
 * an outage costs one attempt per breaker cooldown, not a window's worth.
 */
typedef struct Runner
{
	MemoryContext cxt;
	InFlight   *window;			/* ring of size entries */
	int			size;
	int			head;
	int			count;
	List	   *suspect;		/* server OIDs with a failure in this batch */
} Runner;

static void
complete_oldest(Runner *r)
{
	InFlight   *f = &r->window[r->head];
	DcJob	   *job = f->job;
	ErrorData  *edata;

	r->head = (r->head + 1) % r->size;
	r->count--;
	edata = as_owner(job, step_end, f, r->cxt);
	note_error(job, edata, r->cxt);
	if (edata && retryable(edata->sqlerrcode))
		r->suspect = list_append_unique_oid(r->suspect, job->serverid);
	else if (edata == NULL)
		r->suspect = list_delete_oid(r->suspect, job->serverid);
	finish_job(job);
}

static void
drain(Runner *r)
{
	while (r->count > 0)
		complete_oldest(r);
}

static bool
in_flight_for(Runner *r, Oid serverid)
{
	int			i;

	for (i = 0; i < r->count; i++)
		if (r->window[(r->head + i) % r->size].job->serverid == serverid)
			return true;
	return false;
}

static void
run_batch(List *jobs, MemoryContext cxt)
{
	Runner		r = {cxt, NULL, job_concurrency, 0, 0, NIL};
	ListCell   *lc;

	r.window = MemoryContextAllocZero(cxt, sizeof(InFlight) * r.size);
	foreach(lc, jobs)
	{
		DcJob	   *job = lfirst(lc);
		const Split *split;
		InFlight   *f;
		ErrorData  *edata;

		CHECK_FOR_INTERRUPTS();
		if (!precheck(job))
		{
			finish_job(job);
			continue;
		}
		split = find_split(job->kind);
		if (split == NULL || r.size <= 1)
		{
			drain(&r);
			note_error(job, as_owner(job, step_sql, cxt, cxt), cxt);
			finish_job(job);
			continue;
		}
		if (list_member_oid(r.suspect, job->serverid) && in_flight_for(&r, job->serverid))
			drain(&r);
		while (r.count >= r.size)
			complete_oldest(&r);

		f = &r.window[(r.head + r.count) % r.size];
		f->job = job;
		f->split = split;
		f->call = NULL;
		edata = as_owner(job, step_begin, f, cxt);
		if (edata)
		{
			/* the breaker refused to send it: not an attempt */
			if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_CONNECTION_EXCEPTION &&
				dc_breaker_open_until(job->serverid) > GetCurrentTimestamp())
			{
				job->state = "queued";
				job->refund = true;
				job->run_after = dc_breaker_open_until(job->serverid);
			}
			else
				note_error(job, edata, cxt);
			finish_job(job);
			continue;
		}
		r.count++;
	}
	drain(&r);
}

/* Write a job's outcome; a job that ended is announced on datacore_jobs. */
static void
finish_job(DcJob *job)
{
	Oid			types[6] = {INT8OID, TEXTOID, JSONBOID, JSONBOID, TIMESTAMPTZOID, INT4OID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	keep_plan(&finish_plan,
			  "UPDATE datacore.jobs SET state = $2, result = $3, "
			  "last_error = coalesce($4, last_error), run_after = coalesce($5, run_after), "
			  "attempts = attempts - $6, "
			  "started_at = CASE WHEN $2 = 'queued' THEN NULL ELSE started_at END, "
			  "finished_at = CASE WHEN $2 IN ('succeeded', 'failed', 'dead') "
			  "THEN clock_timestamp() END WHERE id = $1",
			  6, types);
	values[0] = Int64GetDatum(job->id);
	values[1] = CStringGetTextDatum(job->state);
	values[2] = job->result;
	nulls[2] = job->result ? ' ' : 'n';
	values[3] = job->error;
	nulls[3] = job->error ? ' ' : 'n';
	values[4] = TimestampTzGetDatum(job->run_after);
	nulls[4] = job->run_after ? ' ' : 'n';
	values[5] = Int32GetDatum(job->refund ? 1 : 0);
	if (SPI_execute_plan(finish_plan, values, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record the outcome of job " INT64_FORMAT, job->id);

	if (strcmp(job->state, "queued") != 0)
	{
		char		payload[32];

		snprintf(payload, sizeof(payload), INT64_FORMAT, job->id);
		Async_Notify("datacore_jobs", payload);
	}
}

/*
 * Claim up to max due jobs, run them (see run_batch) and record the
 * outcomes; returns how many were claimed.  With commit_claim (the worker)
 * the claim is committed first, so the jobs show as running while they
 * run, and the outcomes are committed in a second transaction.  Without
 * it (run_jobs) everything happens in the caller's transaction.
 *
 * Needs a transaction (and, with commit_claim, no SPI connection of the
 * caller's); the queue is read and written as its owner.
 */
int
dc_jobs_claim_and_run(int max, bool commit_claim)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "datacore jobs",
											  ALLOCSET_DEFAULT_SIZES);
	List	   *jobs;
	volatile int n = 0;
	Oid			save_user;
	int			save_sec;
	Oid			qowner = queue_owner();

	GetUserIdAndSecContext(&save_user, &save_sec);
	PG_TRY();
	{
		SetUserIdAndSecContext(qowner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
		SPI_connect();
		jobs = claim_jobs(max, cxt);
		n = list_length(jobs);
		if (commit_claim && n > 0)
		{
			SPI_finish();
			SetUserIdAndSecContext(save_user, save_sec);
			PopActiveSnapshot();
			CommitTransactionCommand();
			StartTransactionCommand();
			PushActiveSnapshot(GetTransactionSnapshot());
			SetUserIdAndSecContext(qowner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
			SPI_connect();
		}
		run_batch(jobs, cxt);
		SPI_finish();
		SetUserIdAndSecContext(save_user, save_sec);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_user, save_sec);
		MemoryContextDelete(cxt);
	}
	PG_END_TRY();
	return n;
}

/* ---------- SQL functions on the queue ---------- */

/* Housekeeping before run_jobs() claims: orphans, retention. */
static void
run_jobs_housekeeping(void)
{
	Oid			save_user;
	int			save_sec;

	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(queue_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		SPI_connect();
		if (!dc_worker_active(MyDatabaseId))
			dc_jobs_requeue_orphans();
		dc_jobs_prune();
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_user, save_sec);
	}
	PG_END_TRY();
}

PG_FUNCTION_INFO_V1(datacore_run_jobs);

/*
 * run_jobs(max) → number of jobs run: the worker's work, in the caller's
 * transaction, for installations where the worker is off.
 */
Datum
datacore_run_jobs(PG_FUNCTION_ARGS)
{
	int			max = PG_ARGISNULL(0) ? 100 : PG_GETARG_INT32(0);
	int			total = 0;

	if (max < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max must be positive")));
	dc_prevent_if_read_only("run_jobs()");
	run_jobs_housekeeping();

	while (total < max)
	{
		int			n = dc_jobs_claim_and_run(Min(max - total, 64), false);

		total += n;
		if (n == 0)
			break;
	}
	PG_RETURN_INT32(total);
}

/* Look a job up as the caller (the row policy applies). */
static bool
fetch_job(int64 id, char **state, Datum *result, Datum *error, TransactionId *xmin)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	if (SPI_execute_with_args("SELECT state, result, last_error, xmin FROM datacore.jobs WHERE id = $1",
							  1, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read datacore.jobs");
	if (SPI_processed == 0)
		return false;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	*state = SPI_getvalue(tup, desc, 1);
	d = SPI_getbinval(tup, desc, 2, &isnull);
	*result = isnull ? (Datum) 0 : d;
	d = SPI_getbinval(tup, desc, 3, &isnull);
	*error = isnull ? (Datum) 0 : d;
	*xmin = DatumGetTransactionId(SPI_getbinval(tup, desc, 4, &isnull));
	return true;
}

static void
missing_job(int64 id)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("job " INT64_FORMAT " does not exist", id),
			 errdetail("Each role sees only the jobs it enqueued.")));
}

/* Text of a string field of the last_error jsonb, or NULL. */
static char *
error_field(Datum error, const char *field)
{
	JsonbValue *v = jsonb_key(DatumGetJsonbP(error), field);

	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

PG_FUNCTION_INFO_V1(datacore_job_wait);

/*
 * job_wait(id, timeout) → the job's result once it succeeded; the job's
 * own error (its SQLSTATE) once it failed or died; NULL if it is still
 * queued or running when the timeout ends.
 */
Datum
datacore_job_wait(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	Interval   *timeout = PG_ARGISNULL(1) ? NULL : PG_GETARG_INTERVAL_P(1);
	TimestampTz deadline;
	long		sleep_ms = 1;
	MemoryContext outer = CurrentMemoryContext;

	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("job_wait() needs the READ COMMITTED isolation level"),
				 errdetail("A REPEATABLE READ or SERIALIZABLE transaction never sees the job finish.")));
	deadline = timeout ?
		DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												TimestampTzGetDatum(GetCurrentTimestamp()),
												IntervalPGetDatum(timeout))) :
		GetCurrentTimestamp();

	SPI_connect();
	for (;;)
	{
		char	   *state;
		Datum		result;
		Datum		error;
		TransactionId xmin;
		TimestampTz now;

		if (!fetch_job(id, &state, &result, &error, &xmin))
			missing_job(id);
		if (TransactionIdIsCurrentTransactionId(xmin) && strcmp(state, "queued") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("job " INT64_FORMAT " was enqueued in this transaction", id),
					 errdetail("A job runs only after the transaction that enqueued it commits."),
					 errhint("Wait for it in a later transaction.")));
		if (strcmp(state, "succeeded") == 0)
		{
			Datum		copy = SPI_datumTransfer(result, false, -1);

			SPI_finish();
			PG_RETURN_DATUM(copy);
		}
		if (strcmp(state, "failed") == 0 || strcmp(state, "dead") == 0)
		{
			char	   *sqlstate = error ? error_field(error, "sqlstate") : NULL;
			char	   *message = error ? error_field(error, "message") : NULL;
			char	   *detail = error ? error_field(error, "detail") : NULL;
			int			code = ERRCODE_FDW_ERROR;

			if (sqlstate && strlen(sqlstate) == 5)
				code = MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2],
									 sqlstate[3], sqlstate[4]);
			MemoryContextSwitchTo(outer);
			ereport(ERROR,
					(errcode(code),
					 errmsg("job " INT64_FORMAT " %s: %s", id,
							strcmp(state, "dead") == 0 ? "is dead" : "failed",
							message ? message : "no error recorded"),
					 detail ? errdetail_internal("%s", detail) : 0,
					 errhint("datacore.retry_job(" INT64_FORMAT ") queues it again.", id)));
		}

		now = GetCurrentTimestamp();
		if (now >= deadline)
			break;
		sleep_ms = Min(sleep_ms * 2, WAIT_POLL_MAX_MS);
		sleep_ms = Min(sleep_ms, (long) ((deadline - now + 999) / 1000));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_finish();
	PG_RETURN_NULL();
}

PG_FUNCTION_INFO_V1(datacore_retry_job);

/*
 * retry_job(id): queue a failed or dead job again, with its attempts reset.
 * Only the job's owner (or a member of it) sees it, hence may retry it.
 */
Datum
datacore_retry_job(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	char	   *state;
	Datum		result;
	Datum		error;
	TransactionId xmin;
	Oid			save_user;
	int			save_sec;

	dc_prevent_if_read_only("retry_job()");
	SPI_connect();
	if (!fetch_job(id, &state, &result, &error, &xmin))
		missing_job(id);
	if (strcmp(state, "failed") != 0 && strcmp(state, "dead") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("job " INT64_FORMAT " is in state %s", id, state),
				 errdetail("Only failed and dead jobs can be retried.")));

	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(queue_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		Oid			types[1] = {INT8OID};
		Datum		values[1] = {Int64GetDatum(id)};

		if (SPI_execute_with_args("UPDATE datacore.jobs SET state = 'queued', attempts = 0, "
								  "run_after = now(), started_at = NULL, finished_at = NULL, "
								  "result = NULL WHERE id = $1 AND state IN ('failed', 'dead')",
								  1, types, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not requeue job " INT64_FORMAT, id);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_user, save_sec);
	}
	PG_END_TRY();
	SPI_finish();
	wake_worker_at_commit();
	PG_RETURN_VOID();
}
