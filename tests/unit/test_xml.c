/* Unit tests for domxml and snapxml (and through them xmlsafe) on the
 * fixtures in tests/data/xml/. The valid fixtures pass
 * `virt-xml-validate FILE domain|domainsnapshot`. */
#include "config.h"

#include "check.h"
#include "testutil.h"
#include "meta/domxml.h"
#include "meta/snapxml.h"
#include "meta/xmlsafe.h"

#include <errno.h>
#include <iconv.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

static char data_dir[1024];

static const char *xml_path(const char *name)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/xml/%s", data_dir, name);
    return path;
}

/* The library parses descriptors (the daemon opens store files itself). */
static int open_fixture(const char *path)
{
    return open(path, O_RDONLY | O_CLOEXEC);
}

static int domxml_parse_file(const char *path, struct dom_info *d, char *msg, size_t msgsz)
{
    int fd = open_fixture(path);
    if (fd < 0)
        return -errno;
    int r = domxml_parse_fd(fd, d, msg, msgsz);
    close(fd);
    return r;
}

static int snapxml_parse_file(const char *path, struct snap_info *s, char *msg, size_t msgsz)
{
    int fd = open_fixture(path);
    if (fd < 0)
        return -errno;
    int r = snapxml_parse_fd(fd, s, msg, msgsz);
    close(fd);
    return r;
}

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        check_failures++;
        return NULL;
    }
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (*len + 4096 + 1 > cap) {
            cap = (cap + 4096) * 2;
            char *nb = realloc(buf, cap);
            if (!nb)
                break;
            buf = nb;
        }
        size_t n = fread(buf + *len, 1, 4096, f);
        if (n == 0)
            break;
        *len += n;
    }
    fclose(f);
    if (buf)
        buf[*len] = '\0';
    return buf;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the domain ---- */

static void check_domain(const struct dom_info *d)
{
    CHECK_STR(d->name, "web1");
    CHECK_STR(d->uuid, "6d3b5a0e-8a4f-4c1e-9a57-2f3c1b8e9d42");
    CHECK_INT(d->ndisks, 4);
    if (d->ndisks != 4)
        return;
    const struct dom_disk *vda = &d->disks[0], *cd = &d->disks[1], *vdb = &d->disks[2],
                          *vdc = &d->disks[3];

    /* the active qcow2 disk; its <backingStore> chain is not a disk */
    CHECK_STR(vda->dev, "vda");
    CHECK_STR(vda->device, "disk");
    CHECK_STR(vda->type, "file");
    CHECK_STR(vda->driver_type, "qcow2");
    CHECK_STR(vda->source, "/srv/vmstore/web1/disks/vda.qcow2");
    CHECK(!vda->readonly && !vda->shareable);
    CHECK(dom_disk_is_snapshotable(vda));

    CHECK_STR(cd->dev, "sda");
    CHECK_STR(cd->device, "cdrom");
    CHECK_STR(cd->type, "file");
    CHECK_STR(cd->driver_type, "raw");
    CHECK_STR(cd->source, "/var/lib/libvirt/images/debian-12.iso");
    CHECK(cd->readonly && !cd->shareable);
    CHECK(!dom_disk_is_snapshotable(cd));

    CHECK_STR(vdb->dev, "vdb");
    CHECK_STR(vdb->device, "disk");
    CHECK_STR(vdb->type, "file");
    CHECK_STR(vdb->driver_type, "raw");
    CHECK_STR(vdb->source, "/srv/shared/data.raw");
    CHECK(!vdb->readonly && vdb->shareable);
    CHECK(!dom_disk_is_snapshotable(vdb));

    CHECK_STR(vdc->dev, "vdc");
    CHECK_STR(vdc->device, "disk");
    CHECK_STR(vdc->type, "block");
    CHECK_STR(vdc->source, "/dev/vg0/web1-scratch");
    CHECK(!vdc->readonly && !vdc->shareable);
    CHECK(!dom_disk_is_snapshotable(vdc));
}

static void test_domain_file(void)
{
    struct dom_info d;
    char msg[512] = "";
    CHECK_INT(domxml_parse_file(xml_path("domain.xml"), &d, msg, sizeof(msg)), 0);
    check_domain(&d);
    domxml_free(&d);
    CHECK(d.name == NULL && d.disks == NULL && d.ndisks == 0);
}

