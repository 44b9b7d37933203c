/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The job launcher and the per-database job workers.
 *
 * One static background worker, the launcher, keeps a worker running for
 * each database that has work: a committed enqueue (see jobs.c), a retry
 * or deferred job coming due, or, when the launcher starts (after a
 * restart or a crash), every database that accepts connections, so that
 * jobs interrupted by the crash run again.  A worker runs jobs until none
 * is due, stays a moment for the next burst, and leaves, telling the
 * launcher when its next job is due.  A worker that does not linger keeps
 * DROP DATABASE and CREATE DATABASE ... TEMPLATE working: both refuse a
 * database someone is connected to.  Template databases are never entered.
 *
 * Wake-ups come from the committing backend setting the worker's latch
 * (or the launcher's, when the database has no worker); there is no
 * polling, only a timer for the next due job.
 *
 * Shared memory holds one slot per database: its worker's pid and latch,
 * a "work was committed" flag and the time the next job is due.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "jobs.h"
#include "s3.h"

#define MAX_JOB_DATABASES	64
/* jobs claimed (and committed as running) at once */
#define CLAIM_BATCH			64
/* how long a worker that just ran jobs waits for more before leaving */
#define WORKER_LINGER_MS	2000
/* a worker that exited on an error is started again after this */
#define WORKER_RESTART_MS	5000
#define LAUNCHER_NAP_MS		60000
#define PRUNE_EVERY_MS		(10 * 60 * 1000)

typedef struct JobSlot
{
	Oid			dbid;			/* InvalidOid: free */
	pid_t		pid;			/* its worker, 0 if none */
	Latch	   *latch;			/* its worker's latch */
	bool		wanted;			/* work committed since the worker looked */
	TimestampTz next_due;		/* start a worker then; 0: no need */
} JobSlot;

typedef struct JobShared
{
	slock_t		mutex;
	Latch	   *launcher_latch;
	JobSlot		slots[MAX_JOB_DATABASES];
} JobShared;

static JobShared *shared = NULL;

/* ---------- shared memory ---------- */

void
dc_worker_request_shmem(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(JobShared)));
}

void
dc_worker_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("datacore jobs", sizeof(JobShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(JobShared));
		SpinLockInit(&shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* The slot of a database, or (create) a new one; NULL if full.  Hold mutex. */
static JobSlot *
find_slot(Oid dbid, bool create)
{
	JobSlot    *free_slot = NULL;
	int			i;

	for (i = 0; i < MAX_JOB_DATABASES; i++)
	{
		JobSlot    *s = &shared->slots[i];

		if (s->dbid == dbid)
			return s;
		if (free_slot == NULL && s->dbid == InvalidOid)
			free_slot = s;
	}
	if (!create || free_slot == NULL)
		return NULL;
	memset(free_slot, 0, sizeof(JobSlot));
	free_slot->dbid = dbid;
	return free_slot;
}

/*
 * Called at commit by a backend that enqueued work: wake the database's
 * worker, or have the launcher start one.  Cannot throw.
 */
void
dc_worker_wake(Oid dbid)
{
	JobSlot    *slot;
	Latch	   *latch = NULL;

	if (shared == NULL)
		return;					/* not preloaded: run_jobs() only */
	SpinLockAcquire(&shared->mutex);
	slot = find_slot(dbid, true);
	if (slot)
	{
		slot->wanted = true;
		latch = slot->pid != 0 ? slot->latch : shared->launcher_latch;
	}
	else
		latch = shared->launcher_latch;
	SpinLockRelease(&shared->mutex);
	if (latch)
		SetLatch(latch);
}

/* Whether a worker is serving the database now. */
bool
dc_worker_active(Oid dbid)
{
	JobSlot    *slot;
	bool		active;

	if (shared == NULL)
		return false;
	SpinLockAcquire(&shared->mutex);
	slot = find_slot(dbid, false);
	active = slot != NULL && slot->pid != 0;
	SpinLockRelease(&shared->mutex);
	return active;
}

/* ---------- launcher ---------- */

void
dc_worker_register_launcher(void)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 10;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "datacore");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "dc_job_launcher_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "datacore job launcher");
	snprintf(bgw.bgw_type, BGW_MAXLEN, "datacore job launcher");
	RegisterBackgroundWorker(&bgw);
}

