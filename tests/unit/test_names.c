/* Unit tests for names: VM/snapshot names, device names, image file names. */
#include "config.h"

#include "check.h"
#include "util/names.h"

#include <string.h>

/* A string of n copies of c (n < sizeof buffer). */
static const char *repeat(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static void test_name_valid(void)
{
    CHECK(name_is_valid("a"));
    CHECK(name_is_valid("web1"));
    CHECK(name_is_valid("Web-1.2_test+x"));
    CHECK(name_is_valid("0day"));
    CHECK(name_is_valid("a."));
    CHECK(name_is_valid("a..b"));
    CHECK(name_is_valid("a-"));
    CHECK(name_is_valid("_x"));
    CHECK(name_is_valid("+x"));
    /* The check's lost+found (and mkfs's) is never a VM or a snapshot. */
    CHECK(!name_is_valid("lost+found"));
    CHECK(name_is_valid("lost+found2"));
}

static void test_name_length(void)
{
    char buf[128];
    CHECK(!name_is_valid(""));
    CHECK(name_is_valid(repeat(buf, 'x', 1)));
    CHECK(name_is_valid(repeat(buf, 'x', 63)));
    CHECK(name_is_valid(repeat(buf, 'x', NAME_MAX_LEN)));
    CHECK(!name_is_valid(repeat(buf, 'x', NAME_MAX_LEN + 1)));
    CHECK(!name_is_valid(repeat(buf, 'x', 100)));
}

static void test_name_refused(void)
{
    CHECK(!name_is_valid("."));
    CHECK(!name_is_valid(".."));
    CHECK(!name_is_valid(".hidden"));
    CHECK(!name_is_valid("-x"));
    CHECK(!name_is_valid("--help"));
    CHECK(!name_is_valid("/"));
    CHECK(!name_is_valid("a/b"));
    CHECK(!name_is_valid("bad name"));
    CHECK(!name_is_valid(" a"));
    CHECK(!name_is_valid("a "));
    CHECK(!name_is_valid("a\tb"));
    CHECK(!name_is_valid("a\nb"));
    CHECK(!name_is_valid("a:b"));
    CHECK(!name_is_valid("a*"));
    CHECK(!name_is_valid("a\\b"));
    CHECK(!name_is_valid("caf\xc3\xa9")); /* "café" in UTF-8 */
    CHECK(!name_is_valid("\xe2\x80\x8b"
                         "a")); /* zero-width space */
    CHECK(!name_is_valid("a\x7f"));
}

static void test_dev_valid(void)
{
    char buf[64];
    CHECK(dev_is_valid("vda"));
    CHECK(dev_is_valid("sdb"));
    CHECK(dev_is_valid("hdc"));
    CHECK(dev_is_valid("nvme0n1"));
    CHECK(dev_is_valid("x"));
    CHECK(dev_is_valid(repeat(buf, 'v', DEV_MAX_LEN)));
    CHECK(!dev_is_valid(repeat(buf, 'v', DEV_MAX_LEN + 1)));
    CHECK(!dev_is_valid(""));
    CHECK(!dev_is_valid("VDA"));
    CHECK(!dev_is_valid("Vda"));
    CHECK(!dev_is_valid("0vda"));
    CHECK(!dev_is_valid("vd-a"));
    CHECK(!dev_is_valid("vd_a"));
    CHECK(!dev_is_valid("vd.a"));
    CHECK(!dev_is_valid("vd a"));
    CHECK(!dev_is_valid("vda/"));
    CHECK(!dev_is_valid(".vda"));
}

static void test_dev_from_image(void)
{
    char dev[DEV_MAX_LEN + 1];
    char buf[64];

    memset(dev, 'Z', sizeof(dev));
    CHECK(dev_from_image_name("vda.qcow2", dev, sizeof(dev)));
    CHECK_STR(dev, "vda");
    CHECK(dev_from_image_name("nvme0n1.qcow2", dev, sizeof(dev)));
    CHECK_STR(dev, "nvme0n1");

    CHECK(!dev_from_image_name("vda.raw", dev, sizeof(dev)));
    CHECK(!dev_from_image_name(".qcow2", dev, sizeof(dev)));
    CHECK(!dev_from_image_name("qcow2", dev, sizeof(dev)));
    CHECK(!dev_from_image_name("", dev, sizeof(dev)));
    CHECK(!dev_from_image_name("VDA.qcow2", dev, sizeof(dev)));
    CHECK(!dev_from_image_name("vda.qcow2.bak", dev, sizeof(dev)));
    CHECK(!dev_from_image_name("vda.QCOW2", dev, sizeof(dev)));
    CHECK(!dev_from_image_name("vda.qcow", dev, sizeof(dev)));
    CHECK(!dev_from_image_name("vda.qcow3", dev, sizeof(dev)));
    CHECK(!dev_from_image_name("vdaxqcow2", dev, sizeof(dev)));
    CHECK(!dev_from_image_name("vda..qcow2", dev, sizeof(dev)));
    CHECK(!dev_from_image_name("v-a.qcow2", dev, sizeof(dev)));
    CHECK(!dev_from_image_name("a/vda.qcow2", dev, sizeof(dev)));

    /* longest dev: 32 letters + suffix; one more is refused */
    repeat(buf, 'v', DEV_MAX_LEN);
    strcat(buf, IMAGE_SUFFIX);
    CHECK(dev_from_image_name(buf, dev, sizeof(dev)));
    CHECK_INT(strlen(dev), DEV_MAX_LEN);
    repeat(buf, 'v', DEV_MAX_LEN + 1);
    strcat(buf, IMAGE_SUFFIX);
    CHECK(!dev_from_image_name(buf, dev, sizeof(dev)));

    /* an output buffer too small for the dev is refused, not overflowed */
    char small[4] = { 'x', 'x', 'x', 'x' };
    CHECK(!dev_from_image_name("vdab.qcow2", small, 4));
    CHECK(dev_from_image_name("vda.qcow2", small, 4));
    CHECK_STR(small, "vda");
}

int main(void)
{
    test_name_valid();
    test_name_length();
    test_name_refused();
    test_dev_valid();
    test_dev_from_image();
    CHECK_DONE();
}
