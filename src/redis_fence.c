/*-------------------------------------------------------------------------
 *
 * redis_fence.c
 *		Which commands a role with USAGE on a Redis server may send through
 *		the entry points that take the command from the caller
 *		(redis_command, redis_transaction).
 *
 * USAGE on a server gives its data, not its administration: CONFIG GET
 * would show the password only the user mapping holds, MIGRATE and
 * REPLICAOF make Redis connect to any host, MODULE LOAD runs code.  A
 * hand-kept list of such commands goes stale with every Redis release, so
 * the rule is Redis's own classification: every command and subcommand
 * carries ACL categories (COMMAND INFO, Redis 6 and later).  A command in
 * @admin, @dangerous or @connection is refused, and so is one in
 * @scripting, because a script can call any command the Redis user may
 * run and its text cannot be checked.  PING and ECHO (@connection, but
 * they only answer) are allowed.  A superuser lifts this rule for a server
 * with the option allow_dangerous_commands.
 *
 * Commands that change the state of the connection are refused always,
 * option or not: the connection is cached and shared by every later call
 * of every role using the same mapping in this backend, and our protocol
 * handling relies on one reply per command (SUBSCRIBE, MONITOR, CLIENT
 * REPLY and HELLO 3 break that).  MULTI and friends are in that list;
 * redis_transaction sends a whole MULTI ... EXEC in one round trip instead.
 *
 * What COMMAND INFO said is cached with the connection: one lookup per
 * command name and connection.  A name Redis does not know is refused and
 * not cached, so a module command loaded later is looked up when used.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"

#include "redis.h"

/* The categories that matter here, as bits. */
#define CAT_ADMIN		0x01
#define CAT_DANGEROUS	0x02
#define CAT_CONNECTION	0x04
#define CAT_SCRIPTING	0x08
#define CAT_WRITE		0x10	/* not refused; refused when read-only */

/* Longest command name (with "|subcommand") the cache holds. */
#define FENCE_NAME_LEN	128

/* COMMAND INFO for a few names is a few kB; CLUSTER's is the largest. */
#define FENCE_MAX_BYTES	(1024 * 1024)

typedef struct FenceEntry
{
	char		name[FENCE_NAME_LEN];	/* hash key: lower case */
	uint8		cats;			/* CAT_* bits */
	bool		has_subcommands;
	bool		no_categories;	/* Redis before 6.0: none reported */
} FenceEntry;

static const struct
{
	const char *name;
	uint8		bit;
}			category_names[] = {
	{"@admin", CAT_ADMIN},
	{"@dangerous", CAT_DANGEROUS},
	{"@connection", CAT_CONNECTION},
	{"@scripting", CAT_SCRIPTING},
	{"@write", CAT_WRITE},
};

/* Commands that would change the shared connection, refused always. */
static const char *const state_commands[] = {
	"auth", "client", "discard", "exec", "hello", "monitor", "multi",
	"psubscribe", "psync", "quit", "readonly", "readwrite", "replconf",
	"reset", "select", "ssubscribe", "subscribe", "sync", "unwatch", "watch",
	NULL
};

/* @connection commands that change nothing. */
static const char *const harmless_commands[] = {"ping", "echo", NULL};

static bool
in_list(const char *const *list, const char *name)
{
	int			i;

	for (i = 0; list[i]; i++)
		if (strcmp(list[i], name) == 0)
			return true;
	return false;
}

/* An argument in lower case (Redis matches command names so), or NULL when too long. */
static char *
lower_name(const char *data, size_t len, const char *prefix)
{
	size_t		plen = prefix ? strlen(prefix) + 1 : 0;
	char	   *s;
	size_t		i;

	if (plen + len >= FENCE_NAME_LEN)
		return NULL;
	s = palloc0(FENCE_NAME_LEN);
	if (prefix)
	{
		memcpy(s, prefix, plen - 1);
		s[plen - 1] = '|';
	}
	for (i = 0; i < len; i++)
		s[plen + i] = pg_ascii_tolower((unsigned char) data[i]);
	return s;
}

