/*-------------------------------------------------------------------------
 *
 * redis_conn.c
 *		Per-backend Redis connection cache and interruptible request I/O.
 *
 * Connections are kept open for the life of the backend, one per foreign
 * server and user mapping, keyed by OIDs only (never by option values,
 * which hold the password).  A connection authenticates (AUTH user
 * password) and selects its database right after connecting.
 *
 * hiredis 0.14 (Debian 12) has blocking reads that retry on EINTR, so a
 * query cancel would not stop them.  We therefore use a non-blocking
 * context: hiredis only formats commands and parses replies, while every
 * wait for the socket goes through WaitLatchOrSocket and
 * CHECK_FOR_INTERRUPTS, bounded by our own deadline.
 *
 * A connection is "busy" from the moment a request is written until its
 * last reply has been read, and "in I/O" while a call is writing or reading
 * it.  An ERROR that leaves an I/O call (cancel, timeout, lost connection,
 * a malformed or oversized reply) leaves the protocol state unknown: such a
 * connection is never reused.  A busy connection that is not in I/O is in
 * a known state (a scan's next batch on its way) and belongs to the
 * (sub)transaction that sent the request: a subtransaction abort closes
 * only what it, or a subtransaction inside it, had in flight, so an error
 * caught by a PL/pgSQL EXCEPTION block does not kill a scan around it.
 * Whatever is still busy at the end of the top transaction is closed.
 *
 * Host names are not resolved here: hiredis would call getaddrinfo(), which
 * blocks without a timeout and ignores cancel, so only IP addresses are
 * accepted (by the validator, and again here for servers created before).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>

#include "access/xact.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_user_mapping.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "breaker.h"
#include "metrics.h"
#include "redis.h"

/* Cache key: OIDs only, so no secret ever lands in a hash key. */
typedef struct DcRedisConnKey
{
	Oid			serverid;
	Oid			umid;			/* InvalidOid when no mapping applies */
} DcRedisConnKey;

typedef struct DcRedisConn
{
	DcRedisConnKey key;			/* hash key, must be first */
	redisContext *ctx;			/* NULL when closed */
	bool		busy;			/* a request is in flight */
	SubTransactionId busy_subid;	/* the subtransaction that sent it */
	bool		in_io;			/* inside a read or write; left set by ERROR */
	struct DcRedisPending *pending; /* its replies, when not read at once */
	bool		invalidated;	/* server or mapping changed since connect */
	uint32		server_hash;	/* syscache hash of the server row */
	uint32		mapping_hash;	/* syscache hash of the mapping row */
	HTAB	   *fence;			/* redis_fence.c's cache, dropped with ctx */
} DcRedisConn;

/*
 * A request that was written and whose replies are still to be read.  It
 * lives in the memory context that was current when it was sent, and so
 * do its replies.
 */
struct DcRedisPending
{
	DcRedisConn *conn;
	DcServer   *server;
	const char *op;
	MemoryContext cxt;
	int			nreplies;
	redisReply **replies;
	TimestampTz deadline;		/* 0: none */
	int64		max_bytes;		/* cap on the bytes of all replies */
	TimestampTz sent_at;		/* for the latency metric */
	int64		sent_bytes;
	bool		done;			/* replies read (or connection lost) */
	MemoryContextCallback cb;	/* detaches it when cxt goes away unread */
};

static HTAB *conn_cache = NULL;

static void drain(DcRedisPending *p);

/* A reply registered for release with a memory context. */
typedef struct ReplyHolder
{
	MemoryContextCallback cb;
	redisReply *reply;
} ReplyHolder;

#define READ_CHUNK	16384

/* ---------------------------------------------------------------------
 * Command building
 * --------------------------------------------------------------------- */

DcRedisCmd *
dc_redis_cmd(const char *name)
{
	DcRedisCmd *cmd = palloc(sizeof(DcRedisCmd));

	cmd->argc = 0;
	cmd->maxargs = 8;
	cmd->argv = palloc(sizeof(char *) * cmd->maxargs);
	cmd->argvlen = palloc(sizeof(size_t) * cmd->maxargs);
	if (name)
		dc_redis_arg_str(cmd, name);
	return cmd;
}

