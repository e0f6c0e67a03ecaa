/* nodetable: the inodes the kernel holds of the mount, for the FUSE layer.
 *
 * The kernel asks about an inode, not a path. With libfuse's path API an
 * inode is whatever its path names when the request comes, so once the
 * daemon (a snapshot, a merge) or anyone in the store replaces the file at
 * a path, fstat, fchmod, fchown and futimens on a descriptor opened before
 * act on the new file: the kernel sends those without the open handle.
 *
 * Here a node is bound to the name it was looked up under AND to the file
 * it was then (its identity: the store file's device and inode for a
 * regular file, the file type for the rest, which are functions of their
 * path). A request on a node whose name now names another file finds the
 * node displaced: it answers from the node's open handles, or with ESTALE,
 * which makes the kernel look the name up again (and get a new node). A
 * lookup that finds another file under a bound name displaces the old node
 * and binds a new one. Displaced nodes live on until the kernel forgets
 * them and their last handle closes.
 *
 * FUSE-free; thread-safe (one mutex). Node ids are never reused, so the
 * kernel's (id, generation 0) is unique for the mount's lifetime. */
#ifndef VMSTOREFS_NODETABLE_H
#define VMSTOREFS_NODETABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define NODE_ROOT 1 /* FUSE_ROOT_ID */

struct node_ident {
    mode_t type; /* S_IFMT bits */
    dev_t dev; /* regular files: the store file behind them; else 0 */
    ino_t ino;
};

/* The identity a node looked up with these attributes has. */
void node_ident_of(const struct stat *st, struct node_ident *id);
bool node_ident_same(const struct node_ident *a, const struct node_ident *b);

struct nodetable;

/* NULL when out of memory. The root is node NODE_ROOT, bound to "/". */
struct nodetable *nodetable_new(void);
void nodetable_free(struct nodetable *t);

/* The node NAME in PARENT is, as the kernel is about to learn it: the
 * bound one if it is still the file ID describes (its lookup count goes
 * up), else a new node (the old one is displaced). 0, -ENOENT (no such
 * parent), -ESTALE (the parent is displaced) or -ENOMEM. */
int nodetable_lookup(struct nodetable *t, uint64_t parent, const char *name,
                     const struct node_ident *id, uint64_t *out);

/* The kernel dropped N of its lookups of the node. */
void nodetable_forget(struct nodetable *t, uint64_t id, uint64_t n);

/* The mount path of a bound node ("/" for the root); of NAME in it.
 * -ESTALE when the node or a directory above it is displaced or removed,
 * -ENOENT when the kernel names a node it never got, -ENAMETOOLONG. */
int nodetable_path(struct nodetable *t, uint64_t id, char *buf, size_t size);
int nodetable_child_path(struct nodetable *t, uint64_t parent, const char *name, char *buf,
                         size_t size);

/* Whether the node is still the file NOW describes. If not, it is
 * displaced (unbound from its name) and false is returned. */
bool nodetable_confirm(struct nodetable *t, uint64_t id, const struct node_ident *now);

/* NAME in PARENT was removed: its node (if any) is unbound. */
void nodetable_removed(struct nodetable *t, uint64_t parent, const char *name);

/* NAME moved from one directory to another (what stood at the target is
 * unbound); with EXCHANGE the two swap. -ENOMEM leaves both unbound. */
int nodetable_renamed(struct nodetable *t, uint64_t from_parent, const char *from_name,
                      uint64_t to_parent, const char *to_name, bool exchange);

/* The bound node a mount path names, if the kernel holds one. */
int nodetable_find(struct nodetable *t, const char *path, uint64_t *id);

/* Open handles of a node (opaque to the table): one handle answers for
 * the node once it is displaced: the earliest of those opened FIRST (a
 * writer's, whose rights outlive the name), else the earliest. */
int nodetable_open(struct nodetable *t, uint64_t id, void *handle, bool first);
void nodetable_close(struct nodetable *t, uint64_t id, void *handle);

/* FN(handle, ARG) on one open handle of the node, under the table's lock
 * (so the handle is not released meanwhile); its result, or -ENOENT when
 * the node has no open handle. */
int nodetable_with_handle(struct nodetable *t, uint64_t id, int (*fn)(void *handle, void *arg),
                          void *arg);

/* For tests and the debug log: nodes alive, and bound ones. */
size_t nodetable_count(struct nodetable *t, size_t *bound);

#endif