static void
launcher_detach(int code, Datum arg)
{
	SpinLockAcquire(&shared->mutex);
	if (shared->launcher_latch == MyLatch)
		shared->launcher_latch = NULL;
	SpinLockRelease(&shared->mutex);
}

/*
 * Mark every database that accepts connections (templates excepted) as
 * wanting a look: after a restart its interrupted and due jobs run.
 */
static void
mark_all_databases(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		JobSlot    *slot;

		if (db->datistemplate || !db->datallowconn)
			continue;
		SpinLockAcquire(&shared->mutex);
		slot = find_slot(db->oid, true);
		if (slot)
			slot->wanted = true;
		SpinLockRelease(&shared->mutex);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
}

/* Whether the database still exists (it may have been dropped since). */
static bool
database_exists(Oid dbid)
{
	bool		exists;

	StartTransactionCommand();
	exists = SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(dbid));
	CommitTransactionCommand();
	return exists;
}

static BackgroundWorkerHandle *
start_worker(Oid dbid)
{
	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "datacore");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "dc_job_worker_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "datacore job worker for database %u", dbid);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "datacore job worker");
	bgw.bgw_main_arg = ObjectIdGetDatum(dbid);
	bgw.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&bgw, &handle))
		return NULL;
	return handle;
}

/*
 * The launcher: start a worker for each database slot that wants one and
 * has none; sleep until woken or until the next due time.
 */
