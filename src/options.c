/*-------------------------------------------------------------------------
 *
 * options.c
 *		Option tables and validators for the four datacore wrappers, and the
 *		one place where a server name becomes a resolved configuration.
 *
 * Values are checked when the catalog object is created or altered, so a
 * typo in a timeout surfaces at CREATE SERVER rather than at the first
 * request.  Secrets are accepted only on user mappings, because those are
 * the only options PostgreSQL hides from other roles (pg_user_mappings).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <limits.h>

#include "access/htup_details.h"
#include "access/reloptions.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "nodes/plannodes.h"
#include "executor/executor.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "datacore.h"

/* How an option's value is checked. */
typedef enum DcOptKind
{
	DC_OPT_TEXT,				/* any non-empty string */
	DC_OPT_URL,					/* http:// or https:// URL */
	DC_OPT_INT,					/* integer in [min, max] */
	DC_OPT_BOOL,
	DC_OPT_ENUM,				/* one of a '|'-separated list */
	DC_OPT_SECRET,				/* any string; only on user mappings */
	DC_OPT_ADDRESS,				/* an IPv4 or IPv6 address, no host name */
	DC_OPT_CSV_DELIMITER,		/* one byte, not a quote or a line end */
	DC_OPT_SUPERUSER_BOOL		/* boolean that only a superuser may set true */
} DcOptKind;

#define SVC_OLLAMA	(1 << DC_SERVICE_OLLAMA)
#define SVC_QDRANT	(1 << DC_SERVICE_QDRANT)
#define SVC_S3		(1 << DC_SERVICE_S3)
#define SVC_REDIS	(1 << DC_SERVICE_REDIS)
#define SVC_HTTP	(SVC_OLLAMA | SVC_QDRANT | SVC_S3)
#define SVC_ALL		(SVC_HTTP | SVC_REDIS)

typedef struct DcOption
{
	const char *name;
	int			services;		/* bit mask of DcService */
	Oid			catalog;		/* where the option may appear */
	DcOptKind	kind;
	int64		min;			/* DC_OPT_INT bounds */
	int64		max;
	const char *values;			/* DC_OPT_ENUM: "a|b|c" */
} DcOption;

#define MiB		(INT64CONST(1024) * 1024)

