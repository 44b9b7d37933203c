/*-------------------------------------------------------------------------
 *
 * egress.c
 *		The egress guard: no connection to a link-local or cloud-metadata
 *		address unless a superuser allowed it on the server.
 *
 * USAGE on a server only fences SQL to the hosts a superuser registered;
 * a registered host name can still resolve (or later be rebound) to the
 * metadata service of the machine, which hands out cloud credentials.  So
 * the address is checked where the socket is made: libcurl's open-socket
 * callback for HTTP (every address it tries, after its own resolution),
 * and the connected peer for Redis.  The refusal is 42501: a policy, not a
 * network failure; retrying or waiting cannot change it, and it does not
 * count against the server's circuit breaker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "utils/builtins.h"

#include "datacore.h"

/* IPv4 addresses (host order) that are metadata endpoints. */
static bool
ipv4_blocked(uint32 a)
{
	return (a >> 16) == ((169u << 8) | 254u) ||	/* 169.254.0.0/16 */
		a == ((100u << 24) | (100u << 16) | (100u << 8) | 200u);	/* Alibaba */
}

static uint32
ipv4_at(const uint8 *b)
{
	return ((uint32) b[0] << 24) | ((uint32) b[1] << 16) |
		((uint32) b[2] << 8) | (uint32) b[3];
}

/*
 * Whether sa is a link-local or cloud-metadata address: 169.254.0.0/16,
 * 100.100.100.200, fe80::/10, fd00:ec2::254, and those IPv4 addresses
 * inside IPv6 (v4-mapped ::ffff:a.b.c.d, v4-compatible ::a.b.c.d, NAT64
 * 64:ff9b::a.b.c.d), which reach the same host.  When blocked and text is
 * given, the address is written there for the error message.  Must not
 * throw: called from a libcurl callback.
 */
bool
dc_egress_blocked(const struct sockaddr *sa, char *text, size_t textlen)
{
	bool		blocked = false;

	if (sa->sa_family == AF_INET)
	{
		const struct sockaddr_in *in = (const struct sockaddr_in *) sa;

		blocked = ipv4_blocked(ntohl(in->sin_addr.s_addr));
		if (blocked && text)
			inet_ntop(AF_INET, &in->sin_addr, text, textlen);
	}
	else if (sa->sa_family == AF_INET6)
	{
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
		const uint8 *b = in6->sin6_addr.s6_addr;
		static const uint8 ec2[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0x02, 0x54};
		static const uint8 nat64[12] = {0x00, 0x64, 0xff, 0x9b};
		static const uint8 zero[10] = {0};

		if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
			blocked = true;
		else if (memcmp(b, ec2, 16) == 0)
			blocked = true;
		else if (memcmp(b, zero, 10) == 0 &&
				 ((b[10] == 0xff && b[11] == 0xff) || (b[10] == 0 && b[11] == 0)))
			blocked = ipv4_blocked(ipv4_at(b + 12));
		else if (memcmp(b, nat64, 12) == 0)
			blocked = ipv4_blocked(ipv4_at(b + 12));
		if (blocked && text)
			inet_ntop(AF_INET6, &in6->sin6_addr, text, textlen);
	}
	return blocked;
}

/* The refusal, for libcurl's transfers and for the checks below. */
void
dc_egress_refuse(DcServer *server, const char *operation, const char *addr)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("connection to server \"%s\" for %s refused: %s is a link-local or cloud-metadata address",
					server->servername, operation, addr),
			 errdetail("datacore does not connect to link-local or metadata addresses unless the server allows it."),
			 errhint("A superuser can allow it with ALTER SERVER %s OPTIONS (ADD allow_link_local 'true').",
					 quote_identifier(server->servername))));
}

/*
 * For a connection made outside libcurl (Redis): refuse if the host is an
 * address literal in the fenced ranges, before anything is sent.  Names
 * are checked on the connected socket (dc_egress_check_fd).
 */
void
dc_egress_check_host(DcServer *server, const char *operation, const char *host)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	char		text[INET6_ADDRSTRLEN];

	if (server->allow_link_local)
		return;
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return;					/* a name */
	if (res && dc_egress_blocked(res->ai_addr, text, sizeof(text)))
	{
		freeaddrinfo(res);
		dc_egress_refuse(server, operation, text);
	}
	freeaddrinfo(res);
}

/*
 * For a connection made outside libcurl: refuse if the connected peer is
 * in the fenced ranges (whatever name led there), before the first byte is
 * written.
 */
void
dc_egress_check_fd(DcServer *server, const char *operation, int fd)
{
	struct sockaddr_storage ss;
	socklen_t	len = sizeof(ss);
	char		text[INET6_ADDRSTRLEN];

	if (server->allow_link_local)
		return;
	if (getpeername(fd, (struct sockaddr *) &ss, &len) != 0)
		return;					/* not connected: the connect error follows */
	if (dc_egress_blocked((struct sockaddr *) &ss, text, sizeof(text)))
		dc_egress_refuse(server, operation, text);
}
