/*-------------------------------------------------------------------------
 *
 * breaker.c
 *		Circuit breaker per (database, server), kept in shared memory so
 *		every backend learns that a server is down, and so that exactly one
 *		call across all backends probes whether it is back.
 *
 * States: closed (calls go through; consecutive failures are counted),
 * open (calls fail fast until next_probe_at), half-open (the cooldown is
 * over: the first call to ask takes the probe and holds it under a lease;
 * everybody else still fails fast).  The probe's success closes the
 * breaker, its failure reopens it for another cooldown.  A backend that
 * holds a probe and aborts (ERROR, cancel, FATAL) before reporting counts
 * it as failed; a probe that never reports at all (a stuck backend) loses
 * its lease after the longest time the call could honestly take.
 *
 * Without shared_preload_libraries there is no shared memory to ask for;
 * each backend then keeps its own table, which still spares it repeated
 * timeouts.  Only counters are shared: no option values, no secrets.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
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
/* probes one backend may hold at once (nested calls to several servers) */
#define MAX_HELD_PROBES 8
/* added to a probe's lease beyond its own time limits */
#define LEASE_SLACK_MS 1000

typedef struct BreakerSlot
{
	Oid			dbid;			/* InvalidOid = free */
	Oid			serverid;
	DcBreakerState state;		/* CLOSED, OPEN, or HALF_OPEN = probe taken */
	int			failures;		/* consecutive */
	int			cooldown_ms;	/* of the server, as of the last opening */
	int			probe_pid;		/* HALF_OPEN: the probing backend */
	TimestampTz opened_at;		/* last transition to OPEN */
	TimestampTz next_probe_at;	/* OPEN: probe allowed from then on;
								 * HALF_OPEN: the probe's lease ends then */
	TimestampTz last_failure_at;	/* for reclaiming slots */
} BreakerSlot;

typedef struct BreakerShared
{
	LWLock	   *lock;			/* NULL in the backend-local fallback */
	BreakerSlot slots[BREAKER_SLOTS];
} BreakerShared;

static BreakerShared *shared = NULL;

/* Probes this backend took and has not reported yet. */
typedef struct HeldProbe
{
	Oid			serverid;
	SubTransactionId subid;		/* taken in this (sub)transaction */
} HeldProbe;

static HeldProbe held_probes[MAX_HELD_PROBES];
static int	nheld = 0;
static bool callbacks_registered = false;

void
dc_breaker_request_shmem(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(BreakerShared)));
	RequestNamedLWLockTranche("datacore_breaker", 1);
}

