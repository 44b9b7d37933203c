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

#include "fmgr.h"
#include "utils/builtins.h"

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