static void test_domain_mem(void)
{
    size_t len;
    char *buf = read_text(xml_path("domain.xml"), &len);
    if (!buf)
        return;
    struct dom_info d;
    char msg[512] = "";
    CHECK_INT(domxml_parse_mem(buf, len, &d, msg, sizeof(msg)), 0);
    check_domain(&d);
    domxml_free(&d);
    free(buf);
}

static void test_domain_minimal(void)
{
    static const char x[] = "<domain type='kvm'><name>tiny</name></domain>";
    struct dom_info d;
    char msg[512] = "";
    CHECK_INT(domxml_parse_mem(x, strlen(x), &d, msg, sizeof(msg)), 0);
    CHECK_STR(d.name, "tiny");
    CHECK(d.uuid == NULL);
    CHECK_INT(d.ndisks, 0);
    domxml_free(&d);
}

static void test_snapshotable_rules(void)
{
    struct dom_disk d = { .device = "disk", .type = "file", .dev = "vda" };
    CHECK(dom_disk_is_snapshotable(&d));
    d.readonly = true;
    CHECK(!dom_disk_is_snapshotable(&d));
    d.readonly = false;
    d.shareable = true;
    CHECK(!dom_disk_is_snapshotable(&d));
    d.shareable = false;
    strcpy(d.type, "network");
    CHECK(!dom_disk_is_snapshotable(&d));
    strcpy(d.type, "file");
    strcpy(d.device, "floppy");
    CHECK(!dom_disk_is_snapshotable(&d));
    strcpy(d.device, "lun");
    CHECK(!dom_disk_is_snapshotable(&d));
}

/* ---- refusals of <domain> ---- */

/* Refused with want, out left empty, a reason in msg. */
static void expect_dom_refused(int line, const char *file, int want, const char *needle)
{
    struct dom_info d;
    char msg[512] = "";
    int r = domxml_parse_file(xml_path(file), &d, msg, sizeof(msg));
    if (r != want || d.name || d.disks || d.ndisks || !msg[0] || (needle && !strstr(msg, needle))) {
        fprintf(stderr, "line %d: %s: domxml_parse_file = %d (want %d), msg \"%s\"\n", line, file,
                r, want, msg);
        check_failures++;
    }
    if (r == 0)
        domxml_free(&d);
}

static void test_domain_refused(void)
{
    expect_dom_refused(__LINE__, "bad-malformed.xml", -EINVAL, "well-formed");
    expect_dom_refused(__LINE__, "bad-root.xml", -EINVAL, "<domain>");
    expect_dom_refused(__LINE__, "snapshot.xml", -EINVAL, "<domain>");
    expect_dom_refused(__LINE__, "bad-noname.xml", -EINVAL, "<name>");
    expect_dom_refused(__LINE__, "bad-notarget.xml", -EINVAL, "target");

    static const char empty_name[] = "<domain><name></name></domain>";
    struct dom_info d;
    char msg[512] = "";
    CHECK_INT(domxml_parse_mem(empty_name, strlen(empty_name), &d, msg, sizeof(msg)), -EINVAL);
    CHECK_INT(domxml_parse_mem("", 0, &d, msg, sizeof(msg)), -EINVAL);
}

/* Billion laughs: refused, quickly, and nothing is expanded. */
static void test_entity_bomb(void)
{
    struct dom_info d;
    char msg[512] = "";
    /* Expanding it would take the machine's memory and minutes: the alarm
     * ends the test then (SIGALRM), a watchdog, not a measure. */
    alarm(60);
    int r = domxml_parse_file(xml_path("bad-entities.xml"), &d, msg, sizeof(msg));
    alarm(0);
    CHECK_INT(r, -EINVAL);
    CHECK(d.name == NULL);
    CHECK(strstr(msg, "lollol") == NULL);
    if (r == 0)
        domxml_free(&d);
}

