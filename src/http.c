/*-------------------------------------------------------------------------
 *
 * http.c
 *		The HTTP client shared by the Ollama, Qdrant and S3 clients.
 *
 * libcurl's multi interface is driven from a PostgreSQL wait event set, so
 * a request to a server that never answers still ends promptly on
 * pg_cancel_backend(), statement_timeout or backend termination: the latch
 * wakes us, and CHECK_FOR_INTERRUPTS() throws.  Each server keeps one easy
 * handle per backend so keep-alive connections are reused.
 *
 * Nothing in a libcurl callback may throw: a longjmp through libcurl would
 * leave it inconsistent.  Callbacks therefore allocate with
 * MCXT_ALLOC_NO_OOM and report trouble by return value; errors are raised
 * afterwards.  A transfer interrupted by ERROR is detached from libcurl by
 * the (sub)transaction abort callback, or by the reset callback of the
 * memory context that holds it, whichever comes first.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "access/xact.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "breaker.h"
#include "metrics.h"
#include "http.h"

/* Bytes a stream buffers before it pauses the transfer. */
#define STREAM_CHUNK		(256 * 1024)
/* sockets watched at once: the job runner keeps many requests in flight */
#define MAX_SOCKETS			256
/* Longest single sleep; bounds how stale a missed timer could get. */
#define MAX_WAIT_MS			1000
#define MAX_RETRY_SLEEP_MS	10000
/* Bound of a clean-up request sent while an error is being handled. */
#define CLEANUP_TIMEOUT_MS	3000

/* A growable byte buffer filled from libcurl callbacks without throwing. */
typedef struct RawBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} RawBuf;

typedef enum StreamState
{
	STREAM_RUNNING,				/* attached to the multi handle */
	STREAM_DONE,				/* transfer finished, still attached */
	STREAM_CLOSED				/* detached; nothing left to free */
} StreamState;

struct DcHttpStream
{
	dlist_node	node;			/* in active_streams while not closed */
	DcServer   *server;
	DcHttpRequest *req;
	MemoryContext cxt;
	MemoryContextCallback reset_cb;
	SubTransactionId subid;

	struct HandleEntry *handle; /* cached handle, or NULL when private */
	CURL	   *easy;
	struct curl_slist *slist;
	char		errbuf[CURL_ERROR_SIZE];

	StreamState state;
	CURLcode	result;
	bool		streaming;		/* pause at STREAM_CHUNK instead of capping */
	bool		paused;
	bool		too_large;
	bool		out_of_memory;
	bool		headers_done;
	bool		stalled;		/* streaming: no data within timeout_ms */
	TimestampTz started;		/* when the request was sent */
	bool		egress_refused; /* the guard refused an address (egress.c) */
	char		egress_addr[INET6_ADDRSTRLEN];
	long		status;
	RawBuf		header_block;	/* raw header lines of the final response */
	RawBuf		body;
	size_t		total;			/* body bytes received so far */
	DcHttpResponse *resp;
};

/* One reusable easy handle per server OID. */
typedef struct HandleEntry
{
	struct HandleEntry *next;
	Oid			serverid;
	CURL	   *easy;
	bool		busy;
} HandleEntry;

static CURLM *multi = NULL;
static HandleEntry *handles = NULL;
static dlist_head active_streams = DLIST_STATIC_INIT(active_streams);
static bool callbacks_registered = false;

/* Sockets libcurl asked us to watch, and the wait set built for them. */
typedef struct WatchedSocket
{
	curl_socket_t fd;
	int			what;			/* CURL_POLL_IN / OUT / INOUT */
} WatchedSocket;

static WatchedSocket sockets[MAX_SOCKETS];
static int	nsockets = 0;
static bool sockets_changed = true;
static WaitEventSet *wait_set = NULL;

/*
 * The sockets wait_set was built for.  A keep-alive connection leaves the
 * watch list between requests and comes back unchanged with the next one;
 * the set is then reused instead of rebuilt (an epoll instance and a
 * syscall per socket each time).  That is only safe while no libcurl
 * socket was closed since the build: the kernel drops a closed descriptor
 * from the epoll set, and a new socket may get the same number.
 */
static WatchedSocket built_sockets[MAX_SOCKETS];
static int	nbuilt = 0;
static bool socket_closed = false;
static TimestampTz timer_deadline = 0;	/* 0 = no timer */

static void stream_detach(DcHttpStream *s, bool broken);

/* ---------- buffers filled from callbacks ---------- */

static bool
rawbuf_append(RawBuf *b, const char *data, size_t n)
{
	if (b->len + n + 1 > b->cap)
	{
		size_t		newcap = Max(b->cap * 2, b->len + n + 1);
		char	   *p;

		newcap = Max(newcap, 1024);
		p = MemoryContextAllocExtended(CurrentMemoryContext, newcap,
									   MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
		if (p == NULL)
			return false;
		if (b->data)
		{
			memcpy(p, b->data, b->len);
			pfree(b->data);
		}
		b->data = p;
		b->cap = newcap;
	}
	memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
	return true;
}

/* ---------- libcurl callbacks (must not throw) ---------- */

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	DcHttpStream *s = (DcHttpStream *) arg;
	size_t		n = size * nmemb;
	MemoryContext old;
	bool		ok;

	if (s->streaming)
	{
		if (s->body.len >= STREAM_CHUNK)
		{
			s->paused = true;
			return CURL_WRITEFUNC_PAUSE;
		}
	}
	else if (s->total + n > (size_t) s->server->max_response_bytes)
	{
		s->too_large = true;
		return 0;
	}

	old = MemoryContextSwitchTo(s->cxt);
	ok = rawbuf_append(&s->body, ptr, n);
	MemoryContextSwitchTo(old);
	if (!ok)
	{
		s->out_of_memory = true;
		return 0;
	}
	s->total += n;
	s->headers_done = true;
	return n;
}

