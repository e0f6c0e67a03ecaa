/* imagegraph: every image of one VM and what backs onto what.
 *
 * The nodes are the VM's active images (disks/<dev>.qcow2), the frozen
 * images of its snapshots (snapshots/<S>/<dev>.qcow2), the hidden ones
 * (snapshots/.hidden-<id>/<dev>.qcow2: images of deleted snapshots that
 * other images still need, which the view never shows, as it shows no
 * dot-named entry), and whatever else their chains reach (a raw base).
 * Each node knows its parent (its backing file); the dependents of a node
 * are the nodes whose parent it is. Deleting plans its merges on this
 * graph, changing it as the plan goes, and writes every XML chain from
 * the graph as it will be. */
#ifndef VMSTOREFS_IMAGEGRAPH_H
#define VMSTOREFS_IMAGEGRAPH_H
#include "util/names.h"
#include "store/store.h"
#include "meta/xmledit.h"
#include <stdbool.h>
#include <stdint.h>

#define HIDDEN_PREFIX HIDDEN_DIR_PREFIX

enum gkind { G_ACTIVE, G_FROZEN, G_HIDDEN, G_OTHER };

struct gnode {
    char path[PATH_MAX];
    char format[16];
    char dev[DEV_MAX_LEN + 1]; /* "" for G_OTHER */
    char dir[NAME_MAX + 1]; /* the snapshots/ directory: S, or .hidden-<id> */
    enum gkind kind;
    int parent; /* index, -1 when standalone */
    uint64_t alloc; /* bytes allocated on disk (what a merge would copy) */
    bool gone; /* removed by the plan */
    bool held; /* the plan holds its image lock (delplan.h) */
    /* Names of its file (st_nlink): more than one means a hard link
     * elsewhere (another VM's image, a copy made with ln) reads and may
     * write the same data, which no plan may then write into. This is
     * the one way another VM can share an image: a backing name
     * resolves only inside its own VM's directory (chain.h), so no
     * other VM's chain reaches this VM's images and no plan needs to
     * look at other VMs (its cost stays that of this VM). */
    unsigned links;
    /* Will qemu-img open it (igraph_check_open)? 0 not asked yet, 1 yes,
     * -1 no: why says why. Asked of the file the node stands for when
     * the graph was read, wherever a plan moves it. */
    int fit;
    char *why;
};

struct igraph {
    struct gnode *n;
    size_t count, cap;
};

/* Reads every image of vm and its chain (chain_walk: each link checked).
 * A broken chain is -EINVAL/-EACCES/-ENOENT with the image named. */
int igraph_build(const struct store *s, const char *vm, struct igraph *g, char *msg,
                 size_t msgsz);
void igraph_free(struct igraph *g);
/* Will qemu-img open node i's image (qcow2check.h; a raw image: yes)?
 * 0, or -EINVAL with "path: reason" in msg. Asked once per node, of its
 * file as it is now: call it before a plan moves the file. */
int igraph_check_open(const struct store *s, struct igraph *g, int i, char *msg, size_t msgsz);
/* Index of the node at path, -1 when none. */
int igraph_find(const struct igraph *g, const char *path);
/* The live dependents of node i: how many, the first max of them in out. */
size_t igraph_dependents(const struct igraph *g, int i, int *out, size_t max);
/* The chain below node i as XML links (into g), nearest first. */
struct xml_chain_link *igraph_chain(const struct igraph *g, int i, size_t *n);
/* The directory of node i's file (its path up to the last '/'). */
void igraph_dir(const struct gnode *node, char *out, size_t outsz);
#endif