static void test_external_entity(void)
{
    struct dom_info d;
    char msg[4096] = "";
    int r = domxml_parse_file(xml_path("bad-xxe.xml"), &d, msg, sizeof(msg));
    CHECK_INT(r, -EINVAL);
    CHECK(d.name == NULL);
    CHECK(msg[0] != '\0');
    CHECK(strstr(msg, "root:") == NULL);
    if (r == 0) {
        CHECK(!d.name || !strstr(d.name, "root:"));
        domxml_free(&d);
    }

    /* at the xmlsafe level: no document at all comes back */
    int err = 0, fd = open_fixture(xml_path("bad-xxe.xml"));
    xmlDocPtr doc = xmlsafe_parse_fd(fd, "domain", &err, msg, sizeof(msg));
    close(fd);
    CHECK(doc == NULL);
    CHECK_INT(err, -EINVAL);
    if (doc)
        xmlFreeDoc(doc);
}

/* The document is refused for its DOCTYPE only after parsing, so the
 * parse itself must not open what an external entity names: the entity
 * points at a file watched for opens. */
static void test_external_entity_not_opened(void)
{
    char secret[TEST_TMP_MAX];
    int sfd = test_tmp_template(secret, sizeof(secret), "vmstorefs-xxe") ? mkstemp(secret) : -1;
    CHECK(sfd >= 0);
    if (sfd < 0)
        return;
    CHECK(write(sfd, "secret", 6) == 6);
    close(sfd);
    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    CHECK(in >= 0 && inotify_add_watch(in, secret, IN_OPEN) >= 0);
    char x[2 * TEST_TMP_MAX + 256], msg[512] = "";
    snprintf(x, sizeof(x),
             "<?xml version='1.0'?>\n<!DOCTYPE domain [\n"
             "  <!ENTITY xxe SYSTEM 'file://%s'>\n"
             "  <!ENTITY %% p SYSTEM 'file://%s'> %%p;\n]>\n"
             "<domain><name>&xxe;</name></domain>\n",
             secret, secret);
    struct dom_info d;
    CHECK_INT(domxml_parse_mem(x, strlen(x), &d, msg, sizeof(msg)), -EINVAL);
    char ev[4096];
    CHECK(read(in, ev, sizeof(ev)) < 0 && errno == EAGAIN); /* no open event */
    close(in);
    unlink(secret);
}

/* Any DOCTYPE at all is refused: libvirt never writes one. */
static void test_plain_doctype(void)
{
    static const char x[] = "<?xml version='1.0'?>\n<!DOCTYPE domain>\n"
                            "<domain><name>d</name></domain>";
    static const char sys[] = "<!DOCTYPE domain SYSTEM \"http://127.0.0.1:9/x.dtd\">"
                              "<domain><name>d</name></domain>";
    struct dom_info d;
    char msg[512] = "";
    CHECK_INT(domxml_parse_mem(x, strlen(x), &d, msg, sizeof(msg)), -EINVAL);
    CHECK(strstr(msg, "DOCTYPE") != NULL);
    CHECK_INT(domxml_parse_mem(sys, strlen(sys), &d, msg, sizeof(msg)), -EINVAL);
}

/* A file one byte over the limit is refused; exactly at the limit it is
 * parsed (padding is an XML comment). */