static size_t
header_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	DcHttpStream *s = (DcHttpStream *) arg;
	size_t		n = size * nmemb;
	MemoryContext old;
	bool		ok;

	/* a new status line starts a new response (after 100 Continue, say) */
	if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0)
	{
		s->header_block.len = 0;
		s->status = 0;
		curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->status);
		return n;
	}
	if (n <= 2 && (ptr[0] == '\r' || ptr[0] == '\n'))
	{
		curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->status);
		if (s->status >= 200)
			s->headers_done = true;
		return n;
	}
	if (s->header_block.len + n > 256 * 1024)
	{
		s->too_large = true;
		return 0;
	}
	old = MemoryContextSwitchTo(s->cxt);
	ok = rawbuf_append(&s->header_block, ptr, n);
	MemoryContextSwitchTo(old);
	if (!ok)
	{
		s->out_of_memory = true;
		return 0;
	}
	return n;
}

static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	int			i;

	for (i = 0; i < nsockets; i++)
		if (sockets[i].fd == fd)
			break;

	if (what == CURL_POLL_REMOVE)
	{
		if (i < nsockets)
		{
			sockets[i] = sockets[--nsockets];
			sockets_changed = true;
		}
		return 0;
	}
	if (i == nsockets)
	{
		if (nsockets == MAX_SOCKETS)
			return -1;			/* libcurl fails the transfer */
		sockets[nsockets].fd = fd;
		nsockets++;
		sockets_changed = true;
	}
	if (sockets[i].what != what)
	{
		sockets[i].what = what;
		sockets_changed = true;
	}
	return 0;
}

/*
 * Every socket libcurl opens goes through here: the address it is about to
 * connect to, after its own resolution, so no DNS answer (first or
 * rebound) slips past the egress guard.
 */
static curl_socket_t
opensocket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	DcHttpStream *s = (DcHttpStream *) clientp;

	if (!s->server->allow_link_local &&
		dc_egress_blocked(&address->addr, s->egress_addr, sizeof(s->egress_addr)))
	{
		s->egress_refused = true;
		return CURL_SOCKET_BAD;
	}
	return socket(address->family, address->socktype, address->protocol);
}

/* Every socket libcurl closes goes through here (see built_sockets). */
static int
closesocket_cb(void *clientp, curl_socket_t fd)
{
	socket_closed = true;
	return close(fd);
}

static int
timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	if (timeout_ms < 0)
		timer_deadline = 0;
	else
		timer_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	return 0;
}

/* ---------- cleanup on abort ---------- */

static void
abort_streams(SubTransactionId subid)
{
	dlist_mutable_iter iter;

	dlist_foreach_modify(iter, &active_streams)
	{
		DcHttpStream *s = dlist_container(DcHttpStream, node, iter.cur);

		if (subid == InvalidSubTransactionId || s->subid >= subid)
			stream_detach(s, true);
	}
}

static void
xact_cb(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		abort_streams(InvalidSubTransactionId);
}

static void
subxact_cb(SubXactEvent event, SubTransactionId mySubid,
		   SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		abort_streams(mySubid);
}

static void
stream_reset_cb(void *arg)
{
	DcHttpStream *s = (DcHttpStream *) arg;

	if (s->state != STREAM_CLOSED)
		stream_detach(s, true);
}

/* Altered or dropped servers: let go of their idle handles. */
static void
server_inval_cb(Datum arg, int cacheid, uint32 hashvalue)
{
	HandleEntry **p = &handles;

	while (*p)
	{
		HandleEntry *h = *p;

		if (!h->busy)
		{
			*p = h->next;
			curl_easy_cleanup(h->easy);
			pfree(h);
		}
		else
			p = &h->next;
	}
}

static void
ensure_initialized(void)
{
	if (multi == NULL)
	{
		multi = curl_multi_init();
		if (multi == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not initialize libcurl")));
		curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
		curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	}
	if (!callbacks_registered)
	{
		RegisterXactCallback(xact_cb, NULL);
		RegisterSubXactCallback(subxact_cb, NULL);
		CacheRegisterSyscacheCallback(FOREIGNSERVEROID, server_inval_cb, (Datum) 0);
		callbacks_registered = true;
	}
}

void
dc_http_init(void)
{
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		elog(ERROR, "could not initialize libcurl");
}

/* ---------- easy handles ---------- */

static HandleEntry *
acquire_handle(Oid serverid, CURL **easy)
{
	HandleEntry *h;

	for (h = handles; h; h = h->next)
	{
		if (h->serverid == serverid && !h->busy)
		{
			h->busy = true;
			*easy = h->easy;
			return h;
		}
	}

	*easy = curl_easy_init();
	if (*easy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));

	/* the first handle for a server is kept; concurrent ones are private */
	for (h = handles; h; h = h->next)
		if (h->serverid == serverid)
			return NULL;

	h = MemoryContextAllocZero(TopMemoryContext, sizeof(HandleEntry));
	h->serverid = serverid;
	h->easy = *easy;
	h->busy = true;
	h->next = handles;
	handles = h;
	return h;
}