void
dc_job_launcher_main(Datum arg)
{
	BackgroundWorkerHandle *handles[MAX_JOB_DATABASES] = {0};

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("datacore job launcher");

	SpinLockAcquire(&shared->mutex);
	shared->launcher_latch = MyLatch;
	SpinLockRelease(&shared->mutex);
	before_shmem_exit(launcher_detach, (Datum) 0);

	mark_all_databases();

	for (;;)
	{
		long		nap = LAUNCHER_NAP_MS;
		TimestampTz now = GetCurrentTimestamp();
		int			i;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		for (i = 0; i < MAX_JOB_DATABASES; i++)
		{
			JobSlot    *s = &shared->slots[i];
			pid_t		pid;
			bool		running = false;
			bool		start = false;
			Oid			dbid;

			if (handles[i])
			{
				running = GetBackgroundWorkerPid(handles[i], &pid) != BGWH_STOPPED;
				if (!running)
				{
					pfree(handles[i]);
					handles[i] = NULL;
				}
			}

			SpinLockAcquire(&shared->mutex);
			dbid = s->dbid;
			if (dbid != InvalidOid && !running && s->pid == 0)
			{
				if (s->wanted || (s->next_due != 0 && s->next_due <= now))
				{
					if (dc_job_worker_enabled)
					{
						start = true;
						s->wanted = false;
						s->next_due = 0;
					}
				}
				else if (s->next_due != 0)
					nap = Min(nap, (long) ((s->next_due - now) / 1000) + 1);
				else
					s->dbid = InvalidOid;	/* a worker that never attached */
			}
			SpinLockRelease(&shared->mutex);

			if (start && !database_exists(dbid))
			{
				SpinLockAcquire(&shared->mutex);
				if (s->dbid == dbid && s->pid == 0 && !s->wanted)
					s->dbid = InvalidOid;
				SpinLockRelease(&shared->mutex);
				start = false;
			}
			if (start)
			{
				handles[i] = start_worker(dbid);
				if (handles[i] == NULL)
				{
					/* no free worker slot: try again soon */
					SpinLockAcquire(&shared->mutex);
					if (s->dbid == dbid)
						s->wanted = true;
					SpinLockRelease(&shared->mutex);
					nap = Min(nap, 1000);
				}
			}
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(nap, 10), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* ---------- worker ---------- */

static JobSlot *my_slot = NULL;

/*
 * Leaving: the slot is free for the next worker.  A worker that exits on
 * an error has its database looked at again a little later.
 */
static void
worker_detach(int code, Datum arg)
{
	Latch	   *launcher = NULL;

	if (my_slot == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	if (my_slot->pid == MyProcPid)
	{
		my_slot->pid = 0;
		my_slot->latch = NULL;
		if (code != 0)
			my_slot->next_due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															WORKER_RESTART_MS);
		launcher = shared->launcher_latch;
	}
	SpinLockRelease(&shared->mutex);
	if (launcher)
		SetLatch(launcher);
}

/*
 * Leave if nothing was committed since we last looked; next_due tells the
 * launcher when to start a worker again.  Returns only if there is work.
 */
static void
worker_try_exit(TimestampTz next_due)
{
	SpinLockAcquire(&shared->mutex);
	if (my_slot->wanted)
	{
		SpinLockRelease(&shared->mutex);
		return;
	}
	my_slot->pid = 0;
	my_slot->latch = NULL;
	my_slot->next_due = next_due;
	if (next_due == 0)
		my_slot->dbid = InvalidOid;
	SpinLockRelease(&shared->mutex);
	proc_exit(0);
}

/* One transaction's worth of work; returns the number of jobs run. */
static int
worker_cycle(TimestampTz *next_due, bool prune)
{
	int			n;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (!dc_jobs_extension_present())
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		worker_try_exit(0);
		return 0;
	}
	pgstat_report_activity(STATE_RUNNING, "running jobs");
	n = dc_jobs_claim_and_run(CLAIM_BATCH, true);
	if (n == 0)
	{
		SPI_connect();
		if (prune)
			dc_jobs_prune();
		*next_due = dc_jobs_next_due();
		SPI_finish();
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return n;
}

/*
 * A database's worker: requeue what a previous process left running, then
 * run due jobs until there are none, linger briefly, leave.
 */
void
dc_job_worker_main(Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);
	TimestampTz last_work = 0;
	TimestampTz last_prune;
	bool		present;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* one worker per database */
	SpinLockAcquire(&shared->mutex);
	my_slot = find_slot(dbid, true);
	if (my_slot == NULL || my_slot->pid != 0)
	{
		my_slot = NULL;
		SpinLockRelease(&shared->mutex);
		proc_exit(0);
	}
	my_slot->pid = MyProcPid;
	my_slot->latch = MyLatch;
	my_slot->wanted = false;
	my_slot->next_due = 0;
	SpinLockRelease(&shared->mutex);
	/* registered first, so it runs after the transaction was aborted */
	before_shmem_exit(worker_detach, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	pgstat_report_appname("datacore job worker");

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	present = dc_jobs_extension_present();
	if (present)
	{
		SPI_connect();
		dc_jobs_requeue_orphans();
		dc_jobs_prune();
		SPI_finish();
		dc_s3_abort_stale_uploads();
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	if (!present)
		worker_try_exit(0);
	last_prune = GetCurrentTimestamp();

	for (;;)
	{
		TimestampTz next_due = 0;
		TimestampTz now;
		TimestampTz wake;
		bool		prune;
		int			n;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!dc_job_worker_enabled)
			proc_exit(0);

		SpinLockAcquire(&shared->mutex);
		my_slot->wanted = false;
		SpinLockRelease(&shared->mutex);

		now = GetCurrentTimestamp();
		prune = TimestampDifferenceExceeds(last_prune, now, PRUNE_EVERY_MS);
		n = worker_cycle(&next_due, prune);
		if (prune)
			last_prune = now;
		now = GetCurrentTimestamp();
		if (n > 0)
		{
			last_work = now;
			continue;
		}

		/*
		 * Nothing claimable.  A due job we could not claim is locked by
		 * another runner (run_jobs()): look again shortly.  Otherwise stay
		 * while more jobs may follow the ones just run or the next one is
		 * due soon, and leave the rest to the launcher.
		 */
		if (next_due != 0 && next_due <= now)
			wake = TimestampTzPlusMilliseconds(now, 100);
		else if (next_due != 0 && next_due < TimestampTzPlusMilliseconds(now, WORKER_LINGER_MS))
			wake = next_due;
		else
		{
			wake = last_work ? TimestampTzPlusMilliseconds(last_work, WORKER_LINGER_MS) : now;
			if (wake <= now)
			{
				worker_try_exit(next_due);
				continue;
			}
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max((long) ((wake - now) / 1000), 1), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