/* Append one argument; the bytes must stay valid until the command ran. */
void
dc_redis_arg(DcRedisCmd *cmd, const char *data, size_t len)
{
	if (cmd->argc == cmd->maxargs)
	{
		cmd->maxargs *= 2;
		cmd->argv = repalloc(cmd->argv, sizeof(char *) * cmd->maxargs);
		cmd->argvlen = repalloc(cmd->argvlen, sizeof(size_t) * cmd->maxargs);
	}
	cmd->argv[cmd->argc] = data;
	cmd->argvlen[cmd->argc] = len;
	cmd->argc++;
}

void
dc_redis_arg_str(DcRedisCmd *cmd, const char *str)
{
	dc_redis_arg(cmd, str, strlen(str));
}

void
dc_redis_arg_text(DcRedisCmd *cmd, const text *t)
{
	dc_redis_arg(cmd, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

void
dc_redis_arg_int64(DcRedisCmd *cmd, int64 value)
{
	dc_redis_arg_str(cmd, psprintf(INT64_FORMAT, value));
}

/* ---------------------------------------------------------------------
 * Cache maintenance
 * --------------------------------------------------------------------- */

static void
conn_close(DcRedisConn *conn)
{
	if (conn->ctx)
		redisFree(conn->ctx);
	conn->ctx = NULL;
	conn->busy = false;
	conn->in_io = false;
	conn->invalidated = false;
	/* a request left unread now fails in dc_redis_receive */
	conn->pending = NULL;
	if (conn->fence)
		hash_destroy(conn->fence);
	conn->fence = NULL;
}

/*
 * A change to any foreign server or user mapping row marks the matching
 * connections; they are reopened with the new options when next used.
 */
static void
inval_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	HASH_SEQ_STATUS scan;
	DcRedisConn *conn;

	hash_seq_init(&scan, conn_cache);
	while ((conn = hash_seq_search(&scan)) != NULL)
	{
		if (conn->ctx == NULL)
			continue;
		if (hashvalue == 0 ||
			(cacheid == FOREIGNSERVEROID && conn->server_hash == hashvalue) ||
			(cacheid == USERMAPPINGOID && conn->mapping_hash == hashvalue))
			conn->invalidated = true;
	}
}

/*
 * Close the connections whose protocol state is unknown (an I/O call left
 * by an ERROR) and those with a request in flight that subid or a later
 * (inner) subtransaction sent; InvalidSubTransactionId: every busy one.
 */
static void
close_busy(SubTransactionId subid)
{
	HASH_SEQ_STATUS scan;
	DcRedisConn *conn;

	hash_seq_init(&scan, conn_cache);
	while ((conn = hash_seq_search(&scan)) != NULL)
	{
		if (conn->ctx == NULL)
			continue;
		if (conn->in_io ||
			(conn->busy && (subid == InvalidSubTransactionId ||
							conn->busy_subid >= subid)))
			conn_close(conn);
	}
}

/*
 * At the end of the top transaction nothing may stay in flight: the memory
 * of any request still outstanding is about to go, and subtransaction ids
 * start again in the next transaction.
 */
static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			close_busy(InvalidSubTransactionId);
			break;
		default:
			break;
	}
}

static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		close_busy(mySubid);
}

static void
init_cache(void)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(DcRedisConnKey);
	ctl.entrysize = sizeof(DcRedisConn);
	conn_cache = hash_create("datacore redis connections", 8, &ctl,
							 HASH_ELEM | HASH_BLOBS);
	CacheRegisterSyscacheCallback(FOREIGNSERVEROID, inval_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(USERMAPPINGOID, inval_callback, (Datum) 0);
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
}

/* ---------------------------------------------------------------------
 * Waiting and errors
 * --------------------------------------------------------------------- */