/* A command name for a message: upper case, cut to a sane length. */
static char *
display_name(DcRedisCmd *cmd, bool with_sub)
{
	StringInfoData buf;
	int			n = with_sub && cmd->argc > 1 ? 2 : 1;
	int			i;
	size_t		j;

	initStringInfo(&buf);
	for (i = 0; i < n; i++)
	{
		int			len = pg_mbcliplen(cmd->argv[i], (int) cmd->argvlen[i], 64);

		if (i > 0)
			appendStringInfoChar(&buf, ' ');
		for (j = 0; j < (size_t) len; j++)
			appendStringInfoChar(&buf, pg_ascii_toupper((unsigned char) cmd->argv[i][j]));
	}
	return buf.data;
}

/* The server option, read from the server itself: a mapping cannot hold it. */
static bool
dangerous_allowed(DcServer *server)
{
	ForeignServer *fs = GetForeignServer(server->serverid);
	const char *value = dc_option_from_list(fs->options, "allow_dangerous_commands");
	bool		result = false;

	return value && parse_bool(value, &result) && result;
}

static HTAB *
fence_table(HTAB **slot)
{
	if (*slot == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = FENCE_NAME_LEN;
		ctl.entrysize = sizeof(FenceEntry);
		*slot = hash_create("datacore redis command categories", 64, &ctl,
							HASH_ELEM | HASH_STRINGS);
	}
	return *slot;
}

/*
 * Remember one COMMAND INFO entry (and its subcommands, Redis 7):
 * [name, arity, flags, first key, last key, step, categories, tips,
 * key specs, subcommands].
 */
static void
store_info(DcServer *server, const char *op, HTAB *table, redisReply *info)
{
	FenceEntry *e;
	char	   *name;
	bool		found;
	size_t		i;

	if (info->type != REDIS_REPLY_ARRAY || info->elements < 6 ||
		info->element[0]->type != REDIS_REPLY_STRING)
		dc_redis_unexpected(server, op, info);
	name = lower_name(info->element[0]->str, info->element[0]->len, NULL);
	if (name == NULL)
		return;
	e = hash_search(table, name, HASH_ENTER, &found);
	e->cats = 0;
	e->has_subcommands = false;
	e->no_categories = info->elements < 7;
	if (!e->no_categories)
	{
		redisReply *cats = info->element[6];

		if (cats->type != REDIS_REPLY_ARRAY)
			dc_redis_unexpected(server, op, info);
		for (i = 0; i < cats->elements; i++)
		{
			redisReply *c = cats->element[i];
			int			k;

			if (c->type != REDIS_REPLY_STATUS && c->type != REDIS_REPLY_STRING)
				dc_redis_unexpected(server, op, info);
			for (k = 0; k < lengthof(category_names); k++)
				if (c->len == strlen(category_names[k].name) &&
					pg_strncasecmp(c->str, category_names[k].name, c->len) == 0)
					e->cats |= category_names[k].bit;
		}
	}
	if (info->elements >= 10 && info->element[9]->type == REDIS_REPLY_ARRAY &&
		info->element[9]->elements > 0)
	{
		redisReply *subs = info->element[9];

		e->has_subcommands = true;
		for (i = 0; i < subs->elements; i++)
			store_info(server, op, table, subs->element[i]);
	}
}

/* Ask COMMAND INFO about the command names not in the cache yet. */
static HTAB *
learn(DcServer *server, const char *op, int ncmds, char **names)
{
	HTAB	  **slot = dc_redis_fence_slot(server, op);
	HTAB	   *table = fence_table(slot);
	DcRedisCmd *cmd = NULL;
	redisReply *reply;
	int			nmissing = 0;
	int			i;

	for (i = 0; i < ncmds; i++)
	{
		if (names[i] == NULL || hash_search(table, names[i], HASH_FIND, NULL))
			continue;
		if (cmd == NULL)
		{
			cmd = dc_redis_cmd("COMMAND");
			dc_redis_arg_str(cmd, "INFO");
		}
		dc_redis_arg_str(cmd, names[i]);
		nmissing++;
	}
	if (cmd == NULL)
		return table;

	reply = dc_redis_run_capped(server, op, cmd, FENCE_MAX_BYTES);
	if (reply->type == REDIS_REPLY_ERROR)
		dc_redis_raise_reply_note(server, psprintf("COMMAND INFO for %s", op), reply,
								  "Commands are refused while their ACL categories cannot be read.");
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != (size_t) nmissing)
		dc_redis_unexpected(server, op, reply);

	/* the connection may have been replaced meanwhile, and its cache with it */
	table = fence_table(slot);
	for (i = 0; i < (int) reply->elements; i++)
	{
		if (reply->element[i]->type != REDIS_REPLY_NIL)
			store_info(server, op, table, reply->element[i]);
	}
	return table;
}

