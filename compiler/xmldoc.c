/* A model file as a validated XML document: read (at most 1 MiB), parsed
 * without network access or DTDs, validated against the embedded schema
 * (models/simclr.xsd), with the line of every element's start tag. Every
 * error goes through diag.h as "FILE:LINE: error: MESSAGE"; libxml2's own
 * parse and validity errors are routed there too. */
#include "xmldoc.h"

#include "diag.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/SAX2.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlschemas.h>

/* Generated at build time from models/simclr.xsd (embed.cmake). */
extern const char sc_xsd_text[];
extern const unsigned sc_xsd_text_len;

/* Model files are a few kilobytes; refuse anything absurd before parsing. */
#define MAX_FILE_BYTES (1L << 20)

/* ------------------------------------------------------ reading the file */

/* Reads the whole file into a NUL-terminated buffer; NULL after an error. */
static char *read_file(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        sc_error_at(path, 0, "cannot open the model file: %s", strerror(errno));
        return NULL;
    }
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        sc_error_at(path, 0, "out of memory");
        return NULL;
    }
    for (;;) {
        if (n + 1 >= cap) {
            if ((long)n >= MAX_FILE_BYTES) {
                sc_error_at(path, 0, "the model file is larger than %ld bytes",
                            MAX_FILE_BYTES);
                free(buf);
                fclose(f);
                return NULL;
            }
            char *q = realloc(buf, cap * 2);
            if (!q) {
                sc_error_at(path, 0, "out of memory");
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = q;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                sc_error_at(path, 0, "cannot read the model file: %s",
                            strerror(errno));
                free(buf);
                fclose(f);
                return NULL;
            }
            break;
        }
    }
    fclose(f);
    if ((long)n > MAX_FILE_BYTES) {
        sc_error_at(path, 0, "the model file is larger than %ld bytes", MAX_FILE_BYTES);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = (long)n;
    return buf;
}

/* ----------------------------------------------- libxml2's diagnostics */

/* ---------------------------------------------------- element lines */

/* The line where each element's start tag begins. libxml2's node->line is
 * where the start tag ends (later than the element for a tag spread over
 * lines), and past 65535 lines it is only approximate. So the parser's
 * start-element callback is wrapped: when it fires, the parser stands at
 * the '>' of the start tag, and since attribute values cannot hold a raw
 * '<', the last '<' before it opens the element; its line is counted in
 * the original text. Lookups go through a table sorted by node address. */
typedef struct {
    const xmlNode *node;
    int line;
} line_entry;

typedef struct {
    const char *text;
    long len;
    long pos;              /* newlines are counted up to pos ... */
    int line;              /* ... which is on this line */
    line_entry *v;
    int n, cap;
} line_table;

static void record_start(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                         const xmlChar *uri, int nns, const xmlChar **ns, int nattrs,
                         int ndefaulted, const xmlChar **attrs)
{
    xmlParserCtxtPtr pc = ctx;
    xmlSAX2StartElementNs(ctx, localname, prefix, uri, nns, ns, nattrs, ndefaulted, attrs);
    line_table *t = pc->_private;
    xmlParserInputPtr in = pc->input;
    /* Offsets only match the file when the parser reads the file itself
     * (not an entity) and no encoding conversion happened; otherwise the
     * line falls back to libxml2's. */
    if (!t || !pc->node || pc->inputNr != 1 || !in || !in->cur || !in->base ||
        (in->buf && in->buf->encoder))
        return;
    long off = (long)in->consumed + (long)(in->cur - in->base);
    if (off <= 0 || off > t->len)
        return;
    while (off > 0 && t->text[off] != '<')
        off--;
    size_t nlen = strlen((const char *)localname);
    const char *name = t->text + off + 1;
    if (prefix) { /* "<prefix:name" */
        size_t plen = strlen((const char *)prefix);
        if (strncmp(name, (const char *)prefix, plen) || name[plen] != ':')
            return;
        name += plen + 1;
    }
    if (t->text[off] != '<' || strncmp(name, (const char *)localname, nlen))
        return;
    if (off < t->pos) { /* start tags come in document order; be safe anyway */
        t->pos = 0;
        t->line = 1;
    }
    for (const char *c = t->text + t->pos, *e = t->text + off; c < e; c++)
        if (*c == '\n' && t->line < INT_MAX)
            t->line++;
    t->pos = off;
    if (t->n == t->cap) {
        int ncap = t->cap ? 2 * t->cap : 64;
        line_entry *q = realloc(t->v, (size_t)ncap * sizeof *q);
        if (!q)
            return; /* the line falls back to libxml2's */
        t->v = q;
        t->cap = ncap;
    }
    t->v[t->n].node = pc->node;
    t->v[t->n].line = t->line;
    t->n++;
}

