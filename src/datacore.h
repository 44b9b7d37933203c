/*-------------------------------------------------------------------------
 *
 * datacore.h
 *		Internal declarations shared by every datacore subsystem: service
 *		identities, resolved server configuration and the option lookup.
 *
 * Service clients include this header plus the header of whatever
 * subsystem they use (http.h, json.h).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DATACORE_H
#define DATACORE_H

#include "postgres.h"

#include "nodes/pg_list.h"

/* The four remote services; each has its own foreign-data wrapper. */
typedef enum DcService
{
	DC_SERVICE_OLLAMA,
	DC_SERVICE_QDRANT,
	DC_SERVICE_S3,
	DC_SERVICE_REDIS
} DcService;

#define DC_NUM_SERVICES 4

/*
 * Breaker defaults (docs/configuration.md says why): five consecutive
 * failures, counted across every backend of the database, open it for 30 s.
 */
#define DC_BREAKER_THRESHOLD	5
#define DC_BREAKER_COOLDOWN_MS	30000

/*
 * A foreign server resolved for one call: the server's options merged with
 * the calling user's mapping (or the PUBLIC one).  Secrets are only in
 * "options"; never print that list.
 */
typedef struct DcServer
{
	DcService	service;
	Oid			serverid;
	Oid			umid;			/* user mapping used, or InvalidOid */
	char	   *servername;

	/* common options, defaults applied */
	char	   *url;			/* HTTP services: base URL without trailing '/' */
	int			timeout_ms;
	int			connect_timeout_ms;
	int64		max_response_bytes;
	int			retries;
	int			breaker_threshold;	/* 0 = no breaker */
	int			breaker_cooldown_ms;
	bool		allow_link_local;	/* egress guard lifted by a superuser */

	List	   *options;		/* DefElems: server options, then mapping options */
} DcServer;

/* in options.c */
extern const char *dc_service_name(DcService service);
extern const char *dc_service_wrapper(DcService service);
extern DcServer *dc_get_server(const char *servername, DcService service,
							   const char *operation);
extern DcServer *dc_get_server_by_oid(Oid serverid, Oid userid,
									  DcService service, const char *operation);

/* the role a foreign scan or modification runs as (view owner, ...) */
struct ForeignScanState;
struct ResultRelInfo;
struct EState;
extern Oid	dc_scan_user(struct ForeignScanState *node);
extern Oid	dc_modify_user(struct ResultRelInfo *rinfo, struct EState *estate);
extern const char *dc_option(DcServer *server, const char *name);
extern int	dc_option_int(DcServer *server, const char *name, int defval);
extern int64 dc_option_int64(DcServer *server, const char *name, int64 defval);
extern bool dc_option_bool(DcServer *server, const char *name, bool defval);
extern const char *dc_option_from_list(List *options, const char *name);
extern void dc_check_option_list(DcService service, List *options, Oid catalog);
extern void dc_check_redis_host(const char *host);

/* in egress.c: the link-local / cloud-metadata fence */
struct sockaddr;
extern bool dc_egress_blocked(const struct sockaddr *sa, char *text, size_t textlen);
extern void dc_egress_check_host(DcServer *server, const char *operation,
								 const char *host);
extern void dc_egress_check_fd(DcServer *server, const char *operation, int fd);
extern void dc_egress_refuse(DcServer *server, const char *operation,
							 const char *addr) pg_attribute_noreturn();

/* in remote.c: remote bytes that become text; the read-only fence for remote writes */
extern void dc_check_remote_text(const char *s, int len, const char *what,
								 const char *servername);
extern char *dc_remote_excerpt(const char *s, int len, int maxbytes);
extern void dc_remote_define_gucs(void);
extern void dc_prevent_remote_write_if_read_only(const char *operation);

/* in readonly.c: the write fence (25006, with a hint on a hot standby) */
extern void dc_prevent_if_read_only(const char *operation);

#endif							/* DATACORE_H */