static void
raise_timeout(DcServer *server, const char *op, bool connecting)
{
	dc_breaker_record(server, false);
	dc_metrics_failure(server, op, ERRCODE_CONNECTION_FAILURE);
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 connecting ?
			 errmsg("could not connect to redis server \"%s\" for %s in time",
					server->servername, op) :
			 errmsg("redis server \"%s\" did not answer %s in time",
					server->servername, op),
			 errdetail("The limit is %d ms.",
					   connecting ? server->connect_timeout_ms : server->timeout_ms),
			 errhint("The server options timeout_ms and connect_timeout_ms set the limits.")));
}

static void
raise_io(DcServer *server, const char *op, const char *what)
{
	dc_breaker_record(server, false);
	dc_metrics_failure(server, op, ERRCODE_CONNECTION_FAILURE);
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("connection to redis server \"%s\" failed during %s",
					server->servername, op),
			 errdetail_internal("%s", what)));
}

/*
 * Wait until the socket is ready for "events" (WL_SOCKET_READABLE or
 * WL_SOCKET_WRITEABLE), servicing interrupts.  deadline 0 means no limit
 * other than interrupts (statement_timeout, cancel, terminate).
 */
static void
wait_socket(DcServer *server, const char *op, int fd, int events,
			TimestampTz deadline, bool connecting)
{
	for (;;)
	{
		long		timeout = -1;
		int			wl = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | events;
		int			rc;

		CHECK_FOR_INTERRUPTS();
		if (deadline != 0)
		{
			timeout = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
			if (timeout <= 0)
				raise_timeout(server, op, connecting);
			wl |= WL_TIMEOUT;
		}
		rc = WaitLatchOrSocket(MyLatch, wl, fd, timeout, PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
		if (rc & events)
			return;
	}
}

static TimestampTz
deadline_after(int ms)
{
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
}

/*
 * Write the context's output buffer.  Returns false (errno set) on an I/O
 * failure, so the caller can tell a connection that died while idle.
 */
static bool
flush_output(DcServer *server, const char *op, redisContext *ctx,
			 TimestampTz deadline, bool connecting)
{
	int			done = 0;

	while (!done)
	{
		if (redisBufferWrite(ctx, &done) != REDIS_OK)
			return false;
		if (!done)
			wait_socket(server, op, ctx->fd, WL_SOCKET_WRITEABLE, deadline, connecting);
	}
	return true;
}

static void
free_reply_callback(void *arg)
{
	ReplyHolder *holder = (ReplyHolder *) arg;

	if (holder->reply)
		freeReplyObject(holder->reply);
	holder->reply = NULL;
}

/* Tie a reply's lifetime to CurrentMemoryContext. */
static redisReply *
track_reply(redisReply *reply)
{
	ReplyHolder *holder;

	PG_TRY();
	{
		holder = MemoryContextAllocZero(CurrentMemoryContext, sizeof(ReplyHolder));
	}
	PG_CATCH();
	{
		freeReplyObject(reply);
		PG_RE_THROW();
	}
	PG_END_TRY();
	holder->reply = reply;
	holder->cb.func = free_reply_callback;
	holder->cb.arg = holder;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &holder->cb);
	return reply;
}

/*
 * Read one complete reply, waiting as needed.  *received counts the bytes
 * read for the current request against max_bytes (normally the server's
 * max_response_bytes).
 */
