#include "config.h"

#include "meta/xmlschema.h"

#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <libxml/relaxng.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct schema {
    const char *type;
    xmlRelaxNGPtr rng;
    int err; /* 0 not tried yet, 1 compiled, -ENOENT failed */
};

static struct schema schemas[] = { { "domain", NULL, 0 }, { "domainsnapshot", NULL, 0 } };

static void quiet(void *ctx, const char *fmt, ...)
{
    (void)ctx;
    (void)fmt;
}

/* The first complaint of a validation, kept for the caller's message. */
struct first_error {
    char *msg;
    size_t msgsz;
    bool set;
};

static void keep_first(void *ctx, xmlErrorPtr e)
{
    struct first_error *f = ctx;
    if (f->set || !e || !e->message)
        return;
    f->set = true;
    if (e->line > 0)
        snprintf(f->msg, f->msgsz, "line %d: %s", e->line, e->message);
    else
        snprintf(f->msg, f->msgsz, "%s", e->message);
    size_t n = strlen(f->msg);
    while (n && (f->msg[n - 1] == '\n' || f->msg[n - 1] == ' '))
        f->msg[--n] = '\0';
}

static int compile(struct schema *sc, char *msg, size_t msgsz)
{
    if (sc->err)
        return sc->err == 1 ? 0 : sc->err;
    const char *dir = getenv("VMSTOREFS_SCHEMAS");
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.rng", dir && dir[0] ? dir : XMLSCHEMA_DIR, sc->type);
    xmlRelaxNGParserCtxtPtr pc = xmlRelaxNGNewParserCtxt(path);
    if (pc) {
        xmlRelaxNGSetParserErrors(pc, quiet, quiet, NULL);
        sc->rng = xmlRelaxNGParse(pc);
        xmlRelaxNGFreeParserCtxt(pc);
    }
    sc->err = sc->rng ? 1 : -ENOENT;
    if (!sc->rng)
        snprintf(msg, msgsz, "libvirt's schema %s cannot be read", path);
    return sc->rng ? 0 : -ENOENT;
}

/* One validation at a time: the mount validates from its worker threads
 * (a redefine), and a cleanup must not free a schema in use. A
 * validation takes well under a millisecond. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int validate_locked(xmlDocPtr doc, const char *type, char *msg, size_t msgsz)
{
    struct schema *sc = NULL;
    for (size_t i = 0; i < sizeof(schemas) / sizeof(schemas[0]); i++)
        if (strcmp(schemas[i].type, type) == 0)
            sc = &schemas[i];
    if (!sc) {
        snprintf(msg, msgsz, "no schema %s", type);
        return -ENOENT;
    }
    int r = compile(sc, msg, msgsz);
    if (r < 0)
        return r;
    xmlRelaxNGValidCtxtPtr vc = xmlRelaxNGNewValidCtxt(sc->rng);
    if (!vc)
        return -ENOMEM;
    struct first_error f = { msg, msgsz, false };
    xmlRelaxNGSetValidStructuredErrors(vc, keep_first, &f);
    int v = xmlRelaxNGValidateDoc(vc, doc);
    xmlRelaxNGFreeValidCtxt(vc);
    if (v == 0)
        return 0;
    if (!f.set)
        snprintf(msg, msgsz, "does not validate as %s", type);
    return -EINVAL;
}

int xmlschema_validate(xmlDocPtr doc, const char *type, char *msg, size_t msgsz)
{
    pthread_mutex_lock(&lock);
    int r = validate_locked(doc, type, msg, msgsz);
    pthread_mutex_unlock(&lock);
    return r;
}

int xmlschema_check_domain(xmlDocPtr doc, char *msg, size_t msgsz)
{
    static atomic_bool told;
    char why[MSG_MAX];
    int r = xmlschema_validate(doc, "domain", why, sizeof(why));
    if (r == -ENOENT) {
        if (!atomic_exchange(&told, true))
            log_msg(LOG_WARNING, "%s: definitions written through the mount are not checked against it",
                    why);
        return 0;
    }
    if (r == -EINVAL)
        snprintf(msg, msgsz, "not valid by libvirt's domain schema (%s)", why);
    return r;
}

void xmlschema_cleanup(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < sizeof(schemas) / sizeof(schemas[0]); i++) {
        if (schemas[i].rng)
            xmlRelaxNGFree(schemas[i].rng);
        schemas[i].rng = NULL;
        schemas[i].err = 0;
    }
    pthread_mutex_unlock(&lock);
}
