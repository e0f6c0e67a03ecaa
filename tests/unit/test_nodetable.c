/* Unit tests for nodetable: a node stays the file it was looked up as.
 * Lookups of the same file reuse the node; another file under the name
 * displaces it (a new node, the old one answers through its handles);
 * paths follow renames and removals; nodes go only when forgotten, closed
 * and childless; ids are never reused. */
#include "config.h"

#include "check.h"
#include "fuse/nodetable.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>

static struct node_ident file_id(ino_t ino)
{
    struct node_ident id = { .type = S_IFREG, .dev = 8, .ino = ino };
    return id;
}

static struct node_ident dir_id(void)
{
    struct node_ident id = { .type = S_IFDIR };
    return id;
}

static uint64_t look(struct nodetable *t, uint64_t parent, const char *name, struct node_ident id)
{
    uint64_t out = 0;
    CHECK_INT(nodetable_lookup(t, parent, name, &id, &out), 0);
    return out;
}

static const char *path_of(struct nodetable *t, uint64_t id)
{
    static char buf[PATH_MAX];
    int r = nodetable_path(t, id, buf, sizeof(buf));
    if (r < 0)
        snprintf(buf, sizeof(buf), "error %d", r);
    return buf;
}

static void test_ident(void)
{
    struct stat a = { .st_mode = S_IFREG | 0644, .st_dev = 1, .st_ino = 2 };
    struct stat b = a, d = { .st_mode = S_IFDIR | 0755, .st_dev = 1, .st_ino = 3 };
    struct stat d2 = { .st_mode = S_IFDIR | 0700, .st_dev = 1, .st_ino = 4 };
    b.st_ino = 5;
    struct node_ident ia, ib, id, id2;
    node_ident_of(&a, &ia);
    node_ident_of(&b, &ib);
    node_ident_of(&d, &id);
    node_ident_of(&d2, &id2);
    CHECK(!node_ident_same(&ia, &ib)); /* another store file */
    CHECK(node_ident_same(&id, &id2)); /* a directory is its path */
    CHECK(!node_ident_same(&ia, &id));
}

static void test_paths_and_reuse(void)
{
    struct nodetable *t = nodetable_new();
    CHECK_STR(path_of(t, NODE_ROOT), "/");
    uint64_t vm = look(t, NODE_ROOT, "vm1", dir_id());
    uint64_t disks = look(t, vm, "disks", dir_id());
    uint64_t img = look(t, disks, "vda.qcow2", file_id(10));
    CHECK_STR(path_of(t, img), "/vm1/disks/vda.qcow2");
    CHECK(look(t, disks, "vda.qcow2", file_id(10)) == img);
    char buf[PATH_MAX];
    CHECK_INT(nodetable_child_path(t, disks, "vdb.qcow2", buf, sizeof(buf)), 0);
    CHECK_STR(buf, "/vm1/disks/vdb.qcow2");
    CHECK_INT(nodetable_child_path(t, NODE_ROOT, "vm2", buf, sizeof(buf)), 0);
    CHECK_STR(buf, "/vm2");
    CHECK_INT(nodetable_path(t, img, buf, 8), -ENAMETOOLONG);
    CHECK_INT(nodetable_path(t, 999, buf, sizeof(buf)), -ENOENT);
    uint64_t found = 0;
    CHECK_INT(nodetable_find(t, "/vm1/disks/vda.qcow2", &found), 0);
    CHECK(found == img);
    CHECK_INT(nodetable_find(t, "/vm1/disks/vdb.qcow2", &found), -ENOENT);
    CHECK_INT(nodetable_find(t, "/", &found), 0);
    CHECK(found == NODE_ROOT);
    size_t bound;
    CHECK_INT(nodetable_count(t, &bound), 3);
    CHECK_INT(bound, 3);
    nodetable_free(t);
}

static int handle_tag(void *h, void *arg)
{
    *(const char **)arg = h;
    return 0;
}