static const DcOption dc_options[] = {
	/* common server options */
	{"url", SVC_HTTP, ForeignServerRelationId, DC_OPT_URL},
	{"timeout_ms", SVC_ALL, ForeignServerRelationId, DC_OPT_INT, 1, INT_MAX},
	{"connect_timeout_ms", SVC_ALL, ForeignServerRelationId, DC_OPT_INT, 1, INT_MAX},
	{"max_response_bytes", SVC_ALL, ForeignServerRelationId, DC_OPT_INT, 1, MaxAllocSize - 1},
	/* a Redis command is never resent once written: it may have run */
	{"retries", SVC_HTTP, ForeignServerRelationId, DC_OPT_INT, 0, 10},
	{"breaker_threshold", SVC_ALL, ForeignServerRelationId, DC_OPT_INT, 0, 1000},
	{"breaker_cooldown_ms", SVC_ALL, ForeignServerRelationId, DC_OPT_INT, 1, INT_MAX},
	/* superuser only, see check_value */
	{"allow_link_local", SVC_ALL, ForeignServerRelationId, DC_OPT_BOOL},

	/* Ollama */
	{"model", SVC_OLLAMA, ForeignServerRelationId, DC_OPT_TEXT},
	{"embedding_model", SVC_OLLAMA, ForeignServerRelationId, DC_OPT_TEXT},
	{"keep_alive", SVC_OLLAMA, ForeignServerRelationId, DC_OPT_TEXT},
	{"embed_batch_size", SVC_OLLAMA, ForeignServerRelationId, DC_OPT_INT, 1, 100000},
	{"cache_server", SVC_OLLAMA, ForeignServerRelationId, DC_OPT_TEXT},
	{"cache_ttl", SVC_OLLAMA, ForeignServerRelationId, DC_OPT_INT, 0, 2592000},
	{"bearer_token", SVC_OLLAMA, UserMappingRelationId, DC_OPT_SECRET},
	{"table_type", SVC_OLLAMA, ForeignTableRelationId, DC_OPT_ENUM, 0, 0, "models|running"},

	/* Qdrant */
	{"api_key", SVC_QDRANT, UserMappingRelationId, DC_OPT_SECRET},
	{"collection", SVC_QDRANT, ForeignTableRelationId, DC_OPT_TEXT},
	{"batch_size", SVC_QDRANT, ForeignTableRelationId, DC_OPT_INT, 1, 10000},
	{"page_size", SVC_QDRANT, ForeignTableRelationId, DC_OPT_INT, 1, 10000},
	{"payload_key", SVC_QDRANT, AttributeRelationId, DC_OPT_TEXT},

	/* S3 */
	{"region", SVC_S3, ForeignServerRelationId, DC_OPT_TEXT},
	{"multipart_threshold", SVC_S3, ForeignServerRelationId, DC_OPT_INT, 5 * MiB, 5120 * MiB},
	{"part_size", SVC_S3, ForeignServerRelationId, DC_OPT_INT, 5 * MiB, 5120 * MiB},
	{"parallel_parts", SVC_S3, ForeignServerRelationId, DC_OPT_INT, 1, 8},
	{"access_key_id", SVC_S3, UserMappingRelationId, DC_OPT_SECRET},
	{"secret_access_key", SVC_S3, UserMappingRelationId, DC_OPT_SECRET},
	{"session_token", SVC_S3, UserMappingRelationId, DC_OPT_SECRET},
	{"bucket", SVC_S3, ForeignTableRelationId, DC_OPT_TEXT},
	{"prefix", SVC_S3, ForeignTableRelationId, DC_OPT_TEXT},
	{"format", SVC_S3, ForeignTableRelationId, DC_OPT_ENUM, 0, 0, "raw|jsonl|csv"},
	{"header", SVC_S3, ForeignTableRelationId, DC_OPT_BOOL},
	{"delimiter", SVC_S3, ForeignTableRelationId, DC_OPT_CSV_DELIMITER},
	{"max_record_bytes", SVC_S3, ForeignTableRelationId, DC_OPT_INT, 1, 512 * MiB},
	{"max_record_bytes", SVC_S3, ForeignServerRelationId, DC_OPT_INT, 1, 512 * MiB},

	/* Redis */
	{"host", SVC_REDIS, ForeignServerRelationId, DC_OPT_ADDRESS},
	{"port", SVC_REDIS, ForeignServerRelationId, DC_OPT_INT, 1, 65535},
	{"db", SVC_REDIS, ForeignServerRelationId, DC_OPT_INT, 0, 1000},
	{"allow_dangerous_commands", SVC_REDIS, ForeignServerRelationId, DC_OPT_SUPERUSER_BOOL},
	{"user", SVC_REDIS, UserMappingRelationId, DC_OPT_SECRET},
	{"password", SVC_REDIS, UserMappingRelationId, DC_OPT_SECRET},
	{"table_type", SVC_REDIS, ForeignTableRelationId, DC_OPT_ENUM, 0, 0, "string|hash|list|set|zset"},
	{"key_prefix", SVC_REDIS, ForeignTableRelationId, DC_OPT_TEXT},
	{"scan_count", SVC_REDIS, ForeignTableRelationId, DC_OPT_INT, 1, 100000},
	{"batch_size", SVC_REDIS, ForeignTableRelationId, DC_OPT_INT, 1, 100000},

	{NULL}
};

/* Per-service defaults: a model answer can take minutes, a cache hit cannot. */
typedef struct DcServiceInfo
{
	const char *name;
	const char *wrapper;
	const char *example;		/* OPTIONS clause shown in hints */
	int			timeout_ms;
	int			connect_timeout_ms;
	int64		max_response_bytes;
} DcServiceInfo;

static const DcServiceInfo dc_services[DC_NUM_SERVICES] = {
	[DC_SERVICE_OLLAMA] = {"ollama", "datacore_ollama",
	"url 'http://127.0.0.1:11434', model 'llama3.2'", 300000, 5000, 64 * MiB},
	[DC_SERVICE_QDRANT] = {"qdrant", "datacore_qdrant",
	"url 'http://127.0.0.1:6333'", 30000, 5000, 64 * MiB},
	[DC_SERVICE_S3] = {"s3", "datacore_s3",
	"url 'http://127.0.0.1:9000', region 'us-east-1'", 300000, 5000, 256 * MiB},
	[DC_SERVICE_REDIS] = {"redis", "datacore_redis",
	"host '127.0.0.1', port '6379'", 10000, 5000, 64 * MiB},
};