static void
forget_handle(HandleEntry *entry)
{
	HandleEntry **p;

	for (p = &handles; *p; p = &(*p)->next)
	{
		if (*p == entry)
		{
			*p = entry->next;
			pfree(entry);
			return;
		}
	}
}

/*
 * Take a stream's handle off the multi handle and free what libcurl
 * allocated for it.  "broken" means the transfer did not finish normally;
 * the handle is then discarded rather than reused.
 */
static void
stream_detach(DcHttpStream *s, bool broken)
{
	if (s->state == STREAM_CLOSED)
		return;
	dc_metrics_http(s->server, s->req->operation, s->easy, s->state == STREAM_DONE,
					s->result, s->status, s->too_large, s->out_of_memory);
	s->state = STREAM_CLOSED;
	dlist_delete(&s->node);

	curl_multi_remove_handle(multi, s->easy);
	curl_slist_free_all(s->slist);
	s->slist = NULL;

	if (s->handle && !broken)
	{
		s->handle->busy = false;
		return;
	}
	if (s->handle)
		forget_handle(s->handle);
	curl_easy_cleanup(s->easy);
	s->easy = NULL;
	s->handle = NULL;
}

/* ---------- driving the transfer ---------- */

static void
collect_done(void)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		DcHttpStream *s = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &s);
		if (s && s->state == STREAM_RUNNING)
		{
			s->state = STREAM_DONE;
			s->result = msg->data.result;
			curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->status);
		}
	}
}

static void
socket_action(curl_socket_t fd, int flags)
{
	int			running;

	curl_multi_socket_action(multi, fd, flags, &running);
	collect_done();
}

static void
rebuild_wait_set(void)
{
	int			i;

	if (wait_set)
		FreeWaitEventSet(wait_set);
#if PG_VERSION_NUM >= 170000
	wait_set = CreateWaitEventSet(NULL, nsockets + 2);
#else
	wait_set = CreateWaitEventSet(TopMemoryContext, nsockets + 2);
#endif
	AddWaitEventToSet(wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (i = 0; i < nsockets; i++)
	{
		uint32		ev = 0;

		if (sockets[i].what & CURL_POLL_IN)
			ev |= WL_SOCKET_READABLE;
		if (sockets[i].what & CURL_POLL_OUT)
			ev |= WL_SOCKET_WRITEABLE;
		if (ev != 0)
			AddWaitEventToSet(wait_set, ev, sockets[i].fd, NULL, NULL);
	}
	memcpy(built_sockets, sockets, sizeof(WatchedSocket) * nsockets);
	nbuilt = nsockets;
	socket_closed = false;
	sockets_changed = false;
}

/*
 * Wait once for socket activity, libcurl's timer, the latch or "deadline"
 * (0: none), and let libcurl act on what happened.  Throws on interrupts.
 */
static void
wait_and_act_until(TimestampTz deadline)
{
	WaitEvent	events[MAX_SOCKETS + 2];
	long		timeout = MAX_WAIT_MS;
	int			n,
				i;

	CHECK_FOR_INTERRUPTS();

	if (timer_deadline != 0 || deadline != 0)
	{
		TimestampTz now = GetCurrentTimestamp();

		if (timer_deadline != 0 && now >= timer_deadline)
		{
			timer_deadline = 0;
			socket_action(CURL_SOCKET_TIMEOUT, 0);
			return;
		}
		if (timer_deadline != 0)
			timeout = Min(timeout, (long) ((timer_deadline - now + 999) / 1000));
		if (deadline != 0)
			timeout = Min(timeout, Max(0, (long) ((deadline - now + 999) / 1000)));
	}

	if (sockets_changed && wait_set != NULL && !socket_closed &&
		nsockets == nbuilt &&
		memcmp(sockets, built_sockets, sizeof(WatchedSocket) * nsockets) == 0)
		sockets_changed = false;
	if (sockets_changed || wait_set == NULL)
		rebuild_wait_set();

	n = WaitEventSetWait(wait_set, timeout, events, lengthof(events), PG_WAIT_EXTENSION);

	for (i = 0; i < n; i++)
	{
		if (events[i].events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	for (i = 0; i < n; i++)
	{
		int			flags = 0;

		if (events[i].events & WL_SOCKET_READABLE)
			flags |= CURL_CSELECT_IN;
		if (events[i].events & WL_SOCKET_WRITEABLE)
			flags |= CURL_CSELECT_OUT;
		if (flags)
			socket_action(events[i].fd, flags);
	}
	if (n == 0)
	{
		timer_deadline = 0;
		socket_action(CURL_SOCKET_TIMEOUT, 0);
	}
}

static void
wait_and_act(void)
{
	wait_and_act_until(0);
}

/*
 * One wait of a streamed transfer that must see progress by "deadline".
 * Past it, the transfer is marked as timed out (stalled: after the
 * headers) and false is returned; the caller detaches and raises.
 */
static bool
stream_wait(DcHttpStream *s, TimestampTz deadline, bool stalled)
{
	if (GetCurrentTimestamp() >= deadline)
	{
		s->state = STREAM_DONE;
		s->result = CURLE_OPERATION_TIMEDOUT;
		s->errbuf[0] = '\0';
		s->stalled = stalled;
		return false;
	}
	wait_and_act_until(deadline);
	return true;
}

/* ---------- requests ---------- */

static void
set_method(DcHttpStream *s)
{
	DcHttpRequest *req = s->req;
	CURL	   *e = s->easy;

	if (strcmp(req->method, "GET") == 0 && req->body == NULL)
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	else if (strcmp(req->method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else
	{
		if (strcmp(req->method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
		if (req->body != NULL || strcmp(req->method, "POST") == 0 ||
			strcmp(req->method, "PUT") == 0)
		{
			/* POSTFIELDS sends the body whatever the custom method is */
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		}
	}
}

static struct curl_slist *
build_headers(DcHttpRequest *req)
{
	struct curl_slist *list = NULL;
	ListCell   *lc;
	bool		have_ct = false;

	foreach(lc, req->headers)
	{
		const char *h = lfirst(lc);
		struct curl_slist *next;

		if (pg_strncasecmp(h, "content-type:", 13) == 0)
			have_ct = true;
		next = curl_slist_append(list, h);
		if (next == NULL)
			goto oom;
		list = next;
	}
	/* no 1 s stall on large bodies, no form content type by default */
	if ((list = curl_slist_append(list, "Expect:")) == NULL)
		goto oom;
	if (!have_ct && (list = curl_slist_append(list, "Content-Type:")) == NULL)
		goto oom;
	return list;

oom:
	curl_slist_free_all(list);
	ereport(ERROR,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("out of memory")));
	return NULL;
}

static void
configure(DcHttpStream *s)
{
	CURL	   *e = s->easy;
	DcServer   *server = s->server;

	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_PRIVATE, (char *) s);
	curl_easy_setopt(e, CURLOPT_URL, s->req->url);
	/*
	 * The path goes out as built: libcurl would otherwise remove "." and ".."
	 * segments, so a name taken from SQL could reach another resource, and
	 * an S3 key would no longer match the path that was signed.
	 */
	curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	/* only the registered endpoint is reachable: ignore *_proxy variables */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long) server->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long) server->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "datacore/" DC_VERSION);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, closesocket_cb);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, opensocket_cb);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, s);
	/* never leave a link-local connection in the pool other servers share */
	if (server->allow_link_local)
		curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->slist);
	set_method(s);
}