/* The case the table exists for: an open image replaced at its path. */
static void test_displaced_by_lookup(void)
{
    struct nodetable *t = nodetable_new();
    uint64_t vm = look(t, NODE_ROOT, "vm1", dir_id());
    uint64_t old = look(t, vm, "domain.xml", file_id(10));
    char opened[] = "opened";
    CHECK_INT(nodetable_open(t, old, opened, false), 0);
    uint64_t fresh = look(t, vm, "domain.xml", file_id(11));
    CHECK(fresh != old);
    char buf[PATH_MAX];
    CHECK_INT(nodetable_path(t, old, buf, sizeof(buf)), -ESTALE);
    CHECK_STR(path_of(t, fresh), "/vm1/domain.xml");
    const char *got = NULL;
    CHECK_INT(nodetable_with_handle(t, old, handle_tag, &got), 0);
    CHECK_STR(got, "opened");
    CHECK_INT(nodetable_with_handle(t, fresh, handle_tag, &got), -ENOENT);
    /* Forgotten but still open: it stays for its handle. */
    nodetable_forget(t, old, 1);
    CHECK_INT(nodetable_with_handle(t, old, handle_tag, &got), 0);
    nodetable_close(t, old, opened);
    CHECK_INT(nodetable_with_handle(t, old, handle_tag, &got), -ENOENT);
    CHECK_INT(nodetable_count(t, NULL), 2);
    /* A later node never gets a freed id. */
    nodetable_forget(t, fresh, 1);
    uint64_t again = look(t, vm, "domain.xml", file_id(11));
    CHECK(again > fresh);
    nodetable_free(t);
}

static void test_confirm(void)
{
    struct nodetable *t = nodetable_new();
    uint64_t vm = look(t, NODE_ROOT, "vm1", dir_id());
    uint64_t img = look(t, vm, "disks", dir_id());
    uint64_t a = look(t, img, "vda.qcow2", file_id(10));
    struct node_ident same = file_id(10), other = file_id(12), link = { .type = S_IFLNK };
    CHECK(nodetable_confirm(t, a, &same));
    CHECK(!nodetable_confirm(t, a, &other));
    char buf[PATH_MAX];
    CHECK_INT(nodetable_path(t, a, buf, sizeof(buf)), -ESTALE);
    /* A clone's mkdir answers a directory; the name is a link after. */
    uint64_t c = look(t, vm, "c1", dir_id());
    CHECK(!nodetable_confirm(t, c, &link));
    uint64_t l = look(t, vm, "c1", link);
    CHECK(l != c);
    CHECK(nodetable_confirm(t, NODE_ROOT, &link)); /* the root is the root */
    nodetable_free(t);
}

static void test_rename_and_remove(void)
{
    struct nodetable *t = nodetable_new();
    uint64_t vm = look(t, NODE_ROOT, "vm1", dir_id());
    uint64_t snaps = look(t, vm, "snapshots", dir_id());
    uint64_t s1 = look(t, snaps, "s1", dir_id());
    uint64_t img = look(t, s1, "vda.qcow2", file_id(20));
    uint64_t s2 = look(t, snaps, "s2", dir_id());
    /* mv s1 s2 (over an empty s2): children follow their directory. */
    CHECK_INT(nodetable_renamed(t, snaps, "s1", snaps, "s2", false), 0);
    CHECK_STR(path_of(t, s1), "/vm1/snapshots/s2");
    CHECK_STR(path_of(t, img), "/vm1/snapshots/s2/vda.qcow2");
    char buf[PATH_MAX];
    CHECK_INT(nodetable_path(t, s2, buf, sizeof(buf)), -ESTALE);
    /* Exchange across directories. */
    uint64_t cur = look(t, vm, "current", (struct node_ident){ .type = S_IFLNK });
    uint64_t tmp = look(t, s1, "x", (struct node_ident){ .type = S_IFLNK });
    CHECK_INT(nodetable_renamed(t, vm, "current", s1, "x", true), 0);
    CHECK_STR(path_of(t, cur), "/vm1/snapshots/s2/x");
    CHECK_STR(path_of(t, tmp), "/vm1/current");
    /* rm: the node is unbound; its directory's children are unreachable. */
    nodetable_removed(t, snaps, "s2");
    CHECK_INT(nodetable_path(t, s1, buf, sizeof(buf)), -ESTALE);
    CHECK_INT(nodetable_path(t, img, buf, sizeof(buf)), -ESTALE);
    struct node_ident f = file_id(21);
    uint64_t out;
    CHECK_INT(nodetable_lookup(t, s1, "vdb.qcow2", &f, &out), -ESTALE);
    CHECK_INT(nodetable_lookup(t, 4242, "vdb.qcow2", &f, &out), -ENOENT);
    nodetable_free(t);
}

