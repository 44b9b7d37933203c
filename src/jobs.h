/*-------------------------------------------------------------------------
 *
 * jobs.h
 *		Durable jobs: the queue table datacore.jobs, the code that runs its
 *		jobs as their owners, and the background worker that drains it.
 *
 * jobs.c owns the queue (enqueue, claim, run, finish) and its SQL
 * functions; worker.c owns the processes (one launcher, one worker per
 * database with queued work) and the shared memory they meet in.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DATACORE_JOBS_H
#define DATACORE_JOBS_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* GUCs (defined in jobs.c, registered by dc_jobs_define_gucs) */
extern bool dc_job_worker_enabled;
extern int	dc_job_retention_min;

/* in jobs.c */
extern void dc_jobs_define_gucs(void);
extern bool dc_jobs_extension_present(void);
extern void dc_jobs_requeue_orphans(void);
extern void dc_jobs_prune(void);
extern int	dc_jobs_claim_and_run(int max, bool commit_claim);
extern TimestampTz dc_jobs_next_due(void);

/* in worker.c */
extern void dc_worker_request_shmem(void);
extern void dc_worker_startup(void);
extern void dc_worker_register_launcher(void);
extern void dc_worker_wake(Oid dbid);
extern bool dc_worker_active(Oid dbid);

extern PGDLLEXPORT void dc_job_launcher_main(Datum arg);
extern PGDLLEXPORT void dc_job_worker_main(Datum arg);

#endif							/* DATACORE_JOBS_H */