static DcHttpStream *
stream_start(DcServer *server, DcHttpRequest *req, bool streaming)
{
	DcHttpStream *s;
	CURLMcode	mc;

	ensure_initialized();

	s = palloc0(sizeof(DcHttpStream));
	s->server = server;
	s->req = req;
	s->cxt = CurrentMemoryContext;
	s->streaming = streaming;
	s->subid = GetCurrentSubTransactionId();
	s->state = STREAM_CLOSED;

	s->slist = build_headers(req);
	s->handle = acquire_handle(server->serverid, &s->easy);

	/* from here on, abort or context reset detaches the stream */
	s->state = STREAM_RUNNING;
	dlist_push_tail(&active_streams, &s->node);
	s->reset_cb.func = stream_reset_cb;
	s->reset_cb.arg = s;
	MemoryContextRegisterResetCallback(s->cxt, &s->reset_cb);

	configure(s);

	/*
	 * libcurl counts paused time against CURLOPT_TIMEOUT, so a slow reader
	 * of a stream would hit it; streams are bounded by our own clocks
	 * instead (wait_for_headers, dc_http_read), which run only while we
	 * wait for the server.
	 */
	if (streaming)
		curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, 0L);
	s->started = GetCurrentTimestamp();
	mc = curl_multi_add_handle(multi, s->easy);
	if (mc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not start %s request to server \"%s\"",
						req->operation, server->servername),
				 errdetail_internal("%s", curl_multi_strerror(mc))));
	/* kick off: resolves, connects, and arms the timer */
	socket_action(CURL_SOCKET_TIMEOUT, 0);
	return s;
}

/*
 * Raise the error for a transfer that did not complete.  Class 08 for the
 * network, 54000 for a response over the cap; never the credentials.
 */
/*
 * libcurl's message without its timings ("after 3 ms"), which would make
 * every message different.
 */
static char *
curl_message(DcHttpStream *s)
{
	char	   *msg = pstrdup(s->errbuf[0] ? s->errbuf : curl_easy_strerror(s->result));
	char	   *p = strstr(msg, " after ");

	if (p)
	{
		char	   *q = p + 7;

		while (*q >= '0' && *q <= '9')
			q++;
		if (q > p + 7 && strncmp(q, " ms", 3) == 0)
			memmove(p, q + 3, strlen(q + 3) + 1);
	}
	return msg;
}