/* Nodes go when the kernel forgets them, children last-first; the
 * lookup count is summed over lookups. */
static void test_forget(void)
{
    struct nodetable *t = nodetable_new();
    uint64_t vm = look(t, NODE_ROOT, "vm1", dir_id());
    uint64_t disks = look(t, vm, "disks", dir_id());
    look(t, disks, "vda.qcow2", file_id(1));
    uint64_t img = look(t, disks, "vda.qcow2", file_id(1));
    nodetable_forget(t, vm, 1);
    nodetable_forget(t, disks, 1);
    CHECK_INT(nodetable_count(t, NULL), 3); /* the image still names them */
    nodetable_forget(t, img, 1);
    CHECK_STR(path_of(t, img), "/vm1/disks/vda.qcow2");
    nodetable_forget(t, img, 1);
    CHECK_INT(nodetable_count(t, NULL), 0);
    nodetable_forget(t, img, 1); /* unknown: ignored */
    nodetable_forget(t, NODE_ROOT, 1);
    CHECK_STR(path_of(t, NODE_ROOT), "/");
    nodetable_free(t);
}

/* A writer's handle answers before readers, whenever it was opened;
 * among readers the earliest. */
static void test_handle_order(void)
{
    struct nodetable *t = nodetable_new();
    uint64_t img = look(t, NODE_ROOT, "vda.qcow2", file_id(1));
    char r1[] = "reader1", w1[] = "writer1", r2[] = "reader2", w2[] = "writer2";
    const char *got = NULL;
    CHECK_INT(nodetable_open(t, img, r1, false), 0);
    CHECK_INT(nodetable_open(t, img, w1, true), 0);
    CHECK_INT(nodetable_open(t, img, r2, false), 0);
    CHECK_INT(nodetable_open(t, img, w2, true), 0);
    nodetable_with_handle(t, img, handle_tag, &got);
    CHECK_STR(got, "writer1");
    nodetable_close(t, img, w1);
    nodetable_with_handle(t, img, handle_tag, &got);
    CHECK_STR(got, "writer2");
    nodetable_close(t, img, w2);
    nodetable_with_handle(t, img, handle_tag, &got);
    CHECK_STR(got, "reader1");
    nodetable_close(t, img, r1);
    nodetable_with_handle(t, img, handle_tag, &got);
    CHECK_STR(got, "reader2");
    CHECK_INT(nodetable_open(t, 4242, r1, false), -ENOENT);
    nodetable_free(t);
}

/* Thousands of entries (a listing of 1,000 snapshots) grow the hashes. */
static void test_many(void)
{
    struct nodetable *t = nodetable_new();
    uint64_t snaps = look(t, NODE_ROOT, "snapshots", dir_id());
    uint64_t ids[5000];
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        ids[i] = look(t, snaps, name, dir_id());
    }
    uint64_t found = 0;
    CHECK_INT(nodetable_find(t, "/snapshots/s4321", &found), 0);
    CHECK(found == ids[4321]);
    CHECK_STR(path_of(t, ids[17]), "/snapshots/s17");
    for (int i = 0; i < 5000; i++)
        nodetable_forget(t, ids[i], 1);
    CHECK_INT(nodetable_count(t, NULL), 1);
    nodetable_free(t);
}

int main(void)
{
    test_ident();
    test_paths_and_reuse();
    test_displaced_by_lookup();
    test_confirm();
    test_rename_and_remove();
    test_forget();
    test_handle_order();
    test_many();
    CHECK_DONE();
}
