/*-------------------------------------------------------------------------
 *
 * datacore.c
 *		Module load: library initialisation and the GUC namespace.
 *
 * Configuration lives in catalog objects (servers, user mappings, foreign
 * tables), not GUCs, so that pg_dump carries it and privileges guard it;
 * the GUCs are for the job worker, which is a property of the cluster.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>
#include <hiredis/hiredis.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/guc.h"
#include "utils/jsonb.h"

#include "breaker.h"
#include "datacore.h"
#include "http.h"
#include "jobs.h"
#include "json.h"
#include "metrics.h"
#include "s3.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
dc_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	dc_breaker_request_shmem();
	dc_metrics_request_shmem();
	dc_worker_request_shmem();
}

static void
dc_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	dc_breaker_startup();
	dc_metrics_startup();
	dc_worker_startup();
	dc_s3_uploads_startup();
}

void
_PG_init(void)
{
	dc_http_init();
	dc_json_init();
	dc_metrics_init();

	dc_jobs_define_gucs();
	dc_remote_define_gucs();
	MarkGUCPrefixReserved("datacore");

	/*
	 * Shared state (the circuit breakers) only when preloaded; loaded later,
	 * each backend keeps its own.
	 */
	if (process_shared_preload_libraries_in_progress)
	{
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = dc_shmem_request;
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = dc_shmem_startup;

		/* the job launcher; not while pg_upgrade runs the server */
		if (!IsBinaryUpgrade)
			dc_worker_register_launcher();
	}
}

PG_FUNCTION_INFO_V1(datacore_build_info);

/*
 * The versions this build runs with, as jsonb.  Building the object also
 * proves at run time that JSON objects are made by jansson's own code.
 */
Datum
datacore_build_info(PG_FUNCTION_ARGS)
{
	curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
	json_t	   *info = dc_json_object();
	json_t	   *libs = dc_json_object();

	json_object_set_new(info, "version", json_string(DC_VERSION));
	json_object_set_new(libs, "libcurl", json_string(cv->version));
	json_object_set_new(libs, "jansson", json_string(JANSSON_VERSION));
	json_object_set_new(libs, "hiredis",
						json_string(psprintf("%d.%d.%d", HIREDIS_MAJOR,
											 HIREDIS_MINOR, HIREDIS_PATCH)));
	json_object_set_new(info, "libraries", libs);
	json_object_set_new(info, "postgresql", json_integer(PG_VERSION_NUM));

	PG_RETURN_JSONB_P(dc_json_to_jsonb(info));
}