static void test_size_limit(void)
{
    char dir[TEST_TMP_MAX];
    if (!test_tmp_template(dir, sizeof(dir), "vmstorefs-xml") || !mkdtemp(dir)) {
        perror("mkdtemp");
        check_failures++;
        return;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/big.xml", dir);
    static const char head[] = "<domain><name>big</name><!--", tail[] = "--></domain>";
    for (size_t extra = 0; extra <= 1; extra++) {
        size_t total = XMLSAFE_MAX_BYTES + extra;
        FILE *f = fopen(path, "we");
        CHECK(f != NULL);
        if (!f)
            break;
        fputs(head, f);
        for (size_t i = strlen(head) + strlen(tail); i < total; i++)
            fputc('x', f);
        fputs(tail, f);
        fclose(f);

        struct dom_info d;
        char msg[512] = "";
        int r = domxml_parse_file(path, &d, msg, sizeof(msg));
        if (extra) {
            CHECK_INT(r, -EINVAL);
            CHECK(strstr(msg, "larger") != NULL);
        } else {
            CHECK_INT(r, 0);
            CHECK_STR(d.name, "big");
        }
        if (r == 0)
            domxml_free(&d);
    }
    unlink(path);
    rmdir(dir);
}

/* ---- the pre-scan bounds ---- */

/* buf gets "<domain>" with n attributes named a0..a(n-1) on the root, each
 * value holding `value`, then `inner`, then "</domain>". */
static char *wide(size_t n, const char *value, const char *inner, size_t *len)
{
    size_t cap = 64 + n * (16 + strlen(value)) + strlen(inner);
    char *buf = malloc(cap);
    size_t l = (size_t)sprintf(buf, "<domain");
    for (size_t i = 0; i < n; i++)
        l += (size_t)sprintf(buf + l, " a%zu='%s'", i, value);
    l += (size_t)sprintf(buf + l, ">%s</domain>", inner);
    *len = l;
    return buf;
}

static int prescan(const char *buf, size_t len, char *msg, size_t msgsz)
{
    msg[0] = '\0';
    return xmlsafe_prescan(buf, len, msg, msgsz);
}

/* One element with 104,000 attributes (under 1 MiB) costs libxml2 2.9
 * ~19 s of CPU; it must be refused at once: by the prescan, whose
 * message says why, before libxml2 sees it (the time is printed, not
 * asserted; the alarm is a watchdog). */
static void test_quadratic_attributes(void)
{
    size_t len;
    char *x = wide(104000, "", "<name>w</name>", &len), msg[512] = "";
    CHECK(len < XMLSAFE_MAX_BYTES);
    struct dom_info d;
    double t0 = now();
    alarm(60);
    int r = domxml_parse_mem(x, len, &d, msg, sizeof(msg));
    alarm(0);
    double took = now() - t0;
    fprintf(stderr, "104,000 attributes (%zu bytes): refused in %.6f s\n", len, took);
    CHECK_INT(r, -EINVAL);
    CHECK(strstr(msg, "more than 256 attributes") != NULL);
    if (r == 0)
        domxml_free(&d);
    free(x);
}

/* A document in EBCDIC hides its '<' and '=' (0x4C, 0x7E) from the
 * pre-scan; libxml2 would honour its encoding declaration and parse 300
 * attributes (or, at 95,000, spend half a minute). Read as UTF-8, it is
 * not XML at all. */
static void test_foreign_encoding(void)
{
    char ascii[8192], ebcdic[8192], msg[512] = "";
    size_t n = (size_t)snprintf(ascii, sizeof(ascii),
                                "<?xml version='1.0' encoding='EBCDIC-US'?><domain");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(ascii + n, sizeof(ascii) - n, " a%d='1'", i);
    n += (size_t)snprintf(ascii + n, sizeof(ascii) - n, "><name>e</name></domain>");
    iconv_t cd = iconv_open("EBCDIC-US", "ASCII");
    CHECK(cd != (iconv_t)-1);
    if (cd == (iconv_t)-1)
        return;
    char *in = ascii, *out = ebcdic;
    size_t inleft = n, outleft = sizeof(ebcdic);
    CHECK(iconv(cd, &in, &inleft, &out, &outleft) != (size_t)-1 && inleft == 0);
    iconv_close(cd);
    struct dom_info d;
    int r = domxml_parse_mem(ebcdic, n, &d, msg, sizeof(msg));
    CHECK_INT(r, -EINVAL);
    if (r == 0)
        domxml_free(&d);
}

static void test_prescan_bounds(void)
{
    char msg[512];
    size_t len;
    /* 256 attributes pass, 257 do not; '=' and '>' inside values and
     * whole tags inside comments, CDATA and PIs are not counted */
    char *x = wide(XMLSAFE_MAX_ATTRS, "a=b>c\"d", "<!-- <x a='' b=''> --><![CDATA[ <y c='' > ]]><?pi d='' ?>", &len);
    CHECK_INT(prescan(x, len, msg, sizeof(msg)), 0);
    struct dom_info d;
    CHECK_INT(domxml_parse_mem(x, len, &d, msg, sizeof(msg)), -EINVAL); /* no <name>: parsed */
    CHECK_STR(msg, "<domain> has no <name>");
    free(x);
    x = wide(XMLSAFE_MAX_ATTRS + 1, "", "", &len);
    CHECK_INT(prescan(x, len, msg, sizeof(msg)), -EINVAL);
    free(x);
    /* a quoted '>' does not end the tag: the attributes after it count */
    x = wide(XMLSAFE_MAX_ATTRS + 1, ">", "", &len);
    CHECK_INT(prescan(x, len, msg, sizeof(msg)), -EINVAL);
    free(x);

    /* elements: the root and XMLSAFE_MAX_ELEMENTS - 1 more pass */
    size_t cap = 32 + (XMLSAFE_MAX_ELEMENTS + 1) * 8;
    char *e = malloc(cap);
    for (int extra = 0; extra <= 1; extra++) {
        len = (size_t)sprintf(e, "<domain>");
        for (int i = 0; i < XMLSAFE_MAX_ELEMENTS - 1 + extra; i++)
            len += (size_t)sprintf(e + len, "<a/>");
        len += (size_t)sprintf(e + len, "</domain>");
        CHECK_INT(prescan(e, len, msg, sizeof(msg)), extra ? -EINVAL : 0);
        if (extra)
            CHECK(strstr(msg, "elements") != NULL);
    }
    /* nesting: XMLSAFE_MAX_DEPTH levels pass (the innermost <b>), one
     * more does not; closed elements do not add up */
    for (int extra = 0; extra <= 1; extra++) {
        len = 0;
        for (int i = 0; i < XMLSAFE_MAX_DEPTH - 1 + extra; i++)
            len += (size_t)sprintf(e + len, "<a><b></b>");
        for (int i = 0; i < XMLSAFE_MAX_DEPTH - 1 + extra; i++)
            len += (size_t)sprintf(e + len, "</a>");
        CHECK_INT(prescan(e, len, msg, sizeof(msg)), extra ? -EINVAL : 0);
        if (extra)
            CHECK(strstr(msg, "nested deeper") != NULL);
    }
    free(e);
    /* a DOCTYPE is refused before any of it is read */
    static const char doc[] = "<!DOCTYPE domain [<!ENTITY a 'b'>]><domain/>";
    CHECK_INT(prescan(doc, strlen(doc), msg, sizeof(msg)), -EINVAL);
    CHECK_STR(msg, "XML with a DOCTYPE is refused");
    /* the test fixtures (libvirt's own XML) all pass */
    static const char *const fixtures[] = { "domain.xml", "snapshot.xml", "snapshot-root.xml" };
    for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
        char *t = read_text(xml_path(fixtures[i]), &len);
        CHECK(t && prescan(t, len, msg, sizeof(msg)) == 0);
        free(t);
    }
}