static void
refuse_unknown(DcServer *server, const char *op, DcRedisCmd *cmd, bool sub)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_FUNCTION),
			 errmsg("redis server \"%s\" does not know the command %s",
					server->servername, display_name(cmd, sub)),
			 errdetail("%s runs only commands whose ACL categories Redis reports (COMMAND INFO).", op)));
}

/*
 * Refuse what a role with USAGE on the server may not send (see the file
 * header): connection-state commands always, commands in a refused ACL
 * category unless the server allows them.  Every command is checked
 * before anything is sent.
 */
void
dc_redis_check_commands(DcServer *server, const char *op, int ncmds,
						DcRedisCmd **cmds)
{
	char	  **names = palloc0(sizeof(char *) * Max(ncmds, 1));
	HTAB	   *table;
	int			i;

	for (i = 0; i < ncmds; i++)
	{
		if (cmds[i]->argc == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s needs a command name", op)));
		names[i] = lower_name(cmds[i]->argv[0], cmds[i]->argvlen[0], NULL);
		if (names[i] && in_list(state_commands, names[i]))
		{
			bool		transaction = strcmp(names[i], "multi") == 0 ||
				strcmp(names[i], "exec") == 0 || strcmp(names[i], "discard") == 0 ||
				strcmp(names[i], "watch") == 0 || strcmp(names[i], "unwatch") == 0;

			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("%s cannot run %s", op, display_name(cmds[i], false)),
					 errdetail("The command would change the state of the connection that later calls, of any role, share."),
					 transaction ?
					 errhint("redis_transaction() sends MULTI, the commands and EXEC in one round trip.") :
					 errhint("Connection settings belong in the server and user mapping options.")));
		}
	}

	if (dangerous_allowed(server))
		return;

	table = learn(server, op, ncmds, names);
	for (i = 0; i < ncmds; i++)
	{
		DcRedisCmd *cmd = cmds[i];
		FenceEntry *e = names[i] ? hash_search(table, names[i], HASH_FIND, NULL) : NULL;
		uint8		cats;
		bool		sub = false;
		int			k;

		if (e == NULL)
			refuse_unknown(server, op, cmd, false);
		if (e->no_categories)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("%s cannot run %s on redis server \"%s\"", op,
							display_name(cmd, false), server->servername),
					 errdetail("The server reports no ACL categories (Redis before 6.0), so the command cannot be checked."),
					 errhint("A superuser can allow every command with ALTER SERVER %s OPTIONS (ADD allow_dangerous_commands 'true').",
							 quote_identifier(server->servername))));
		cats = e->cats;
		if (e->has_subcommands && cmd->argc > 1)
		{
			char	   *subname = lower_name(cmd->argv[1], cmd->argvlen[1], names[i]);
			FenceEntry *s = subname ? hash_search(table, subname, HASH_FIND, NULL) : NULL;

			if (s == NULL)
				refuse_unknown(server, op, cmd, true);
			cats |= s->cats;
			sub = true;
		}
		if (in_list(harmless_commands, names[i]))
			cats &= ~CAT_CONNECTION;
		/* a write in a READ ONLY transaction, as PostgreSQL's own writes */
		if (cats & CAT_WRITE)
			dc_prevent_if_read_only(display_name(cmd, sub));
		cats &= ~CAT_WRITE;
		for (k = 0; k < lengthof(category_names); k++)
		{
			if (cats & category_names[k].bit)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("%s cannot run %s on redis server \"%s\"", op,
								display_name(cmd, sub), server->servername),
						 errdetail("Redis puts the command in the ACL category %s, which a role with USAGE on the server may not use.",
								   category_names[k].name),
						 errhint("A superuser can allow such commands with ALTER SERVER %s OPTIONS (ADD allow_dangerous_commands 'true').",
								 quote_identifier(server->servername))));
		}
	}
}
