#include "config.h"

#include "meta/domschema.h"

#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libxml/relaxng.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static xmlRelaxNGPtr schema; /* NULL: none installed, the check is skipped */

/* libxml2's messages go nowhere while the schema is parsed (the parser
 * would print to stderr). */
static void quiet(void *ctx, const char *fmt, ...)
{
    (void)ctx;
    (void)fmt;
}

static void load(void)
{
    const char *dir = getenv("VMSTOREFS_SCHEMAS");
    char path[4096];
    snprintf(path, sizeof(path), "%s/domain.rng", dir && *dir ? dir : DOMSCHEMA_DIR);
    xmlRelaxNGParserCtxtPtr pc = xmlRelaxNGNewParserCtxt(path);
    if (pc) {
        xmlRelaxNGSetParserErrors(pc, quiet, quiet, NULL);
        schema = xmlRelaxNGParse(pc);
        xmlRelaxNGFreeParserCtxt(pc);
    }
    if (!schema)
        log_msg(LOG_WARNING, "libvirt's schema %s cannot be read: definitions written through "
                             "the mount are not checked against it", path);
}

/* The first complaint of a validation, kept for the log line. */
struct first_error {
    char *msg;
    size_t msgsz;
    int n;
};

static void keep_first(void *arg, xmlErrorPtr e)
{
    struct first_error *fe = arg;
    if (fe->n++ || !e || !e->message)
        return;
    snprintf(fe->msg, fe->msgsz, "line %d: %s", e->line, e->message);
    size_t l = strlen(fe->msg);
    while (l && (fe->msg[l - 1] == '\n' || fe->msg[l - 1] == ' '))
        fe->msg[--l] = '\0';
}

int domschema_check(xmlDocPtr doc, char *msg, size_t msgsz)
{
    pthread_once(&once, load);
    if (!schema)
        return 0;
    xmlRelaxNGValidCtxtPtr vc = xmlRelaxNGNewValidCtxt(schema);
    if (!vc)
        return -ENOMEM;
    char first[256] = "";
    struct first_error fe = { first, sizeof(first), 0 };
    xmlRelaxNGSetValidStructuredErrors(vc, keep_first, &fe);
    int r = xmlRelaxNGValidateDoc(vc, doc);
    xmlRelaxNGFreeValidCtxt(vc);
    if (r == 0)
        return 0;
    snprintf(msg, msgsz, "not valid by libvirt's domain schema (%s)",
             first[0] ? first : "the validator gave no reason");
    return -EINVAL;
}
