/*-------------------------------------------------------------------------
 *
 * ollama.c
 *		SQL functions that call the Ollama HTTP API.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "datacore.h"
#include "http.h"
#include "json.h"

/*
 * Ollama reports failures as {"error": "..."}; return that text, or NULL.
 */
static const char *
ollama_error_text(DcServer *server, const char *operation, DcHttpResponse *resp)
{
	json_error_t err;
	json_t	   *json;

	if (resp->body.len == 0)
		return NULL;
	json = json_loadb(resp->body.data, resp->body.len, 0, &err);
	return json ? dc_json_get_string(json, "error") : NULL;
}

/* GET path and return the parsed JSON reply; HTTP errors are raised. */
static json_t *
ollama_get(DcServer *server, const char *operation, const char *path)
{
	DcHttpRequest *req = dc_http_request(server, operation, "GET", path);
	DcHttpResponse *resp;
	const char *token = dc_option(server, "bearer_token");

	if (token)
		dc_http_add_header(req, "Authorization", psprintf("Bearer %s", token));
	resp = dc_http_execute(server, req);
	if (resp->status >= 400)
		dc_http_raise_status(server, req, resp,
							 ollama_error_text(server, operation, resp));
	return dc_json_parse(server, operation, resp->body.data, resp->body.len);
}

PG_FUNCTION_INFO_V1(datacore_ollama_version);

Datum
datacore_ollama_version(PG_FUNCTION_ARGS)
{
	const char *op = "ollama_version";
	DcServer   *server = dc_get_server(NameStr(*PG_GETARG_NAME(0)), DC_SERVICE_OLLAMA, op);
	json_t	   *reply = ollama_get(server, op, "/api/version");
	const char *version = dc_json_get_string(reply, "version");

	if (version == NULL)
		dc_json_bad_reply(server, op, "The reply has no \"version\" string.");
	PG_RETURN_TEXT_P(cstring_to_text(version));
}