static void
raise_transfer_error(DcHttpStream *s)
{
	DcServer   *server = s->server;
	const char *op = s->req->operation;
	const char *detail = curl_message(s);

	if (s->egress_refused && s->result != CURLE_OK)
		dc_egress_refuse(server, op, s->egress_addr);
	if (s->too_large)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("response from server \"%s\" to %s exceeds the size limit",
						server->servername, op),
				 errdetail("The limit is " INT64_FORMAT " bytes.", server->max_response_bytes),
				 errhint("Raise the server option max_response_bytes.")));
	if (s->out_of_memory)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory reading the response from server \"%s\" to %s",
						server->servername, op)));

	switch (s->result)
	{
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
		case CURLE_COULDNT_CONNECT:
			ereport(ERROR,
					(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
					 errmsg("could not connect to server \"%s\" for %s",
							server->servername, op),
					 errdetail_internal("%s", detail)));
			break;
		case CURLE_OPERATION_TIMEDOUT:
			if (s->stalled)
				ereport(ERROR,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("server \"%s\" stopped sending the response to %s",
								server->servername, op),
						 errdetail("No data arrived for %d ms while the response was being read.",
								   server->timeout_ms),
						 errhint("The server option timeout_ms sets the limit.")));
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("server \"%s\" did not answer %s in time",
							server->servername, op),
					 errdetail("No complete answer arrived within %d ms (connection limit %d ms).",
							   server->timeout_ms, server->connect_timeout_ms),
					 errhint("The server options timeout_ms and connect_timeout_ms set the limits.")));
			break;
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_CACERT_BADFILE:
			ereport(ERROR,
					(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
					 errmsg("could not establish a secure connection to server \"%s\" for %s",
							server->servername, op),
					 errdetail_internal("%s", detail)));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("connection to server \"%s\" failed during %s",
							server->servername, op),
					 errdetail_internal("%s", detail)));
	}
}

static bool
transfer_ok(DcHttpStream *s)
{
	return !(s->state == STREAM_DONE && s->result != CURLE_OK) &&
		!s->too_large && !s->out_of_memory;
}

/*
 * Whether the call failed in a way that says the server is in trouble, for
 * the circuit breaker: the network (connection, timeout, dropped or
 * truncated reply) or an HTTP 429 or 5xx.  Not: our own size cap, our
 * memory, the egress guard, or a 4xx caused by the request.
 */
static bool
server_down(DcHttpStream *s)
{
	if (s->state == STREAM_DONE && s->result != CURLE_OK)
		return !s->too_large && !s->out_of_memory && !s->egress_refused;
	return dc_breaker_status_failure(s->status);
}

static bool
transient_failure(DcHttpStream *s)
{
	if (s->too_large || s->out_of_memory || s->egress_refused)
		return false;
	if (s->state == STREAM_DONE && s->result != CURLE_OK)
		return s->result == CURLE_COULDNT_CONNECT ||
			s->result == CURLE_GOT_NOTHING ||
			s->result == CURLE_RECV_ERROR ||
			s->result == CURLE_SEND_ERROR ||
			s->result == CURLE_PARTIAL_FILE;
	return s->status == 429 || s->status == 502 || s->status == 503 ||
		s->status == 504;
}

/* ---------- Retry-After, for callers that retry later (jobs) ---------- */

static int	last_retry_after_ms = -1;

int
dc_http_last_retry_after_ms(void)
{
	return last_retry_after_ms;
}

void
dc_http_forget_retry_after(void)
{
	last_retry_after_ms = -1;
}

/* Remember a 429/503's Retry-After: delta-seconds or an HTTP-date. */
static void
note_retry_after(DcHttpResponse *resp)
{
	const char *ra;
	long		secs = -1;

	if (resp->status != 429 && resp->status != 503)
		return;
	ra = dc_http_header(resp, "retry-after");
	if (ra == NULL)
		return;
	if (*ra && strspn(ra, "0123456789") == strlen(ra) && strlen(ra) < 7)
		secs = atol(ra);
	else
	{
		time_t		when = curl_getdate(ra, NULL);

		if (when != -1)
			secs = Max((long) (when - time(NULL)), 0L);
	}
	if (secs >= 0)
		last_retry_after_ms = (int) Min(secs * 1000L, (long) INT_MAX);
}

static DcHttpResponse *
make_response(DcHttpStream *s)
{
	DcHttpResponse *resp = palloc0(sizeof(DcHttpResponse));
	char	   *line;
	char	   *save = NULL;

	resp->status = s->status;
	initStringInfo(&resp->body);
	if (s->header_block.data)
	{
		for (line = strtok_r(s->header_block.data, "\r\n", &save); line;
			 line = strtok_r(NULL, "\r\n", &save))
		{
			char	   *colon = strchr(line, ':');
			DcHttpHeader *h;
			char	   *p;

			if (colon == NULL)
				continue;
			*colon = '\0';
			h = palloc(sizeof(DcHttpHeader));
			h->name = pstrdup(line);
			for (p = h->name; *p; p++)
				*p = pg_ascii_tolower((unsigned char) *p);
			p = colon + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			h->value = pstrdup(p);
			resp->headers = lappend(resp->headers, h);
		}
	}
	note_retry_after(resp);
	return resp;
}

