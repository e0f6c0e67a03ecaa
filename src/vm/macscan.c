#include "config.h"

#include "vm/macscan.h"

#include "meta/xmlsafe.h"

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

int macscan_collect(const struct store *s, struct mac_set *out)
{
    memset(out, 0, sizeof(*out));
    struct collect c = { .s = s, .set = out };
    int r = store_list_vms(s, collect_vm, &c);
    if (r < 0)
        mac_set_free(out);
    return r;
}
