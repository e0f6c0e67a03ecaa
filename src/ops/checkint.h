/* checkint: what the check's files share (not for use outside
 * ops/check*.c): the report, and one VM as the check reads it. */
#ifndef VMSTOREFS_CHECKINT_H
#define VMSTOREFS_CHECKINT_H

#include "ops/check.h"
#include "util/names.h"

#include <libxml/tree.h>
#include <stdbool.h>
#include <sys/stat.h>

enum cnode_kind { N_ACTIVE, N_FROZEN, N_HIDDEN, N_OTHER };

/* One image file of the VM (or a file a backing name reaches). */
struct cnode {
    char path[PATH_MAX];
    char dev[DEV_MAX_LEN + 1]; /* from its file name "<dev>.qcow2"; "" otherwise */
    char dir[NAME_MAX + 1]; /* its snapshots/ directory (S or .hidden-x), "" otherwise */
    enum cnode_kind kind;
    bool exists;
    bool stray; /* found in disks/ or snapshots/ and not an image: never read */
    bool raw; /* reached as a raw backing file: no header to read */
    bool header_ok; /* qcow2, and its header passed */
    bool broken; /* its backing name is refused or names nothing: its chain ends badly */
    char backing[PATH_MAX]; /* resolved backing file, "" when none (or refused) */
    char backing_fmt[16];
    int parent; /* index, -1 */
    int ndeps;
    int mark; /* walk stamps (checkimg.c) */
    bool loop_said;
    bool referenced; /* named by XML (a snapshot's <disks>, domain.xml) */
    long missing; /* index of its backing-missing finding in the report, -1 */
    struct stat st;
};

/* A snapshot directory of the VM. */
struct csnap {
    char name[NAME_MAX + 1];
    bool hidden;
    bool has_xml; /* snapshot.xml is there (parsed or not) */
    bool xml_ok;
    char parent[NAME_MAX + 1]; /* <parent> of its snapshot.xml, "" */
    char xml_name[NAME_MAX + 1]; /* <name> of its snapshot.xml, "" */
};

struct cvm {
    const struct store *s;
    const struct check_opts *o;
    struct check_report *rep;
    const char *vm;
    char dir[PATH_MAX]; /* STORE/<vm> */
    bool defined; /* domain.xml exists */
    xmlDocPtr dom; /* domain.xml parsed (and safe), NULL otherwise */
    bool dom_ok; /* and read as a domain: its disks are known */
    struct cnode *n;
    size_t count, cap;
    struct csnap *snaps;
    size_t nsnaps, capsnaps;
};

/* A list of names read from a directory (before anything changes it):
 * check_names_add is a store_name_fn / storeio_each callback. */
struct check_names {
    char **v;
    size_t n, cap;
};
int check_names_add(const char *name, void *list);
void check_names_free(struct check_names *l);

/* check.c: a finding (file may be NULL: the VM's directory); the new
 * finding, or NULL when the kind is disabled or memory ran out. */
struct check_finding *check_add(struct check_report *rep, enum check_kind k, const char *vm,
                                const char *file, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Sets what the repair did (repaired) or why it left the finding. */
void check_action(struct check_finding *f, bool repaired, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void check_oper(struct check_report *rep, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* checkimg.c */
int cvm_find(const struct cvm *v, const char *path);
/* Every image of the VM and what its backing names reach: the findings
 * of headers, backing names, the graph (loops, depth, missing, shared
 * parents) and modes. */
int check_images(struct cvm *v);
/* After the XML (which names the snapshots' directories): with repair,
 * the relinks of missing backing files (checkfix.c). */
void check_relinks(struct cvm *v);
/* After the XML (which marks what it references): orphans. */
void check_orphans(struct cvm *v);
/* qemu-img check of every qcow2 image whose header passed (repair: -r
 * leaks where it found leaks). */
void check_qemu(struct cvm *v);
void cvm_free(struct cvm *v);

/* checkxml.c */
void check_domain_xml(struct cvm *v);
void check_snapshot_xml(struct cvm *v);
/* The identities of every VM (uuid, MACs, name) compared across the store. */
struct check_ids;
struct check_ids *check_ids_new(void);
void check_ids_add(struct check_ids *ids, struct cvm *v);
void check_ids_report(struct check_ids *ids, struct check_report *rep);
void check_ids_free(struct check_ids *ids);

/* checkfix.c: keeps writers off node i's image while a repair changes
 * or moves it: qemu's lock (imagelock.h: -EBUSY while a qemu has it),
 * and for an active image the writer mark every mount takes for a handle
 * open for writing (vmlock.h: -EBUSY while one is). *why says which.
 * check_release lets go of both. */
struct check_hold {
    int image;
    int writers;
};
int check_hold(struct cvm *v, int i, struct check_hold *h, const char **why);
void check_release(struct check_hold *h);

/* checkfix.c: repairs (under the VM's lock, exclusive). Each sets the
 * finding's action. */
void fix_relink(struct cvm *v, struct check_finding *f, int node);
void fix_snapshot_xml(struct cvm *v, struct check_finding *f, const char *snap);
void fix_orphan(struct cvm *v, struct check_finding *f, int node);
/* The snapshot.xml of snap as the take writes it, from the images in its
 * directory, their chains and v->dom (description may be NULL; created 0:
 * the images' oldest mtime). */
int check_build_snapshot(struct cvm *v, const char *snap, const char *description, int64_t created,
                         xmlDocPtr *out, char *why, size_t whysz);
/* The snapshot node k's chain grows from (the first visible snapshot's
 * image below it); NULL when none. */
const char *check_parent_snapshot(const struct cvm *v, int k);

#endif
