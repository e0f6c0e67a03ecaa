/* Unit tests for vpath: what each path inside the mount means. */
#include "config.h"

#include "check.h"
#include "view/vpath.h"

#include <errno.h>
#include <string.h>

/* Parses path and checks kind and the fields the kind carries. Fields
 * given as NULL must come back empty. */
static void expect(int line, const char *path, enum vkind kind, const char *vm, const char *snap,
                   const char *dev, const char *name)
{
    struct vpath vp;
    int r = vpath_parse(path, &vp);
    if (r != 0) {
        fprintf(stderr, "line %d: vpath_parse(\"%s\") = %d\n", line, path, r);
        check_failures++;
        return;
    }
    if (vp.kind != kind) {
        fprintf(stderr, "line %d: \"%s\": kind %s, expected %s\n", line, path,
                vpath_kind_name(vp.kind), vpath_kind_name(kind));
        check_failures++;
    }
    CHECK_STR(vp.vm, vm ? vm : "");
    CHECK_STR(vp.snap, snap ? snap : "");
    CHECK_STR(vp.dev, dev ? dev : "");
    CHECK_STR(vp.name, name ? name : "");
}

static void expect_enoent(int line, const char *path)
{
    struct vpath vp;
    int r = vpath_parse(path, &vp);
    if (r != -ENOENT) {
        fprintf(stderr, "line %d: vpath_parse(\"%s\") = %d (kind %s), expected -ENOENT\n", line,
                path, r, r == 0 ? vpath_kind_name(vp.kind) : "-");
        check_failures++;
    }
}

#define EXPECT(path, kind, vm, snap, dev, name) expect(__LINE__, path, kind, vm, snap, dev, name)
#define EXPECT_ENOENT(path) expect_enoent(__LINE__, path)

static void test_kinds(void)
{
    EXPECT("/", V_ROOT, NULL, NULL, NULL, NULL);
    EXPECT("/.jobs", V_JOBS, NULL, NULL, NULL, NULL);
    EXPECT("/web1", V_VM, "web1", NULL, NULL, NULL);
    EXPECT("/web1/domain.xml", V_DOMXML, "web1", NULL, NULL, NULL);
    EXPECT("/web1/disks", V_DISKS, "web1", NULL, NULL, NULL);
    EXPECT("/web1/disks/vda.qcow2", V_DISK, "web1", NULL, "vda", NULL);
    EXPECT("/web1/snapshots", V_SNAPS, "web1", NULL, NULL, NULL);
    EXPECT("/web1/snapshots/s1", V_SNAP, "web1", "s1", NULL, NULL);
    EXPECT("/web1/snapshots/s1/vdb.qcow2", V_SNAP_IMAGE, "web1", "s1", "vdb", NULL);
    EXPECT("/web1/snapshots/s1/clones", V_SNAP_CLONES, "web1", "s1", NULL, NULL);
    EXPECT("/web1/snapshots/s1/clones/web2", V_SNAP_CLONE, "web1", "s1", NULL, "web2");
    EXPECT("/web1/clones", V_CLONES, "web1", NULL, NULL, NULL);
    EXPECT("/web1/clones/web3", V_CLONE, "web1", NULL, NULL, "web3");
    EXPECT("/web1/current", V_CURRENT, "web1", NULL, NULL, NULL);
}

static void test_slashes(void)
{
    EXPECT("", V_ROOT, NULL, NULL, NULL, NULL);
    EXPECT("//", V_ROOT, NULL, NULL, NULL, NULL);
    EXPECT("/web1/", V_VM, "web1", NULL, NULL, NULL);
    EXPECT("//web1//disks//vda.qcow2", V_DISK, "web1", NULL, "vda", NULL);
    EXPECT("/web1/snapshots/", V_SNAPS, "web1", NULL, NULL, NULL);
    EXPECT("/web1//snapshots///s1/", V_SNAP, "web1", "s1", NULL, NULL);
    EXPECT("/web1/snapshots/s1/clones/", V_SNAP_CLONES, "web1", "s1", NULL, NULL);
}

/* Names that look like components of the layout are still names. */
static void test_names_like_components(void)
{
    EXPECT("/snapshots", V_VM, "snapshots", NULL, NULL, NULL);
    EXPECT("/disks/disks", V_DISKS, "disks", NULL, NULL, NULL);
    EXPECT("/web1/snapshots/clones", V_SNAP, "web1", "clones", NULL, NULL);
    EXPECT("/web1/snapshots/current", V_SNAP, "web1", "current", NULL, NULL);
    EXPECT("/web1/clones/clones", V_CLONE, "web1", NULL, NULL, "clones");
}

/* Below a directory of the VM that is none of its own entries: the images
 * a chain reaches there (a raw base), whatever the names; the directory
 * itself (two components) is left to the view (view_base_dir). */
static void test_bases(void)
{
    struct vpath vp;
    CHECK_INT(vpath_parse("/web1/base/vda.raw", &vp), 0);
    CHECK_INT(vp.kind, V_BASE);
    CHECK_STR(vp.vm, "web1");
    CHECK_STR(vp.base, "base/vda.raw");
    CHECK_INT(vpath_parse("//web1/a//b/c/d.img/", &vp), 0);
    CHECK_INT(vp.kind, V_BASE);
    CHECK_STR(vp.base, "a/b/c/d.img");
    CHECK_INT(vpath_parse("/a/b/c/d/e/f", &vp), 0);
    CHECK_STR(vp.base, "b/c/d/e/f");
    CHECK_INT(vpath_parse("/web1/Disks/x", &vp), 0);
    CHECK_STR(vp.base, "Disks/x");
    EXPECT_ENOENT("/web1/base");
    EXPECT_ENOENT("/web1/base/..");
    EXPECT_ENOENT("/web1/base/./x");
    EXPECT_ENOENT("/bad name/base/x");
}

