/*-------------------------------------------------------------------------
 *
 * breaker.h
 *		Per-server circuit breaker shared by all backends.
 *
 * After breaker_threshold consecutive failures a server is left alone for
 * breaker_cooldown_ms: calls fail at once instead of each waiting for a
 * timeout, which is what a caller serving a stale cached answer needs.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DATACORE_BREAKER_H
#define DATACORE_BREAKER_H

#include "datacore.h"
#include "datatype/timestamp.h"

extern void dc_breaker_request_shmem(void);
extern void dc_breaker_startup(void);

extern void dc_breaker_check(DcServer *server, const char *operation);
extern void dc_breaker_record(DcServer *server, bool success);

/*
 * Read-only query for the job runner: until when calls to a server of this
 * database fail fast (0 or a past time: they do not).  Kept to this one
 * question so that the breaker's states can change behind it.
 */
extern TimestampTz dc_breaker_open_until(Oid serverid);

#endif							/* DATACORE_BREAKER_H */
