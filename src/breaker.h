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

extern void dc_breaker_request_shmem(void);
extern void dc_breaker_startup(void);

extern void dc_breaker_check(DcServer *server, const char *operation);
extern void dc_breaker_record(DcServer *server, bool success);

#endif							/* DATACORE_BREAKER_H */
