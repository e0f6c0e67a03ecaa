#include "config.h"

#include "view/bases.h"

#include "util/log.h"
#include "vm/imagegraph.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

enum base_kind bases_lookup(const struct store *s, const char *vm, const char *path, char *fmt,
                            size_t fmtsz)
{
    char vmdir[PATH_MAX], msg[MSG_MAX];
    struct igraph g;
    if (store_vm_path(s, vm, NULL, vmdir, sizeof(vmdir)) < 0 ||
        igraph_build(s, vm, &g, msg, sizeof(msg)) < 0)
        return BASE_NONE;
    size_t vl = strlen(vmdir), pl = strlen(path);
    enum base_kind k = BASE_NONE;
    for (size_t i = 0; i < g.count && k != BASE_FILE; i++) {
        const struct gnode *nd = &g.n[i];
        /* Another VM's file is that VM's to serve, where its layout has it. */
        if (nd->kind != G_OTHER || strncmp(nd->path, vmdir, vl) != 0 || nd->path[vl] != '/')
            continue;
        if (strcmp(nd->path, path) == 0) {
            k = BASE_FILE;
            snprintf(fmt, fmtsz, "%s", nd->format);
        } else if (strncmp(nd->path, path, pl) == 0 && nd->path[pl] == '/') {
            k = BASE_DIR;
        }
    }
    igraph_free(&g);
    return k;
}

int bases_list(const struct store *s, const char *vm, const char *dir,
               int (*fill)(void *ctx, const char *name, mode_t type), void *ctx)
{
    char vmdir[PATH_MAX], msg[MSG_MAX];
    struct igraph g;
    if (store_vm_path(s, vm, NULL, vmdir, sizeof(vmdir)) < 0 ||
        igraph_build(s, vm, &g, msg, sizeof(msg)) < 0)
        return 0;
    size_t vl = strlen(vmdir), dl = strlen(dir);
    int r = 0;
    for (size_t i = 0; r == 0 && i < g.count; i++) {
        const struct gnode *nd = &g.n[i];
        if (nd->kind != G_OTHER || strncmp(nd->path, vmdir, vl) != 0 || nd->path[vl] != '/' ||
            strncmp(nd->path, dir, dl) != 0 || nd->path[dl] != '/')
            continue;
        /* The next component below dir, once (the first node that has it). */
        const char *name = nd->path + dl + 1;
        size_t nl = strcspn(name, "/");
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++) {
            const struct gnode *o = &g.n[k];
            seen = o->kind == G_OTHER && strncmp(o->path, nd->path, dl + 1 + nl) == 0 &&
                   (o->path[dl + 1 + nl] == '/' || o->path[dl + 1 + nl] == '\0');
        }
        if (seen)
            continue;
        char one[NAME_MAX + 1];
        snprintf(one, sizeof(one), "%.*s", (int)nl, name);
        r = fill(ctx, one, name[nl] ? S_IFDIR : S_IFREG);
    }
    igraph_free(&g);
    return r;
}