static const char *
catalog_name(Oid catalog)
{
	switch (catalog)
	{
		case ForeignServerRelationId:
			return "foreign servers";
		case UserMappingRelationId:
			return "user mappings";
		case ForeignTableRelationId:
			return "foreign tables";
		case AttributeRelationId:
			return "foreign table columns";
		default:
			return "foreign-data wrappers";
	}
}

const char *
dc_service_name(DcService service)
{
	return dc_services[service].name;
}

const char *
dc_service_wrapper(DcService service)
{
	return dc_services[service].wrapper;
}

static const DcOption *
find_option(DcService service, const char *name, Oid catalog)
{
	const DcOption *opt;

	for (opt = dc_options; opt->name; opt++)
	{
		if ((opt->services & (1 << service)) &&
			(catalog == InvalidOid || opt->catalog == catalog) &&
			strcmp(opt->name, name) == 0)
			return opt;
	}
	return NULL;
}

/*
 * Report an unknown option with the nearest valid name for this catalog, or
 * the list of valid names when nothing is close.
 */
static void
report_unknown_option(DcService service, const char *name, Oid catalog)
{
	const DcOption *opt;
	const char *best = NULL;
	int			best_dist = INT_MAX;
	StringInfoData valid;

	initStringInfo(&valid);
	for (opt = dc_options; opt->name; opt++)
	{
		int			dist;

		if (!(opt->services & (1 << service)) || opt->catalog != catalog)
			continue;
		appendStringInfo(&valid, "%s%s", valid.len ? ", " : "", opt->name);
		dist = varstr_levenshtein(name, strlen(name), opt->name,
								  strlen(opt->name), 1, 1, 1, false);
		if (dist < best_dist)
		{
			best_dist = dist;
			best = opt->name;
		}
	}

	/* only suggest a name when at most about half of it differs */
	if (best && best_dist <= Max(2, (int) strlen(name) / 2))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("invalid option \"%s\" for %s of wrapper %s", name,
						catalog_name(catalog), dc_services[service].wrapper),
				 errhint("Perhaps you meant the option \"%s\".", best)));
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
			 errmsg("invalid option \"%s\" for %s of wrapper %s", name,
					catalog_name(catalog), dc_services[service].wrapper),
			 valid.len ?
			 errhint("Valid options in this context are: %s.", valid.data) :
			 errhint("No options are accepted in this context.")));
}

static int64
parse_int_value(const char *name, const char *value, int64 min, int64 max)
{
	char	   *end;
	long long	v;

	errno = 0;
	v = strtoll(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"", name, value),
				 errdetail("The value must be a whole number.")));
	if (v < min || v > max)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("value for option \"%s\" is out of range: %lld", name, v),
				 errdetail("The value must be between " INT64_FORMAT " and " INT64_FORMAT ".",
						   min, max)));
	return v;
}

static void
check_url(const char *name, const char *value)
{
	const char *rest;

	if (pg_strncasecmp(value, "http://", 7) == 0)
		rest = value + 7;
	else if (pg_strncasecmp(value, "https://", 8) == 0)
		rest = value + 8;
	else
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"", name, value),
				 errdetail("Only http:// and https:// URLs are accepted.")));

	if (*rest == '\0' || *rest == '/' || strpbrk(value, " \t\r\n?#") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"", name, value),
				 errdetail("The URL must name a host and must not contain whitespace, a query or a fragment.")));

	/* credentials in a URL would be visible in pg_foreign_server */
	if (strchr(rest, '@') && strchr(rest, '@') < (strchr(rest, '/') ? strchr(rest, '/') : rest + strlen(rest)))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"%s\": the URL contains credentials", name),
				 errhint("Put credentials in a user mapping, which other roles cannot read.")));
}

/*
 * A Redis host must be an IP address: hiredis resolves a name with a
 * blocking getaddrinfo() that no timeout bounds and no cancel interrupts.
 * Used by the validator and again when connecting (a server created
 * before this check).
 */
void
dc_check_redis_host(const char *host)
{
	unsigned char addr[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
			 errmsg("invalid value for option \"host\": \"%s\"", host),
			 errdetail("Redis servers are reached by IP address only: resolving a host name would block the backend beyond connect_timeout_ms and ignore a cancel."),
			 errhint("Give the address, for example host '127.0.0.1' or host '::1'; \"getent hosts NAME\" shows the addresses of a name.")));
}

/*
 * defGetBoolean() reports a bad value as a syntax error (42601); an option
 * value of the wrong type is HV024 like every other one.
 */
