-- datacore install script: metrics (src/metrics.c) and their Prometheus exposition
--
-- Readers: members of pg_monitor (and superusers).  The counters name servers
-- and operations of every database, never option values or secrets; jobs are
-- counted by state only.  reset_metrics() is for superusers unless granted.

CREATE FUNCTION metrics_entries(
		OUT database text, OUT server text, OUT service text, OUT operation text,
		OUT requests bigint, OUT retries bigint, OUT bytes_sent bigint, OUT bytes_received bigint,
		OUT error_classes text[], OUT errors bigint[],
		OUT latency_le float8[], OUT latency_buckets bigint[],
		OUT latency_sum float8, OUT latency_count bigint,
		OUT prompt_tokens bigint, OUT eval_tokens bigint,
		OUT cache_hits bigint, OUT cache_misses bigint)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'datacore_metrics_entries' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION metrics_entries()
	IS 'raw request counters per (database, server, operation) from shared memory; read datacore.metrics instead';

CREATE FUNCTION metrics_info(OUT entries int, OUT max_entries int, OUT overflow bigint,
							 OUT reset_at timestamptz, OUT shared boolean)
	AS 'MODULE_PATHNAME', 'datacore_metrics_info' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION metrics_info()
	IS 'keys in the metrics table, its capacity (datacore.metrics_max_entries), recordings dropped because it was full, last reset, whether it is shared by all backends';

CREATE FUNCTION reset_metrics() RETURNS void
	AS 'MODULE_PATHNAME', 'datacore_reset_metrics' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION reset_metrics() IS 'empty the metrics table, for every database';

-- Breaker state of this database's servers that have a breaker on record or
-- metrics: from the view datacore.breakers where the installed version has
-- it, else from breaker_status().
CREATE FUNCTION metrics_breakers(OUT server text, OUT state text)
	RETURNS SETOF record
	LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RETURN QUERY
		SELECT DISTINCT ON (x.server) x.server, coalesce(x.state, 'closed')
		  FROM (SELECT e.server, NULL::text AS state FROM datacore.metrics_entries() e
				 WHERE e.database = current_database()
				UNION ALL
				SELECT * FROM datacore.metrics_breaker_records()) x
		 ORDER BY x.server, x.state NULLS LAST;
END $$;
COMMENT ON FUNCTION metrics_breakers() IS 'breaker state (closed, open, half_open) of this database''s servers with metrics or a breaker on record';

CREATE FUNCTION metrics_breaker_records(OUT server text, OUT state text)
	RETURNS SETOF record
	LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
	SELECT b.server::text, replace(replace(lower(b.state::text), '-', '_'), ' ', '_')
	  FROM datacore.breakers b
$$;
COMMENT ON FUNCTION metrics_breaker_records() IS 'breaker state of this database''s servers with a breaker on record';

