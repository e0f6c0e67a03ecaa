/* Unit tests for mountcheck: finding a vmstorefs mount in mountinfo. */
#include "config.h"

#include "check.h"
#include "fuse/mountcheck.h"

#include <stdbool.h>
#include <string.h>

static const char mountinfo[] =
    "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro\n"
    "23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
    "60 22 0:45 / /mnt/a rw,nosuid,nodev,relatime shared:30 - fuse.vmstorefs /srv/store "
    "rw,user_id=0,group_id=0,allow_other\n"
    "61 22 0:46 / /mnt/with\\040space rw,nosuid,nodev,relatime shared:31 - fuse.vmstorefs "
    "/srv/other\\040store rw,user_id=0,group_id=0\n"
    "62 22 0:47 / /mnt/b rw,relatime shared:32 - fuse.sshfs host:/ rw,user_id=0,group_id=0\n"
    "63 22 0:48 / /mnt/c rw,relatime - tmpfs tmpfs rw,size=1024k\n"
    "64 22 0:49 / /mnt/back\\134slash rw,relatime - fuse.vmstorefs /srv/s3 rw\n";

static bool is_mounted(const char *table, const char *dir, const char *fstype)
{
    FILE *f = fmemopen((void *)table, strlen(table), "r");
    if (!f) {
        perror("fmemopen");
        check_failures++;
        return false;
    }
    bool r = mountcheck_is_mounted(f, dir, fstype);
    fclose(f);
    return r;
}

#define VMS "fuse.vmstorefs"

static void test_plain(void)
{
    CHECK(is_mounted(mountinfo, "/mnt/a", VMS));
    CHECK(!is_mounted(mountinfo, "/mnt/a/", VMS));
    CHECK(!is_mounted(mountinfo, "/mnt/ab", VMS));
}

static void test_prefix(void)
{
    CHECK(!is_mounted(mountinfo, "/mnt", VMS));
    CHECK(!is_mounted(mountinfo, "/", VMS));
    CHECK(!is_mounted(mountinfo, "/mnt/", VMS));
}

static void test_escaped(void)
{
    CHECK(is_mounted(mountinfo, "/mnt/with space", VMS));
    CHECK(!is_mounted(mountinfo, "/mnt/with\\040space", VMS));
    CHECK(!is_mounted(mountinfo, "/mnt/with", VMS));
    CHECK(is_mounted(mountinfo, "/mnt/back\\slash", VMS));
}

static void test_other_types(void)
{
    CHECK(!is_mounted(mountinfo, "/mnt/b", VMS));
    CHECK(is_mounted(mountinfo, "/mnt/b", "fuse.sshfs"));
    CHECK(!is_mounted(mountinfo, "/mnt/c", VMS));
    CHECK(!is_mounted(mountinfo, "/proc", VMS));
    CHECK(is_mounted(mountinfo, "/proc", "proc"));
    CHECK(!is_mounted(mountinfo, "/mnt/a", "fuse"));
    CHECK(!is_mounted(mountinfo, "/mnt/a", "fuse.vmstorefs2"));
}

/* Optional fields vary in number (none, one, several). */
static void test_optional_fields(void)
{
    static const char t[] = "70 22 0:50 / /m0 rw - fuse.vmstorefs s rw\n"
                            "71 22 0:51 / /m2 rw shared:5 master:3 - fuse.vmstorefs s rw\n";
    CHECK(is_mounted(t, "/m0", VMS));
    CHECK(is_mounted(t, "/m2", VMS));
    CHECK(!is_mounted(t, "/m1", VMS));
}

/* Truncated or empty lines are skipped, not misread. */
static void test_junk(void)
{
    static const char t[] = "\n"
                            "garbage\n"
                            "1 2 3 4\n"
                            "1 2 3 / /mnt/x rw\n"
                            "80 22 0:52 / /mnt/y rw - fuse.vmstorefs s rw\n";
    CHECK(!is_mounted(t, "/mnt/x", VMS));
    CHECK(is_mounted(t, "/mnt/y", VMS));
    CHECK(!is_mounted("", "/mnt/a", VMS));
}

int main(void)
{
    test_plain();
    test_prefix();
    test_escaped();
    test_other_types();
    test_optional_fields();
    test_junk();
    CHECK_DONE();
}
