/*
 * fuzz_options.c
 *		The option validators (dc_check_option_list in src/options.c), as
 *		CREATE/ALTER SERVER, USER MAPPING, FOREIGN TABLE and column options
 *		reach them with user-given names and values.
 *
 * Input: byte 0 = service, byte 1 = catalog, byte 2 bit 0 = superuser;
 * then NUL-separated name/value pairs.
 */
#include "postgres.h"

#include "catalog/pg_attribute.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_user_mapping.h"
#include "nodes/parsenodes.h"
#include "nodes/value.h"

#include "fuzzstub.h"
#include "datacore.h"

static const Oid catalogs[] = {
	ForeignServerRelationId, UserMappingRelationId, ForeignTableRelationId,
	AttributeRelationId
};

static void
one_input(const uint8_t *data, size_t size)
{
	char	   *buf = palloc(size - 3 + 2);
	char	   *p = buf;
	char	   *end = buf + size - 3;
	List	   *options = NIL;

	memcpy(buf, data + 3, size - 3);
	end[0] = end[1] = '\0';
	dc_fuzz_superuser = data[2] & 1;
	while (p < end)
	{
		DefElem    *def = makeNode(DefElem);
		String	   *value = makeNode(String);

		def->defname = p;
		p += strlen(p) + 1;
		value->sval = p < end ? p : "";
		if (p < end)
			p += strlen(p) + 1;
		def->arg = (Node *) value;
		def->location = -1;
		options = lappend(options, def);
	}
	dc_check_option_list((DcService) (data[0] % DC_NUM_SERVICES), options,
						 catalogs[data[1] % lengthof(catalogs)]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	DC_FUZZ_RUN(one_input(data, size));
	return 0;
}
