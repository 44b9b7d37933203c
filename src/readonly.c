/*-------------------------------------------------------------------------
 *
 * readonly.c
 *		The write fence: calls that change state outside the database (or
 *		queue such a change) refuse a read-only transaction.
 *
 * PreventCommandIfReadOnly gives the right SQLSTATE (25006) for a READ ONLY
 * transaction on a primary, where the caller chose read-only and knows it.
 * On a hot standby every transaction is read-only and the caller usually
 * reached the standby through a load balancer or a read-only connection
 * string without meaning to; there the error says so and where to go.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "miscadmin.h"

#include "datacore.h"

/*
 * Raise 25006 unless the current transaction may write.  "operation" names
 * the call ("s3_put()", "SET"), as in PostgreSQL's own message.
 */
void
dc_prevent_if_read_only(const char *operation)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot execute %s in a read-only transaction", operation),
				 errdetail("This server is a hot standby."),
				 errhint("Run it on the primary server.")));
	PreventCommandIfReadOnly(operation);
}
