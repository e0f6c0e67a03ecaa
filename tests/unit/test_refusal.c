/* Unit tests for refusal: one errno per kind of refused operation. */
#include "config.h"

#include "check.h"
#include "view/refusal.h"

#include <errno.h>

static void test_snapshot_contents_erofs(void)
{
    /* A frozen image, as the target or the source. */
    CHECK_INT(refusal_errno(R_UNLINK, "/web1/snapshots/s1/vda.qcow2", NULL), -EROFS);
    CHECK_INT(refusal_errno(R_LINK, "/web1/snapshots/s1/vda.qcow2", "/web1/disks/vdz.qcow2"), -EROFS);
    CHECK_INT(refusal_errno(R_RENAME, "/web1/snapshots/s1/vda.qcow2", "/web1/x"), -EROFS);
    /* Anything created in a snapshot directory, whatever its name. */
    CHECK_INT(refusal_errno(R_CREATE, "/web1/snapshots/s1/new.qcow2", NULL), -EROFS);
    CHECK_INT(refusal_errno(R_CREATE, "/web1/snapshots/s1/snapshot.xml", NULL), -EROFS);
    CHECK_INT(refusal_errno(R_SYMLINK, "/web1/snapshots/s1/l", NULL), -EROFS);
    CHECK_INT(refusal_errno(R_MKDIR, "/web1/snapshots/s1/d", NULL), -EROFS);
    CHECK_INT(refusal_errno(R_MKNOD, "/web1/snapshots/s1/fifo", NULL), -EROFS);
    CHECK_INT(refusal_errno(R_LINK, "/web1/disks/vda.qcow2", "/web1/snapshots/s1/x.qcow2"), -EROFS);
    CHECK_INT(refusal_errno(R_RENAME, "/web1/disks/vda.qcow2", "/web1/snapshots/s1/vda.qcow2"),
              -EROFS);
    CHECK_INT(refusal_errno(R_RMDIR, "/web1/snapshots/s1/clones", NULL), -EROFS);
}

static void test_other_namespace_changes_eperm(void)
{
    CHECK_INT(refusal_errno(R_MKDIR, "/web1/snapshots/new", NULL), -EPERM);
    CHECK_INT(refusal_errno(R_RMDIR, "/web1/snapshots/s1", NULL), -EPERM);
    CHECK_INT(refusal_errno(R_MKDIR, "/web1/clones/c1", NULL), -EPERM);
    CHECK_INT(refusal_errno(R_MKDIR, "/web1/snapshots/s1/clones/c1", NULL), -EPERM);
    CHECK_INT(refusal_errno(R_UNLINK, "/web1/disks/vda.qcow2", NULL), -EPERM);
    CHECK_INT(refusal_errno(R_UNLINK, "/web1/domain.xml", NULL), -EPERM);
    CHECK_INT(refusal_errno(R_RENAME, "/web1", "/web9"), -EPERM);
    CHECK_INT(refusal_errno(R_SYMLINK, "/web1/current", NULL), -EPERM);
    CHECK_INT(refusal_errno(R_MKNOD, "/web1/disks/fifo", NULL), -EPERM);
    CHECK_INT(refusal_errno(R_CREATE, "/web1/disks/new.qcow2", NULL), -EPERM);
    CHECK_INT(refusal_errno(R_MKDIR, "/vm9", NULL), -EPERM);
    CHECK_INT(refusal_errno(R_UNLINK, NULL, NULL), -EPERM);
    CHECK_INT(refusal_errno(R_CREATE, "/../../etc/x", NULL), -EPERM);
}

static void test_xattrs_enotsup(void)
{
    CHECK_INT(refusal_errno(R_SETXATTR, "/web1/disks/vda.qcow2", NULL), -ENOTSUP);
    CHECK_INT(refusal_errno(R_SETXATTR, "/web1/snapshots/s1/vda.qcow2", NULL), -ENOTSUP);
    CHECK_INT(refusal_errno(R_REMOVEXATTR, "/", NULL), -ENOTSUP);
}

static void test_names(void)
{
    CHECK_STR(refusal_op_name(R_MKNOD), "mknod");
    CHECK_STR(refusal_op_name(R_REMOVEXATTR), "removexattr");
    CHECK_STR(refusal_why(-EROFS), "snapshots are read-only");
    CHECK_STR(refusal_why(-EPERM), "not supported by this version");
    CHECK_STR(refusal_why(-ENOTSUP), "extended attributes are not supported");
}

int main(void)
{
    test_snapshot_contents_erofs();
    test_other_namespace_changes_eperm();
    test_xattrs_enotsup();
    test_names();
    CHECK_DONE();
}
