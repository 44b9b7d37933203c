-- datacore 0.1.0 -> 0.2.0
--
-- Each change to sql/install/ since 0.1.0 appears here as well, in the same
-- order; test/t/upgrade.sh checks that an updated 0.1.0 installation matches a
-- fresh 0.2.0 one object by object.

\echo Use "ALTER EXTENSION datacore UPDATE TO '0.2.0'" to load this file. \quit

-- RAG: a pipeline belongs to exactly one role, the one that created it
--
-- Existing pipelines keep the role recorded in their owner column (the role
-- that created them, unless a member of it reassigned the row under 0.1.0's
-- policy).  From now on only that role changes, syncs, schedules, resets or
-- drops a pipeline; members of it may still read the row and search.
ALTER TABLE rag_pipelines ALTER COLUMN owner SET DEFAULT pg_catalog.quote_ident(current_user)::regrole;
COMMENT ON COLUMN rag_pipelines.owner IS 'the role that created the pipeline; only it changes, syncs or schedules it';
DROP POLICY rag_pipelines_owner ON rag_pipelines;
CREATE POLICY rag_pipelines_read ON rag_pipelines FOR SELECT
	USING (pg_catalog.pg_has_role(owner, 'USAGE'));
CREATE POLICY rag_pipelines_insert ON rag_pipelines FOR INSERT
	WITH CHECK (owner = pg_catalog.quote_ident(current_user)::regrole);
CREATE POLICY rag_pipelines_update ON rag_pipelines FOR UPDATE
	USING (owner = pg_catalog.quote_ident(current_user)::regrole)
	WITH CHECK (owner = pg_catalog.quote_ident(current_user)::regrole);
CREATE POLICY rag_pipelines_delete ON rag_pipelines FOR DELETE
	USING (owner = pg_catalog.quote_ident(current_user)::regrole);
CREATE FUNCTION rag_pipelines_guard() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me regrole := quote_ident(current_user)::regrole;
BEGIN
	IF (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = me) THEN
		RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
	END IF;
	IF TG_OP <> 'INSERT' AND OLD.owner IS DISTINCT FROM me THEN
		RAISE EXCEPTION 'permission denied for rag pipeline "%"', OLD.name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('The pipeline belongs to role %s; only that role may change it.', OLD.owner);
	END IF;
	IF TG_OP <> 'DELETE' AND NEW.owner IS DISTINCT FROM me THEN
		RAISE EXCEPTION 'rag pipeline "%" must belong to the role that writes it', NEW.name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('The owner would be %s, the current role is %s.', NEW.owner, me),
				  HINT = 'Only a superuser gives a pipeline to another role.';
	END IF;
	RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
REVOKE EXECUTE ON FUNCTION rag_pipelines_guard() FROM PUBLIC;
COMMENT ON FUNCTION rag_pipelines_guard() IS 'refuse writes to RAG pipelines of other roles, also for BYPASSRLS roles (internal)';
CREATE TRIGGER rag_pipelines_guard BEFORE INSERT OR UPDATE OR DELETE ON rag_pipelines
	FOR EACH ROW EXECUTE FUNCTION rag_pipelines_guard();

CREATE OR REPLACE FUNCTION rag_get(pipeline text, for_update boolean DEFAULT false)
	RETURNS rag_pipelines
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines;
	me regrole := quote_ident(current_user)::regrole;
BEGIN
	IF pipeline IS NULL THEN
		RAISE EXCEPTION 'rag pipeline name must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO p FROM datacore.rag_pipelines r WHERE r.name = pipeline;
	-- read again under the lock: only a superuser changes an owner, but it
	-- may have done so meanwhile
	IF FOUND AND for_update AND p.owner = me THEN
		SELECT * INTO p FROM datacore.rag_pipelines r WHERE r.name = pipeline FOR UPDATE;
	END IF;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'rag pipeline "%" does not exist', pipeline
			USING ERRCODE = 'undefined_object',
				  HINT = 'List the pipelines with: SELECT name FROM datacore.rag_pipelines;';
	END IF;
	IF for_update AND p.owner IS DISTINCT FROM me THEN
		RAISE EXCEPTION 'permission denied for rag pipeline "%"', p.name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('The pipeline belongs to role %s: only that role changes, syncs or schedules it, with its own rights.',
								  p.owner),
				  HINT = CASE WHEN NOT EXISTS (SELECT FROM pg_roles r WHERE r.oid = p.owner)
							  THEN 'Its owner was dropped: a superuser can set a new owner in datacore.rag_pipelines, or delete the row.'
							  WHEN pg_has_role(p.owner, 'MEMBER')
							  THEN format('To act as its owner: SET ROLE %s;', p.owner)
							  ELSE 'Only its owner, or a superuser acting as it with SET ROLE, can.' END;
	END IF;
	RETURN p;
