#include "config.h"

#include "vm/macscan.h"

#include "meta/xmlsafe.h"
#include "store/storeio.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

struct collect {
    const struct store *s;
    const char *vm;
    struct mac_set *set;
};

/* Adds the MACs of the <domain> in the file at path (root element
 * `root_name`; for a snapshot, the <domain> inside it). A missing or
 * refused file adds nothing. */
static int collect_file(struct collect *c, const char *path, const char *root_name)
{
    char why[256];
    int fd = store_open_read(c->s, path, why, sizeof(why));
    if (fd < 0)
        return 0;
    int err;
    xmlDocPtr doc = xmlsafe_parse_fd(fd, root_name, &err, why, sizeof(why));
    close(fd);
    if (!doc)
        return err == -ENOMEM ? err : 0;
    xmlNodePtr dom = xmlDocGetRootElement(doc);
    if (strcmp(root_name, "domain") != 0)
        dom = xml_child(dom, "domain");
    int r = mac_set_add_domain(c->set, dom);
    xmlFreeDoc(doc);
    return r;
}

static int collect_snap(const char *snap, void *ctx)
{
    struct collect *c = ctx;
    char path[PATH_MAX];
    if (store_snap_path(c->s, c->vm, snap, "snapshot.xml", path, sizeof(path)) < 0)
        return 0;
    return collect_file(c, path, "domainsnapshot");
}

static int collect_vm(const char *vm, void *ctx)
{
    struct collect *c = ctx;
    char path[PATH_MAX];
    c->vm = vm;
    if (store_vm_path(c->s, vm, "domain.xml", path, sizeof(path)) < 0)
        return 0;
    int r = collect_file(c, path, "domain");
    return r ? r : store_list_snapshots(c->s, vm, collect_snap, c);
}

/* Definitions prepared and not yet in the store: tmp/<id>/<N>/domain.xml
 * (where a clone writes its own before it copies: clone.c). */
struct prepared {
    struct collect *c;
    char dir[PATH_MAX];
};

static int collect_prepared(const char *name, void *ctx)
{
    struct prepared *p = ctx;
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s/domain.xml", p->dir, name) >= sizeof(path))
        return 0;
    return collect_file(p->c, path, "domain");
}

static int collect_operation(const char *id, void *ctx)
{
    struct prepared *tmp = ctx, op = { .c = tmp->c };
    if ((size_t)snprintf(op.dir, sizeof(op.dir), "%s/%s", tmp->dir, id) >= sizeof(op.dir))
        return 0;
    int r = storeio_each(tmp->c->s, op.dir, collect_prepared, &op);
    return r == -ENOMEM ? r : 0; /* a file, or gone meanwhile: nothing */
}

int macscan_collect(const struct store *s, struct mac_set *out)
{
    memset(out, 0, sizeof(*out));
    struct collect c = { .s = s, .set = out };
    struct prepared tmp = { .c = &c };
    int r = store_list_vms(s, collect_vm, &c);
    if (r == 0 && (size_t)snprintf(tmp.dir, sizeof(tmp.dir), "%s/" STORE_META_DIR "/tmp",
                                   s->root) < sizeof(tmp.dir))
        r = storeio_each(s, tmp.dir, collect_operation, &tmp);
    if (r < 0)
        mac_set_free(out);
    return r;
}
