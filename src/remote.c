/*-------------------------------------------------------------------------
 *
 * remote.c
 *		Turning bytes from a remote server into text the database accepts.
 *
 * Everything a service answers is untrusted: before it becomes a text
 * value, a jsonb value, a name or part of a message it must be valid in
 * the database encoding and free of NUL bytes.  Values are refused with
 * 22021; text meant only for a message is cut on a character boundary and
 * made safe instead, because an error must still be reportable.
 *
 * Also the one fence for the other direction: calls that change remote
 * state refuse a READ ONLY transaction unless a superuser allowed it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "datacore.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/guc.h"

static bool remote_writes_in_read_only = false;

void
dc_remote_define_gucs(void)
{
	DefineCustomBoolVariable("datacore.remote_writes_in_read_only",
							 "Lets calls with a side effect on a remote server run in a READ ONLY transaction.",
							 "For a hot standby that must still cache in Redis or store in S3; "
							 "tables (the job queue, last-good summaries) stay read-only.",
							 &remote_writes_in_read_only, false, PGC_SUSET, 0,
							 NULL, NULL, NULL);
}

/*
 * Refuse (25006) a call named "operation" that would change a remote
 * server's state when the transaction is READ ONLY, as PostgreSQL refuses
 * its own writes, so that a PostgREST GET or a standby never writes to S3,
 * Redis or Qdrant; datacore.remote_writes_in_read_only lifts the fence.
 */
void
dc_prevent_remote_write_if_read_only(const char *operation)
{
	if (!remote_writes_in_read_only)
		dc_prevent_if_read_only(operation);
}

/*
 * Raise 22021 unless s[0..len) is valid in the database encoding and holds
 * no NUL byte.  "what" names the value for the message ("CSV field",
 * "ETag header"), "servername" the server it came from.
 */
void
dc_check_remote_text(const char *s, int len, const char *what,
					 const char *servername)
{
	int			encoding = GetDatabaseEncoding();
	int			valid;

	valid = pg_encoding_verifymbstr(encoding, s, len);
	if (valid == len)
		return;

	if (s[valid] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("%s from server \"%s\" contains a NUL byte",
						what, servername),
				 errdetail("The NUL byte is at byte offset %d.", valid)));
	ereport(ERROR,
			(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
			 errmsg("%s from server \"%s\" is not valid in encoding \"%s\"",
					what, servername, GetDatabaseEncodingName()),
			 errdetail("The first invalid byte is at byte offset %d.", valid)));
}

/*
 * A printable excerpt of at most maxbytes bytes of remote text, for
 * errdetail.  The cut falls on a character boundary; invalid bytes and
 * control characters other than tab and newline are shown as \xNN, so the
 * message itself can always be sent to the client.
 */
char *
dc_remote_excerpt(const char *s, int len, int maxbytes)
{
	int			encoding = GetDatabaseEncoding();
	StringInfoData buf;
	int			pos = 0;

	initStringInfo(&buf);
	if (s == NULL)
		len = 0;
	while (pos < len && buf.len < maxbytes)
	{
		unsigned char c = (unsigned char) s[pos];
		int			clen;

		if (c >= 0x80 || c == 0)
			clen = pg_encoding_verifymbchar(encoding, s + pos, len - pos);
		else
			clen = 1;

		if (clen <= 0 || (c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
		{
			if (buf.len + 4 > maxbytes)
				break;
			appendStringInfo(&buf, "\\x%02x", c);
			pos++;
			continue;
		}
		if (buf.len + clen > maxbytes)
			break;
		appendBinaryStringInfo(&buf, s + pos, clen);
		pos += clen;
	}
	if (pos < len)
		appendStringInfoString(&buf, "...");
	return buf.data;
}