static void test_lengths(void)
{
    char name64[NAME_MAX_LEN + 1], name65[NAME_MAX_LEN + 2], path[512];
    memset(name64, 'n', NAME_MAX_LEN);
    name64[NAME_MAX_LEN] = '\0';
    memset(name65, 'n', NAME_MAX_LEN + 1);
    name65[NAME_MAX_LEN + 1] = '\0';

    snprintf(path, sizeof(path), "/%s/snapshots/%s/clones/%s", name64, name64, name64);
    EXPECT(path, V_SNAP_CLONE, name64, name64, NULL, name64);

    snprintf(path, sizeof(path), "/%s", name65);
    EXPECT_ENOENT(path);
    snprintf(path, sizeof(path), "/web1/snapshots/%s", name65);
    EXPECT_ENOENT(path);
    snprintf(path, sizeof(path), "/web1/clones/%s", name65);
    EXPECT_ENOENT(path);
    /* a component far longer than any buffer */
    char huge[300];
    memset(huge, 'h', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    snprintf(path, sizeof(path), "/web1/%s", huge);
    EXPECT_ENOENT(path);

    /* dev of 32 is fine, 33 is not */
    char dev[64];
    memset(dev, 'v', DEV_MAX_LEN);
    strcpy(dev + DEV_MAX_LEN, ".qcow2");
    snprintf(path, sizeof(path), "/web1/disks/%s", dev);
    struct vpath vp;
    CHECK_INT(vpath_parse(path, &vp), 0);
    CHECK_INT(vp.kind, V_DISK);
    CHECK_INT(strlen(vp.dev), DEV_MAX_LEN);
    memset(dev, 'v', DEV_MAX_LEN + 1);
    strcpy(dev + DEV_MAX_LEN + 1, ".qcow2");
    snprintf(path, sizeof(path), "/web1/disks/%s", dev);
    EXPECT_ENOENT(path);
}

static void test_enoent(void)
{
    /* bad VM names */
    EXPECT_ENOENT("/.hidden");
    EXPECT_ENOENT("/..");
    EXPECT_ENOENT("/.");
    EXPECT_ENOENT("/-x");
    EXPECT_ENOENT("/bad name");
    EXPECT_ENOENT("/caf\xc3\xa9");
    EXPECT_ENOENT("/.jobs/x");
    EXPECT_ENOENT("/.vmstorefs");
    /* unknown or misplaced components */
    EXPECT_ENOENT("/web1/unknown");
    EXPECT_ENOENT("/web1/Disks");
    EXPECT_ENOENT("/web1/.jobs");
    EXPECT_ENOENT("/web1/domain.xml/x");
    EXPECT_ENOENT("/web1/current/x");
    EXPECT_ENOENT("/web1/disks/x.raw");
    EXPECT_ENOENT("/web1/disks/VDA.qcow2");
    EXPECT_ENOENT("/web1/disks/vda.qcow2.bak");
    EXPECT_ENOENT("/web1/disks/.qcow2");
    EXPECT_ENOENT("/web1/disks/vda");
    EXPECT_ENOENT("/web1/disks/vda.qcow2/x");
    EXPECT_ENOENT("/web1/snapshots/.h");
    EXPECT_ENOENT("/web1/snapshots/..");
    EXPECT_ENOENT("/web1/snapshots/-s");
    EXPECT_ENOENT("/web1/snapshots/s1/x.raw");
    EXPECT("/web1/snapshots/s1/snapshot.xml", V_SNAP_XML, "web1", "s1", NULL, NULL);
    EXPECT_ENOENT("/web1/snapshots/.hidden-0a/snapshot.xml");
    EXPECT_ENOENT("/web1/snapshots/s1/vda.qcow2/x");
    EXPECT_ENOENT("/web1/snapshots/s1/clones/.x");
    EXPECT_ENOENT("/web1/snapshots/s/clones/a/b");
    EXPECT_ENOENT("/web1/clones/.x");
    EXPECT_ENOENT("/web1/clones/a/b");
    /* too deep, whatever the components (six are a base: test_bases) */
    EXPECT_ENOENT("/a/b/c/d/e/f/g");
    EXPECT_ENOENT("/web1/snapshots/s1/clones/c/d/e/f/g/h");
}

static void test_kind_names(void)
{
    CHECK_STR(vpath_kind_name(V_ROOT), "root");
    CHECK_STR(vpath_kind_name(V_SNAP_IMAGE), "frozen image");
    CHECK_STR(vpath_kind_name(V_CURRENT), "current");
    for (int k = V_ROOT; k <= V_CURRENT; k++)
        CHECK(vpath_kind_name((enum vkind)k) != NULL);
}

int main(void)
{
    test_kinds();
    test_slashes();
    test_bases();
    test_names_like_components();
    test_lengths();
    test_enoent();
    test_kind_names();
    CHECK_DONE();
}
