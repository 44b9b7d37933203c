/*-------------------------------------------------------------------------
 *
 * ollama.h
 *		Internal declarations shared by the Ollama client (ollama.c) and the
 *		Ollama foreign-data wrapper (fdw_ollama.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DATACORE_OLLAMA_H
#define DATACORE_OLLAMA_H

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "fmgr.h"

#include "datacore.h"
#include "json.h"

/*
 * Turns the JSON objects of a model listing (/api/tags, /api/ps) into rows
 * of a given tuple descriptor, matching columns to keys by name.
 */
typedef struct DcOllamaRowMaker
{
	TupleDesc	tupdesc;
	FmgrInfo   *infuncs;		/* input function per attribute */
	Oid		   *ioparams;
} DcOllamaRowMaker;

/* in ollama.c */
extern json_t *dc_ollama_call(DcServer *server, const char *operation,
							  const char *method, const char *path,
							  json_t *body, const char *model);
extern json_t *dc_ollama_list_models(DcServer *server, const char *operation,
									 bool running);
extern DcOllamaRowMaker *dc_ollama_row_maker(TupleDesc tupdesc);
extern void dc_ollama_model_row(DcOllamaRowMaker *maker, json_t *model,
								Datum *values, bool *nulls);

/* in ollama_vectors.c */
/* one embedding in two halves, for requests in flight together */
typedef struct DcOllamaGenerate DcOllamaGenerate;
extern DcOllamaGenerate *dc_ollama_generate_begin(DcServer *server,
												  const char *operation,
												  const char *prompt,
												  const char *model,
												  const char *system,
												  json_t *options, json_t *format,
												  Interval *call_ttl);
extern char *dc_ollama_generate_end(DcOllamaGenerate *g);

typedef struct DcOllamaEmbed DcOllamaEmbed;
extern DcOllamaEmbed *dc_ollama_embed_begin(DcServer *server, const char *input,
											const char *model);
extern Datum dc_ollama_embed_end(DcOllamaEmbed *e);
extern bool dc_ollama_fast_embeddings(const char *data, size_t len, int n,
									  int *dim, Datum *out);
extern bool dc_ollama_fast_member(const char *data, size_t len, const char *key,
								  const char **vstart, size_t *vlen);

#endif							/* DATACORE_OLLAMA_H */