/*
 * Run a streamed transfer until its headers are in (or it ended); they
 * must come within timeout_ms of sending the request.
 */
static void
wait_for_headers(DcHttpStream *s)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(s->started,
													   s->server->timeout_ms);

	while (s->state == STREAM_RUNNING && !s->headers_done)
		if (!stream_wait(s, deadline, false))
			break;
	if (!transfer_ok(s))
		return;
	s->resp = make_response(s);
}

static void
retry_sleep(DcHttpStream *s, int attempt)
{
	long		ms = 100L << Min(attempt, 6);
	const char *ra = s->resp ? dc_http_header(s->resp, "retry-after") : NULL;

	if (ra && strspn(ra, "0123456789") == strlen(ra) && strlen(ra) < 6)
		ms = atol(ra) * 1000L;
	ms = Min(ms, Min((long) MAX_RETRY_SLEEP_MS, (long) s->server->timeout_ms));

	dc_metrics_retry(s->server, s->req->operation);
	elog(DEBUG1, "datacore: retrying %s on server \"%s\" in %ld ms",
		 s->req->operation, s->server->servername, ms);
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * Send a request without waiting for the answer; dc_http_finish() then
 * waits for it.  Several started requests progress together (each on a
 * connection of its own), which lets a caller send the next request of a
 * batch before working on the previous answer.  On ERROR an unfinished
 * request is cleaned up like a stream.
 */
DcHttpStream *
dc_http_start(DcServer *server, DcHttpRequest *req)
{
	dc_breaker_check(server, req->operation);
	return stream_start(server, req, false);
}

/*
 * Wait for a request begun with dc_http_start() and buffer the whole
 * response.  Network failures and an oversized body are raised here; HTTP
 * error statuses are returned for the service to interpret (see
 * dc_http_raise_status).  Retryable requests are sent again (and waited
 * for) up to the server's "retries" times after a connection failure or a
 * 429/502/503/504, honouring Retry-After.
 */
DcHttpResponse *
dc_http_finish(DcHttpStream *s)
{
	DcServer   *server = s->server;
	DcHttpRequest *req = s->req;
	int			attempt;

	for (attempt = 0;; attempt++)
	{
		bool		last = !req->retryable || attempt >= server->retries;

		while (s->state == STREAM_RUNNING)
			wait_and_act();

		if (transfer_ok(s))
			s->resp = make_response(s);

		if (!last && transient_failure(s))
		{
			stream_detach(s, !transfer_ok(s));
			retry_sleep(s, attempt);
			s = stream_start(server, req, false);
			continue;
		}
		/* a call counts once, whatever its retries did */
		dc_breaker_record(server, !server_down(s));

		if (!transfer_ok(s))
		{
			stream_detach(s, true);
			raise_transfer_error(s);
		}

		stream_detach(s, false);
		if (s->body.data)
		{
			s->resp->body.data = s->body.data;
			s->resp->body.len = s->body.len;
			s->resp->body.maxlen = s->body.cap;
		}
		return s->resp;
	}
}

/* Send a request and buffer the whole response (see dc_http_finish). */
DcHttpResponse *
dc_http_execute(DcServer *server, DcHttpRequest *req)
{
	return dc_http_finish(dc_http_start(server, req));
}

/*
 * Run n requests with up to max_in_flight of them in flight at once (each
 * on a connection of its own), and hand each response to done() as soon
 * as it is in, in completion order.  make(i) builds request i just before
 * it is sent, so a caller need not hold all n at once: memory is bounded
 * by max_in_flight requests and responses, each in a memory context of
 * its own that is reset once done() returns.  Both callbacks run in that
 * context; done() copies what it keeps into a context of the caller's.
 *
 * The first failure ends the batch: a network failure or oversized body
 * raised for one request, or an error thrown by a callback (say, for a
 * status the caller cannot accept), cancels the requests still in flight
 * before it propagates, so nothing of the batch is still being sent while
 * the caller cleans up.
 */
void
dc_http_run_batch(DcServer *server, int n, int max_in_flight,
				  DcHttpBatchMake make, DcHttpBatchDone done, void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	volatile int nslots = Max(1, Min(max_in_flight, n));
	MemoryContext *cxt = palloc0(sizeof(MemoryContext) * nslots);
	DcHttpStream **slot = palloc0(sizeof(DcHttpStream *) * nslots);
	int		   *index = palloc0(sizeof(int) * nslots);

	for (int k = 0; k < nslots; k++)
		cxt[k] = AllocSetContextCreate(caller, "datacore HTTP batch request",
									   ALLOCSET_DEFAULT_SIZES);
	PG_TRY();
	{
		int			next = 0;
		int			running = 0;

		for (;;)
		{
			int			k;

			/* fill the free slots */
			for (k = 0; k < nslots && next < n; k++)
			{
				DcHttpRequest *req;

				if (slot[k])
					continue;
				MemoryContextSwitchTo(cxt[k]);
				req = make(next, arg);
				slot[k] = dc_http_start(server, req);
				MemoryContextSwitchTo(caller);
				index[k] = next++;
				running++;
			}
			if (running == 0)
				break;

			/* finish one that is done, or wait for progress */
			for (k = 0; k < nslots; k++)
				if (slot[k] && slot[k]->state != STREAM_RUNNING)
					break;
			if (k == nslots)
			{
				wait_and_act();
				continue;
			}
			{
				DcHttpRequest *req = slot[k]->req;
				DcHttpResponse *resp;

				MemoryContextSwitchTo(cxt[k]);
				resp = dc_http_finish(slot[k]);
				done(index[k], req, resp, arg);
				MemoryContextSwitchTo(caller);
			}
			slot[k] = NULL;
			running--;
			MemoryContextReset(cxt[k]);
		}
	}
	PG_CATCH();
	{
		/* deleting a context detaches its transfer (stream_reset_cb) */
		MemoryContextSwitchTo(caller);
		for (int k = 0; k < nslots; k++)
			MemoryContextDelete(cxt[k]);
		PG_RE_THROW();
	}
	PG_END_TRY();
	for (int k = 0; k < nslots; k++)
		MemoryContextDelete(cxt[k]);
	pfree(cxt);
	pfree(slot);
	pfree(index);
}

/* State of dc_http_execute_batch. */
typedef struct ArrayBatch
{
	DcHttpRequest **reqs;
	DcHttpResponse **resps;
	MemoryContext cxt;
} ArrayBatch;

static DcHttpRequest *
array_make(int i, void *arg)
{
	return ((ArrayBatch *) arg)->reqs[i];
}

/* Keep the response: move its buffers out of the request's context. */
static void
array_done(int i, DcHttpRequest *req, DcHttpResponse *resp, void *arg)
{
	ArrayBatch *b = (ArrayBatch *) arg;
	MemoryContext old = MemoryContextSwitchTo(b->cxt);
	DcHttpResponse *copy = palloc0(sizeof(DcHttpResponse));
	ListCell   *lc;

	copy->status = resp->status;
	initStringInfo(&copy->body);
	appendBinaryStringInfo(&copy->body, resp->body.data, resp->body.len);
	foreach(lc, resp->headers)
	{
		DcHttpHeader *h = lfirst(lc);
		DcHttpHeader *c = palloc(sizeof(DcHttpHeader));

		c->name = pstrdup(h->name);
		c->value = pstrdup(h->value);
		copy->headers = lappend(copy->headers, c);
	}
	b->resps[i] = copy;
	MemoryContextSwitchTo(old);
}

/*
 * N requests in, N responses out (resps[i] answers reqs[i]), up to
 * max_in_flight at once; see dc_http_run_batch.  HTTP error statuses are
 * returned, network failures raised (cancelling the rest).  The responses
 * are kept until the caller's context goes, so for large bodies prefer
 * dc_http_run_batch, whose done() sees each one while it is in memory.
 */
void
dc_http_execute_batch(DcServer *server, int n, DcHttpRequest **reqs,
					  DcHttpResponse **resps, int max_in_flight)
{
	ArrayBatch	b;

	b.reqs = reqs;
	b.resps = resps;
	b.cxt = CurrentMemoryContext;
	dc_http_run_batch(server, n, max_in_flight, array_make, array_done, &b);
}

/*
 * Start a streamed request and wait for the response headers.  The caller
 * checks the status (dc_http_stream_response), reads with dc_http_read()
 * and ends with dc_http_close(); on ERROR the stream cleans up itself.
 */
DcHttpStream *
dc_http_open(DcServer *server, DcHttpRequest *req)
{
	DcHttpStream *s;

	dc_breaker_check(server, req->operation);
	s = stream_start(server, req, true);
	wait_for_headers(s);
	dc_breaker_record(server, !server_down(s));
	if (!transfer_ok(s))
	{
		stream_detach(s, true);
		raise_transfer_error(s);
	}
	return s;
}

DcHttpResponse *
dc_http_stream_response(DcHttpStream *stream)
{
	return stream->resp;
}

/*
 * Append the next chunk of the body to "out".  Returns false at the end of
 * the body.  The server must send something within timeout_ms of our
 * starting to wait for it; time the caller spends between reads (the
 * transfer paused) does not count.
 */
bool
dc_http_read(DcHttpStream *s, StringInfo out)
{
	TimestampTz deadline = 0;

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (s->body.len > 0)
		{
			appendBinaryStringInfo(out, s->body.data, s->body.len);
			s->body.len = 0;
			if (s->paused && s->state == STREAM_RUNNING)
			{
				s->paused = false;
				curl_easy_pause(s->easy, CURLPAUSE_CONT);
				collect_done();
			}
			return true;
		}
		if (s->state != STREAM_RUNNING)
			break;
		if (deadline == 0)
			deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												   s->server->timeout_ms);
		if (!stream_wait(s, deadline, true))
			break;
	}

	if (!transfer_ok(s))
	{
		/* the headers counted as a success; a reply cut short does not */
		if (server_down(s))
			dc_breaker_record(s->server, false);
		stream_detach(s, true);
		raise_transfer_error(s);
	}
	return false;
}

