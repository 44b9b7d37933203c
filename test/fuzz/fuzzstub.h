/*-------------------------------------------------------------------------
 *
 * fuzzstub.h
 *		What the fuzz targets share: the stubbed backend (pgstub.c) and the
 *		wrapper that runs one parse under PG_TRY.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DC_FUZZSTUB_H
#define DC_FUZZSTUB_H

#include "postgres.h"

extern void dc_fuzz_init(void);
extern void dc_fuzz_reset(void);
extern int	dc_fuzz_last_sqlstate;
extern bool dc_fuzz_superuser;

/*
 * Run stmt; an ERROR it raises ends it, as in a backend.  Memory of the
 * input is freed afterwards either way.
 */
#define DC_FUZZ_RUN(stmt) \
	do { \
		dc_fuzz_init(); \
		PG_TRY(); \
		{ \
			stmt; \
		} \
		PG_CATCH(); \
		{ \
		} \
		PG_END_TRY(); \
		dc_fuzz_reset(); \
	} while (0)

#endif							/* DC_FUZZSTUB_H */
