
-- Ollama
CREATE FUNCTION ollama_version(server name DEFAULT 'ollama') RETURNS text
	AS 'MODULE_PATHNAME', 'datacore_ollama_version' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION ollama_version(name) IS 'version string of the Ollama server';