static redisReply *
read_reply(DcServer *server, const char *op, redisContext *ctx,
		   TimestampTz deadline, bool connecting, int64 *received,
		   int64 max_bytes)
{
	char		buf[READ_CHUNK];

	dc_redis_bound_reader(ctx->reader, max_bytes);
	for (;;)
	{
		void	   *reply = NULL;
		ssize_t		n;
		bool		ok = redisGetReplyFromReader(ctx, &reply) == REDIS_OK;

		if (!ok && dc_redis_refused_array() != 0)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("response from redis server \"%s\" to %s exceeds the size limit",
							server->servername, op),
					 errdetail("The reply announces an array of %d elements, more than a reply of at most " INT64_FORMAT " bytes can hold.",
							   dc_redis_refused_array(), max_bytes),
					 errhint("Raise the server option max_response_bytes.")));
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("redis server \"%s\" sent an invalid reply to %s",
							server->servername, op),
					 errdetail_internal("%s", dc_remote_excerpt(ctx->errstr, strlen(ctx->errstr), 200))));
		if (reply)
			return track_reply((redisReply *) reply);

		n = recv(ctx->fd, buf, sizeof(buf), 0);
		if (n > 0)
		{
			*received += n;
			if (*received > max_bytes)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("response from redis server \"%s\" to %s exceeds the size limit",
								server->servername, op),
						 errdetail("The limit is " INT64_FORMAT " bytes.", max_bytes),
						 errhint("Raise the server option max_response_bytes.")));
			if (redisReaderFeed(ctx->reader, buf, n) != REDIS_OK)
				ereport(ERROR,
						(errcode(ERRCODE_PROTOCOL_VIOLATION),
						 errmsg("redis server \"%s\" sent an invalid reply to %s",
								server->servername, op),
						 errdetail_internal("%s", dc_remote_excerpt(ctx->reader->errstr,
																	 strlen(ctx->reader->errstr),
																	 200))));
			continue;
		}
		if (n == 0)
			raise_io(server, op, "The server closed the connection.");
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			wait_socket(server, op, ctx->fd, WL_SOCKET_READABLE, deadline, connecting);
		else
			raise_io(server, op, strerror(errno));
	}
}

/* ---------------------------------------------------------------------
 * Connecting
 * --------------------------------------------------------------------- */

/* A reply to AUTH or SELECT that is not +OK, as an error message detail. */
static char *
reply_detail(redisReply *reply)
{
	if (reply->type == REDIS_REPLY_ERROR || reply->type == REDIS_REPLY_STATUS)
		return psprintf("Redis replied: %s",
						dc_remote_excerpt(reply->str, reply->len, 500));
	return psprintf("Redis sent a reply of type %d instead of OK.", reply->type);
}

static bool
reply_is_ok(redisReply *reply)
{
	return reply->type == REDIS_REPLY_STATUS && reply->len == 2 &&
		memcmp(reply->str, "OK", 2) == 0;
}

/*
 * Open conn->ctx: TCP connect, AUTH and SELECT, all within
 * connect_timeout_ms.  The connection stays in I/O until this succeeded,
 * so a failure leaves nothing reusable behind.
 */
