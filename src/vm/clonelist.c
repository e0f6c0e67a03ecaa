#include "config.h"

#include "vm/clonelist.h"

#include "meta/cloneid.h"
#include "util/log.h"
#include "util/statcache.h"
#include "meta/xmlsafe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What is kept per domain.xml: its lineage's source, "" for none (also
 * for an unreadable file: it names no source until it changes). */
struct lineage_value {
    char source[NAME_MAX_LEN + 1];
};

static struct statcache cache = STATCACHE_INIT(4096, 1u << 20, free);

static int copy_value(const void *value, void *out)
{
    memcpy(out, value, sizeof(struct lineage_value));
    return 0;
}

static void read_lineage(const struct store *s, int fd, struct lineage_value *v)
{
    char why[MSG_MAX];
    int err = 0;
    xmlDocPtr doc = xmlsafe_parse_fd(fd, "domain", &err, why, sizeof(why));
    struct clone_lineage l;
    (void)s;
    v->source[0] = '\0';
    if (doc && cloneid_read_lineage(doc, &l) == 0)
        snprintf(v->source, sizeof(v->source), "%s", l.source);
    if (doc)
        xmlFreeDoc(doc);
}

static int clonelist_source(const struct store *s, const char *vm, char *out, size_t outsz)
{
    char path[PATH_MAX], why[MSG_MAX];
    out[0] = '\0';
    if (store_vm_path(s, vm, "domain.xml", path, sizeof(path)) < 0)
        return -ENAMETOOLONG;
    struct stat st;
    int r = store_lstat(s, path, &st);
    if (r < 0 || !S_ISREG(st.st_mode))
        return r < 0 ? r : -ENOENT;
    struct lineage_value v;
    if (statcache_get(&cache, &st, copy_value, &v) != 0) {
        int fd = store_open_read(s, path, why, sizeof(why));
        if (fd < 0)
            return fd;
        /* Keyed on what the open file is, not what stat saw before. */
        if (fstat(fd, &st) < 0) {
            close(fd);
            return -errno;
        }
        read_lineage(s, fd, &v);
        close(fd);
        struct lineage_value *kept = malloc(sizeof(*kept));
        if (kept) {
            *kept = v;
            statcache_put(&cache, &st, kept, sizeof(*kept));
        }
    }
    return (size_t)snprintf(out, outsz, "%s", v.source) < outsz ? 0 : -ENAMETOOLONG;
}

bool clonelist_is_clone(const struct store *s, const char *vm, const char *clone)
{
    char src[NAME_MAX_LEN + 1];
    return clonelist_source(s, clone, src, sizeof(src)) == 0 && strcmp(src, vm) == 0;
}

struct each_ctx {
    const struct store *s;
    const char *vm;
    store_name_fn fn;
    void *ctx;
};

static int each_vm(const char *name, void *p)
{
    struct each_ctx *e = p;
    return clonelist_is_clone(e->s, e->vm, name) ? e->fn(name, e->ctx) : 0;
}

int clonelist_each(const struct store *s, const char *vm, store_name_fn fn, void *ctx)
{
    struct each_ctx e = { s, vm, fn, ctx };
    return store_list_vms(s, each_vm, &e);
}