void
dc_http_close(DcHttpStream *s)
{
	/* an unfinished transfer cannot leave its connection reusable */
	stream_detach(s, s->state != STREAM_DONE || !transfer_ok(s));
}

/* ---------- helpers ---------- */

/*
 * The server with the bounds of a clean-up request (aborting what an
 * error left half-done): at most CLEANUP_TIMEOUT_MS to connect and to
 * answer, no retries.  A cancelled statement then ends within that bound
 * even when the server hangs, instead of waiting the full timeout_ms.
 */
DcServer *
dc_http_cleanup_server(DcServer *server)
{
	DcServer   *copy = palloc(sizeof(DcServer));

	*copy = *server;
	copy->timeout_ms = Min(server->timeout_ms, CLEANUP_TIMEOUT_MS);
	copy->connect_timeout_ms = Min(server->connect_timeout_ms, CLEANUP_TIMEOUT_MS);
	copy->retries = 0;
	return copy;
}

/*
 * A request for server->url + path; path must start with '/' and be
 * escaped already.  It is sent exactly so (no dot-segment removal), see
 * dc_http_escape_segment for names that must stay one segment.
 */
DcHttpRequest *
dc_http_request(DcServer *server, const char *operation, const char *method,
				const char *path)
{
	DcHttpRequest *req = palloc0(sizeof(DcHttpRequest));

	req->operation = operation;
	req->method = method;
	req->url = psprintf("%s%s", server->url, path);
	req->retryable = true;
	return req;
}