static void
conn_open(DcRedisConn *conn, DcServer *server, const char *op)
{
	const char *host = dc_option(server, "host");
	int			port = dc_option_int(server, "port", 6379);
	int			db = dc_option_int(server, "db", 0);
	const char *user = dc_option(server, "user");
	const char *password = dc_option(server, "password");
	TimestampTz deadline = deadline_after(server->connect_timeout_ms);
	redisContext *ctx;
	int			sockerr = 0;
	socklen_t	errlen = sizeof(sockerr);
	int			nreplies = 0;
	int64		received = 0;

	if (host == NULL)
		host = "127.0.0.1";
	/* a server created before the validator refused host names */
	dc_check_redis_host(host);

	conn->in_io = true;
	conn->invalidated = false;
	conn->server_hash = GetSysCacheHashValue1(FOREIGNSERVEROID,
											  ObjectIdGetDatum(server->serverid));
	conn->mapping_hash = OidIsValid(server->umid) ?
		GetSysCacheHashValue1(USERMAPPINGOID, ObjectIdGetDatum(server->umid)) : 0;

	/* the egress guard: an address literal before connecting ... */
	dc_egress_check_host(server, op, host);
	ctx = redisConnectNonBlock(host, port);
	if (ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory connecting to redis server \"%s\"",
						server->servername)));
	conn->ctx = ctx;
	if (ctx->err)
	{
		dc_breaker_record(server, false);
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not connect to redis server \"%s\" for %s",
						server->servername, op),
				 errdetail_internal("%s", dc_remote_excerpt(ctx->errstr, strlen(ctx->errstr), 200))));
	}

	wait_socket(server, op, ctx->fd, WL_SOCKET_WRITEABLE, deadline, true);
	if (getsockopt(ctx->fd, SOL_SOCKET, SO_ERROR, &sockerr, &errlen) != 0)
		sockerr = errno;
	if (sockerr != 0)
	{
		dc_breaker_record(server, false);
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not connect to redis server \"%s\" for %s",
						server->servername, op),
				 errdetail_internal("%s", strerror(sockerr))));
	}
	/* ... and whatever a name led to, before the password is sent */
	dc_egress_check_fd(server, op, ctx->fd);

	if (password)
	{
		const char *argv[3];
		size_t		lens[3];
		int			argc = 0;

		argv[argc] = "AUTH";
		lens[argc++] = 4;
		if (user)
		{
			argv[argc] = user;
			lens[argc++] = strlen(user);
		}
		argv[argc] = password;
		lens[argc++] = strlen(password);
		if (redisAppendCommandArgv(ctx, argc, argv, lens) != REDIS_OK)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		nreplies++;
	}
	if (db != 0)
	{
		char	   *dbstr = psprintf("%d", db);
		const char *argv[2] = {"SELECT", dbstr};
		size_t		lens[2] = {6, strlen(dbstr)};

		if (redisAppendCommandArgv(ctx, 2, argv, lens) != REDIS_OK)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		nreplies++;
	}
	if (nreplies > 0)
	{
		redisReply *reply;

		if (!flush_output(server, op, ctx, deadline, true))
			raise_io(server, op, strerror(errno));
		if (password)
		{
			reply = read_reply(server, op, ctx, deadline, true, &received,
							   server->max_response_bytes);
			if (!reply_is_ok(reply))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PASSWORD),
						 errmsg("redis server \"%s\" rejected the credentials of the user mapping for %s",
								server->servername, op),
						 errdetail_internal("%s", reply_detail(reply)),
						 errhint("Check the options \"user\" and \"password\" of the user mapping.")));
		}
		if (db != 0)
		{
			reply = read_reply(server, op, ctx, deadline, true, &received,
							   server->max_response_bytes);
			if (!reply_is_ok(reply))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("redis server \"%s\" refused to select database %d for %s",
								server->servername, db, op),
						 errdetail_internal("%s", reply_detail(reply))));
		}
	}
	conn->in_io = false;
}

/*
 * True when an idle connection is known to be unusable: the peer closed it
 * (a restarted server) or sent something nobody asked for.  Checked without
 * blocking before each request, so a restart costs no failed statement.
 */
static bool
conn_broken(DcRedisConn *conn)
{
	struct pollfd pfd;
	char		c;
	ssize_t		n;

	if (conn->ctx->err)
		return true;
	pfd.fd = conn->ctx->fd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (poll(&pfd, 1, 0) <= 0)
		return false;
	if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))
		return true;
	n = recv(conn->ctx->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return false;
	return true;
}

/*
 * The cached connection for this server and mapping, opened if needed.
 * *fresh tells whether it was opened by this call.
 */
static DcRedisConn *
get_conn(DcServer *server, const char *op, bool *fresh)
{
	DcRedisConnKey key;
	DcRedisConn *conn;
	bool		found;

	if (conn_cache == NULL)
		init_cache();

	memset(&key, 0, sizeof(key));
	key.serverid = server->serverid;
	key.umid = server->umid;
	conn = hash_search(conn_cache, &key, HASH_ENTER, &found);
	if (!found)
	{
		conn->ctx = NULL;
		conn->busy = false;
		conn->in_io = false;
		conn->invalidated = false;
		conn->pending = NULL;
		conn->fence = NULL;
	}

	/* an I/O call left by an ERROR caught without a subtransaction */
	if (conn->ctx && conn->in_io)
		conn_close(conn);

	/* a request sent ahead (a scan's next batch) is read before reuse */
	if (conn->ctx && conn->pending)
		drain(conn->pending);

	if (conn->ctx && (conn->busy || conn->invalidated || conn_broken(conn)))
		conn_close(conn);

	*fresh = false;
	if (conn->ctx == NULL)
	{
		conn_open(conn, server, op);
		*fresh = true;
	}
	return conn;
}

