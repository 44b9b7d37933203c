/*-------------------------------------------------------------------------
 *
 * breaker.h
 *		Per-server circuit breaker shared by all backends.
 *
 * After breaker_threshold consecutive failed calls a server's breaker
 * opens: calls fail at once (08006) instead of each waiting for a timeout.
 * After breaker_cooldown_ms it is half-open: exactly one call, in whichever
 * backend asks first, goes through as the probe.  Its success closes the
 * breaker; its failure (or its abandonment by ERROR or exit) reopens it for
 * another cooldown.  A probe that never reports loses its lease after the
 * longest time an honest call could take, so nothing wedges half-open.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DATACORE_BREAKER_H
#define DATACORE_BREAKER_H

#include "datatype/timestamp.h"

#include "datacore.h"

typedef enum DcBreakerState
{
	DC_BREAKER_CLOSED,			/* calls go through */
	DC_BREAKER_OPEN,			/* calls fail fast until the next probe */
	DC_BREAKER_HALF_OPEN		/* a probe is due or under way */
} DcBreakerState;

extern void dc_breaker_request_shmem(void);
extern void dc_breaker_startup(void);

/*
 * Before a call: returns if the call may go (possibly as the probe), else
 * raises 08006.  After it: dc_breaker_record with the outcome, where a
 * failure is what dc_breaker_status_failure / a connection error says.
 */
extern void dc_breaker_check(DcServer *server, const char *operation);
extern void dc_breaker_record(DcServer *server, bool success);

/*
 * dc_breaker_check without the error, for a caller that must not throw (a
 * job worker with many calls in flight): true = go (perhaps as the probe:
 * then dc_breaker_record must follow), false = fail fast; *next_probe (may
 * be NULL) then says when a call may go.
 */
extern bool dc_breaker_try(DcServer *server, TimestampTz *next_probe);

/*
 * Look without taking anything: the state of this database's breaker for
 * serverid, and in *next_probe (may be NULL) the earliest time a call can
 * go through (0 when closed).  A call made before *next_probe fails fast;
 * one made at or after it may become the probe.  No catalog access, no
 * probe spent: for a job worker deciding whether to wait.
 */
extern DcBreakerState dc_breaker_state(Oid serverid, TimestampTz *next_probe);

/* Whether an HTTP status means the server is in trouble: 429 and 5xx. */
extern bool dc_breaker_status_failure(long status);

/*
 * For the job runner: until when calls to serverid fail fast (0, or a time
 * already past: they do not).  While a probe is under way, at most a second
 * from now: the probe's answer, not its lease, decides.
 */
extern TimestampTz dc_breaker_open_until(Oid serverid);

#endif							/* DATACORE_BREAKER_H */
