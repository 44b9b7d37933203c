/*-------------------------------------------------------------------------
 *
 * s3_uploads.c
 *		Multipart uploads that a crash left open, aborted when the server
 *		runs again.
 *
 * An upload that fails or is cancelled is aborted at once (s3.c).  One cut
 * short by a crash, `pg_ctl stop -m immediate` or a terminated backend has
 * nobody left to abort it, and the object store keeps its parts (and bills
 * them) until somebody does.  The transaction cannot remember it, since the
 * crash takes the transaction with it; so from CreateMultipartUpload until
 * the upload is completed or aborted, a small file in
 * $PGDATA/pg_datacore/uploads records it: database, server, role, bucket,
 * key, upload id, and the cluster's system identifier and timeline.
 *
 * When shared memory is initialised — at postmaster start and again after
 * a backend crash — no backend of the previous generation is left, so the
 * postmaster moves every record to pg_datacore/uploads.stale.  Each
 * database's job worker, when it starts (the launcher starts one in every
 * database then), aborts the stale uploads of its database as the role
 * that began them and removes their records; one whose abort fails (the
 * store is down) stays for the next worker start.  A record that
 * pg_basebackup copied to a standby names the primary's timeline, so a
 * promoted standby drops it without touching an upload the primary may be
 * running.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "common/file_perm.h"
#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "datacore.h"
#include "s3.h"

#define UPLOADS_DIR		"pg_datacore/uploads"
#define STALE_DIR		"pg_datacore/uploads.stale"
#define RECORD_MAGIC	"datacore multipart upload 1\n"

typedef struct UploadRecord
{
	Oid			dbid;
	Oid			serverid;
	Oid			roleid;
	uint64		sysid;
	uint32		tli;
	char	   *bucket;
	char	   *key;
	char	   *upload_id;
} UploadRecord;

static uint32 record_seq = 0;

/* A field that may hold any byte: its length, a colon, the bytes, a newline. */
static void
append_field(StringInfo buf, const char *s)
{
	appendStringInfo(buf, "%zu:", strlen(s));
	appendStringInfoString(buf, s);
	appendStringInfoChar(buf, '\n');
}

/*
 * Record an upload just created; returns the record's path, for
 * dc_s3_upload_forget.  A record that cannot be written is a WARNING, not
 * an error: the upload itself is fine, only a crash during it would leave
 * it open.
 */
char *
dc_s3_upload_remember(DcServer *server, const char *bucket, const char *key,
					  const char *upload_id)
{
	StringInfoData buf;
	char	   *path;
	int			fd;

	initStringInfo(&buf);
	appendStringInfoString(&buf, RECORD_MAGIC);
	appendStringInfo(&buf, "%u\n%u\n%u\n" UINT64_FORMAT "\n%u\n",
					 MyDatabaseId, server->serverid, GetUserId(),
					 GetSystemIdentifier(), (unsigned) GetWALInsertionTimeLine());
	append_field(&buf, bucket);
	append_field(&buf, key);
	append_field(&buf, upload_id);

	path = psprintf("%s/%u.%d.%u", UPLOADS_DIR, MyDatabaseId, MyProcPid, ++record_seq);
	/* no ERROR from here on: the caller has an upload to abort first */
	if (MakePGDirectory("pg_datacore") < 0 && errno != EEXIST)
		fd = -1;
	else if (MakePGDirectory(UPLOADS_DIR) < 0 && errno != EEXIST)
		fd = -1;
	else
		fd = OpenTransientFile(path, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0 || write(fd, buf.data, buf.len) != buf.len || pg_fsync(fd) != 0)
	{
		int			save_errno = errno;

		if (fd >= 0)
			CloseTransientFile(fd);
		unlink(path);
		errno = save_errno;
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not record multipart upload of \"%s\" in \"%s\": %m", key, path),
				 errdetail("If the server crashes during the upload, it stays open on server \"%s\" with upload id %s.",
						   server->servername, upload_id)));
		return NULL;
	}
	CloseTransientFile(fd);
	pfree(buf.data);
	return path;
}

/* The upload was completed or aborted: drop its record. */
void
dc_s3_upload_forget(const char *path)
{
	if (path != NULL && unlink(path) != 0 && errno != ENOENT)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not remove file \"%s\": %m", path)));
}

/*
 * Postmaster, at every shared memory initialisation: every record left is
 * of a backend gone with the previous generation; move it to STALE_DIR.
 * Never raises: a problem here is logged and the uploads stay open.
 */
void
dc_s3_uploads_startup(void)
{
	DIR		   *dir;
	struct dirent *de;

	if (IsUnderPostmaster)
		return;
	dir = opendir(UPLOADS_DIR);
	if (dir == NULL)
		return;
	if (mkdir(STALE_DIR, pg_dir_create_mode) != 0 && errno != EEXIST)
	{
		ereport(LOG,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m", STALE_DIR)));
		closedir(dir);
		return;
	}
	while ((de = readdir(dir)) != NULL)
	{
		char		from[MAXPGPATH];
		char		to[MAXPGPATH];

		if (de->d_name[0] == '.')
			continue;
		snprintf(from, sizeof(from), "%s/%s", UPLOADS_DIR, de->d_name);
		snprintf(to, sizeof(to), "%s/%s", STALE_DIR, de->d_name);
		if (rename(from, to) != 0)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not rename file \"%s\" to \"%s\": %m", from, to)));
	}
	closedir(dir);
}

