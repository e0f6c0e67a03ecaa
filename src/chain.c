/* INTERIM (replaced by the header-reading chain.c): qemu-img info. */
#include "config.h"

#include "chain.h"

#include "qimg.h"
#include "spawn.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int chain_backing(const struct store *s, const char *path, struct backing_info *out, char *msg,
                  size_t msgsz)
{
    memset(out, 0, sizeof(*out));
    struct qimg_info info;
    int r = qimg_info(s->qemu_img, path, &info, msg, msgsz);
    if (r < 0)
        return r;
    if (info.backing_filename) {
        snprintf(out->name, sizeof(out->name), "%s", info.backing_filename);
        if (snprintf(out->format, sizeof(out->format), "%s", info.backing_format) < 0)
            return -EINVAL;
        char dir[PATH_MAX], tmp[PATH_MAX * 2];
        snprintf(dir, sizeof(dir), "%s", path);
        snprintf(tmp, sizeof(tmp), "%s/%s", dirname(dir), info.backing_filename);
        if (!realpath(tmp, out->path))
            if (snprintf(out->path, sizeof(out->path), "%s", tmp) < 0)
                return -EINVAL;
    }
    qimg_info_clear(&info);
    return 0;
}

int chain_walk(const struct store *s, const char *path, struct chain *out, char *msg,
               size_t msgsz)
{
    out->links = calloc(CHAIN_MAX_DEPTH, sizeof(*out->links));
    out->n = 0;
    char cur[PATH_MAX], fmt[16] = "qcow2";
    snprintf(cur, sizeof(cur), "%s", path);
    for (;;) {
        struct chain_link *l = &out->links[out->n++];
        snprintf(l->path, sizeof(l->path), "%s", cur);
        snprintf(l->format, sizeof(l->format), "%s", fmt);
        if (strcmp(fmt, "raw") == 0)
            return 0;
        struct backing_info b;
        int r = chain_backing(s, cur, &b, msg, msgsz);
        if (r < 0) {
            chain_free(out);
            return r;
        }
        if (!b.name[0])
            return 0;
        snprintf(cur, sizeof(cur), "%s", b.path);
        snprintf(fmt, sizeof(fmt), "%s", b.format);
    }
}

void chain_free(struct chain *c)
{
    free(c->links);
    c->links = NULL;
    c->n = 0;
}