static bool
parse_bool_value(const char *name, const char *value)
{
	bool		result;

	if (!parse_bool(value, &result))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"", name, value),
				 errdetail("The value must be a boolean: true or false (also on/off, yes/no, 1/0).")));
	return result;
}

static void
check_value(const DcOption *opt, DefElem *def)
{
	const char *value = defGetString(def);

	switch (opt->kind)
	{
		case DC_OPT_TEXT:
			if (value[0] == '\0' && strcmp(opt->name, "prefix") != 0 &&
				strcmp(opt->name, "key_prefix") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("option \"%s\" must not be empty", opt->name)));
			break;
		case DC_OPT_URL:
			check_url(opt->name, value);
			break;
		case DC_OPT_INT:
			(void) parse_int_value(opt->name, value, opt->min, opt->max);
			break;
		case DC_OPT_BOOL:
			/*
			 * Lifting the egress guard opens the cloud metadata service
			 * (and its credentials) to every role with USAGE on the
			 * server, so only a superuser may do it.
			 */
			if (parse_bool_value(opt->name, value) &&
				strcmp(opt->name, "allow_link_local") == 0 && !superuser())
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied to set option \"allow_link_local\""),
						 errdetail("Only a superuser may let a server reach link-local and cloud-metadata addresses.")));
			break;
		case DC_OPT_CSV_DELIMITER:
			if (strlen(value) != 1 || value[0] == '"' || value[0] == '\n' || value[0] == '\r')
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"%s\": \"%s\"", opt->name, value),
						 errdetail("The delimiter must be a single one-byte character other than a double quote, carriage return or newline.")));
			break;
		case DC_OPT_ENUM:
			{
				const char *p = opt->values;
				size_t		len = strlen(value);
				bool		found = false;

				while (p && *p)
				{
					const char *bar = strchr(p, '|');
					size_t		n = bar ? (size_t) (bar - p) : strlen(p);

					if (n == len && strncmp(p, value, n) == 0)
						found = true;
					p = bar ? bar + 1 : NULL;
				}
				if (!found)
				{
					char	   *list = pstrdup(opt->values);
					char	   *c;

					for (c = list; *c; c++)
						if (*c == '|')
							*c = '/';
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("invalid value for option \"%s\": \"%s\"", opt->name, value),
							 errhint("Valid values are %s.", list)));
				}
				break;
			}
		case DC_OPT_SECRET:
			break;
		case DC_OPT_ADDRESS:
			dc_check_redis_host(value);
			break;
		case DC_OPT_SUPERUSER_BOOL:

			/*
			 * ALTER SERVER hands us the whole new list, so a non-superuser
			 * cannot change any option of a server where this is on; he may
			 * turn it off (as postgres_fdw's password_required).
			 */
			if (parse_bool_value(opt->name, value) && !superuser())
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("only superusers may set option \"%s\" to true", opt->name),
						 errdetail("The option lets every role with USAGE on the server run administrative commands."),
						 errhint("Servers on which the option is true may only be altered by a superuser.")));
			break;
	}
}

/*
 * Check a complete option list for one catalog object of one service.
 */
void
dc_check_option_list(DcService service, List *options, Oid catalog)
{
	ListCell   *lc;
	bool		have_url = false;
	bool		have_bucket = false;

	foreach(lc, options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);
		const DcOption *opt = find_option(service, def->defname, catalog);

		if (opt == NULL)
		{
			const DcOption *elsewhere = find_option(service, def->defname, InvalidOid);

			if (elsewhere && elsewhere->kind == DC_OPT_SECRET)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
						 errmsg("option \"%s\" is accepted only on user mappings", def->defname),
						 errdetail("Options of %s can be read by every role.", catalog_name(catalog)),
						 errhint("Use CREATE USER MAPPING ... OPTIONS (%s '...').", def->defname)));
			if (elsewhere)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
						 errmsg("option \"%s\" is accepted only on %s", def->defname,
								catalog_name(elsewhere->catalog))));
			if (service == DC_SERVICE_REDIS && strcmp(def->defname, "retries") == 0)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
						 errmsg("option \"retries\" does not apply to servers of wrapper %s",
								dc_services[service].wrapper),
						 errdetail("A Redis command is never sent again once written, because it may have run; an idle connection that the server closed is reopened without this option.")));
			report_unknown_option(service, def->defname, catalog);
		}

		check_value(opt, def);
		if (strcmp(def->defname, "url") == 0)
			have_url = true;
		if (strcmp(def->defname, "bucket") == 0)
			have_bucket = true;
	}

	if (catalog == ForeignTableRelationId && service == DC_SERVICE_S3 && !have_bucket)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("option \"bucket\" is required for foreign tables of wrapper %s",
						dc_services[service].wrapper),
				 errhint("For example: CREATE FOREIGN TABLE name (key text, size bigint) SERVER name OPTIONS (bucket 'summaries');")));

	if (catalog == ForeignServerRelationId && service != DC_SERVICE_REDIS && !have_url)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("option \"url\" is required for servers of wrapper %s",
						dc_services[service].wrapper),
				 errhint("For example: CREATE SERVER name FOREIGN DATA WRAPPER %s OPTIONS (%s);",
						 dc_services[service].wrapper, dc_services[service].example)));
}