void
dc_breaker_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("datacore breaker", sizeof(BreakerShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(BreakerShared));
		shared->lock = &(GetNamedLWLockTranche("datacore_breaker"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

static BreakerShared *
get_shared(void)
{
	if (shared == NULL)
		shared = MemoryContextAllocZero(TopMemoryContext, sizeof(BreakerShared));
	return shared;
}

static void
lock(BreakerShared *st, LWLockMode mode)
{
	if (st->lock)
		LWLockAcquire(st->lock, mode);
}

static void
unlock(BreakerShared *st)
{
	if (st->lock)
		LWLockRelease(st->lock);
}

/*
 * The slot for this database's server; with "create", a free one, else a
 * closed one, else the one whose last failure is oldest (128 servers all
 * failing at once is not a case worth more memory).  Caller holds the lock
 * exclusively when creating.
 */
/* How willingly a slot is given to another server: lower is sooner. */
static int
reclaim_rank(const BreakerSlot *s)
{
	if (s->dbid == InvalidOid)
		return 0;
	if (s->state == DC_BREAKER_CLOSED && s->failures == 0)
		return 1;
	return 2;
}

static BreakerSlot *
find_slot(BreakerShared *st, Oid serverid, bool create)
{
	BreakerSlot *victim = NULL;
	int			i;

	for (i = 0; i < BREAKER_SLOTS; i++)
	{
		BreakerSlot *s = &st->slots[i];

		if (s->dbid == MyDatabaseId && s->serverid == serverid)
			return s;
		if (create &&
			(victim == NULL || reclaim_rank(s) < reclaim_rank(victim) ||
			 (reclaim_rank(s) == 2 && reclaim_rank(victim) == 2 &&
			  s->last_failure_at < victim->last_failure_at)))
			victim = s;
	}
	if (victim == NULL)
		return NULL;
	memset(victim, 0, sizeof(BreakerSlot));
	victim->dbid = MyDatabaseId;
	victim->serverid = serverid;
	victim->state = DC_BREAKER_CLOSED;
	return victim;
}

/* ---------- probes held by this backend ---------- */

static void
forget_probe(Oid serverid)
{
	int			i;

	for (i = 0; i < nheld; i++)
	{
		if (held_probes[i].serverid == serverid)
		{
			held_probes[i] = held_probes[--nheld];
			return;
		}
	}
}

/*
 * Reopen the breakers whose probe this backend took in subtransaction
 * subid or later (InvalidSubTransactionId: any) and never reported: the
 * call ended by ERROR (often statement_timeout on a server too slow to
 * answer), cancel or exit, so the server did not show it is back.
 */
static void
abandon_probes(SubTransactionId subid)
{
	BreakerShared *st;
	TimestampTz now;
	int			i;

	if (nheld == 0)
		return;
	st = get_shared();
	now = GetCurrentTimestamp();
	lock(st, LW_EXCLUSIVE);
	for (i = nheld - 1; i >= 0; i--)
	{
		BreakerSlot *s;

		if (subid != InvalidSubTransactionId && held_probes[i].subid < subid)
			continue;
		s = find_slot(st, held_probes[i].serverid, false);
		if (s && s->state == DC_BREAKER_HALF_OPEN && s->probe_pid == MyProcPid)
		{
			s->state = DC_BREAKER_OPEN;
			s->failures++;
			s->probe_pid = 0;
			s->opened_at = now;
			s->last_failure_at = now;
			s->next_probe_at = TimestampTzPlusMilliseconds(now, s->cooldown_ms);
		}
		held_probes[i] = held_probes[--nheld];
	}
	unlock(st);
}

static void
xact_cb(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		abandon_probes(InvalidSubTransactionId);
}

static void
subxact_cb(SubXactEvent event, SubTransactionId mySubid,
		   SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		abandon_probes(mySubid);
}

/* A probe outlives a transaction only if the backend exits outside one. */
static void
exit_cb(int code, Datum arg)
{
	abandon_probes(InvalidSubTransactionId);
}

static void
hold_probe(Oid serverid)
{
	if (!callbacks_registered)
	{
		RegisterXactCallback(xact_cb, NULL);
		RegisterSubXactCallback(subxact_cb, NULL);
		before_shmem_exit(exit_cb, (Datum) 0);
		callbacks_registered = true;
	}
	forget_probe(serverid);
	if (nheld < MAX_HELD_PROBES)
	{
		held_probes[nheld].serverid = serverid;
		held_probes[nheld].subid = GetCurrentSubTransactionId();
		nheld++;
	}
}

/*
 * How long a probe may hold the breaker: the longest an honest call can
 * take (every attempt's connect and answer limits, the retry waits) plus a
 * second.  Past that the probe is presumed lost and another call may probe.
 */
static int64
lease_ms(DcServer *server)
{
	int64		attempt = (int64) server->connect_timeout_ms + server->timeout_ms;

	return attempt * (server->retries + 1) + (int64) server->retries * 10000 +
		LEASE_SLACK_MS;
}

/* Whole seconds from now until t, rounded up, at least 1. */
static int
seconds_until(TimestampTz now, TimestampTz t)
{
	int64		us = t - now;

	return us <= 0 ? 1 : (int) Min((us + USECS_PER_SEC - 1) / USECS_PER_SEC, PG_INT32_MAX);
}

static void
fail_fast(DcServer *server, const char *operation, BreakerSlot *copy,
		  TimestampTz now)
{
	int			secs = seconds_until(now, copy->next_probe_at);

	if (copy->state == DC_BREAKER_HALF_OPEN)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("server \"%s\" is unavailable; %s was not attempted",
						server->servername, operation),
				 errdetail("After %d consecutive failed calls its circuit breaker is open, and another call is probing whether the server is back.",
						   copy->failures),
				 errhint("Calls go through again once the probe succeeds; if it never reports, the next probe is in %d s.",
						 secs)));
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("server \"%s\" is unavailable; %s was not attempted",
					server->servername, operation),
			 errdetail("After %d consecutive failed calls its circuit breaker is open.",
					   copy->failures),
			 errhint("The next probe call is in %d s. The server options breaker_threshold and breaker_cooldown_ms control this.",
					 secs)));
}

