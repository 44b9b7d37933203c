/*-------------------------------------------------------------------------
 *
 * s3xml.c
 *		The XML S3 speaks: error documents, ListObjectsV2 pages and the
 *		multipart-upload replies, read with libxml2.
 *
 * Every document is parsed into a tree whose owner is a memory-context
 * reset callback, so an ERROR while walking it frees it too.  Network
 * access and entity expansion are off: a reply is data, not a program.
 * Element names are matched on their local name, whatever the namespace.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "lib/stringinfo.h"
#include "utils/memutils.h"

#include "s3.h"

typedef struct XmlHolder
{
	xmlDocPtr	doc;
	MemoryContextCallback cb;
} XmlHolder;

static void
xml_free_cb(void *arg)
{
	XmlHolder  *h = arg;

	if (h->doc)
		xmlFreeDoc(h->doc);
	h->doc = NULL;
}

/*
 * Parse a document; NULL when it is not well-formed XML.  The tree lives
 * until CurrentMemoryContext is reset or deleted.
 */
static xmlNodePtr
xml_root(const char *data, size_t len)
{
	XmlHolder  *h;

	if (data == NULL || len == 0 || len > INT_MAX)
		return NULL;
	h = palloc0(sizeof(XmlHolder));
	h->cb.func = xml_free_cb;
	h->cb.arg = h;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &h->cb);
	h->doc = xmlReadMemory(data, (int) len, "s3-reply.xml", NULL,
						   XML_PARSE_NONET | XML_PARSE_NOERROR |
						   XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
	if (h->doc == NULL)
		return NULL;
	return xmlDocGetRootElement(h->doc);
}

static bool
is_elem(xmlNodePtr n, const char *name)
{
	return n && n->type == XML_ELEMENT_NODE &&
		strcmp((const char *) n->name, name) == 0;
}

static xmlNodePtr
child(xmlNodePtr parent, const char *name)
{
	xmlNodePtr	n;

	for (n = parent ? parent->children : NULL; n; n = n->next)
		if (is_elem(n, name))
			return n;
	return NULL;
}

/* Text content of a node, palloc'd; NULL for a missing node. */
static char *
node_text(xmlNodePtr n)
{
	xmlChar    *t;
	char	   *s;

	if (n == NULL)
		return NULL;
	t = xmlNodeGetContent(n);
	if (t == NULL)
		return pstrdup("");
	s = pstrdup((const char *) t);
	xmlFree(t);
	return s;
}

static char *
child_text(xmlNodePtr parent, const char *name)
{
	return node_text(child(parent, name));
}

static void
bad_reply(DcServer *server, const char *operation, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_STRING_FORMAT),
			 errmsg("server \"%s\" sent an invalid reply to %s",
					server->servername, operation),
			 errdetail_internal("%s", detail)));
}

static void
fill_error(xmlNodePtr root, DcS3Error *err)
{
	err->code = child_text(root, "Code");
	err->message = child_text(root, "Message");
	err->key = child_text(root, "Key");
	err->bucket = child_text(root, "BucketName");
}

/*
 * Read an S3 <Error> document into err.  False (err untouched) when the
 * body is not one.
 */
bool
dc_s3_parse_error(const char *data, size_t len, DcS3Error *err)
{
	xmlNodePtr	root = xml_root(data, len);

	if (!is_elem(root, "Error") || child(root, "Code") == NULL)
		return false;
	fill_error(root, err);
	return true;
}