static Datum
validate(FunctionCallInfo fcinfo, DcService service)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);

	dc_check_option_list(service, options, catalog);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(datacore_ollama_validator);
PG_FUNCTION_INFO_V1(datacore_qdrant_validator);
PG_FUNCTION_INFO_V1(datacore_s3_validator);
PG_FUNCTION_INFO_V1(datacore_redis_validator);

Datum
datacore_ollama_validator(PG_FUNCTION_ARGS)
{
	return validate(fcinfo, DC_SERVICE_OLLAMA);
}

Datum
datacore_qdrant_validator(PG_FUNCTION_ARGS)
{
	return validate(fcinfo, DC_SERVICE_QDRANT);
}

Datum
datacore_s3_validator(PG_FUNCTION_ARGS)
{
	return validate(fcinfo, DC_SERVICE_S3);
}

Datum
datacore_redis_validator(PG_FUNCTION_ARGS)
{
	return validate(fcinfo, DC_SERVICE_REDIS);
}

/*
 * The options of the user mapping for (userid, serverid), falling back to
 * the PUBLIC mapping.  Unlike GetUserMapping() a missing mapping is not an
 * error: services without credentials need none.
 */
static List *
mapping_options(Oid userid, Oid serverid, Oid *umid)
{
	HeapTuple	tp;
	Datum		datum;
	bool		isnull;
	List	   *options = NIL;

	tp = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(userid),
						 ObjectIdGetDatum(serverid));
	if (!HeapTupleIsValid(tp))
		tp = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(InvalidOid),
							 ObjectIdGetDatum(serverid));
	if (!HeapTupleIsValid(tp))
	{
		*umid = InvalidOid;
		return NIL;
	}

	*umid = ((Form_pg_user_mapping) GETSTRUCT(tp))->oid;
	datum = SysCacheGetAttr(USERMAPPINGUSERSERVER, tp,
							Anum_pg_user_mapping_umoptions, &isnull);
	if (!isnull)
		options = untransformRelOptions(datum);
	ReleaseSysCache(tp);
	return options;
}

static DcServer *
resolve(ForeignServer *fs, Oid userid, DcService service, const char *operation)
{
	ForeignDataWrapper *fdw = GetForeignDataWrapper(fs->fdwid);
	const DcServiceInfo *info = &dc_services[service];
	DcServer   *server;
	AclResult	aclresult;
	const char *url;

	if (strcmp(fdw->fdwname, info->wrapper) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" does not belong to wrapper %s",
						fs->servername, info->wrapper),
				 errdetail("%s needs a server of wrapper %s; \"%s\" uses wrapper %s.",
						   operation, info->wrapper, fs->servername, fdw->fdwname)));

	/*
	 * USAGE on the server is the fence that keeps SQL from reaching any
	 * endpoint a superuser did not register; check it before anything else
	 * can leave the machine.
	 */
#if PG_VERSION_NUM >= 160000
	aclresult = object_aclcheck(ForeignServerRelationId, fs->serverid, userid, ACL_USAGE);
#else
	aclresult = pg_foreign_server_aclcheck(fs->serverid, userid, ACL_USAGE);