/*
 * Whether a call may go now, taking the probe when it is due.  When not,
 * *copy holds the slot as it was, for the error or the caller's wait.
 * A closed breaker costs one shared lock and a scan of the slot table.
 */
static bool
admit(DcServer *server, BreakerSlot *copy, TimestampTz *now)
{
	BreakerShared *st;
	BreakerSlot *slot;
	bool		probe = false;

	*now = 0;
	if (server->breaker_threshold <= 0)
		return true;
	st = get_shared();
	lock(st, LW_SHARED);
	slot = find_slot(st, server->serverid, false);
	if (slot == NULL || slot->state == DC_BREAKER_CLOSED)
	{
		unlock(st);
		return true;
	}
	*copy = *slot;
	unlock(st);

	*now = GetCurrentTimestamp();
	if (*now < copy->next_probe_at)
		return false;

	/* the probe is due: take it unless another backend was quicker */
	lock(st, LW_EXCLUSIVE);
	slot = find_slot(st, server->serverid, false);
	if (slot == NULL || slot->state == DC_BREAKER_CLOSED)
	{
		unlock(st);
		return true;
	}
	if (*now >= slot->next_probe_at)
	{
		slot->state = DC_BREAKER_HALF_OPEN;
		slot->probe_pid = MyProcPid;
		slot->cooldown_ms = server->breaker_cooldown_ms;
		slot->next_probe_at = *now + lease_ms(server) * 1000;
		probe = true;
	}
	*copy = *slot;
	unlock(st);

	if (probe)
		hold_probe(server->serverid);
	return probe;
}

/*
 * Before a call: return if it may go (perhaps as the probe), else fail
 * fast with 08006.
 */
void
dc_breaker_check(DcServer *server, const char *operation)
{
	BreakerSlot copy;
	TimestampTz now;

	if (!admit(server, &copy, &now))
		fail_fast(server, operation, &copy, now);
}

/*
 * Like dc_breaker_check, without the error: false means the call must not
 * go, and *next_probe (may be NULL) says when to ask again.
 */
bool
dc_breaker_try(DcServer *server, TimestampTz *next_probe)
{
	BreakerSlot copy;
	TimestampTz now;
	bool		ok = admit(server, &copy, &now);

	if (next_probe)
		*next_probe = ok ? 0 : copy.next_probe_at;
	return ok;
}

/*
 * After a call: its outcome.  A success closes the breaker whatever its
 * state; a failure counts, opens a closed breaker at the threshold and
 * reopens a half-open one for another cooldown.  The common case (success
 * on a healthy server) takes only the shared lock.
 */
void
dc_breaker_record(DcServer *server, bool success)
{
	BreakerShared *st;
	BreakerSlot *slot;
	TimestampTz now;

	if (server->breaker_threshold <= 0)
		return;
	forget_probe(server->serverid);
	st = get_shared();

	if (success)
	{
		bool		dirty;

		lock(st, LW_SHARED);
		slot = find_slot(st, server->serverid, false);
		dirty = slot && (slot->failures > 0 || slot->state != DC_BREAKER_CLOSED);
		unlock(st);
		if (!dirty)
			return;
		lock(st, LW_EXCLUSIVE);
		slot = find_slot(st, server->serverid, false);
		if (slot)
		{
			slot->state = DC_BREAKER_CLOSED;
			slot->failures = 0;
			slot->probe_pid = 0;
			slot->opened_at = 0;
			slot->next_probe_at = 0;
		}
		unlock(st);
		return;
	}

	now = GetCurrentTimestamp();
	lock(st, LW_EXCLUSIVE);
	slot = find_slot(st, server->serverid, true);
	if (slot)
	{
		slot->failures++;
		slot->last_failure_at = now;
		if (slot->state == DC_BREAKER_HALF_OPEN ||
			(slot->state == DC_BREAKER_CLOSED &&
			 slot->failures >= server->breaker_threshold))
		{
			slot->state = DC_BREAKER_OPEN;
			slot->probe_pid = 0;
			slot->cooldown_ms = server->breaker_cooldown_ms;
			slot->opened_at = now;
			slot->next_probe_at = TimestampTzPlusMilliseconds(now, server->breaker_cooldown_ms);
		}
		/* a late failure while open leaves the cooldown as it is */
	}
	unlock(st);
}