/* One ListObjectsV2 page; an unreadable page is an error. */
DcS3ListPage *
dc_s3_parse_list(DcServer *server, const char *operation, const char *data,
				 size_t len)
{
	xmlNodePtr	root = xml_root(data, len);
	DcS3ListPage *page;
	xmlNodePtr	n;
	char	   *trunc;

	if (root == NULL)
		bad_reply(server, operation, "The object listing is not well-formed XML.");
	if (!is_elem(root, "ListBucketResult"))
		bad_reply(server, operation,
				  psprintf("The object listing has root element <%s>, not <ListBucketResult>.",
						   dc_remote_excerpt((const char *) root->name,
											 strlen((const char *) root->name), 64)));

	page = palloc0(sizeof(DcS3ListPage));
	for (n = root->children; n; n = n->next)
	{
		DcS3Object *o;
		char	   *size;
		char	   *end;

		if (!is_elem(n, "Contents"))
			continue;
		o = palloc0(sizeof(DcS3Object));
		o->key = child_text(n, "Key");
		size = child_text(n, "Size");
		o->etag = child_text(n, "ETag");
		o->last_modified = child_text(n, "LastModified");
		if (o->key == NULL || size == NULL)
			bad_reply(server, operation, "An entry of the object listing has no Key or Size.");
		/* these become text values (keys, ETags, timestamps) */
		dc_check_remote_text(o->key, strlen(o->key), "object key in a listing",
							 server->servername);
		if (o->etag)
			dc_check_remote_text(o->etag, strlen(o->etag), "ETag in a listing",
								 server->servername);
		if (o->last_modified)
			dc_check_remote_text(o->last_modified, strlen(o->last_modified),
								 "LastModified in a listing", server->servername);
		errno = 0;
		o->size = strtoll(size, &end, 10);
		if (errno != 0 || *end != '\0' || end == size || o->size < 0)
			bad_reply(server, operation,
					  psprintf("The listing gives object size \"%s\".",
							   dc_remote_excerpt(size, strlen(size), 64)));
		page->objects = lappend(page->objects, o);
	}
	trunc = child_text(root, "IsTruncated");
	page->truncated = trunc && strcmp(trunc, "true") == 0;
	if (page->truncated)
	{
		page->next_token = child_text(root, "NextContinuationToken");
		if (page->next_token == NULL || page->next_token[0] == '\0')
			bad_reply(server, operation,
					  "The listing is truncated but has no NextContinuationToken.");
	}
	return page;
}

/* UploadId of an InitiateMultipartUploadResult. */
char *
dc_s3_parse_upload_id(DcServer *server, const char *operation,
					  const char *data, size_t len)
{
	xmlNodePtr	root = xml_root(data, len);
	char	   *id;

	if (!is_elem(root, "InitiateMultipartUploadResult"))
		bad_reply(server, operation, "The reply to starting a multipart upload is not an InitiateMultipartUploadResult.");
	id = child_text(root, "UploadId");
	if (id == NULL || id[0] == '\0')
		bad_reply(server, operation, "The reply to starting a multipart upload has no UploadId.");
	return id;
}

/*
 * The ETag of a CompleteMultipartUploadResult.  S3 may send an <Error>
 * inside a 200 reply here; that fills err and returns NULL.
 */
char *
dc_s3_parse_complete(DcServer *server, const char *operation,
					 const char *data, size_t len, DcS3Error *err)
{
	xmlNodePtr	root = xml_root(data, len);

	if (is_elem(root, "Error"))
	{
		fill_error(root, err);
		return NULL;
	}
	if (!is_elem(root, "CompleteMultipartUploadResult"))
		bad_reply(server, operation, "The reply to completing a multipart upload is not a CompleteMultipartUploadResult.");
	return child_text(root, "ETag");
}

/* Text escaped for an XML element body we write. */
char *
dc_s3_xml_escape(const char *s)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (; *s; s++)
	{
		switch (*s)
		{
			case '<':
				appendStringInfoString(&buf, "&lt;");
				break;
			case '>':
				appendStringInfoString(&buf, "&gt;");
				break;
			case '&':
				appendStringInfoString(&buf, "&amp;");
				break;
			case '"':
				appendStringInfoString(&buf, "&quot;");
				break;
			default:
				appendStringInfoChar(&buf, *s);
		}
	}
	return buf.data;
}