-- Jobs of this database by state, once the table datacore.jobs exists; every
-- state is listed, with 0 when there are none.  SECURITY DEFINER: a monitor
-- sees counts, not the jobs (their owners' rows).
CREATE FUNCTION metrics_jobs(OUT state text, OUT jobs bigint)
	RETURNS SETOF record
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RETURN QUERY
		SELECT s.state, coalesce(c.n, 0)::bigint
		  FROM unnest(ARRAY['queued', 'running', 'succeeded', 'failed', 'dead']) WITH ORDINALITY s(state, ord)
		  LEFT JOIN (SELECT j.state::text AS state, count(*) AS n FROM datacore.jobs j GROUP BY 1) c
			ON c.state = s.state
		 ORDER BY s.ord;
END $$;
COMMENT ON FUNCTION metrics_jobs() IS 'jobs of this database per state';

CREATE VIEW metrics AS
	SELECT e.database, e.server, e.service, e.operation,
		   e.requests,
		   (SELECT coalesce(sum(n), 0)::bigint FROM unnest(e.errors) n) AS errors,
		   (SELECT coalesce(jsonb_object_agg(c, n), '{}')
			  FROM unnest(e.error_classes, e.errors) x(c, n) WHERE n > 0) AS errors_by_class,
		   e.retries, e.bytes_sent, e.bytes_received,
		   e.latency_le, e.latency_buckets, e.latency_sum, e.latency_count,
		   e.prompt_tokens, e.eval_tokens, e.cache_hits, e.cache_misses,
		   CASE WHEN e.database = current_database()
				THEN coalesce(b.state, 'closed') END AS breaker_state
	  FROM metrics_entries() e
	  LEFT JOIN metrics_breakers() b
		ON e.database = current_database() AND b.server = e.server;
COMMENT ON VIEW metrics IS 'requests, errors per SQLSTATE class, retries, bytes, latency histogram (cumulative buckets per upper bound in seconds), Ollama tokens and cache lookups per (database, server, operation); breaker state for this database';

-- A label value in the Prometheus text format: backslash, double quote and
-- line feed escaped.
CREATE FUNCTION metrics_label(value text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT replace(replace(replace(value, E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n')
$$;
COMMENT ON FUNCTION metrics_label(text) IS 'a value escaped for a Prometheus label';

CREATE FUNCTION metrics_prometheus() RETURNS text
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	-- one snapshot of the counters for every family below
	rows datacore.metrics[] := ARRAY(SELECT m FROM datacore.metrics m);
	out text := '';
	samples text;
	r record;
BEGIN
	FOR r IN
		SELECT * FROM (VALUES
			('datacore_requests_total', 'Requests sent (each attempt counts), by database, server, service and operation.', 'requests', false),
			('datacore_retries_total', 'Requests sent again after a transient failure.', 'retries', false),
			('datacore_sent_bytes_total', 'Bytes sent: request headers and bodies.', 'bytes_sent', false),
			('datacore_received_bytes_total', 'Bytes received: response headers and bodies.', 'bytes_received', false),
			('datacore_ollama_prompt_tokens_total', 'Prompt tokens Ollama reported evaluating (generate, chat).', 'prompt_tokens', true),
			('datacore_ollama_eval_tokens_total', 'Tokens Ollama reported generating (generate, chat).', 'eval_tokens', true),
			('datacore_cache_hits_total', 'Response-cache lookups that found an answer.', 'cache_hits', false),
			('datacore_cache_misses_total', 'Response-cache lookups that found none.', 'cache_misses', false)
		) f(name, help, col, ollama_only)
	LOOP
		out := out || format(E'# HELP %s %s\n# TYPE %s counter\n', r.name, r.help, r.name);
		EXECUTE format(
			$q$SELECT coalesce(string_agg(format(E'%%s{database="%%s",server="%%s",service="%%s",operation="%%s"} %%s\n',
						$1, datacore.metrics_label(database), datacore.metrics_label(server),
						datacore.metrics_label(service), datacore.metrics_label(operation), %I),
					'' ORDER BY database, server, operation), '')
			     FROM unnest($2) WHERE NOT $3 OR service = 'ollama'$q$, r.col)
		  INTO samples USING r.name, rows, r.ollama_only;
		out := out || samples;
	END LOOP;

	out := out || E'# HELP datacore_errors_total Requests that failed, by the SQLSTATE class of the error (other: any class not listed).\n'
			   || E'# TYPE datacore_errors_total counter\n'
			   || coalesce((
		SELECT string_agg(format(E'datacore_errors_total{database="%s",server="%s",service="%s",operation="%s",class="%s"} %s\n',
								 datacore.metrics_label(m.database), datacore.metrics_label(m.server),
								 datacore.metrics_label(m.service), datacore.metrics_label(m.operation),
								 c.key, c.value),
						  '' ORDER BY m.database, m.server, m.operation, c.key)
		  FROM unnest(rows) m, jsonb_each_text(m.errors_by_class) c), '');

	out := out || E'# HELP datacore_request_duration_seconds Time from sending a request to its complete answer.\n'
			   || E'# TYPE datacore_request_duration_seconds histogram\n'
			   || coalesce((
		SELECT string_agg(s, '' ORDER BY database, server, operation)
		  FROM (SELECT m.database, m.server, m.operation,
					   (SELECT string_agg(format(E'datacore_request_duration_seconds_bucket{%s,le="%s"} %s\n',
												 l.lbl, CASE WHEN b.le = 'Infinity' THEN '+Inf' ELSE b.le::text END, b.n),
										  '' ORDER BY b.ord)
						  FROM unnest(m.latency_le, m.latency_buckets) WITH ORDINALITY b(le, n, ord))
					   || format(E'datacore_request_duration_seconds_sum{%s} %s\n', l.lbl, m.latency_sum)
					   || format(E'datacore_request_duration_seconds_count{%s} %s\n', l.lbl, m.latency_count) AS s
				  FROM unnest(rows) m,
					   LATERAL (SELECT format('database="%s",server="%s",service="%s",operation="%s"',
											  datacore.metrics_label(m.database), datacore.metrics_label(m.server),
											  datacore.metrics_label(m.service), datacore.metrics_label(m.operation)) AS lbl) l) h), '');

	out := out || E'# HELP datacore_breaker_open Whether calls to the server fail fast (1: breaker open or probing, 0: closed).\n'
			   || E'# TYPE datacore_breaker_open gauge\n'
			   || coalesce((
		SELECT string_agg(format(E'datacore_breaker_open{database="%s",server="%s"} %s\n',
								 datacore.metrics_label(current_database()), datacore.metrics_label(s.server),
								 CASE WHEN s.state IN ('open', 'half_open') THEN 1 ELSE 0 END),
						  '' ORDER BY s.server)
		  FROM datacore.metrics_breakers() s), '');

	IF to_regclass('datacore.jobs') IS NOT NULL THEN
		out := out || E'# HELP datacore_jobs_by_state Jobs in datacore.jobs of this database, by state.\n'
				   || E'# TYPE datacore_jobs_by_state gauge\n'
				   || coalesce((
			SELECT string_agg(format(E'datacore_jobs_by_state{database="%s",state="%s"} %s\n',
									 datacore.metrics_label(current_database()), datacore.metrics_label(j.state), j.jobs),
							  '')
			  FROM datacore.metrics_jobs() j), '');
	END IF;

	SELECT out || E'# HELP datacore_metrics_entries Keys held in the metrics table.\n'
			   || E'# TYPE datacore_metrics_entries gauge\n'
			   || format(E'datacore_metrics_entries %s\n', i.entries)
			   || E'# HELP datacore_metrics_max_entries Capacity of the metrics table (datacore.metrics_max_entries).\n'
			   || E'# TYPE datacore_metrics_max_entries gauge\n'
			   || format(E'datacore_metrics_max_entries %s\n', i.max_entries)
			   || E'# HELP datacore_metrics_overflow_total Recordings dropped because the metrics table was full.\n'
			   || E'# TYPE datacore_metrics_overflow_total counter\n'
			   || format(E'datacore_metrics_overflow_total %s\n', i.overflow)
	  INTO out
	  FROM datacore.metrics_info() i;
	RETURN out;
END $$;
COMMENT ON FUNCTION metrics_prometheus() IS 'datacore.metrics in the Prometheus text exposition format (version 0.0.4)';

REVOKE EXECUTE ON FUNCTION metrics_entries(), metrics_info(), reset_metrics(), metrics_breakers(),
	metrics_breaker_records(), metrics_jobs(), metrics_prometheus() FROM PUBLIC;
REVOKE SELECT ON metrics FROM PUBLIC;
GRANT EXECUTE ON FUNCTION metrics_entries(), metrics_info(), metrics_breakers(),
	metrics_breaker_records(), metrics_jobs(), metrics_prometheus() TO pg_monitor;
GRANT SELECT ON metrics TO pg_monitor;