void
dc_http_add_header(DcHttpRequest *req, const char *name, const char *value)
{
	/* a header value with a line break would smuggle another header */
	if (strpbrk(value, "\r\n") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("value of HTTP header \"%s\" contains a line break", name)));
	req->headers = lappend(req->headers, psprintf("%s: %s", name, value));
}

void
dc_http_set_json_body(DcHttpRequest *req, const char *json)
{
	req->body = json;
	req->body_len = strlen(json);
	dc_http_add_header(req, "Content-Type", "application/json");
}

const char *
dc_http_header(DcHttpResponse *resp, const char *name)
{
	ListCell   *lc;

	foreach(lc, resp->headers)
	{
		DcHttpHeader *h = lfirst(lc);

		if (pg_strcasecmp(h->name, name) == 0)
			return h->value;
	}
	return NULL;
}

/*
 * A response header whose value becomes text (a column, a jsonb string, an
 * ETag returned to the caller); NULL when absent.  Header bytes are the
 * server's: 22021 unless valid in the database encoding.
 */
const char *
dc_http_header_text(DcServer *server, DcHttpResponse *resp, const char *name)
{
	const char *v = dc_http_header(resp, name);

	if (v != NULL)
		dc_check_remote_text(v, strlen(v), psprintf("%s header", name),
							 server->servername);
	return v;
}

/*
 * Percent-encode everything but RFC 3986 unreserved characters (and '/'
 * when keep_slash), the encoding S3's SigV4 canonical URI also uses.
 */
char *
dc_http_escape(const char *s, bool keep_slash)
{
	StringInfoData buf;
	const unsigned char *p;

	initStringInfo(&buf);
	for (p = (const unsigned char *) s; *p; p++)
	{
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			(*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
			*p == '.' || *p == '~' || (keep_slash && *p == '/'))
			appendStringInfoChar(&buf, (char) *p);
		else
			appendStringInfo(&buf, "%%%02X", *p);
	}
	return buf.data;
}

/*
 * A name as one path segment: escaped like dc_http_escape (so '/' too), and
 * "." or ".." as %2E / %2E%2E, which no client or proxy treats as a dot
 * segment to remove, while the server decodes it back to the name.
 */
char *
dc_http_escape_segment(const char *s)
{
	if (strcmp(s, ".") == 0)
		return pstrdup("%2E");
	if (strcmp(s, "..") == 0)
		return pstrdup("%2E%2E");
	return dc_http_escape(s, false);
}

/* The SQLSTATE an HTTP error status is raised with (metrics count it too). */
int
dc_http_status_errcode(long status)
{
	switch (status)
	{
		case 400:
		case 422:
			return ERRCODE_INVALID_PARAMETER_VALUE;
		case 401:
		case 403:
			return ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		case 404:
			return ERRCODE_UNDEFINED_OBJECT;
		case 409:
			return ERRCODE_DUPLICATE_OBJECT;
		case 413:
			return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		case 429:
		case 502:
		case 503:
		case 504:
			return ERRCODE_CONNECTION_FAILURE;
		default:
			return ERRCODE_FDW_ERROR;
	}
}

/*
 * Raise the error for an HTTP error status.  remote_message is the
 * service's own error text if the caller could extract it; otherwise the
 * start of the body is shown.
 */
void
dc_http_raise_status(DcServer *server, DcHttpRequest *req, DcHttpResponse *resp,
					 const char *remote_message)
{
	char	   *detail;

	if (remote_message == NULL)
	{
		if (resp->body.len == 0)
			detail = pstrdup("(empty response body)");
		else
			detail = dc_remote_excerpt(resp->body.data, resp->body.len, 500);
	}
	else
		detail = dc_remote_excerpt(remote_message, strlen(remote_message), 500);

	ereport(ERROR,
			(errcode(dc_http_status_errcode(resp->status)),
			 errmsg("server \"%s\" rejected %s with HTTP status %ld",
					server->servername, req->operation, resp->status),
			 errdetail_internal("%s", detail)));
}