/* ---------------------------------------------------------------------
 * Requests
 * --------------------------------------------------------------------- */

/* Append n as decimal text. */
static void
append_uint(StringInfo buf, uint64 n)
{
	char		digits[MAXINT8LEN + 1];
	int			len = pg_ulltoa_n(n, digits);

	appendBinaryStringInfo(buf, digits, len);
}

/*
 * The commands in RESP wire format, in one buffer: cheaper than letting
 * hiredis format (and reallocate) per command.
 */
static void
format_commands(StringInfo buf, int ncmds, DcRedisCmd **cmds)
{
	int			i,
				j;

	for (i = 0; i < ncmds; i++)
	{
		appendStringInfoChar(buf, '*');
		append_uint(buf, cmds[i]->argc);
		appendBinaryStringInfo(buf, "\r\n", 2);
		for (j = 0; j < cmds[i]->argc; j++)
		{
			appendStringInfoChar(buf, '$');
			append_uint(buf, cmds[i]->argvlen[j]);
			appendBinaryStringInfo(buf, "\r\n", 2);
			appendBinaryStringInfo(buf, cmds[i]->argv[j], cmds[i]->argvlen[j]);
			appendBinaryStringInfo(buf, "\r\n", 2);
		}
	}
}

/* Read the replies of a sent request into its context. */
static void
drain(DcRedisPending *p)
{
	MemoryContext old = MemoryContextSwitchTo(p->cxt);
	int64		received = 0;
	int			i;

	p->conn->in_io = true;
	for (i = 0; i < p->nreplies; i++)
		p->replies[i] = read_reply(p->server, p->op, p->conn->ctx, p->deadline,
								   false, &received, p->max_bytes);
	MemoryContextSwitchTo(old);
	p->done = true;
	p->conn->in_io = false;
	p->conn->pending = NULL;
	p->conn->busy = false;
	dc_breaker_record(p->server, true);
	dc_metrics_redis(p->server, p->op, p->replies, p->nreplies, p->sent_bytes,
					 received, p->sent_at);
}

/*
 * The memory of a request still unread is going away (its caller never
 * asked for the replies): forget it.  The connection stays busy, so it is
 * closed instead of being read into freed memory.
 */
static void
pending_reset_callback(void *arg)
{
	DcRedisPending *p = (DcRedisPending *) arg;

	if (!p->done && p->conn && p->conn->pending == p)
		p->conn->pending = NULL;
	p->done = true;
}

/*
 * Write ncmds commands in one go and return without reading the replies
 * (receive does that).  The request is tied to CurrentMemoryContext.  A
 * request still outstanding on the connection is read to completion first,
 * so callers may interleave freely.  block_ms extends the deadline for a
 * blocking command (DC_REDIS_BLOCK_FOREVER: only interrupts end the wait);
 * max_bytes caps the replies.
 *
 * If writing fails on a connection that was idle in the cache, the server
 * went away since; the connection is reopened and the request written once
 * more.  Nothing is resent once a write succeeded.
 */
