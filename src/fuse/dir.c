/* Directory listings: an open directory's entries, read once per pass
 * and handed out by offset; the ghosts (ghost.h) of a walk. */
#include "config.h"

#include "fuse/node.h"
#include "fuse/handlers.h"

#include "view/ghost.h"
#include "vm/bgmerge.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* An open directory: its entries, read once per pass (offset 0) and then
 * handed out by index, so a listing is one consistent snapshot even when
 * the kernel asks in several chunks. The first read of an open may come
 * at another offset (seekdir to a telldir of an earlier open): it reads
 * the entries too. A process with a VM's directory open is walking it
 * (ghost.h); a ghost directory lists its ghosts. */
struct dirh {
    struct vpath vp;
    pid_t pid;
    bool walker;
    bool ghost;
    bool filled; /* names/types hold a pass */
    char path[PATH_MAX];
    char **names;
    mode_t *types;
    size_t n, cap;
};

static void dir_clear(struct dirh *dh)
{
    for (size_t i = 0; i < dh->n; i++)
        free(dh->names[i]);
    dh->n = 0;
}

static int dir_add(void *p, const char *name, mode_t type)
{
    struct dirh *dh = p;
    if (dh->n == dh->cap) {
        size_t cap = dh->cap ? dh->cap * 2 : 32;
        char **names = realloc(dh->names, cap * sizeof(*names));
        if (!names)
            return -ENOMEM;
        dh->names = names;
        mode_t *types = realloc(dh->types, cap * sizeof(*types));
        if (!types)
            return -ENOMEM;
        dh->types = types;
        dh->cap = cap;
    }
    if (!(dh->names[dh->n] = strdup(name)))
        return -ENOMEM;
    dh->types[dh->n++] = type;
    return 0;
}

static int dir_fill(struct dirh *dh)
{
    dir_clear(dh);
    if (!dh->ghost)
        return view_readdir(st_of(), &dh->vp, dir_add, dh);
    int r = dir_add(dh, ".", S_IFDIR);
    if (r == 0)
        r = dir_add(dh, "..", S_IFDIR);
    if (r == 0)
        ghost_list(dh->pid, dh->path, dir_add, dh);
    return r;
}

void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    ops_req = req;
    struct dirh *dh = calloc(1, sizeof(*dh));
    if (!dh) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    dh->pid = ctx()->pid;
    struct stat st;
    int r = nodetable_path(ops_nodes, ino, dh->path, sizeof(dh->path));
    if (r == 0)
        r = ops_parse(dh->path, &dh->vp);
    if (r == 0)
        r = view_getattr(st_of(), &dh->vp, &st);
    else if (r == -ENOENT && view_base_dir(st_of(), dh->path, &dh->vp, &st) == 0)
        r = 0; /* a directory on the way to a chain's base (vpath.h) */
    if (r == -ENOENT && ops_ghost_attr(dh->path, &st) == 0) {
        dh->ghost = true;
        r = 0;
    }
    struct node_ident now;
    if (r == 0)
        node_ident_of(&st, &now);
    if (r == 0 && !nodetable_confirm(ops_nodes, ino, &now))
        r = -ESTALE;
    if (r == 0 && !S_ISDIR(st.st_mode))
        r = -ENOTDIR;
    if (r < 0) {
        free(dh);
        fuse_reply_err(req, -r);
        return;
    }
    /* Any directory of a VM: rm -r and find keep the ones above open as
     * they descend (bgmerge.h waits for walkers). */
    if (!dh->ghost && dh->vp.kind != V_ROOT && dh->vp.kind != V_JOBS) {
        ghost_walker_open(dh->pid, dh->vp.vm);
        dh->walker = true;
    }
    fi->fh = (uintptr_t)dh;
    if (fuse_reply_open(req, fi) < 0) {
        if (dh->walker)
            ghost_walker_close(dh->pid, dh->vp.vm);
        free(dh);
    }
}

/* fsync of a VM's directory (or one inside it), as `sync VMDIR` does:
 * returns when the VM's background merges are done (bgmerge.h), with
 * the error of an attempt that failed meanwhile (it is retried). */
void ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino;
    (void)datasync;
    ops_req = req;
    const struct dirh *dh = (const struct dirh *)(uintptr_t)fi->fh;
    int r = 0;
    if (!dh->ghost && dh->vp.kind != V_ROOT && dh->vp.kind != V_JOBS)
        r = bgmerge_wait(dh->vp.vm, ops_request_cancelled, req);
    fuse_reply_err(req, r == -ESHUTDOWN ? EIO : -r);
}

void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    struct dirh *dh = (struct dirh *)(uintptr_t)fi->fh;
    if (dh->walker)
        ghost_walker_close(dh->pid, dh->vp.vm);
    dir_clear(dh);
    free(dh->names);
    free(dh->types);
    free(dh);
    fuse_reply_err(req, 0);
}

void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)ino;
    ops_req = req;
    struct dirh *dh = (struct dirh *)(uintptr_t)fi->fh;
    int r = off == 0 || !dh->filled ? dir_fill(dh) : 0;
    dh->filled = r == 0;
    char *buf = r == 0 ? malloc(size ? size : 1) : NULL;
    if (r < 0 || !buf) {
        fuse_reply_err(req, r < 0 ? -r : ENOMEM);
        return;
    }
    size_t pos = 0;
    for (size_t i = (size_t)off; i < dh->n; i++) {
        struct stat st = { .st_ino = UNKNOWN_INO, .st_mode = dh->types[i] };
        size_t len = fuse_add_direntry(req, buf + pos, size - pos, dh->names[i], &st, (off_t)i + 1);
        if (len > size - pos)
            break;
        pos += len;
    }
    fuse_reply_buf(req, buf, pos);
    free(buf);
}
