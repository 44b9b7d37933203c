/*-------------------------------------------------------------------------
 *
 * breaker.c
 *		Circuit breaker: consecutive failures per (database, server), kept
 *		in shared memory so every backend learns that a server is down.
 *
 * Without shared_preload_libraries there is no shared memory to ask for;
 * each backend then keeps its own table, which still spares it repeated
 * timeouts.  Only the counters are shared: no option values, no secrets.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "breaker.h"

#define BREAKER_SLOTS 128

typedef struct BreakerSlot
{
	Oid			dbid;			/* InvalidOid = free */
	Oid			serverid;
	int			failures;		/* consecutive */
	TimestampTz open_until;		/* calls fail fast before this */
} BreakerSlot;

typedef struct BreakerState
{
	LWLock	   *lock;			/* NULL in the backend-local fallback */
	BreakerSlot slots[BREAKER_SLOTS];
} BreakerState;

static BreakerState *state = NULL;

void
dc_breaker_request_shmem(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(BreakerState)));
	RequestNamedLWLockTranche("datacore_breaker", 1);
}

void
dc_breaker_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	state = ShmemInitStruct("datacore breaker", sizeof(BreakerState), &found);
	if (!found)
	{
		memset(state, 0, sizeof(BreakerState));
		state->lock = &(GetNamedLWLockTranche("datacore_breaker"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

static BreakerState *
get_state(void)
{
	if (state == NULL)
		state = MemoryContextAllocZero(TopMemoryContext, sizeof(BreakerState));
	return state;
}

static void
lock(BreakerState *st, LWLockMode mode)
{
	if (st->lock)
		LWLockAcquire(st->lock, mode);
}

static void
unlock(BreakerState *st)
{
	if (st->lock)
		LWLockRelease(st->lock);
}

/* The slot for this server; with "create", a free or reclaimed one. */
static BreakerSlot *
find_slot(BreakerState *st, Oid serverid, bool create)
{
	BreakerSlot *free_slot = NULL;
	int			i;

	for (i = 0; i < BREAKER_SLOTS; i++)
	{
		BreakerSlot *s = &st->slots[i];

		if (s->dbid == MyDatabaseId && s->serverid == serverid)
			return s;
		/* a closed breaker holds nothing worth keeping */
		if (free_slot == NULL && (s->dbid == InvalidOid || s->failures == 0))
			free_slot = s;
	}
	if (!create || free_slot == NULL)
		return NULL;
	free_slot->dbid = MyDatabaseId;
	free_slot->serverid = serverid;
	free_slot->failures = 0;
	free_slot->open_until = 0;
	return free_slot;
}

static int
threshold(DcServer *server)
{
	return dc_option_int(server, "breaker_threshold", 0);
}

/*
 * Fail fast if the server's breaker is open.  Once the cooldown has passed
 * calls go through again; the next failure reopens it at once.
 */
void
dc_breaker_check(DcServer *server, const char *operation)
{
	BreakerState *st;
	BreakerSlot *slot;
	TimestampTz open_until = 0;
	int			failures = 0;

	if (threshold(server) <= 0)
		return;
	st = get_state();
	lock(st, LW_SHARED);
	slot = find_slot(st, server->serverid, false);
	if (slot)
	{
		open_until = slot->open_until;
		failures = slot->failures;
	}
	unlock(st);

	if (open_until != 0 && GetCurrentTimestamp() < open_until)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("server \"%s\" is unavailable; %s was not attempted",
						server->servername, operation),
				 errdetail("The last %d calls failed; after a failure datacore leaves the server alone for %d ms.",
						   failures, dc_option_int(server, "breaker_cooldown_ms", 30000)),
				 errhint("The server options breaker_threshold and breaker_cooldown_ms control this.")));
}

/* Count a call's outcome. */
void
dc_breaker_record(DcServer *server, bool success)
{
	int			limit = threshold(server);
	BreakerState *st;
	BreakerSlot *slot;

	if (limit <= 0)
		return;
	st = get_state();
	lock(st, LW_EXCLUSIVE);
	slot = find_slot(st, server->serverid, !success);
	if (slot)
	{
		if (success)
		{
			slot->failures = 0;
			slot->open_until = 0;
		}
		else if (++slot->failures >= limit)
			slot->open_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														   dc_option_int(server, "breaker_cooldown_ms", 30000));
	}
	unlock(st);
}

/*
 * Until when the breaker of serverid (this database) is open; 0 when it
 * has no record.  Read-only; used by the job runner to defer a job without
 * spending an attempt.
 */
TimestampTz
dc_breaker_open_until(Oid serverid)
{
	BreakerState *st = get_state();
	BreakerSlot *slot;
	TimestampTz until = 0;

	lock(st, LW_SHARED);
	slot = find_slot(st, serverid, false);
	if (slot)
		until = slot->open_until;
	unlock(st);
	return until;
}

PG_FUNCTION_INFO_V1(datacore_breaker_status);

/*
 * breaker_status() → (server, failures, open_until) for this database's
 * servers with a failure on record.
 */
Datum
datacore_breaker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	BreakerState *st = get_state();
	BreakerSlot copy[BREAKER_SLOTS];
	int			i;

	InitMaterializedSRF(fcinfo, 0);

	lock(st, LW_SHARED);
	memcpy(copy, st->slots, sizeof(copy));
	unlock(st);

	for (i = 0; i < BREAKER_SLOTS; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};
		ForeignServer *fs;

		if (copy[i].dbid != MyDatabaseId || copy[i].failures == 0)
			continue;
		fs = GetForeignServerExtended(copy[i].serverid, FSV_MISSING_OK);
		if (fs == NULL)
			continue;
		values[0] = CStringGetTextDatum(fs->servername);
		values[1] = Int32GetDatum(copy[i].failures);
		values[2] = TimestampTzGetDatum(copy[i].open_until);
		nulls[2] = copy[i].open_until == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
