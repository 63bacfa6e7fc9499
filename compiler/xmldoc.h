/* A model file as a validated XML document (xmldoc.c): the front end's
 * reading, parsing and schema validation, apart from the tree walk that
 * turns the document into an sc_spec (model.c). */
#ifndef SC_XMLDOC_H
#define SC_XMLDOC_H

#include <libxml/tree.h>

typedef struct sc_xmldoc sc_xmldoc;

/* Reads PATH (at most 1 MiB), parses it (no network, no DTD) and validates
 * it against the embedded schema. *text gets the file's NUL-terminated
 * text as soon as it is read, even when a later step fails; the caller
 * frees it, and keeps it alive as long as the document. NULL after an
 * error, reported through diag.h. */
sc_xmldoc *sc_xmldoc_load(const char *path, char **text);
xmlNode *sc_xmldoc_root(const sc_xmldoc *d);
/* The line of the start tag of n (of its element, for an attribute). */
int sc_xmldoc_line(const sc_xmldoc *d, const xmlNode *n);
void sc_xmldoc_free(sc_xmldoc *d);

#endif