/* ---- snapshots ---- */

static void check_snapshot(const struct snap_info *s)
{
    CHECK_STR(s->name, "s2");
    CHECK_STR(s->description, "Before the PHP upgrade");
    CHECK_STR(s->parent, "s1");
    CHECK_INT(s->creation_time, 1700000123);
    CHECK_INT(s->ndisks, 2);
    if (s->ndisks == 2) {
        CHECK_STR(s->disks[0], "vda");
        CHECK_STR(s->disks[1], "vdc");
    }
}

static void test_snapshot_file(void)
{
    struct snap_info s;
    char msg[512] = "";
    CHECK_INT(snapxml_parse_file(xml_path("snapshot.xml"), &s, msg, sizeof(msg)), 0);
    check_snapshot(&s);
    snapxml_free(&s);
    CHECK(s.name == NULL && s.disks == NULL && s.ndisks == 0);
}

static void test_snapshot_mem(void)
{
    size_t len;
    char *buf = read_text(xml_path("snapshot.xml"), &len);
    if (!buf)
        return;
    struct snap_info s;
    char msg[512] = "";
    CHECK_INT(snapxml_parse_mem(buf, len, &s, msg, sizeof(msg)), 0);
    check_snapshot(&s);
    snapxml_free(&s);
    free(buf);
}

