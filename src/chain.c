/*-------------------------------------------------------------------------
 *
 * chain.c
 *		What the summary chain (datacore.summarize, sql/install/65_chain.sql)
 *		needs from C: its cache outcomes in the metrics table.
 *
 * The chain itself is PL/pgSQL over the service functions, which count
 * their own requests; this records what only the chain knows: that a
 * summary came from the cache or not, and that the cache was unreachable
 * while the chain answered anyway (operation "summarize" on the Redis
 * server).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "datacore.h"
#include "metrics.h"

#define CHAIN_OPERATION "summarize"

PG_FUNCTION_INFO_V1(datacore_chain_metric);

/*
 * chain_metric(redis_server name, outcome text) → void.
 *
 * outcome is 'hit', 'miss' or the five-character SQLSTATE of a cache
 * failure.  The server must exist and the caller must have USAGE on it, so
 * a role can count only against servers it could use anyway.
 */
Datum
datacore_chain_metric(PG_FUNCTION_ARGS)
{
	DcServer   *server;
	char	   *outcome;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("server and outcome of chain_metric must not be null")));
	server = dc_get_server(NameStr(*PG_GETARG_NAME(0)), DC_SERVICE_REDIS,
						   CHAIN_OPERATION);
	outcome = text_to_cstring(PG_GETARG_TEXT_PP(1));

	if (strcmp(outcome, "hit") == 0 || strcmp(outcome, "miss") == 0)
		dc_metrics_cache(server, CHAIN_OPERATION, outcome[0] == 'h');
	else if (strlen(outcome) == 5 &&
			 strspn(outcome, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 5)
		dc_metrics_failure(server, CHAIN_OPERATION,
						   MAKE_SQLSTATE(outcome[0], outcome[1], outcome[2],
										 outcome[3], outcome[4]));
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown chain_metric outcome \"%s\"", outcome),
				 errhint("Use 'hit', 'miss' or a SQLSTATE.")));
	PG_RETURN_VOID();
}

/* What the caller hands the enqueuing worker, in a DSM segment. */
typedef struct ChainSpool
{
	Oid			dbid;
	Oid			userid;			/* the job's owner */
	TimestampTz run_after;
	NameData	server;
	int64		job;			/* set by the worker; 0: not queued */
	int			args_len;
	char		args[FLEXIBLE_ARRAY_MEMBER];	/* jsonb as text, NUL-terminated */
} ChainSpool;

PGDLLEXPORT void dc_chain_enqueue_main(Datum arg);

PG_FUNCTION_INFO_V1(datacore_chain_enqueue_detached);

/*
 * chain_enqueue_detached(args jsonb, server name, run_after timestamptz)
 * → bigint: the refresh job's id, queued and committed by a background
 * worker whatever becomes of this transaction; NULL when no worker could
 * be started (max_worker_processes) or it failed (its error is in the
 * server log).  The caller must not hold an uncommitted refresh job for
 * the same key: the worker would wait for it.
 */
Datum
datacore_chain_enqueue_detached(PG_FUNCTION_ARGS)
{
	Jsonb	   *argsj;
	char	   *args;
	int			len;
	dsm_segment *seg;
	ChainSpool *spool;
	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;
	int64		job;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("arguments of chain_enqueue_detached must not be null")));
	argsj = PG_GETARG_JSONB_P(0);
	args = JsonbToCString(NULL, &argsj->root, VARSIZE_ANY(argsj));
	len = strlen(args);

	seg = dsm_create(offsetof(ChainSpool, args) + len + 1, 0);
	spool = dsm_segment_address(seg);
	spool->dbid = MyDatabaseId;
	spool->userid = GetUserId();
	spool->run_after = PG_GETARG_TIMESTAMPTZ(2);
	namestrcpy(&spool->server, NameStr(*PG_GETARG_NAME(1)));
	spool->job = 0;
	spool->args_len = len;
	memcpy(spool->args, args, len + 1);

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "datacore");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "dc_chain_enqueue_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "datacore summary refresh enqueue for PID %d", MyProcPid);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "datacore summary refresh enqueue");
	bgw.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	bgw.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&bgw, &handle))
	{
		dsm_detach(seg);
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("summary refresh not queued: no background worker slot is free"),
				 errhint("Raise max_worker_processes.")));
		PG_RETURN_NULL();
	}
	/* interruptible: it waits on the latch and checks for interrupts */
	(void) WaitForBackgroundWorkerShutdown(handle);
	job = spool->job;
	dsm_detach(seg);
	if (job == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(job);
}

/*
 * The worker: attach the segment, queue the job as its owner through
 * datacore.summary_enqueue_refresh (which keeps one per key), commit, and
 * report the id.  Connected as the bootstrap superuser, so that a NOLOGIN
 * owner (a PostgREST role) works; the job itself records the owner.
 */
void
dc_chain_enqueue_main(Datum arg)
{
	dsm_segment *seg;
	ChainSpool *spool;
	Oid			types[3] = {JSONBOID, NAMEOID, TIMESTAMPTZOID};
	Datum		values[3];
	bool		isnull;
	int64		job = 0;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	seg = dsm_attach(DatumGetUInt32(arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("summary refresh enqueue: the caller is gone")));
	spool = dsm_segment_address(seg);

	BackgroundWorkerInitializeConnectionByOid(spool->dbid, InvalidOid, 0);
	pgstat_report_appname("datacore summary refresh enqueue");

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	SetUserIdAndSecContext(spool->userid, SECURITY_LOCAL_USERID_CHANGE);
	SPI_connect();
	values[0] = DirectFunctionCall1(jsonb_in, CStringGetDatum(spool->args));
	values[1] = NameGetDatum(&spool->server);
	values[2] = TimestampTzGetDatum(spool->run_after);
	if (SPI_execute_with_args("SELECT datacore.summary_enqueue_refresh($1, $2, $3)",
							  3, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not queue the summary refresh");
	if (SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			job = DatumGetInt64(d);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	/* only once it is committed may the caller report it */
	spool->job = job;
	dsm_detach(seg);
	proc_exit(0);
}