static DcRedisPending *
send_request(DcServer *server, const char *op, int ncmds, DcRedisCmd **cmds,
			 int64 block_ms, int64 max_bytes)
{
	DcRedisPending *p = palloc0(sizeof(DcRedisPending));
	StringInfoData buf;
	DcRedisConn *conn;
	bool		fresh;
	int			attempt;

	/* a server known to be down fails at once (breaker_threshold) */
	dc_breaker_check(server, op);

	p->server = server;
	p->op = op;
	p->cxt = CurrentMemoryContext;
	p->nreplies = ncmds;
	p->max_bytes = max_bytes;
	p->replies = palloc0(sizeof(redisReply *) * Max(ncmds, 1));
	initStringInfo(&buf);
	format_commands(&buf, ncmds, cmds);
	p->sent_at = GetCurrentTimestamp();
	p->sent_bytes = buf.len;

	for (attempt = 0;; attempt++)
	{
		conn = get_conn(server, op, &fresh);
		conn->busy = true;
		conn->busy_subid = GetCurrentSubTransactionId();
		conn->in_io = true;
		if (redisAppendFormattedCommand(conn->ctx, buf.data, buf.len) != REDIS_OK)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		if (block_ms == DC_REDIS_BLOCK_FOREVER)
			p->deadline = 0;
		else
			p->deadline = deadline_after(server->timeout_ms + (int) Min(block_ms, INT_MAX / 2));
		if (flush_output(server, op, conn->ctx, p->deadline, false))
			break;
		if (fresh || attempt > 0)
			raise_io(server, op, conn->ctx->errstr[0] ? conn->ctx->errstr : strerror(errno));
		/* in_io stays set: get_conn closes it and connects again */
	}
	conn->in_io = false;
	pfree(buf.data);
	p->conn = conn;
	conn->pending = p;
	p->cb.func = pending_reset_callback;
	p->cb.arg = p;
	MemoryContextRegisterResetCallback(p->cxt, &p->cb);
	return p;
}

DcRedisPending *
dc_redis_send(DcServer *server, const char *op, int ncmds, DcRedisCmd **cmds,
			  int64 block_ms)
{
	return send_request(server, op, ncmds, cmds, block_ms, server->max_response_bytes);
}

/* The replies of a sent request, in order; error replies are returned. */
redisReply **
dc_redis_receive(DcRedisPending *p)
{
	if (!p->done)
	{
		if (p->conn->pending != p)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("connection to redis server \"%s\" was lost during %s",
							p->server->servername, p->op)));
		drain(p);
	}
	return p->replies;
}

redisReply *
dc_redis_run_blocking(DcServer *server, const char *op, DcRedisCmd *cmd,
					  int64 block_ms)
{
	redisReply *reply = dc_redis_receive(dc_redis_send(server, op, 1, &cmd, block_ms))[0];

	dc_redis_check_reply(server, op, reply);
	return reply;
}

/* Run one command; an error reply is raised. */
redisReply *
dc_redis_run(DcServer *server, const char *op, DcRedisCmd *cmd)
{
	return dc_redis_run_blocking(server, op, cmd, 0);
}

/* Run commands in one round trip; error replies are returned. */
void
dc_redis_pipeline(DcServer *server, const char *op, int ncmds,
				  DcRedisCmd **cmds, redisReply **replies)
{
	if (ncmds > 0)
		memcpy(replies, dc_redis_receive(dc_redis_send(server, op, ncmds, cmds, 0)),
			   sizeof(redisReply *) * ncmds);
}

/*
 * Run one command whose reply size does not depend on the user's data
 * (redis_fence.c's COMMAND INFO), capped by max_bytes instead of the
 * server's max_response_bytes.  Error replies are returned.
 */
redisReply *
dc_redis_run_capped(DcServer *server, const char *op, DcRedisCmd *cmd,
					int64 max_bytes)
{
	return dc_redis_receive(send_request(server, op, 1, &cmd, 0, max_bytes))[0];
}

/*
 * The slot where redis_fence.c keeps what it learnt about the commands of
 * the server behind the cached connection (opened if needed); emptied
 * whenever that connection is closed.
 */
HTAB	  **
dc_redis_fence_slot(DcServer *server, const char *op)
{
	bool		fresh;

	return &get_conn(server, op, &fresh)->fence;
}

/* ---------------------------------------------------------------------
 * Reply errors
 * --------------------------------------------------------------------- */

void
dc_redis_check_reply(DcServer *server, const char *op, redisReply *reply)
{
	if (reply->type == REDIS_REPLY_ERROR)
		dc_redis_raise_reply(server, op, reply);
}

static bool
has_class(const char *msg, const char *cls)
{
	size_t		len = strlen(cls);

	return strncmp(msg, cls, len) == 0 && (msg[len] == ' ' || msg[len] == '\0');
}

/*
 * Raise a Redis error reply as a SQL error: the error class picks the
 * SQLSTATE, an excerpt of the Redis text goes to the detail, followed by
 * note (a full sentence, or NULL).
 */