static int cmp_entry(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const line_entry *)a)->node;
    uintptr_t y = (uintptr_t)((const line_entry *)b)->node;
    return x < y ? -1 : x > y;
}

static int node_line(const line_table *t, const xmlNode *n)
{
    if (n && n->type == XML_ATTRIBUTE_NODE)
        n = n->parent;
    if (!n)
        return 0;
    if (t && n->type == XML_ELEMENT_NODE) {
        int lo = 0, hi = t->n - 1;
        while (lo <= hi) {
            int mid = lo + (hi - lo) / 2;
            uintptr_t k = (uintptr_t)t->v[mid].node, want = (uintptr_t)n;
            if (k == want)
                return t->v[mid].line;
            if (k < want)
                lo = mid + 1;
            else
                hi = mid - 1;
        }
    }
    long l = xmlGetLineNo(n);
    if (l <= 0)
        return 0;
    return l > INT_MAX ? INT_MAX : (int)l;
}

/* Where libxml2's structured errors go: the file name we were given (its
 * own copy would be the same, but this way every message names the file
 * exactly as the user typed it). */
typedef struct {
    const char *file;
    int internal;           /* errors in the embedded schema are the compiler's fault */
    const line_table *lines; /* for validity errors, which name a node */
} xml_sink;

static void xml_error(void *data, xmlErrorPtr e)
{
    const xml_sink *s = data;
    if (!e || !e->message)
        return;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", e->message);
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        msg[--len] = 0;
    int line = e->line;
    if (e->domain == XML_FROM_SCHEMASV && e->node)
        line = node_line(s->lines, e->node);
    if (s->internal) {
        sc_error_at(NULL, 0, "internal error in the embedded schema, line %d: %s",
                    e->line, msg);
    } else if (e->level == XML_ERR_WARNING) {
        sc_warning_at(s->file, line, "%s", msg);
    } else {
        sc_error_at(s->file, line, "%s", msg);
    }
}

/* Line of the first "<!DOCTYPE" in text, 0 if there is none. */
static int doctype_line(const char *text)
{
    const char *p = strstr(text, "<!DOCTYPE");
    if (!p)
        return 0;
    int line = 1;
    for (const char *q = text; q < p; q++)
        line += *q == '\n';
    return line;
}

struct sc_xmldoc {
    xmlDocPtr doc;
    line_table lines;
};

xmlNode *sc_xmldoc_root(const sc_xmldoc *d)
{
    return xmlDocGetRootElement(d->doc);
}

int sc_xmldoc_line(const sc_xmldoc *d, const xmlNode *n)
{
    return node_line(d ? &d->lines : NULL, n);
}

void sc_xmldoc_free(sc_xmldoc *d)
{
    if (!d)
        return;
    if (d->doc)
        xmlFreeDoc(d->doc);
    free(d->lines.v);
    free(d);
}