/* One field of a record; false when the text is not what we wrote. */
static bool
read_field(char **p, char *end, char **out)
{
	char	   *colon = memchr(*p, ':', end - *p);
	unsigned long len;
	char	   *num_end;

	if (colon == NULL)
		return false;
	errno = 0;
	len = strtoul(*p, &num_end, 10);
	if (errno != 0 || num_end != colon || len > (unsigned long) (end - colon - 2) ||
		colon[1 + len] != '\n')
		return false;
	*out = pnstrdup(colon + 1, len);
	*p = colon + len + 2;
	return true;
}

static bool
parse_record(char *data, size_t len, UploadRecord *rec)
{
	char	   *p = data;
	char	   *end = data + len;
	unsigned int dbid,
				serverid,
				roleid,
				tli;
	unsigned long long sysid;
	int			used;

	if (len < strlen(RECORD_MAGIC) || memcmp(data, RECORD_MAGIC, strlen(RECORD_MAGIC)) != 0)
		return false;
	p += strlen(RECORD_MAGIC);
	if (sscanf(p, "%u\n%u\n%u\n%llu\n%u\n%n", &dbid, &serverid, &roleid,
			   &sysid, &tli, &used) != 5)
		return false;
	p += used;
	rec->dbid = dbid;
	rec->serverid = serverid;
	rec->roleid = roleid;
	rec->sysid = sysid;
	rec->tli = tli;
	return read_field(&p, end, &rec->bucket) && read_field(&p, end, &rec->key) &&
		read_field(&p, end, &rec->upload_id) && p == end;
}

static char *
read_record_file(const char *path, size_t *len)
{
	StringInfoData buf;
	char		chunk[1024];
	int			fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	ssize_t		n;

	if (fd < 0)
		return NULL;
	initStringInfo(&buf);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0 && buf.len < 64 * 1024)
		appendBinaryStringInfo(&buf, chunk, n);
	CloseTransientFile(fd);
	*len = buf.len;
	return buf.data;
}

/*
 * Abort one stale upload as the role that began it, in a subtransaction so
 * that a catalog error (the mapping is gone) is only that record's.
 * Returns whether the record is done with: aborted, already gone, or
 * impossible to abort from here (server or role dropped); false when the
 * abort should be tried again later.
 */
static bool
abort_stale(const UploadRecord *rec, const char *path)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool done = true;

	if (GetForeignServerExtended(rec->serverid, FSV_MISSING_OK) == NULL)
	{
		ereport(WARNING,
				(errmsg("multipart upload %s of \"%s\" in bucket \"%s\" was left open by a crash, and its server no longer exists",
						rec->upload_id, rec->key, rec->bucket),
				 errhint("Abort it on the object store directly.")));
		return true;
	}

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		DcServer   *server = dc_get_server_by_oid(rec->serverid, rec->roleid,
												  DC_SERVICE_S3, "s3_put");

		done = dc_s3_abort_upload(server, "s3_put", rec->bucket, rec->key,
								  rec->upload_id);
		if (done)
			ereport(LOG,
					(errmsg("aborted multipart upload %s of \"%s\" in bucket \"%s\" on server \"%s\", left open by a crash",
							rec->upload_id, rec->key, rec->bucket, server->servername)));
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("could not abort multipart upload %s of \"%s\" in bucket \"%s\", left open by a crash",
						rec->upload_id, rec->key, rec->bucket),
				 errdetail_internal("%s", edata->message),
				 errhint("Abort it on the object store directly, then remove \"%s\".", path)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return done;
}

/*
 * Job worker, at start, in a transaction: abort the stale uploads of this
 * database.  Records of another cluster or timeline (a standby's copy of
 * the primary's records) are dropped unread.
 */
void
dc_s3_abort_stale_uploads(void)
{
	DIR		   *dir;
	struct dirent *de;
	char		prefix[32];
	MemoryContext cxt;
	MemoryContext old;

	snprintf(prefix, sizeof(prefix), "%u.", MyDatabaseId);
	dir = AllocateDir(STALE_DIR);
	if (dir == NULL)
		return;					/* no crash ever left one */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "datacore stale uploads",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	while ((de = ReadDir(dir, STALE_DIR)) != NULL)
	{
		char		path[MAXPGPATH];
		UploadRecord rec;
		char	   *data;
		size_t		len;

		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", STALE_DIR, de->d_name);
		data = read_record_file(path, &len);
		if (data == NULL)
			continue;
		if (!parse_record(data, len, &rec) || rec.dbid != MyDatabaseId)
			ereport(WARNING,
					(errmsg("ignoring malformed multipart upload record \"%s\"", path)));
		else if (rec.sysid != GetSystemIdentifier() ||
				 rec.tli != (uint32) GetWALInsertionTimeLine())
			;					/* not ours to abort */
		else if (!abort_stale(&rec, path))
			continue;			/* keep it for the next start */
		dc_s3_upload_forget(path);
		MemoryContextReset(cxt);
	}
	FreeDir(dir);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}