void
dc_redis_raise_reply_note(DcServer *server, const char *op, redisReply *reply,
						  const char *note)
{
	const char *msg = reply->str ? reply->str : "";
	char	   *detail = psprintf("Redis replied: %s%s%s",
								  dc_remote_excerpt(msg, reply->str ? reply->len : 0, 500),
								  note ? "\n" : "", note ? note : "");

	if (has_class(msg, "WRONGTYPE"))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("redis server \"%s\" rejected %s: WRONGTYPE, the key holds another kind of value",
						server->servername, op),
				 errdetail_internal("%s", detail),
				 errhint("Check the key's type with redis_command('{TYPE,<key>}').")));
	if (has_class(msg, "NOAUTH") || has_class(msg, "WRONGPASS"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PASSWORD),
				 errmsg("redis server \"%s\" rejected %s: not authenticated",
						server->servername, op),
				 errdetail_internal("%s", detail),
				 errhint("Check the options \"user\" and \"password\" of the user mapping.")));
	if (has_class(msg, "NOPERM"))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("redis server \"%s\" rejected %s: permission denied",
						server->servername, op),
				 errdetail_internal("%s", detail)));
	ereport(ERROR,
			(errcode(ERRCODE_FDW_ERROR),
			 errmsg("redis server \"%s\" returned an error for %s",
					server->servername, op),
			 errdetail_internal("%s", detail)));
}

void
dc_redis_raise_reply(DcServer *server, const char *op, redisReply *reply)
{
	dc_redis_raise_reply_note(server, op, reply, NULL);
}

static const char *
reply_type_name(int type)
{
	switch (type)
	{
		case REDIS_REPLY_STRING:
			return "a bulk string";
		case REDIS_REPLY_ARRAY:
			return "an array";
		case REDIS_REPLY_INTEGER:
			return "an integer";
		case REDIS_REPLY_NIL:
			return "nil";
		case REDIS_REPLY_STATUS:
			return "a status";
		case REDIS_REPLY_ERROR:
			return "an error";
	}
	return "of an unknown type";
}

/*
 * A reply of a type the caller cannot use (a status QUEUED where a number
 * was due, nil where a value must be) is an error, never a success.
 */
void
dc_redis_unexpected(DcServer *server, const char *op, redisReply *reply)
{
	if (reply->type == REDIS_REPLY_STATUS || reply->type == REDIS_REPLY_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("redis server \"%s\" sent an unexpected reply to %s",
						server->servername, op),
				 errdetail_internal("The reply is %s: %s", reply_type_name(reply->type),
									dc_remote_excerpt(reply->str, reply->len, 200))));
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
			 errmsg("redis server \"%s\" sent an unexpected reply to %s",
					server->servername, op),
			 errdetail("The reply is %s.", reply_type_name(reply->type))));
}

/* An integer reply's value; an error reply is raised, any other type too. */
int64
dc_redis_reply_integer(DcServer *server, const char *op, redisReply *reply)
{
	dc_redis_check_reply(server, op, reply);
	if (reply->type != REDIS_REPLY_INTEGER)
		dc_redis_unexpected(server, op, reply);
	return reply->integer;
}

/* Anything but the status reply OK is raised. */
void
dc_redis_reply_ok(DcServer *server, const char *op, redisReply *reply)
{
	dc_redis_check_reply(server, op, reply);
	if (!reply_is_ok(reply))
		dc_redis_unexpected(server, op, reply);
}

/*
 * A Redis call whose failure must not fail the caller's statement (a cache,
 * a rate limit deciding by itself what an outage means): fn runs in a
 * subtransaction so that its connection and memory are cleaned up if it
 * throws.  Only connection-class errors (08: refused, timeout, dropped, the
 * breaker open) are turned into false; a wrong password, a cancel or a bug
 * still propagate.
 */
bool
dc_redis_try(void (*fn) (void *), void *arg, char **cause)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_CONNECTION_EXCEPTION)
			ReThrowError(edata);
		if (cause)
			*cause = edata->message;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}