END $$;
COMMENT ON FUNCTION rag_get(text, boolean) IS 'the catalog row of a RAG pipeline, locked and owned by the current role when for_update (internal)';

CREATE OR REPLACE FUNCTION rag_schedule(name text, schedule text) RETURNS bigint
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p datacore.rag_pipelines := datacore.rag_get(rag_schedule.name, true);
	job text := datacore.rag_job_name(p.name);
	command text := format('SELECT datacore.rag_sync(%L)', p.name);
	jobid bigint;
BEGIN
	IF rag_schedule.schedule IS NULL OR rag_schedule.schedule = '' THEN
		RAISE EXCEPTION 'schedule must be a non-empty cron expression'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'For example ''*/5 * * * *'' (every five minutes).';
	END IF;
	PERFORM datacore.rag_cron_check(
		format('SELECT cron.schedule_in_database(%L, %L, %L, %L, %L);',
			   job, rag_schedule.schedule, command, current_database(), current_user));
	-- called through EXECUTE: datacore does not depend on pg_cron.  The job
	-- runs as current_user, who is the owner (rag_get checked it).
	EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO jobid USING job, rag_schedule.schedule, command;
	RETURN jobid;
END $$;
-- S3: s3_create_bucket returns whether it created the bucket (false: it existed and is yours)
DROP FUNCTION s3_create_bucket(text, name);
CREATE FUNCTION s3_create_bucket(bucket text, server name DEFAULT 'minio') RETURNS boolean
	AS 'MODULE_PATHNAME', 'datacore_s3_create_bucket' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION s3_create_bucket(text, name) IS 'create a bucket; false when it exists already and is yours';
-- Redis: redis_transaction (MULTI ... EXEC in one round trip)
CREATE FUNCTION redis_transaction(commands text[][], server name DEFAULT 'redis') RETURNS jsonb
	AS 'MODULE_PATHNAME', 'datacore_redis_transaction' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION redis_transaction(text[], name) IS 'MULTI, one command per row of commands, EXEC in one round trip; the replies as a jsonb array';
-- breaker: half-open state, the breakers view
DROP FUNCTION breaker_status();
CREATE FUNCTION breaker_status(OUT server text, OUT state text, OUT failures int,
		OUT opened_at timestamptz, OUT next_probe_at timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'datacore_breaker_status' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION breaker_status() IS 'circuit breakers of this database''s servers with failures on record: state (closed, open, half-open), consecutive failures, when it last opened, when the next probe call may go';

-- The breakers as a view, for monitoring (no secrets: names and counters).
CREATE VIEW breakers AS
	SELECT server, state, failures, opened_at, next_probe_at FROM breaker_status();
COMMENT ON VIEW breakers IS 'circuit breakers of this database''s servers with failures on record';
GRANT SELECT ON breakers TO PUBLIC;

-- rate limits (sql/install/45_ratelimit.sql)
CREATE FUNCTION rate_limit(key text, per_minute int, server name DEFAULT 'redis',
		window_size interval DEFAULT '1 minute', fail_open boolean DEFAULT false)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'datacore_rate_limit' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rate_limit(text, int, name, interval, boolean) IS 'whether this call is within per_minute calls in any window_size for key (and count it); while Redis is unreachable: fail_open';

CREATE FUNCTION rate_limit_check(key text, per_minute int, server name DEFAULT 'redis',
		window_size interval DEFAULT '1 minute', fail_open boolean DEFAULT false)
	RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_rate_limit_check' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION rate_limit_check(text, int, name, interval, boolean) IS 'like rate_limit, but a refused call raises the PostgREST error for HTTP 429 with Retry-After (503 while Redis is unreachable)';