sc_xmldoc *sc_xmldoc_load(const char *path, char **text_out)
{
    *text_out = NULL;
    int errors0 = sc_error_count();
    long len = 0;
    char *text = read_file(path, &len);
    if (!text)
        return NULL;
    *text_out = text;
    if (len == 0) {
        sc_error_at(path, 0, "the model file is empty");
        return NULL;
    }
    sc_xmldoc *res = calloc(1, sizeof *res);
    if (!res) {
        sc_error_at(path, 0, "out of memory");
        return NULL;
    }
    xmlInitParser();
    xml_sink file_sink = {path, 0, NULL}, schema_sink = {"simclr.xsd", 1, NULL};
    line_table lines = {text, len, 0, 1, NULL, 0, 0};
    xmlParserCtxtPtr pc = NULL;
    xmlDocPtr doc = NULL;
    xmlSchemaParserCtxtPtr pctx = NULL;
    xmlSchemaPtr schema = NULL;
    xmlSchemaValidCtxtPtr vctx = NULL;
    xmlSetStructuredErrorFunc(&file_sink, xml_error);
    pc = xmlCreateMemoryParserCtxt(text, (int)len);
    if (!pc) {
        sc_error_at(path, 0, "cannot parse the model file (out of memory)");
        goto out;
    }
    xmlCtxtUseOptions(pc, XML_PARSE_NONET | XML_PARSE_BIG_LINES);
    pc->sax->startElementNs = record_start;
    pc->_private = &lines;
    xmlParseDocument(pc);
    doc = pc->myDoc;
    pc->myDoc = NULL;
    if (lines.n > 1)
        qsort(lines.v, (size_t)lines.n, sizeof *lines.v, cmp_entry);
    file_sink.lines = &lines;
    if (!doc || !pc->wellFormed || sc_error_count() > errors0) {
        if (sc_error_count() == errors0)
            sc_error_at(path, 0, "cannot parse the model file");
        goto out;
    }
    /* A DTD could define entities that rewrite attribute values behind the
     * schema's back; the format has no use for one. */
    if (doc->intSubset || doc->extSubset) {
        int dl = doctype_line(text);
        sc_error_at(path, dl > 0 ? dl : 1,
                    "DOCTYPE declarations are not allowed in a model file");
        goto out;
    }
    if (!xmlDocGetRootElement(doc)) {
        sc_error_at(path, 0, "the model file has no root element");
        goto out;
    }

    xmlSetStructuredErrorFunc(&schema_sink, xml_error);
    pctx = xmlSchemaNewMemParserCtxt(sc_xsd_text, (int)sc_xsd_text_len);
    if (pctx) {
        xmlSchemaSetParserStructuredErrors(pctx, xml_error, &schema_sink);
        schema = xmlSchemaParse(pctx);
    }
    if (!schema) {
        if (sc_error_count() == errors0)
            sc_error_at(NULL, 0, "internal error: cannot load the embedded schema");
        goto out;
    }
    xmlSetStructuredErrorFunc(&file_sink, xml_error);
    vctx = xmlSchemaNewValidCtxt(schema);
    if (!vctx) {
        sc_error_at(NULL, 0, "out of memory");
        goto out;
    }
    xmlSchemaSetValidStructuredErrors(vctx, xml_error, &file_sink);
    int rc = xmlSchemaValidateDoc(vctx, doc);
    if (rc != 0 || sc_error_count() > errors0) {
        if (sc_error_count() == errors0)
            sc_error_at(path, 0, "the model does not conform to the schema");
        goto out;
    }

    res->doc = doc;
    doc = NULL;

out:
    xmlSetStructuredErrorFunc(NULL, NULL);
    if (vctx)
        xmlSchemaFreeValidCtxt(vctx);
    if (schema)
        xmlSchemaFree(schema);
    if (pctx)
        xmlSchemaFreeParserCtxt(pctx);
    if (doc)
        xmlFreeDoc(doc);
    if (pc)
        xmlFreeParserCtxt(pc);
    res->lines = lines;
    if (sc_error_count() > errors0 || !res->doc) {
        sc_xmldoc_free(res);
        return NULL;
    }
    /* Lines are looked up after parsing; the text stays the caller's. */
    return res;
}