static void test_snapshot_root(void)
{
    struct snap_info s;
    char msg[512] = "";
    CHECK_INT(snapxml_parse_file(xml_path("snapshot-root.xml"), &s, msg, sizeof(msg)), 0);
    CHECK_STR(s.name, "s1");
    CHECK(s.parent == NULL);
    CHECK(s.description == NULL);
    CHECK_INT(s.creation_time, 1690000000);
    CHECK_INT(s.ndisks, 1);
    if (s.ndisks == 1)
        CHECK_STR(s.disks[0], "vda");
    snapxml_free(&s);
}

static void expect_snap_refused(int line, const char *file, int want, const char *needle)
{
    struct snap_info s;
    char msg[512] = "";
    int r = snapxml_parse_file(xml_path(file), &s, msg, sizeof(msg));
    if (r != want || s.name || s.disks || s.ndisks || !msg[0] || (needle && !strstr(msg, needle))) {
        fprintf(stderr, "line %d: %s: snapxml_parse_file = %d (want %d), msg \"%s\"\n", line, file,
                r, want, msg);
        check_failures++;
    }
    if (r == 0)
        snapxml_free(&s);
}

static void expect_snap_mem_refused(int line, const char *x)
{
    struct snap_info s;
    char msg[512] = "";
    int r = snapxml_parse_mem(x, strlen(x), &s, msg, sizeof(msg));
    if (r != -EINVAL || s.name || !msg[0]) {
        fprintf(stderr, "line %d: snapxml_parse_mem(\"%s\") = %d, msg \"%s\"\n", line, x, r, msg);
        check_failures++;
    }
    if (r == 0)
        snapxml_free(&s);
}

static void test_snapshot_refused(void)
{
    expect_snap_refused(__LINE__, "bad-snap-notime.xml", -EINVAL, "creationTime");
    expect_snap_refused(__LINE__, "bad-snap-badtime.xml", -EINVAL, "creationTime");
    expect_snap_refused(__LINE__, "domain.xml", -EINVAL, "<domainsnapshot>");
    expect_snap_refused(__LINE__, "bad-malformed.xml", -EINVAL, NULL);
    expect_snap_mem_refused(__LINE__,
                            "<domainsnapshot><creationTime>5</creationTime></domainsnapshot>");
    expect_snap_mem_refused(
        __LINE__, "<domainsnapshot><name>s</name><creationTime>-5</creationTime></domainsnapshot>");
    expect_snap_mem_refused(
        __LINE__,
        "<domainsnapshot><name>s</name><creationTime>12x</creationTime></domainsnapshot>");
    expect_snap_mem_refused(
        __LINE__, "<domainsnapshot><name>s</name><creationTime></creationTime></domainsnapshot>");
    expect_snap_mem_refused(__LINE__, "<domainsnapshot><name>s</name><creationTime>"
                                      "99999999999999999999999</creationTime></domainsnapshot>");
    expect_snap_mem_refused(__LINE__, "<!DOCTYPE domainsnapshot [<!ENTITY t \"5\">]>"
                                      "<domainsnapshot><name>s</name>"
                                      "<creationTime>&t;</creationTime></domainsnapshot>");
}

static void test_snapshot_time_whitespace(void)
{
    static const char x[] = "<domainsnapshot><name>s</name>"
                            "<creationTime>\n  1700000000\n</creationTime></domainsnapshot>";
    struct snap_info s;
    char msg[512] = "";
    CHECK_INT(snapxml_parse_mem(x, strlen(x), &s, msg, sizeof(msg)), 0);
    CHECK_INT(s.creation_time, 1700000000);
    CHECK_INT(s.ndisks, 0);
    snapxml_free(&s);
}

int main(void)
{
    const char *d = getenv("TEST_DATA");
    snprintf(data_dir, sizeof(data_dir), "%s", d ? d : "tests/data");

    test_domain_file();
    test_domain_mem();
    test_domain_minimal();
    test_snapshotable_rules();
    test_domain_refused();
    test_entity_bomb();
    test_external_entity();
    test_external_entity_not_opened();
    test_plain_doctype();
    test_size_limit();
    test_quadratic_attributes();
    test_foreign_encoding();
    test_prescan_bounds();
    test_snapshot_file();
    test_snapshot_mem();
    test_snapshot_root();
    test_snapshot_refused();
    test_snapshot_time_whitespace();
    xmlCleanupParser();
    CHECK_DONE();
}