/*
 * The state as a caller sees it: an open breaker whose cooldown is over is
 * half-open (the next call probes), and so is one whose probe is under way.
 */
static DcBreakerState
visible_state(const BreakerSlot *s, TimestampTz now)
{
	if (s->state == DC_BREAKER_OPEN && now >= s->next_probe_at)
		return DC_BREAKER_HALF_OPEN;
	return s->state;
}

DcBreakerState
dc_breaker_state(Oid serverid, TimestampTz *next_probe)
{
	BreakerShared *st = get_shared();
	BreakerSlot *slot;
	BreakerSlot copy;

	lock(st, LW_SHARED);
	slot = find_slot(st, serverid, false);
	if (slot)
		copy = *slot;
	unlock(st);

	if (slot == NULL || copy.state == DC_BREAKER_CLOSED)
	{
		if (next_probe)
			*next_probe = 0;
		return DC_BREAKER_CLOSED;
	}
	if (next_probe)
		*next_probe = copy.next_probe_at;
	return visible_state(&copy, GetCurrentTimestamp());
}

bool
dc_breaker_status_failure(long status)
{
	return status == 429 || (status >= 500 && status <= 599);
}

TimestampTz
dc_breaker_open_until(Oid serverid)
{
	TimestampTz next_probe;
	TimestampTz soon;

	switch (dc_breaker_state(serverid, &next_probe))
	{
		case DC_BREAKER_CLOSED:
			return 0;
		case DC_BREAKER_HALF_OPEN:

			/*
			 * A probe is under way: its lease can be minutes long, but its
			 * answer usually comes much sooner, so look again shortly.
			 */
			soon = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000);
			return Min(next_probe, soon);
		default:
			return next_probe;
	}
}

PG_FUNCTION_INFO_V1(datacore_breaker_status);

/*
 * breaker_status() → (server, state, failures, opened_at, next_probe_at)
 * for this database's servers with a failure on record.  next_probe_at is
 * when an open breaker lets its probe through, or for a probe under way
 * when its lease ends.
 */
Datum
datacore_breaker_status(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"closed", "open", "half-open"};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	BreakerShared *st = get_shared();
	BreakerSlot *copy = palloc(sizeof(BreakerSlot) * BREAKER_SLOTS);
	TimestampTz now;
	int			i;

	InitMaterializedSRF(fcinfo, 0);

	lock(st, LW_SHARED);
	memcpy(copy, st->slots, sizeof(BreakerSlot) * BREAKER_SLOTS);
	unlock(st);
	now = GetCurrentTimestamp();

	for (i = 0; i < BREAKER_SLOTS; i++)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};
		ForeignServer *fs;

		if (copy[i].dbid != MyDatabaseId ||
			(copy[i].failures == 0 && copy[i].state == DC_BREAKER_CLOSED))
			continue;
		fs = GetForeignServerExtended(copy[i].serverid, FSV_MISSING_OK);
		if (fs == NULL)
			continue;
		values[0] = CStringGetTextDatum(fs->servername);
		values[1] = CStringGetTextDatum(names[visible_state(&copy[i], now)]);
		values[2] = Int32GetDatum(copy[i].failures);
		values[3] = TimestampTzGetDatum(copy[i].opened_at);
		nulls[3] = copy[i].state == DC_BREAKER_CLOSED;
		values[4] = TimestampTzGetDatum(copy[i].next_probe_at);
		nulls[4] = copy[i].state == DC_BREAKER_CLOSED;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