#endif
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FOREIGN_SERVER, fs->servername);

	server = palloc0(sizeof(DcServer));
	server->service = service;
	server->serverid = fs->serverid;
	server->servername = pstrdup(fs->servername);
	server->options = list_concat(list_copy(fs->options),
								  mapping_options(userid, fs->serverid, &server->umid));

	url = dc_option(server, "url");
	if (url)
	{
		char	   *u = pstrdup(url);
		size_t		len = strlen(u);

		while (len > 0 && u[len - 1] == '/')
			u[--len] = '\0';
		server->url = u;
	}
	server->timeout_ms = dc_option_int(server, "timeout_ms", info->timeout_ms);
	server->connect_timeout_ms = dc_option_int(server, "connect_timeout_ms",
											   info->connect_timeout_ms);
	server->max_response_bytes = dc_option_int64(server, "max_response_bytes",
												 info->max_response_bytes);
	server->retries = dc_option_int(server, "retries", 0);
	server->breaker_threshold = dc_option_int(server, "breaker_threshold",
											  DC_BREAKER_THRESHOLD);
	server->breaker_cooldown_ms = dc_option_int(server, "breaker_cooldown_ms",
												DC_BREAKER_COOLDOWN_MS);
	server->allow_link_local = dc_option_bool(server, "allow_link_local", false);
	return server;
}

/*
 * Resolve a server by name for a SQL function call made by the current
 * user.  "operation" names the SQL function in error messages.
 */
DcServer *
dc_get_server(const char *servername, DcService service, const char *operation)
{
	ForeignServer *fs;

	if (servername == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("server name must not be null")));

	fs = GetForeignServerByName(servername, true);
	if (fs == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("server \"%s\" does not exist", servername),
				 errdetail("%s needs a server of wrapper %s.", operation,
						   dc_services[service].wrapper),
				 errhint("Create it with: CREATE SERVER %s FOREIGN DATA WRAPPER %s OPTIONS (%s);",
						 quote_identifier(servername), dc_services[service].wrapper,
						 dc_services[service].example)));

	return resolve(fs, GetUserId(), service, operation);
}

/*
 * Resolve a server by OID on behalf of userid (a foreign scan's check-as
 * user).
 */
DcServer *
dc_get_server_by_oid(Oid serverid, Oid userid, DcService service,
					 const char *operation)
{
	return resolve(GetForeignServer(serverid),
				   OidIsValid(userid) ? userid : GetUserId(), service, operation);
}

/*
 * The role whose privileges a foreign scan uses: the view owner for a scan
 * under a view, else the current user.
 */
Oid
dc_scan_user(ForeignScanState *node)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
#if PG_VERSION_NUM >= 160000
	Oid			userid = fsplan->checkAsUser;
#else
	Oid			userid = exec_rt_fetch(fsplan->scan.scanrelid,
									   node->ss.ps.state)->checkAsUser;
#endif

	return OidIsValid(userid) ? userid : GetUserId();
}

/* Likewise for INSERT/UPDATE/DELETE on a foreign table. */
Oid
dc_modify_user(ResultRelInfo *rinfo, EState *estate)
{
#if PG_VERSION_NUM >= 160000
	return ExecGetResultRelCheckAsUser(rinfo, estate);
#else
	/* a partition that tuples are routed to has no range table entry */
	Index		rti = rinfo->ri_RangeTableIndex;
	Oid			userid;

	if (rti == 0 && rinfo->ri_RootResultRelInfo)
		rti = rinfo->ri_RootResultRelInfo->ri_RangeTableIndex;
	if (rti == 0)
		return GetUserId();
	userid = exec_rt_fetch(rti, estate)->checkAsUser;
	return OidIsValid(userid) ? userid : GetUserId();
#endif
}

const char *
dc_option_from_list(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, name) == 0)
			return defGetString(def);
	}
	return NULL;
}

/* Option value from the mapping if set there, else from the server. */
const char *
dc_option(DcServer *server, const char *name)
{
	const char *value = NULL;
	ListCell   *lc;

	/* later entries (the mapping) win */
	foreach(lc, server->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, name) == 0)
			value = defGetString(def);
	}
	return value;
}

int64
dc_option_int64(DcServer *server, const char *name, int64 defval)
{
	const char *value = dc_option(server, name);

	/* validated at CREATE time; re-parse with the widest bounds */
	return value ? parse_int_value(name, value, PG_INT64_MIN, PG_INT64_MAX) : defval;
}

int
dc_option_int(DcServer *server, const char *name, int defval)
{
	const char *value = dc_option(server, name);

	return value ? (int) parse_int_value(name, value, INT_MIN, INT_MAX) : defval;
}

bool
dc_option_bool(DcServer *server, const char *name, bool defval)
{
	const char *value = dc_option(server, name);
	bool		result;

	if (value == NULL)
		return defval;
	if (!parse_bool(value, &result))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for boolean option \"%s\": \"%s\"", name, value)));
	return result;
}
